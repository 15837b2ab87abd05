"""Run one half of a hybrid search on a helper thread while the caller runs the other.

The two signals of a hybrid search are independent, and both release the GIL
while they work (Tantivy in Rust, the sketch scan in numpy kernels), so on an
otherwise idle machine they overlap: at 100k chunks the index half (~0.75 ms)
disappears behind the vector half. A helper is borrowed only when one is free:
when every helper is busy, other searches already occupy the cores, and the
work runs inline in the caller instead of queueing behind them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

#: Vectors a search must cover before a helper pays: each hand-off of the GIL
#: between the two threads costs tens of microseconds on a 2-core VM, and the
#: Python parts of both halves contend for it. Measured (same process, blocks
#: of 200 queries alternated): hybrid at 10k 1.38x slower with a helper, at 40k
#: 0.88-1.27x, at 100k 0.79-1.00x; vector mode at 40k 1.04x, at 100k 0.86x.
MIN_ROWS = 65_536


class Overlap:
    """A small pool of helper threads that never makes a caller wait for a free one."""

    def __init__(self, helpers: int, *, name: str = "loom-search") -> None:
        if helpers < 0:
            raise ValueError("helpers must be 0 or more")
        self._helpers = helpers
        self._name = name
        self._slots = threading.BoundedSemaphore(helpers) if helpers else None
        self._pool: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()
        self._closed = False

    def start(self, fn: Callable[[], T]) -> Callable[[], T]:
        """Begin ``fn`` on a free helper; return a callable that waits for its
        result (re-raising its exception). Without a free helper, the returned
        callable runs ``fn`` itself, in the caller's thread."""
        if self._slots is None or not self._slots.acquire(blocking=False):
            return fn  # the caller's own call runs it
        slots = self._slots

        def run() -> T:
            try:
                return fn()
            finally:  # free before the result is published, so the waiter's next start finds it
                slots.release()

        try:
            future: Future[T] = self._executor().submit(run)
        except RuntimeError:  # closed meanwhile: do the work inline
            slots.release()
            return fn
        return future.result

    def _executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._closed:
                raise RuntimeError("closed")
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._helpers, thread_name_prefix=self._name)
            return self._pool

    def close(self) -> None:
        """Wait for work running on the helpers (not for work callers run inline), then stop
        them; later calls run inline."""
        with self._guard:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


__all__ = ["MIN_ROWS", "Overlap"]
