"""The data directory records its backends: another storage backend is refused, another index
backend gets a rebuilt index (real RocksDB and Tantivy, and the real `loom` CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.backends_record import RECORD
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest

Opener = Callable[..., MemoryEngine]


def _record(data_dir: Path) -> dict[str, str]:
    return dict(json.loads((data_dir / RECORD).read_text()))


def _rewrite(data_dir: Path, **fields: str) -> None:
    (data_dir / RECORD).write_text(json.dumps(_record(data_dir) | fields))


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _loom(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_AT_REST")}
    return subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", *map(str, args)],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )


def test_a_new_data_directory_records_its_backends(open_engine: Opener, tmp_path: Path) -> None:
    open_engine(tmp_path / "d").close()
    assert _record(tmp_path / "d") == {
        "format": "loomem-data", "storage_backend": "rocksdb", "index_backend": "tantivy"
    }


def test_another_storage_backend_is_refused_and_creates_nothing(open_engine: Opener, tmp_path: Path) -> None:
    """A server started without its --config opened RocksDB beside another backend's files and
    served an empty memory. Now CONFIG_INVALID naming both backends, and the directory is untouched."""
    data = tmp_path / "d"
    engine = open_engine(data)
    engine.add_chunk("notes", ChunkInput("kept where it was written"))
    engine.close()
    _rewrite(data, storage_backend="sqlite")  # as if a sqlite backend had written it
    before = _files(data)
    with pytest.raises(LoomError) as info:
        open_engine(data)
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "'sqlite'" in info.value.message and "'rocksdb'" in info.value.message
    assert info.value.details["key"] == "storage.backend"
    assert _files(data) == before
    for command in (("export", "--stream", "notes"), ("encryption", "status")):
        done = _loom(*command, "--data-dir", data)
        assert done.returncode == 1 and "error[CONFIG_INVALID]" in done.stderr and "'sqlite'" in done.stderr
    assert _files(data) == before


def test_another_index_backend_gets_its_directory_emptied_and_rebuilt(open_engine: Opener, tmp_path: Path) -> None:
    """The index is derived from storage, so changing index backends is allowed: the old backend's
    files are removed (they would otherwise sit beside the new index's) and the index is rebuilt."""
    data = tmp_path / "d"
    engine = open_engine(data)
    engine.add_chunks("notes", [ChunkInput(f"heron sighting {i}") for i in range(5)])
    engine.close()
    _rewrite(data, index_backend="naive")
    (data / "index" / "naive-postings.bin").write_bytes(b"another backend's file")
    engine = open_engine(data)
    assert not (data / "index" / "naive-postings.bin").exists()
    assert len(engine.search(SearchRequest("heron", stream="notes", mode="bm25", k=10))) == 5
    assert _record(data)["index_backend"] == "tantivy"


def test_a_directory_without_a_record_is_adopted(open_engine: Opener, tmp_path: Path) -> None:
    """Directories written before the record existed open as before and get one."""
    data = tmp_path / "d"
    engine = open_engine(data)
    chunk = engine.add_chunk("notes", ChunkInput("older than the record"))
    engine.close()
    (data / RECORD).unlink()
    assert open_engine(data).get_chunk(chunk.id).content == "older than the record"
    assert _record(data)["storage_backend"] == "rocksdb"


@pytest.mark.parametrize("content", ["{not json", '{"format": "something-else"}', "[]"])
def test_an_unreadable_record_is_refused(open_engine: Opener, tmp_path: Path, content: str) -> None:
    data = tmp_path / "d"
    open_engine(data).close()
    (data / RECORD).write_text(content)
    with pytest.raises(LoomError) as info:
        open_engine(data)
    assert info.value.code is ErrorCode.CONFIG_INVALID and RECORD in info.value.message


def test_a_backup_of_another_storage_backend_is_not_restored(open_engine: Opener, tmp_path: Path) -> None:
    """A restore under a different storage backend reported success ("5 chunk(s)") and restored
    nothing the configured backend could read. Now BACKUP_FAILED naming both, nothing created."""
    engine = open_engine(tmp_path / "src")
    engine.add_chunk("notes", ChunkInput("backed up"))
    engine.close()
    assert _loom("backup", "create", tmp_path / "bk", "--data-dir", tmp_path / "src").returncode == 0
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text())
    (tmp_path / "bk" / "manifest.json").write_text(json.dumps(manifest | {"storage_backend": "sqlite"}))
    done = _loom("backup", "restore", tmp_path / "bk", "--data-dir", tmp_path / "restored")
    assert done.returncode == 1 and "error[BACKUP_FAILED]" in done.stderr
    assert "'sqlite'" in done.stderr and "'rocksdb'" in done.stderr
    assert not (tmp_path / "restored").exists()


def test_an_index_reset_is_refused_when_the_storage_cannot_lock(tmp_path: Path) -> None:
    """Emptying the index relies on the storage lock keeping a second process off a running server's
    directory; a storage without ``multiprocess_lock`` gets a coded refusal naming what to do."""
    from loom_core.memory.backends_record import record_backends, reset_index_if_changed

    data = tmp_path / "d"
    (data / "index").mkdir(parents=True)
    record_backends(data, "mystore", "naive")
    with pytest.raises(LoomError) as info:
        reset_index_if_changed(data, "tantivy", storage_locks=False)
    assert info.value.code is ErrorCode.CONFIG_INVALID and "remove" in info.value.message
    assert (data / "index").is_dir()
    assert reset_index_if_changed(data, "tantivy", storage_locks=True) is True
    assert not (data / "index").exists()
