"""Boolean environment flags: one set of spellings for every flag Loom reads.

``is_truthy`` answers "is this flag on?" for variables Loom does not own
(``CI_DEBUG_TRACE``: anything unrecognised is simply not on). ``parse_flag``
is for Loom's own switches, where a typo must be an error rather than a
silent "off".
"""

from __future__ import annotations

import re

from loom_core.errors import ErrorCode, LoomError

TRUTHY = frozenset({"1", "true", "t", "yes", "y", "on"})
FALSY = frozenset({"0", "false", "f", "no", "n", "off", ""})


def is_truthy(value: str | None) -> bool:
    """Any truthy spelling, case-insensitive: true, 1, t, yes, y, on."""
    return value is not None and value.strip().lower() in TRUTHY


def parse_flag(name: str, value: str) -> bool:
    """``value`` of flag ``name`` as a bool; ``CONFIG_INVALID`` for any other spelling."""
    raw = value.strip().lower()
    if raw not in TRUTHY | FALSY:
        raise LoomError(ErrorCode.CONFIG_INVALID, f"{name} must be 1/0, true/false, yes/no or on/off")
    return raw in TRUTHY


_CONVENTIONAL_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


def looks_like_variable_name(name: str) -> bool:
    """Whether ``name``, given where a variable's name belongs, may be repeated in a message.

    A key pasted there instead can pass as a valid name; names are shown only when spelled as
    variables usually are (upper case, digits, ``_``) and not long and without ``_`` as keys are.
    """
    return bool(_CONVENTIONAL_NAME.fullmatch(name)) and ("_" in name or len(name) < 20)
