"""Call a secrets provider on a helper thread, so a vault that never answers cannot hold a run
(or a server's start-up, for keys given as references).

A provider's ``resolve`` runs in the run's own process. One that blocks (an
unreachable vault, a lock held elsewhere) kept ``loom run`` waiting for ever,
and Ctrl-C only set a flag nobody looked at until it returned. The run now
waits for the call on its main thread, at most ``secrets.resolve_timeout_seconds``,
and stops waiting as soon as a signal arrives. An abandoned call keeps its
(daemon) thread until the process exits; its result is dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05  # how often the waiting thread looks at the signal flag
#: ``secrets.resolve_timeout_seconds``'s default: how long a provider may take before it is given up on
DEFAULT_RESOLVE_SECONDS = 120.0


class CallTimedOut(Exception):
    """The call did not return within its time limit (it may still be running)."""


class CallInterrupted(Exception):
    """A signal arrived while waiting; ``signal`` is its number."""

    def __init__(self, signal: int) -> None:
        super().__init__(f"signal {signal}")
        self.signal = signal


def call_bounded(
    call: Callable[[], T], *, timeout: float, interrupted: Callable[[], int | None] | None = None
) -> T:
    """``call()``'s result, or its exception re-raised; ``CallTimedOut`` after ``timeout``
    seconds, ``CallInterrupted`` once ``interrupted()`` (when given) returns a signal number."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the waiting thread, which raises it
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="loom-provider-call", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))):
        signal = interrupted() if interrupted is not None else None
        if signal is not None:
            raise CallInterrupted(signal)
        if time.monotonic() >= deadline:
            raise CallTimedOut
    if failure:
        raise failure[0]
    return outcome[0]


__all__ = ["DEFAULT_RESOLVE_SECONDS", "CallInterrupted", "CallTimedOut", "call_bounded"]
