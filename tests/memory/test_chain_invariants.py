"""Supersede chains stay well-formed under random adds, supersedes and deletes
(including sweeps that remove several members of one chain at once)."""

from __future__ import annotations

import random

from loom_core.memory.engine import MemoryEngine, now_ms
from loom_core.memory.models import ChunkInput, SearchRequest


def _check(engine: MemoryEngine) -> None:
    routing = engine._routing
    for record in routing.values():
        if record.superseded_by is not None:
            assert record.superseded_by in routing, f"{record.id} points at a deleted successor"
            assert routing[record.superseded_by].supersedes == record.id
        if record.supersedes is not None:
            assert record.supersedes in routing, f"{record.id} points at a deleted predecessor"
            assert routing[record.supersedes].superseded_by == record.id
    current = {r.id for r in routing.values() if r.superseded_by is None}
    found = {r.chunk.id for r in engine.search(SearchRequest("heron", k=1000, mode="bm25"))}
    assert found == current, "the index's superseded flags disagree with routing"
    found_vec = {r.chunk.id for r in engine.search(SearchRequest("heron", k=1000, mode="vector"))}
    assert found_vec == current, "the vectors' superseded flags disagree with routing"
    report = engine.check_consistency()
    assert report["missing_in_index"] == report["extra_in_index"] == report["missing_vectors"] == []


def test_random_chain_operations_keep_links_symmetric(engine: MemoryEngine) -> None:
    """After every step each link has its mirror, and search sees exactly the current versions."""
    rng = random.Random(5)
    for step in range(60):
        heads = [r.id for r in engine._routing.values() if r.superseded_by is None]
        action = rng.random()
        if action < 0.35 or not heads:
            engine.add_chunk("s", ChunkInput(f"heron note {step}"))
        elif action < 0.75:
            engine.add_chunk("s", ChunkInput(f"heron update {step}", supersedes=rng.choice(heads)))
        else:
            engine.delete_chunk(rng.choice(list(engine._routing)))
        if step % 10 == 9:
            _check(engine)
    _check(engine)


def test_sweeping_several_members_of_one_chain(engine: MemoryEngine) -> None:
    """Expiring the 2nd and 3rd of a 5-version chain at once joins the 1st to the 4th."""
    soon = now_ms() + 60_000
    v = [engine.add_chunk("s", ChunkInput("heron v0"))]
    for i in range(1, 5):
        expiry = soon if i in (1, 2) else None
        v.append(engine.add_chunk("s", ChunkInput(f"heron v{i}", supersedes=v[-1].id, expires_at=expiry)))
    assert engine.sweep_expired(now=soon + 1) == 2
    assert [c.id for c in engine.history(v[0].id)] == [v[0].id, v[3].id, v[4].id]
    _check(engine)
