"""Request parsing that the HTTP schemas do themselves: times."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("2039-01-05T00:06:39.857Z", 2177798799857),  # float arithmetic gave ...856
        ("2026-01-31T12:00:00", 1769860800000),  # zone-less means UTC
        ("2026-01-31T13:00:00.001+01:00", 1769860800001),
    ],
)
def test_iso_times_convert_to_the_exact_millisecond(text: str, millis: int) -> None:
    """since/until/expires_at given as ISO-8601 land on the millisecond they name."""
    from loom_core.server.schemas import parse_time

    assert parse_time(text) == millis
