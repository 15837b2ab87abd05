"""Chunk ids: ULIDs (python-ulid's format), minted in bulk for batches.

A batch gets one random 80-bit starting point that is incremented per chunk,
so ids within a batch are unique, sorted in input order, and still parse with
``ulid.ULID.from_str``. Encoding is vectorised (one numpy pass per batch)
because a per-id ``str(ULID())`` was a visible share of ingest time.
"""

from __future__ import annotations

import os
import time

import numpy as np
from ulid import ULID

_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
_MASK80 = (1 << 80) - 1


def new_ids(count: int, *, timestamp_ms: int | None = None, after: str | None = None) -> list[str]:
    """``count`` fresh ULID strings sharing one timestamp, ascending.

    With ``after`` (the last id minted before), every new id sorts after it even
    within the same millisecond or when the clock stepped back: the batch then
    continues from ``after``'s random part (its timestamp, if that is later), so
    ids keep the order in which batches were committed.
    """
    if count <= 0:
        return []
    ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    start = int.from_bytes(os.urandom(10), "big")
    if after is not None:
        previous = int(ULID.from_str(after))
        last_ts, last_random = previous >> 80, previous & _MASK80
        if ts <= last_ts:
            ts, start = last_ts, last_random + 1
            if start + count > _MASK80:  # this millisecond's space is used up: the next one
                ts, start = last_ts + 1, int.from_bytes(os.urandom(10), "big")
    if start + count > _MASK80:  # keep the increment inside the 80 random bits
        start -= count
    # 128-bit values as (hi, lo) uint64 halves: ts(48) | random(80)
    randoms = np.arange(count, dtype=np.uint64) + np.uint64(start & 0xFFFF_FFFF_FFFF_FFFF)
    carry = (randoms < np.uint64(start & 0xFFFF_FFFF_FFFF_FFFF)).astype(np.uint64)
    hi = np.full(count, (ts << 16) | (start >> 64), dtype=np.uint64) + carry
    lo = randoms
    # 26 base32 digits: the first covers the top 3 bits (128 = 3 + 25 * 5)
    digits = np.empty((count, 26), dtype=np.uint8)
    for position in range(26):
        shift = 125 - 5 * position  # bit offset of this digit's lowest bit
        if shift >= 64:
            value = hi >> np.uint64(shift - 64)
        elif shift + 5 <= 64:
            value = lo >> np.uint64(shift)
        else:  # straddles the halves
            value = (lo >> np.uint64(shift)) | (hi << np.uint64(64 - shift))
        digits[:, position] = _ALPHABET[(value & np.uint64(31)).astype(np.intp)]
    text = digits.tobytes().decode("ascii")
    return [text[i : i + 26] for i in range(0, 26 * count, 26)]


def is_id(value: str) -> bool:
    """Whether ``value`` parses as a ULID."""
    try:
        ULID.from_str(value)
    except (ValueError, TypeError):
        return False
    return True
