"""Group commit: single writes share index commits, and no reader ever sees a write missing."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loom_core.config import LoomConfig
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput, SearchRequest

Opener = Callable[..., MemoryEngine]


def _config(delay_ms: int) -> LoomConfig:
    return LoomConfig.model_validate({"index": {"commit_delay_ms": delay_ms}})


def _count_commits(engine: MemoryEngine) -> list[int]:
    """Count the index's commits from now on (the real Tantivy commit still runs)."""
    calls = [0]
    real = engine.index.commit

    def counted() -> None:
        calls[0] += 1
        real()

    engine.index.commit = counted  # type: ignore[method-assign]
    return calls


def _pending_intents(engine: MemoryEngine) -> int:
    return sum(1 for _ in engine.storage.iterate("intents"))


def test_single_writes_share_one_commit_and_searches_see_them(open_engine: Opener) -> None:
    engine = open_engine(config=_config(10_000))
    commits = _count_commits(engine)
    ids = [engine.add_chunk("s", ChunkInput(f"narwhal note {i}")).id for i in range(30)]
    assert commits[0] == 0
    assert engine.index.count() == 0  # queued, not committed: the search below must publish
    assert _pending_intents(engine) == 30  # each write is durable with its intent meanwhile
    found = [r.chunk.id for r in engine.search(SearchRequest("narwhal note", stream="s", k=100, mode="bm25"))]
    assert sorted(found) == ids
    assert commits[0] == 1
    assert _pending_intents(engine) == 0
    assert engine.check_consistency()["consistent"]


def test_without_a_delay_every_write_commits(open_engine: Opener) -> None:
    engine = open_engine(config=_config(0))
    commits = _count_commits(engine)
    for i in range(5):
        engine.add_chunk("s", ChunkInput(f"walrus note {i}"))
        assert engine.index.count() == i + 1
    assert commits[0] == 5
    assert _pending_intents(engine) == 0


