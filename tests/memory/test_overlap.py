"""The search helper pool: work runs on a free helper, or inline when none is free."""

from __future__ import annotations

import threading

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.overlap import Overlap


def test_work_runs_on_a_helper_thread_and_returns_its_result() -> None:
    """A free helper runs the work in another thread; waiting returns the value."""
    pool = Overlap(1)
    try:
        wait = pool.start(lambda: (threading.get_ident(), 42))
        ident, value = wait()
        assert value == 42 and ident != threading.get_ident()
    finally:
        pool.close()


def test_a_helpers_exception_reaches_the_caller() -> None:
    """An error raised on the helper is raised again, unchanged, where the caller waits."""
    pool = Overlap(1)

    def fail() -> None:
        raise LoomError(ErrorCode.INDEX_IO, "index unreadable")

    try:
        wait = pool.start(fail)
        with pytest.raises(LoomError) as caught:
            wait()
        assert caught.value.code is ErrorCode.INDEX_IO
    finally:
        pool.close()


def test_with_every_helper_busy_the_caller_does_the_work_itself() -> None:
    """A busy pool never makes a search queue: the second piece of work runs in the caller's thread."""
    pool = Overlap(1)
    release = threading.Event()
    busy = pool.start(release.wait)
    try:
        wait = pool.start(threading.get_ident)
        assert wait() == threading.get_ident()
        release.set()
        busy()
        # the helper is free again as soon as its result is in: the very next start uses it
        for _ in range(200):
            assert pool.start(threading.get_ident)() != threading.get_ident()
    finally:
        release.set()
        pool.close()


def test_no_helpers_and_a_closed_pool_run_inline() -> None:
    """``helper_threads = 0`` and a closed pool both mean the caller's own thread."""
    none = Overlap(0)
    assert none.start(threading.get_ident)() == threading.get_ident()
    closed = Overlap(2)
    closed.close()
    assert closed.start(threading.get_ident)() == threading.get_ident()
    with pytest.raises(ValueError, match="0 or more"):
        Overlap(-1)
