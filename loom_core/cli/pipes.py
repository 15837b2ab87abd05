"""What a command does when whatever reads its output goes away (``loom export | head``)."""

from __future__ import annotations

import contextlib
import os
import sys


def silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush into the closed pipe raises
    nothing ("Exception ignored ... BrokenPipeError") after the command has reported it."""
    with contextlib.suppress(Exception):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


__all__ = ["silence_stdout"]
