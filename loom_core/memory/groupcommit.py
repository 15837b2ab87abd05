"""Group commit for the full-text index: many writes, one index commit.

An index commit writes and syncs a new segment (~16 ms with Tantivy here), so committing after
every single-chunk write held writes near 50 per second. A write's rows and its intent row are
durable in storage before it returns, and the intent lets the index catch up after a crash, so
the commit itself may wait a little: writes arriving within ``delay`` share one commit, made on
this background thread. Whoever needs the index current (a search, a delete, a consistency check,
a checkpoint, close) publishes what is queued first, so no caller ever sees a missing write.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable

_log = logging.getLogger("loom.memory")


#: how often an idle thread checks that its engine still exists
_IDLE_CHECK_SECONDS = 1.0


class CommitScheduler:
    """Runs ``publish`` on a daemon thread at most ``delay_seconds`` after the first request
    that follows the previous commit. ``publish`` (a bound method) takes the engine's lock itself.

    The thread holds its engine only weakly: an engine dropped without ``close`` is still
    collected (its storage lock released), and the thread then ends.
    """

    def __init__(self, delay_seconds: float, publish: Callable[[], None]) -> None:
        self._delay = delay_seconds
        self._publish = weakref.WeakMethod(publish)
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def request(self) -> None:
        """Something waits to be committed: commit it within the delay."""
        if self._thread is None:
            with self._start_lock:  # started on the first write, so read-only engines have no thread
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(target=self._run, name="loomem-index-commit", daemon=True)
                    self._thread.start()
        self._wanted.set()

    def stop(self) -> None:
        """Stop the thread (waits for a commit in progress); the caller publishes what is left."""
        with self._start_lock:
            self._stopping.set()
            self._wanted.set()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while True:
            # checked on every turn: a stop() landing between the delay and the clear() below had
            # its wake-up cleared, and the thread idled on for ever while close() waited for it
            if self._stopping.is_set():
                return
            if not self._wanted.wait(_IDLE_CHECK_SECONDS):
                if self._publish() is None:  # the engine is gone
                    return
                continue
            # the writes arriving meanwhile join this commit
            if self._stopping.wait(self._delay):
                return
            self._wanted.clear()
            publish = self._publish()
            if publish is None:
                return
            try:
                publish()
            except Exception:  # the changes stay queued; the next write, search or close retries
                _log.exception("index commit failed; it is retried on the next write or search")
            del publish
