"""Intent log: a process killed between the storage write and the index commit
leaves storage and index consistent after the next open."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from loom_core.config import LoomConfig
    from loom_core.memory.engine import MemoryEngine
    from loom_core.memory.models import ChunkInput
    from loom_core.plugins.host import PluginHost

    data_dir, acked, action, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    engine = MemoryEngine.open(LoomConfig(), PluginHost(environ={}), data_dir)
    log = acked.open("a")
    armed = {"on": False}

    def hook(where):
        if armed["on"] and where == point:
            os.kill(os.getpid(), signal.SIGKILL)

    engine.fault_hook = hook
    for batch in range(3):
        chunks = engine.add_chunks("s", [ChunkInput(f"capybara batch {batch} item {i}") for i in range(50)])
        log.write(json.dumps([c.id for c in chunks]) + "\\n"); log.flush()
    armed["on"] = True
    if action == "add":
        engine.add_chunks("s", [ChunkInput(f"capybara doomed item {i}") for i in range(50)])
    elif action == "supersede":
        first = json.loads(acked.read_text().splitlines()[0])[0]
        engine.add_chunks("s", [ChunkInput("capybara replacement", supersedes=first)])
    elif action == "delete":
        engine.delete_chunk(json.loads(acked.read_text().splitlines()[0])[0])
    elif action == "delete_stream":
        engine.delete_stream("s")
    engine.commit_index()  # new chunks wait for the group commit: the crash point is in it
    print("not killed", flush=True)
    """
)


def _crash(data_dir: Path, tmp_path: Path, action: str, point: str) -> list[str]:
    acked = tmp_path / "acked.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(data_dir), str(acked), action, point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -9, f"child was not killed: rc={proc.returncode} {proc.stderr[-2000:]}"
    return [i for line in acked.read_text().splitlines() for i in json.loads(line)]


def _consistent(engine: MemoryEngine) -> dict[str, object]:
    report = engine.check_consistency()
    assert report["missing_in_index"] == [] and report["extra_in_index"] == []
    assert report["missing_vectors"] == [] and report["extra_vectors"] == []
    assert report["routing_without_content"] == [] and report["pending_intents"] == 0
    return report


@pytest.mark.parametrize("point", ["after_storage_write", "after_index_commit"])
def test_killed_during_batch_add(open_engine: Callable[..., MemoryEngine], tmp_path: Path, point: str) -> None:
    """Every acknowledged chunk is present and searchable; the killed batch was
    durable in storage (its intent too), and replay indexed it."""
    data_dir = tmp_path / "data"
    acked = _crash(data_dir, tmp_path, "add", point)
    engine = open_engine(data_dir)
    report = _consistent(engine)
    assert report["storage"] == len(acked) + 50
    found = {r.chunk.id for r in engine.search(SearchRequest("capybara batch", stream="s", k=1000, mode="bm25"))}
    assert set(acked) <= found
    assert len(engine.search(SearchRequest("doomed", stream="s", k=100, mode="bm25"))) == 50


