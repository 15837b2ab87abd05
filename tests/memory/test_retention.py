"""Retention: the sweeper removes expired chunks from storage, index and vectors."""

from __future__ import annotations

import threading

import pytest

from loom_core.memory.engine import MemoryEngine, now_ms
from loom_core.memory.models import ChunkInput


def test_sweep_expired_removes_every_layer(engine: MemoryEngine) -> None:
    """sweep_expired(now) deletes exactly the chunks whose expiry has passed, everywhere."""
    now = now_ms()
    short = engine.add_chunks("s", [ChunkInput(f"mayfly {i}", expires_at=now + 60_000) for i in range(4)])
    kept = engine.add_chunk("s", ChunkInput("tortoise", expires_at=now + 10 * 86_400_000))
    forever = engine.add_chunk("s", ChunkInput("rock"))
    assert engine.sweep_expired(now=now + 1000) == 0
    assert engine.sweep_expired(now=now + 120_000) == 4
    report = engine.check_consistency()
    assert report["storage"] == report["index"] == report["vectors"] == report["content_rows"] == 2
    assert {c.id for c in engine.list_chunks("s").items} == {kept.id, forever.id}
    assert not {c.id for c in short} & set(engine.index.ids())


def test_sweeper_thread_runs_and_stops(engine: MemoryEngine) -> None:
    """start_sweeper runs sweeps in the background; stop_sweeper ends the thread."""
    swept = threading.Event()
    original = engine.sweep_expired

    def observed(now: int | None = None) -> int:
        count = original(now)
        if count:
            swept.set()
        return count

    engine.sweep_expired = observed  # type: ignore[method-assign]
    engine.add_chunk("s", ChunkInput("brief", expires_at=now_ms() + 1000))
    engine.start_sweeper(0.05)
    assert swept.wait(30), "the sweeper never removed the expired chunk"
    engine.stop_sweeper()
    assert not any(t.name == "loomem-sweeper" for t in threading.enumerate())
    assert engine.check_consistency()["storage"] == 0


def test_a_chain_whose_newest_version_expired_can_be_continued_before_the_sweep(
    engine: MemoryEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A <- B where B expired: superseding A used to be CONFLICT ("already superseded by B") until
    the sweeper deleted B. B is now deleted at that moment (and reported like a sweep), A is
    continued, and the chain reads A <- C."""
    from loom_core.memory import engine as engine_module

    now = now_ms()
    a = engine.add_chunk("s", ChunkInput("Alice lives in Paris"))
    b = engine.add_chunk("s", ChunkInput("Alice lives in Lyon", supersedes=a.id, expires_at=now + 60_000))
    reported: list[int] = []
    engine._on_expired = reported.append  # what start_sweeper wires to the audit log
    monkeypatch.setattr(engine_module, "now_ms", lambda: now + 120_000)
    c = engine.add_chunk("s", ChunkInput("Alice lives in Berlin", supersedes=a.id))
    assert reported == [1]
    assert [x.id for x in engine.history(c.id)] == [a.id, c.id]
    assert engine.get_chunk(a.id).superseded_by == c.id
    assert b.id not in {x.id for x in engine.list_chunks("s").items}
    report = engine.check_consistency()
    assert report["storage"] == report["index"] == report["vectors"] == 2
