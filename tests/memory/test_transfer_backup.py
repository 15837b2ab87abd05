"""Export/import of a stream and backup/restore, through the engine and the real `loom` CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest


def _populate(engine: MemoryEngine) -> dict[str, str]:
    v1 = engine.add_chunk("notes", ChunkInput("the heron nests by the lake", metadata={"src": "walk"}))
    v2 = engine.add_chunk("notes", ChunkInput("the heron nests by the river", supersedes=v1.id, level=1))
    other = engine.add_chunk("notes", ChunkInput("kingfisher dives"))
    engine.add_chunk("unrelated", ChunkInput("not exported"))
    bird = engine.add_entity("notes", type="animal", name="Heron", aliases=["Ardea"])
    place = engine.add_entity("notes", type="place", name="River")
    rel = engine.add_relation(
        "notes", subject=bird.id, predicate="nests_at", object=place.id, valid_from=5, source_chunks=[v2.id]
    )
    return {"v1": v1.id, "v2": v2.id, "other": other.id, "bird": bird.id, "rel": rel.id}


def _same_stream(a: MemoryEngine, b: MemoryEngine, ids: dict[str, str]) -> None:
    for key in ("v1", "v2", "other"):
        assert b.get_chunk(ids[key]).to_dict() | {"access_count": 0, "last_accessed_at": None} == (
            a.get_chunk(ids[key]).to_dict() | {"access_count": 0, "last_accessed_at": None}
        )
    assert [c.id for c in b.history(ids["v1"])] == [ids["v1"], ids["v2"]]
    assert b.get_entity(ids["bird"]) == a.get_entity(ids["bird"])
    assert b.get_relation(ids["rel"]) == a.get_relation(ids["rel"])
    for mode in ("bm25", "vector", "hybrid"):
        assert b.search(SearchRequest("heron river", stream="notes", mode=mode))[0].chunk.id == ids["v2"]  # type: ignore[arg-type]
    report = b.check_consistency()
    assert report["missing_in_index"] == [] and report["missing_vectors"] == []


@pytest.mark.parametrize("embeddings", [True, False])
def test_export_import_round_trip(open_engine: Callable[..., MemoryEngine], tmp_path: Path, embeddings: bool) -> None:
    """A stream moves to another data directory with ids, chains, timestamps, entities
    and relations intact (vectors carried over or re-embedded); other streams stay behind."""
    source = open_engine(tmp_path / "a")
    ids = _populate(source)
    buffer = io.StringIO()
    counts = source.export_stream("notes", buffer, embeddings=embeddings)
    assert counts == {"chunks": 3, "entities": 2, "relations": 1}
    assert ("embedding_b64" in buffer.getvalue()) is embeddings
    target = open_engine(tmp_path / "b")
    assert target.import_stream(io.StringIO(buffer.getvalue())) == counts
    _same_stream(source, target, ids)
    assert [s.name for s in target.list_streams()] == ["notes"]
    with pytest.raises(LoomError) as err:
        target.import_stream(io.StringIO(buffer.getvalue()))
    assert err.value.code is ErrorCode.CONFLICT


def test_import_rejects_what_is_not_an_export(engine: MemoryEngine) -> None:
    """A file without the header, or with a broken line, is VALIDATION_FAILED and writes nothing."""
    for text in (
        "",
        '{"record": "chunk"}\n',
        '{"record": "header", "format": "loomem-stream", "version": 1, "stream": "s"}\nnot json\n',
    ):
        with pytest.raises(LoomError) as err:
            engine.import_stream(io.StringIO(text))
        assert err.value.code is ErrorCode.VALIDATION_FAILED
    assert engine.list_streams() == []


def _loom(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_AT_REST")}
    return subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_backup_restore_and_export_import(open_engine: Callable[..., MemoryEngine], tmp_path: Path) -> None:
    """`loom backup create/restore` and `loom export/import` round-trip a data directory;
    restore refuses a non-empty directory and errors name the path with BACKUP_FAILED."""
    src = tmp_path / "src"
    engine = open_engine(src)
    ids = _populate(engine)
    engine.close()

    created = _loom("backup", "create", tmp_path / "bk", "--data-dir", src)
    assert created.returncode == 0, created.stderr
    assert json.loads((tmp_path / "bk" / "manifest.json").read_text())["chunks"] == 4
    again = _loom("backup", "create", tmp_path / "bk", "--data-dir", src)
    assert again.returncode == 1 and "BACKUP_FAILED" in again.stderr and str(tmp_path / "bk") in again.stderr

    restored = _loom("backup", "restore", tmp_path / "bk", "--data-dir", tmp_path / "restored")
    assert restored.returncode == 0, restored.stderr
    assert (tmp_path / "restored").stat().st_mode & 0o777 == 0o700  # private, as a new data directory
    refused = _loom("backup", "restore", tmp_path / "bk", "--data-dir", tmp_path / "restored")
    assert refused.returncode == 1 and "error[BACKUP_FAILED]" in refused.stderr
    assert str(tmp_path / "restored") in refused.stderr
    missing = _loom("backup", "restore", tmp_path / "nothing", "--data-dir", tmp_path / "x")
    assert missing.returncode == 1 and "BACKUP_FAILED" in missing.stderr and str(tmp_path / "nothing") in missing.stderr

    exported = _loom("export", "--stream", "notes", "-o", tmp_path / "notes.jsonl", "--data-dir", src)
    assert exported.returncode == 0, exported.stderr
    imported = _loom("import", tmp_path / "notes.jsonl", "--data-dir", tmp_path / "moved")
    assert imported.returncode == 0, imported.stderr
    unreadable = _loom("import", tmp_path / "absent.jsonl", "--data-dir", tmp_path / "moved")
    assert unreadable.returncode == 1 and "BACKUP_FAILED" in unreadable.stderr

    original = open_engine(src)
    copies = {name: open_engine(tmp_path / name) for name in ("restored", "moved")}
    for copy in copies.values():
        _same_stream(original, copy, ids)
    assert len(copies["restored"].list_streams()) == 2
    assert [s.name for s in copies["moved"].list_streams()] == ["notes"]


@pytest.mark.parametrize(
    "command",
    [
        ("backup", "create", "{tmp}/bk"),
        ("export", "--stream", "notes", "-o", "{tmp}/notes.jsonl"),
        ("encryption", "status"),
        ("encryption", "backfill", "--no-progress"),
    ],
)
def test_commands_that_read_a_data_directory_refuse_one_without_a_store(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A mistyped --data-dir used to be created as a new, empty store: `loom backup create` then wrote
    an empty backup and reported success. Now CONFIG_INVALID naming the directory, and nothing is
    created (neither the directory nor the backup or export)."""
    typo = tmp_path / "loom-dat"
    done = _loom(*(part.format(tmp=tmp_path) for part in command), "--data-dir", typo)
    assert done.returncode == 1 and "error[CONFIG_INVALID]" in done.stderr, done.stderr
    assert str(typo) in done.stderr and "holds no Loomem data" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_admin_commands_log_audit_events_on_stderr(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`loom backup` and `loom export`/`import` log one target=audit event each on stderr (success, or
    failure with the code), naming the OS user and the stream or path; an export to stdout stays pure
    JSON Lines, and no content reaches the events."""
    src = tmp_path / "src"
    engine = open_engine(src)
    _populate(engine)
    canary = "cli-audit-canary-" + "4" * 16
    engine.add_chunk("notes", ChunkInput(canary))
    engine.close()
    monkeypatch.setenv("LOOMEM_LOG_FORMAT", "json")
    runs = {
        "created": _loom("backup", "create", tmp_path / "bk", "--data-dir", src),
        "again": _loom("backup", "create", tmp_path / "bk", "--data-dir", src),
        "exported": _loom("export", "--stream", "notes", "--data-dir", src),
        "unreadable": _loom("import", tmp_path / "absent.jsonl", "--data-dir", tmp_path / "moved"),
    }

    def events(run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
        return [e["fields"] for e in lines if e.get("target") == "audit"]

    created, again, exported, unreadable = (events(runs[k]) for k in ("created", "again", "exported", "unreadable"))
    assert [(e["action"], e["outcome"]) for e in created] == [("admin.backup.create", "success")]
    assert created[0]["resource"] == str(tmp_path / "bk") and created[0]["actor"].startswith("cli")
    assert created[0]["details"]["streams"] == 2
    assert [(e["outcome"], e["details"]["code"]) for e in again] == [("failure", "BACKUP_FAILED")]
    assert [(e["action"], e["resource"]) for e in exported] == [("admin.export", "notes")]
    assert exported[0]["details"]["chunks"] >= 1
    assert all(isinstance(json.loads(line), dict) for line in runs["exported"].stdout.splitlines())  # JSONL only
    assert [(e["action"], e["outcome"], e["details"]["code"]) for e in unreadable] == [
        ("admin.import", "failure", "BACKUP_FAILED")
    ]
    for run in runs.values():
        assert (canary in run.stderr) is False


def test_checkpoint_while_open_is_consistent(open_engine: Callable[..., MemoryEngine], tmp_path: Path) -> None:
    """engine.checkpoint on a live engine gives a backup that restores with every chunk indexed."""
    from loom_core.memory.backup import restore_files

    engine = open_engine(tmp_path / "live")
    engine.add_chunks("s", [ChunkInput(f"puffin {i}") for i in range(30)])
    engine.checkpoint(tmp_path / "bk")
    engine.add_chunk("s", ChunkInput("puffin after the backup"))
    restore_files(tmp_path / "bk", tmp_path / "back", "rocksdb")
    restored = open_engine(tmp_path / "back")
    assert restored.check_consistency()["index"] == 30
    assert len(restored.search(SearchRequest("puffin", k=100, mode="bm25"))) == 30


def test_a_failed_checkpoint_leaves_no_half_written_backup(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """When the storage checkpoint fails midway, the error is BACKUP_FAILED naming the path and the
    new directory is removed, so nothing half-written can later be mistaken for a backup."""
    engine = open_engine()
    engine.add_chunk("s", ChunkInput("wren"))

    def broken(dest: Path) -> None:
        dest.mkdir(parents=True)
        (dest / "000001.sst").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    engine.storage.checkpoint = broken  # type: ignore[method-assign]
    with pytest.raises(LoomError) as err:
        engine.checkpoint(tmp_path / "bk")
    assert err.value.code is ErrorCode.BACKUP_FAILED and str(tmp_path / "bk") in err.value.message
    assert not (tmp_path / "bk").exists()


def _export_lines(engine: MemoryEngine) -> list[dict[str, Any]]:
    buffer = io.StringIO()
    engine.export_stream("notes", buffer, embeddings=True)
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def _as_text(lines: list[dict[str, Any]]) -> io.StringIO:
    return io.StringIO("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize(
    ("record", "field", "value", "reason"),
    [
        ("chunk", "level", 99, "less than or equal to 16"),
        ("chunk", "level", "one", "valid integer"),
        ("chunk", "created_at", 10**16, "year 9999"),
        ("chunk", "supersedes", "01J00000000000000000000000", "not in the import"),
        ("chunk", "metadata", {"x": float("inf")}, "NaN or infinity"),
        ("chunk", "embedding_b64", "AAAA", "float32 values"),
        ("entity", "name", "", "must not be blank"),
        ("entity", "name", "n" * 513, "at most 512 characters"),
        ("entity", "aliases", ["a" * 513], "at most 512 characters"),
        ("relation", "predicate", "p" * 513, "at most 512 characters"),
        ("relation", "subject", "01J00000000000000000000000", "names an entity that is not in the import"),
    ],
)
def test_an_import_with_one_bad_record_writes_nothing(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path, record: str, field: str, value: object, reason: str
) -> None:
    """A bad record after more than one write batch (1,000 chunks) used to leave the batches before
    it written, with an uncoded error, and the retry then clashed with them. Every record is now
    checked first: VALIDATION_FAILED naming the line, record and field, nothing written, and the
    corrected file then imports."""
    source = open_engine(tmp_path / "a")
    _populate(source)
    source.add_chunks("notes", [ChunkInput(f"filler chunk {i}") for i in range(1100)])
    lines = _export_lines(source)
    position = max(i for i, line in enumerate(lines) if line["record"] == record)
    broken = [dict(line) for line in lines]
    broken[position][field] = value
    target = open_engine(tmp_path / "b")
    with pytest.raises(LoomError) as err:
        target.import_stream(_as_text(broken))
    assert err.value.code is ErrorCode.VALIDATION_FAILED
    assert err.value.details["field"] in (field, f"{field}[0]") and reason in err.value.message
    assert err.value.details["line"] == position + 1 and f"import line {position + 1} " in err.value.message
    assert target.list_streams() == [] and target.list_entities("notes") == []
    assert target.import_stream(_as_text(lines))["chunks"] == 1103


def test_expired_chunks_waiting_for_the_sweeper_are_not_exported(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expiry hides a chunk from every reader the moment it passes; export is a reader too."""
    from loom_core.memory import engine as engine_module

    source = open_engine(tmp_path / "a")
    now = engine_module.now_ms()
    source.add_chunk("notes", ChunkInput("keep me"))
    source.add_chunk("notes", ChunkInput("temporary detail", expires_at=now + 60_000))
    monkeypatch.setattr(engine_module, "now_ms", lambda: now + 120_000)
    contents = [line.get("content") for line in _export_lines(source) if line["record"] == "chunk"]
    assert contents == ["keep me"]


def test_a_backup_is_closed_to_other_users_whatever_the_umask(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """A backup holds everything the data directory does, but may sit outside its protection
    (the default backup folder is beside it): every directory of it is mode 0700, even under a
    permissive umask."""
    import stat

    engine = open_engine(tmp_path / "data")
    engine.add_chunk("notes", ChunkInput("private note"))
    old = os.umask(0o022)
    try:
        engine.checkpoint(tmp_path / "bk")
    finally:
        os.umask(old)
    directories = [tmp_path / "bk", *(p for p in (tmp_path / "bk").rglob("*") if p.is_dir())]
    assert len(directories) >= 2
    assert {stat.S_IMODE(d.stat().st_mode) for d in directories} == {0o700}


def test_an_export_file_is_private_and_a_failed_one_is_not_left_behind(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """An export is the stream's content in plaintext (even from an encrypted store) but was created
    0644 under the usual umask; and an export of an unknown stream left an empty file, so the retry
    with the right name was refused as "exists"."""
    import stat

    engine = open_engine(tmp_path / "data")
    engine.add_chunk("notes", ChunkInput("private note"))
    engine.close()
    out = tmp_path / "notes.jsonl"
    old = os.umask(0o022)
    try:
        wrong = _loom("export", "--stream", "nots", "-o", out, "--data-dir", tmp_path / "data")
        assert wrong.returncode == 1 and "error[NOT_FOUND]" in wrong.stderr
        assert not out.exists()
        right = _loom("export", "--stream", "notes", "-o", out, "--data-dir", tmp_path / "data")
    finally:
        os.umask(old)
    assert right.returncode == 0, right.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert "private note" in out.read_text()


def test_an_export_whose_reader_goes_away_is_a_coded_failure(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """`loom export ... | head` ended in INTERNAL_ERROR ("report it"), audited as such. A reader that
    closes early is BACKUP_FAILED naming stdout, with no Python noise on stderr."""
    engine = open_engine(tmp_path / "data")
    engine.add_chunks("notes", [ChunkInput(f"note {i} " + "x" * 200) for i in range(3000)])
    engine.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOMEM_AT_REST")}
    export = subprocess.Popen(
        [sys.executable, "-m", "loom_core.cli.main", "export", "--stream", "notes", "--no-embeddings",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    assert export.stdout is not None and export.stderr is not None
    export.stdout.read(100)
    export.stdout.close()  # what `head -c 100` does
    err = export.stderr.read().decode()
    assert export.wait(timeout=120) == 1
    assert "error[BACKUP_FAILED]: stdout: the output was closed before the export was complete" in err
    assert "INTERNAL_ERROR" not in err and "Traceback" not in err and "Exception ignored" not in err
