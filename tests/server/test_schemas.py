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


def test_a_time_of_thousands_of_digits_is_refused_in_the_api_s_words() -> None:
    """``"since": "9" * 5000`` answered Python's "Exceeds the limit (4300 digits) ... use
    sys.set_int_max_str_digits()" text; it is refused as a time past year 9999."""
    from loom_core.server.schemas import SearchIn

    with pytest.raises(ValueError, match="year 9999") as info:
        SearchIn.model_validate({"query": "x", "since": "9" * 5000})
    assert "sys.set_int_max_str_digits" not in str(info.value)
