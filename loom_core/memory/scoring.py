"""How search signals become one score.

* Rank fusion: reciprocal-rank fusion, ``sum over signals of 1 / (rrf_k + rank)``
  (rank starting at 1), divided by its best possible value
  ``signals / (rrf_k + 1)`` so it lies in (0, 1].
* Recency / decay: ``0.5 ** (age / half_life)`` where ``age`` is the time since
  the chunk was last *touched* (written or returned by a read or search), so a
  stale, unused chunk weighs less than an old one that is still used.
* Final: ``fused = (1 - recency_weight) * fusion + recency_weight * recency``.
"""

from __future__ import annotations

from collections.abc import Sequence

DAY_MS = 86_400_000


def rrf(rank_lists: Sequence[Sequence[str]], k: int) -> dict[str, float]:
    """Normalised reciprocal-rank fusion of several best-first id lists."""
    signals = max(1, len(rank_lists))
    best = signals / (k + 1)
    scores: dict[str, float] = {}
    for ranking in rank_lists:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return {item: value / best for item, value in scores.items()}


def recency(last_touch_ms: int, now_ms: int, half_life_days: float) -> float:
    """Decay weight in (0, 1]; 1 for something touched just now."""
    age = max(0, now_ms - last_touch_ms)
    return float(0.5 ** (age / (half_life_days * DAY_MS)))


def combine(fusion: float, recency_value: float, weight: float) -> float:
    return (1.0 - weight) * fusion + weight * recency_value
