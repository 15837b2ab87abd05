"""The storage kit's range check says how an iteration went wrong, not only how many keys it gave."""

from __future__ import annotations

from loom_core.testing.storage import _range_difference


def test_a_wrong_order_is_named_as_such() -> None:
    """Keys out of order used to read "got 259 keys, want 259"."""
    message = _range_difference([b"a", b"c", b"b"], [b"a", b"b", b"c"])
    assert "wrong order" in message and "position 1" in message and "b'c'" in message


def test_extra_and_missing_keys_are_shown() -> None:
    message = _range_difference([b"a", b"z"], [b"a", b"b"])
    assert "1 extra, e.g. [b'z']" in message and "1 missing, e.g. [b'b']" in message