GROUPED_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from loom_core.config import LoomConfig
    from loom_core.memory.engine import MemoryEngine
    from loom_core.memory.models import ChunkInput
    from loom_core.plugins.host import PluginHost

    data_dir, acked = Path(sys.argv[1]), Path(sys.argv[2])
    config = LoomConfig.model_validate({"index": {"commit_delay_ms": 10000}})
    engine = MemoryEngine.open(config, PluginHost(environ={}), data_dir)
    with acked.open("w") as log:
        for i in range(20):
            log.write(engine.add_chunk("s", ChunkInput(f"okapi sighting {i}")).id + "\\n")
            log.flush()
    print(json.dumps({"indexed_before_kill": engine.index.count()}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_killed_while_writes_wait_for_the_group_commit(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """Single writes acknowledged while their index commit was still waiting are all found after
    a SIGKILL: their rows and intents were durable, and the next open replays the intents."""
    data_dir, acked = tmp_path / "data", tmp_path / "acked.txt"
    proc = subprocess.run(
        [sys.executable, "-c", GROUPED_CHILD, str(data_dir), str(acked)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, f"child was not killed: rc={proc.returncode} {proc.stderr[-2000:]}"
    assert json.loads(proc.stdout)["indexed_before_kill"] == 0  # nothing was committed: replay is tested
    ids = acked.read_text().split()
    assert len(ids) == 20
    engine = open_engine(data_dir)
    assert _consistent(engine)["index"] == 20
    found = {r.chunk.id for r in engine.search(SearchRequest("okapi sighting", stream="s", k=100, mode="bm25"))}
    assert found == set(ids)


def test_killed_during_supersede(open_engine: Callable[..., MemoryEngine], tmp_path: Path) -> None:
    """The superseded flag reaches the index after replay: the old version stops matching."""
    data_dir = tmp_path / "data"
    acked = _crash(data_dir, tmp_path, "supersede", "after_storage_write")
    engine = open_engine(data_dir)
    _consistent(engine)
    old = engine.get_chunk(acked[0])
    assert old.superseded_by is not None
    hits = {r.chunk.id for r in engine.search(SearchRequest("capybara batch 0 item 0", stream="s", k=500, mode="bm25"))}
    assert acked[0] not in hits


@pytest.mark.parametrize("action", ["delete", "delete_stream"])
def test_killed_during_delete(open_engine: Callable[..., MemoryEngine], tmp_path: Path, action: str) -> None:
    """A delete that reached storage but not the index is finished by replay."""
    data_dir = tmp_path / "data"
    acked = _crash(data_dir, tmp_path, action, "after_storage_write")
    engine = open_engine(data_dir)
    report = _consistent(engine)
    expected = 0 if action == "delete_stream" else len(acked) - 1
    assert report["storage"] == report["index"] == expected


def test_index_lost_entirely_is_rebuilt(open_engine: Callable[..., MemoryEngine], tmp_path: Path) -> None:
    """With the index directory gone (e.g. a restored backup), open rebuilds it from storage."""
    import shutil

    from loom_core.memory.models import ChunkInput

    data_dir = tmp_path / "data"
    engine = open_engine(data_dir)
    engine.add_chunks("s", [ChunkInput(f"heron {i}") for i in range(20)])
    engine.close()
    shutil.rmtree(data_dir / "index")
    engine = open_engine(data_dir)
    assert _consistent(engine)["index"] == 20
    assert len(engine.search(SearchRequest("heron", k=50, mode="bm25"))) == 20


def _fail_once(engine: MemoryEngine, method: str) -> None:
    """Make ``engine.index.<method>`` raise INDEX_IO on its next call only."""
    from loom_core.errors import ErrorCode, LoomError

    real = getattr(engine.index, method)
    calls = {"n": 0}

    def flaky(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise LoomError(ErrorCode.INDEX_IO, "simulated index failure")
        return real(*args, **kwargs)

    setattr(engine.index, method, flaky)


def test_an_index_failure_on_add_is_repaired_by_the_next_write(open_engine: Callable[..., MemoryEngine]) -> None:
    """When the index fails after the rows were stored durably, the write reports the index's error
    and the rows stay; the next successful write replays the pending intent, so the earlier chunks
    become searchable without a restart and no intent is left."""
    from loom_core.errors import ErrorCode, LoomError

    engine = open_engine()
    _fail_once(engine, "add_new")
    with pytest.raises(LoomError) as err:
        engine.add_chunks("s", [ChunkInput(f"ocelot lost {i}") for i in range(3)])
    assert err.value.code is ErrorCode.INDEX_IO
    assert len(engine.list_chunks("s").items) == 3  # stored, readable
    assert engine.search(SearchRequest("ocelot", stream="s", mode="bm25")) == []  # not yet indexed
    engine.add_chunk("s", ChunkInput("ocelot later"))
    assert len(engine.search(SearchRequest("ocelot", stream="s", mode="bm25", k=10))) == 4
    _consistent(engine)


def test_an_index_failure_on_delete_is_repaired_by_the_next_write(open_engine: Callable[..., MemoryEngine]) -> None:
    """A chunk delete whose index step fails is gone from storage at once and from BM25 after the
    next successful write (its intent is replayed then)."""
    from loom_core.errors import LoomError

    engine = open_engine()
    doomed = engine.add_chunk("s", ChunkInput("marmot doomed"))
    _fail_once(engine, "delete")
    with pytest.raises(LoomError):
        engine.delete_chunk(doomed.id)
    engine.add_chunk("s", ChunkInput("marmot kept"))
    assert [r.chunk.content for r in engine.search(SearchRequest("marmot", stream="s", mode="bm25"))] == ["marmot kept"]
    _consistent(engine)


def test_replaying_a_stream_delete_spares_what_the_stream_holds_since(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """A stream delete whose index step failed leaves an intent. The stream is then used again (a
    chunk, an entity). Replaying the old intent, during the run or at the next open, removes only the
    old documents: the new chunk stays searchable and the new entity stays in storage."""
    from loom_core.errors import LoomError

    engine = open_engine()
    engine.add_chunks("x", [ChunkInput(f"heron old {i}") for i in range(3)])
    _fail_once(engine, "delete_stream")
    with pytest.raises(LoomError):
        engine.delete_stream("x")
    entity = engine.add_entity("x", type="bird", name="new heron")
    fresh = engine.add_chunk("x", ChunkInput("heron new"))  # this write replays the pending intent
    found = engine.search(SearchRequest("heron", stream="x", mode="bm25", k=10))
    assert [r.chunk.id for r in found] == [fresh.id]
    assert engine.get_entity(entity.id).name == "new heron"
    _consistent(engine)
    _fail_once(engine, "delete_stream")
    with pytest.raises(LoomError):
        engine.delete_stream("x")
    again = engine.add_entity("x", type="bird", name="newer heron")
    engine.close()
    reopened = open_engine()  # the intent is replayed at open this time
    assert reopened.get_entity(again.id).name == "newer heron"
    _consistent(reopened)


def test_an_index_of_an_older_analyzer_format_is_rebuilt_at_open(
    open_engine: Callable[..., MemoryEngine], tmp_path: Path
) -> None:
    """Upgrading the index's analyzer needs no manual step: the older index is emptied and the
    engine rebuilds it from storage, after which the new analysis applies to old chunks too."""
    engine = open_engine(tmp_path / "d")
    chunk = engine.add_chunk("s", ChunkInput("我住在東京已经三年了"))
    engine.close()
    settings = tmp_path / "d" / "index" / "loom-index.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "format": 1}))
    reopened = open_engine(tmp_path / "d")
    assert reopened.check_consistency()["index"] == 1
    assert [r.chunk.id for r in reopened.search(SearchRequest("東京", stream="s", mode="bm25"))] == [chunk.id]


def test_the_consistency_report_says_whether_every_layer_agrees(engine: MemoryEngine) -> None:
    """``consistent`` covers vectors and pending intents too: a chunk missing only from the vectors
    made the admin audit event say consistent, as it looked at the index alone."""
    kept = engine.add_chunks("s", [ChunkInput("first"), ChunkInput("second")])
    assert engine.check_consistency()["consistent"] is True
    engine._vectors["s"].remove([kept[0].id])  # a vector lost while storage and index hold the chunk
    report = engine.check_consistency()
    assert report["missing_vectors"] == [kept[0].id] and report["missing_in_index"] == []
    assert report["consistent"] is False
