"""Find every occurrence of many byte patterns in a buffer, fast.

Matching is done by pyahocorasick's Aho-Corasick automaton. Its wheel matches
``str`` keys, so patterns and text are decoded as latin-1: every byte becomes
the code point of the same value, which keeps byte offsets exact.

The automaton visits every character and runs at well under the 200 MB/s
redaction goal once it holds thousands of patterns, so a vectorised numpy
prefilter decides first where an occurrence can be at all. Every pattern is at
least ``m`` bytes long; sampling a ``g``-byte gram at every ``k``-th position
with ``g + k - 1 <= m`` puts at least one sample inside every occurrence, at
an offset below ``k`` within the pattern. A sample whose gram is not among the
patterns' grams at those offsets rules out every occurrence around it, so
only windows around the rare surviving samples go through the automaton.

pyahocorasick builds and frees its trie recursively, one C stack frame per level: a pattern of
about 550,000 characters crashed the process (a segmentation fault, leaving a job's secret file
on disk) when the automaton was freed. Patterns longer than :data:`TRIE_DEPTH` therefore enter
the trie by their first ``TRIE_DEPTH`` bytes only, and every hit of such a head is confirmed
against the whole pattern before it counts.

The prefilter is built, and numpy imported, only once a matcher has scanned
``LAZY_BYTES`` without it: most jobs print less than that, and for them the
automaton alone (~160 MB/s) is cheaper than importing numpy (~60 ms, a fifth
of ``loom run``'s start-up).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import ahocorasick

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# (start, -length, token): byte offset into the buffer, negated length so that plain tuple
# order is "leftmost first, longest first at the same start" without a key function.
Match = tuple[int, int, bytes]
# what one trie word stands for: (-length, token, the whole pattern when the word is only its head)
_Entry = tuple[int, bytes, bytes | None]

#: Longest word put in the trie (bytes); longer patterns enter by their head (see the module doc).
TRIE_DEPTH = 1 << 16

_GRAM_MAX = 5  # bytes per sampled gram; five bytes make chance hits in log text rare
_HASH_MULTIPLIER = 0x9E3779B97F4A7C15  # Fibonacci hashing
_SMALL = 256  # buffers up to this size skip the vectorised prefilter and go to the automaton
_TINY_TAIL = 48  # hold-back candidates are checked one by one below this many bytes
#: bytes a matcher scans with the automaton alone before it builds the numpy prefilter
LAZY_BYTES = 1 << 20


class PatternMatcher:
    """All occurrences (overlapping ones included) of a fixed set of byte patterns."""

    __slots__ = (
        "_automaton",
        "_chars",
        "_gram",
        "_gram_keys",
        "_has_heads",
        "_head_keys",
        "_prefilter",
        "_scanned",
        "_short_prefixes",
        "_step",
        "longest",
        "shortest",
    )

    def __init__(self, patterns: Mapping[bytes, bytes]) -> None:
        """``patterns`` maps each pattern to the token that replaces it."""
        self.longest = max((len(p) for p in patterns), default=0)
        self.shortest = min((len(p) for p in patterns), default=0)
        self._automaton = ahocorasick.Automaton()
        words: dict[bytes, list[_Entry]] = {}
        for pattern, token in patterns.items():
            whole = pattern if len(pattern) > TRIE_DEPTH else None
            words.setdefault(pattern[:TRIE_DEPTH], []).append((-len(pattern), token, whole))
        self._has_heads = any(whole is not None for entries in words.values() for _, _, whole in entries)
        for word, entries in words.items():
            self._automaton.add_word(word.decode("latin-1"), tuple(entries))
        if patterns:
            self._automaton.make_automaton()
        self._chars = bytes(sorted({b for p in patterns for b in p}))
        self._gram = min(_GRAM_MAX, self.shortest) if patterns else 1
        self._step = max(1, self.shortest - self._gram + 1)
        self._gram_keys = frozenset(
            int.from_bytes(p[offset : offset + self._gram], "little") for p in patterns for offset in range(self._step)
        )
        self._head_keys = frozenset(int.from_bytes(p[: self._gram], "little") for p in patterns)
        self._short_prefixes = frozenset(p[:k] for p in patterns for k in range(1, self._gram))
        self._prefilter: _Prefilter | None = None
        self._scanned = 0  # bytes scanned without the prefilter (a race only builds it twice)

    def _vectorised(self, size: int) -> _Prefilter | None:
        """The prefilter for a ``size``-byte scan, built on first need; None: use the automaton alone."""
        if self._prefilter is None:
            if self._scanned < LAZY_BYTES:
                self._scanned += size
                return None
            self._prefilter = _Prefilter(self._gram_keys, self._gram)
        return self._prefilter

    def __len__(self) -> int:
        return len(self._automaton)

    def find(self, data: bytes) -> list[Match]:
        """Every occurrence fully inside ``data`` as ``(start, -length, token)``, sorted."""
        if not self._gram_keys or len(data) < self.shortest:
            return []
        matches: list[Match] = []
        # Below a few hundred bytes numpy's per-call cost exceeds scanning it all.
        prefilter = None if len(data) <= _SMALL else self._vectorised(len(data))
        windows = [(0, len(data))] if prefilter is None else self._windows(prefilter, data)
        for lo, hi in windows:
            text = data[lo:hi].decode("latin-1")
            base = lo + 1
            for end, entries in self._automaton.iter(text):
                for neg_length, token, whole in entries:
                    if whole is None:
                        matches.append((base + end + neg_length, neg_length, token))
                        continue
                    start = base + end - TRIE_DEPTH  # only the head matched: confirm the rest
                    if data[start : start + len(whole)] == whole:
                        matches.append((start, neg_length, token))
        matches.sort()
        return matches

    def pending_start(self, data: bytes) -> int:
        """Where the shortest tail of ``data`` that could still grow into a match starts.

        Returns the smallest ``i`` such that ``data[i:]`` is a prefix of some
        pattern (only the last ``longest - 1`` bytes are considered), or
        ``len(data)`` when no pattern can continue past the end of ``data``.
        """
        size = len(data)
        if self.longest <= 1:
            return size
        lo = max(0, size - (self.longest - 1))
        tail = data[lo:]
        # A prefix of a pattern holds only bytes that occur in some pattern.
        begin = len(tail.rstrip(self._chars))
        if begin == len(tail):
            return size
        tail = tail[begin:]
        lo += begin
        found = size if not self._has_heads else lo + self._long_pending(tail)
        match = self._automaton.match
        for offset in self._prefix_candidates(tail):
            if lo + offset >= found:
                break
            if match(tail[offset:].decode("latin-1")):
                return lo + offset
        return found

    def _long_pending(self, tail: bytes) -> int:
        """The first offset in ``tail`` where a head-only pattern's whole head matched and the
        rest of ``tail`` continues it (the trie knows only heads); ``len(tail)`` if none."""
        size = len(tail)
        for end, entries in self._automaton.iter(tail.decode("latin-1")):
            start = end + 1 - TRIE_DEPTH
            for _, _, whole in entries:
                if whole is not None and start >= 0 and size - start < len(whole) and whole.startswith(tail[start:]):
                    return int(start)  # heads are equally long: the first end reported is the leftmost
        return size

    def _prefix_candidates(self, tail: bytes) -> list[int]:
        """Offsets in ``tail`` that may start a pattern prefix running to its end, ascending.

        An offset with at least ``gram`` bytes after it must start with the
        first ``gram`` bytes of some pattern; shorter remainders are checked
        against the set of short pattern prefixes.
        """
        size, gram = len(tail), self._gram
        offsets: list[int] = []
        # Offsets with 8 readable bytes go through one vectorised pass, unless the tail is tiny
        # or numpy is not loaded yet.
        prefilter = self._prefilter
        full = size - 7 if size > _TINY_TAIL and prefilter is not None else 0
        if prefilter is not None and full > 0:
            offsets = prefilter.hits(tail, full, 1, self._head_keys)
        for offset in range(full, size):
            piece = tail[offset : offset + gram]
            if (int.from_bytes(piece, "little") in self._head_keys) if len(piece) == gram else (
                piece in self._short_prefixes
            ):
                offsets.append(offset)
        return offsets

    def _windows(self, prefilter: _Prefilter, data: bytes) -> list[tuple[int, int]]:
        """Disjoint ``[lo, hi)`` ranges that together contain every occurrence."""
        hits = self._sample_hits(prefilter, data)
        if not hits:
            return []
        reach_back = self._step - 1
        reach = self.longest
        size = len(data)
        windows: list[tuple[int, int]] = []
        for pos in hits:
            lo, hi = max(0, pos - reach_back), min(size, pos + reach)
            if windows and lo <= windows[-1][1]:
                windows[-1] = (windows[-1][0], max(hi, windows[-1][1]))
            else:
                windows.append((lo, hi))
        return windows

    def _sample_hits(self, prefilter: _Prefilter, data: bytes) -> list[int]:
        """Sample positions (ascending) whose gram occurs in some pattern near its start."""
        size, step, gram = len(data), self._step, self._gram
        keys = self._gram_keys
        hits: list[int] = []
        # Samples with 8 readable bytes are read as little-endian uint64 in one vectorised pass.
        full = (size - 8) // step + 1 if size >= 8 else 0
        if full > 0:
            hits = [i * step for i in prefilter.hits(data, full, step, keys)]
        for pos in range(full * step, size - gram + 1, step):
            if int.from_bytes(data[pos : pos + gram], "little") in keys:
                hits.append(pos)
        return hits


class _Prefilter:
    """The vectorised part: a bit table of hashed grams, probed for many positions at once."""

    __slots__ = ("_drop", "_mask", "_np", "_shift", "_table")

    def __init__(self, keys: frozenset[int], gram: int) -> None:
        import numpy as np  # deferred: see the module docstring

        self._np = np
        self._mask = np.uint64((1 << (8 * gram)) - 1)
        table_bits = min(24, max(12, (len(keys) * 256).bit_length()))
        self._shift = np.uint64(64 - table_bits)
        self._drop = np.uint64(64 - 8 * gram)
        self._table: npt.NDArray[np.bool_] = np.zeros(1 << table_bits, dtype=np.bool_)
        if keys:
            self._table[self._slots(np.fromiter(keys, dtype=np.uint64, count=len(keys)))] = True

    def _slots(self, words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
        """Table slot of the low ``gram`` bytes of each word.

        Shifting left drops the bytes beyond the gram (cheaper than a mask);
        the top bits of the product with an odd constant then mix only gram
        bits (Fibonacci hashing).
        """
        slots = words << self._drop
        slots *= self._np.uint64(_HASH_MULTIPLIER)
        slots >>= self._shift
        return slots

    def hits(self, data: bytes, count: int, stride: int, keys: frozenset[int]) -> list[int]:
        """Indices ``i < count`` whose gram at byte ``i * stride`` is in ``keys`` (ascending)."""
        np = self._np
        words = np.ndarray(shape=(count,), dtype="<u8", buffer=data, strides=(stride,))
        candidates = np.flatnonzero(np.take(self._table, self._slots(words)))
        if not candidates.size:
            return []
        values = (words[candidates] & self._mask).tolist()
        return [i for i, v in zip(candidates.tolist(), values) if v in keys]