def test_the_background_commit_publishes_without_a_search(open_engine: Opener) -> None:
    engine = open_engine(config=_config(20))
    engine.add_chunks("s", [ChunkInput(f"beluga note {i}") for i in range(3)])
    deadline = time.monotonic() + 60
    while (engine.index.count() < 3 or _pending_intents(engine)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.index.count() == 3
    assert _pending_intents(engine) == 0


def test_a_delete_commits_at_once_with_what_waits(open_engine: Opener) -> None:
    """Deletes are not left waiting: the deleted text leaves the index when the call returns."""
    engine = open_engine(config=_config(10_000))
    first, *rest = engine.add_chunks("s", [ChunkInput(f"orca note {i}") for i in range(3)])
    engine.delete_chunk(first.id)
    assert engine.index.ids() == {c.id for c in rest}
    assert _pending_intents(engine) == 0


def test_close_commits_what_waits(open_engine: Opener, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = open_engine(config=_config(10_000))
    ids = {engine.add_chunk("s", ChunkInput(f"dugong note {i}")).id for i in range(4)}
    engine.close()
    replayed: list[int] = []
    real = MemoryEngine.recover

    def recorded(self: MemoryEngine) -> int:
        replayed.append(real(self))
        return replayed[-1]

    monkeypatch.setattr(MemoryEngine, "recover", recorded)
    engine = open_engine(config=_config(10_000))
    assert replayed == [0]  # nothing left to replay: close committed the queue
    assert engine.index.ids() == ids


def test_a_checkpoint_commits_what_waits(open_engine: Opener, tmp_path: Path) -> None:
    engine = open_engine(config=_config(10_000))
    engine.add_chunk("s", ChunkInput("manatee note"))
    engine.checkpoint(tmp_path / "backup")
    assert engine.index.count() == 1
    assert _pending_intents(engine) == 0


def test_rebuild_with_writes_waiting_indexes_each_chunk_once(open_engine: Opener) -> None:
    """A rebuild while the group commit holds new chunks left one of them twice in the index (its
    fused score then counted twice); what waits is committed first now."""
    engine = open_engine(config=_config(10_000))
    ids = [engine.add_chunk("s", ChunkInput(f"apple note {i}")).id for i in range(3)]
    assert engine.rebuild_index() == 3
    assert engine.index.count() == 3
    hits = [r.chunk.id for r in engine.search(SearchRequest("apple", stream="s", k=10, mode="bm25"))]
    assert sorted(hits) == sorted(ids)
    assert engine.check_consistency()["consistent"]


def test_a_failed_commit_that_lost_the_queue_loses_no_write(open_engine: Opener) -> None:
    """An index may roll back what it held when a commit fails. The next successful commit must not
    retire the intents of documents that are gone: the pending intents are replayed instead."""
    from loom_core.errors import ErrorCode, LoomError

    engine = open_engine(config=_config(10_000))
    ids = [engine.add_chunk("s", ChunkInput(f"otter note {i}")).id for i in range(3)]
    real = engine.index.commit
    failed = [False]

    def commit_that_rolls_back_once() -> None:
        if not failed[0]:
            failed[0] = True
            engine.index.delete(ids)  # what a rollback does to the queued documents
            raise LoomError(ErrorCode.INDEX_IO, "simulated commit failure")
        real()

    engine.index.commit = commit_that_rolls_back_once  # type: ignore[method-assign]
    with pytest.raises(LoomError):
        engine.commit_index()
    ids.append(engine.add_chunk("s", ChunkInput("otter note 3")).id)  # commits at once while repairing
    hits = {r.chunk.id for r in engine.search(SearchRequest("otter note", stream="s", k=10, mode="bm25"))}
    assert hits == set(ids)
    assert engine.check_consistency()["consistent"]


def test_a_checkpoint_is_taken_while_the_index_cannot_commit(open_engine: Opener, tmp_path: Path) -> None:
    """A backup holds no index (it is rebuilt on restore, the intents replayed): an index that
    fails to commit must not refuse the backup, which is most needed then."""
    from loom_core.errors import ErrorCode, LoomError

    engine = open_engine(config=_config(10_000))
    engine.add_chunk("s", ChunkInput("heron note"))

    def broken() -> None:
        raise LoomError(ErrorCode.INDEX_IO, "simulated commit failure")

    engine.index.commit = broken  # type: ignore[method-assign]
    engine.checkpoint(tmp_path / "backup")
    assert (tmp_path / "backup").is_dir()


def test_an_engine_dropped_without_close_releases_its_directory(tmp_path: Path) -> None:
    """The commit thread holds its engine weakly: an engine dropped without close is collected
    (its storage lock released), as before the group commit, and the thread ends."""
    import gc
    import threading

    from loom_core.plugins.host import PluginHost

    data_dir = tmp_path / "data"
    engine = MemoryEngine.open(_config(10_000), PluginHost(environ={}), data_dir)
    engine.add_chunk("s", ChunkInput("dropped note"))
    del engine
    gc.collect()
    again = MemoryEngine.open(_config(10_000), PluginHost(environ={}), data_dir)
    try:
        assert len(again.search(SearchRequest("dropped", stream="s", mode="bm25"))) == 1
    finally:
        again.close()
    deadline = time.monotonic() + 30
    while any(t.name == "loomem-index-commit" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "loomem-index-commit" for t in threading.enumerate())


def test_stop_landing_just_before_the_wake_up_is_cleared_still_ends_the_thread() -> None:
    """close() hung for ever (seen in tests ending ~one delay after a write): stop() set both
    events between the delay running out and the commit clearing its wake-up, so the thread
    went back to idling without looking at ``_stopping``."""
    import threading

    from loom_core.memory.groupcommit import CommitScheduler

    commits: list[int] = []

    class Owner:
        def publish(self) -> None:
            commits.append(1)

    owner = Owner()
    scheduler = CommitScheduler(0.01, owner.publish)
    real_wanted = scheduler._wanted

    class StopLandsBeforeClear(threading.Event):
        def clear(self) -> None:
            if not scheduler._stopping.is_set():  # stop()'s two events, set just before the clear
                scheduler._stopping.set()
                real_wanted.set()
            real_wanted.clear()

        def wait(self, timeout: float | None = None) -> bool:
            return real_wanted.wait(timeout)

        def set(self) -> None:
            real_wanted.set()

    scheduler._wanted = StopLandsBeforeClear()
    scheduler.request()
    thread = scheduler._thread
    assert thread is not None
    thread.join(timeout=10)
    assert not thread.is_alive(), "the commit thread kept running after stop()"
    assert commits == [1]
