"""The built-in ``regex`` PII filter passes the PII suite, plus its own national-ID formats."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from loom_core.builtins.pii_regex import CAPABILITIES
from loom_core.contracts import BackendContext
from loom_core.contracts.pii import PIIFilter
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.testing.pii import PIIFilterSuite


def build(blocklist: Sequence[str] = (), **options: object) -> PIIFilter:
    flt: PIIFilter = PluginHost(environ={}).create(
        "pii", "regex", BackendContext(options={"blocklist": list(blocklist), **options})
    )
    return flt


class TestRegexPIIFilter(PIIFilterSuite):
    capabilities = CAPABILITIES

    @pytest.fixture
    def pii_filter(self) -> object:
        return build


@pytest.mark.parametrize(
    "sample",
    [
        "AB 12 34 56 C",  # UK NINO, spaced
        "AB123456C",  # UK NINO, compact
        "2 55 08 14 168 025 38",  # French INSEE / NIR, spaced, key 38
        "255081416802538",  # French INSEE / NIR, compact
        "86095742719",  # German Steuer-ID
    ],
)
def test_national_ids(sample: str) -> None:
    """Proves UK NINO, French INSEE and German Steuer-ID numbers become [ID]."""
    assert build().redact(f"id {sample} end").text == "id [ID] end"


@pytest.mark.parametrize(
    "sample",
    [
        "GB123456A",  # NINO with an unused prefix
        "QQ123456C",  # Q is not a valid first NINO letter
        "255081416802539",  # INSEE with a wrong key
        "86095742718",  # Steuer-ID with a wrong check digit
        "12345678901",  # 11 digits, no repeated-digit pattern
        "000-12-3456",  # SSN area 000 does not exist
        "900-12-3456",  # SSN area 9xx does not exist
        "0123456789",  # zero-padded counter, no separators
        "+5 points",  # a signed number, far too short for a phone
    ],
)
def test_look_alikes_untouched(sample: str) -> None:
    """Proves numbers shaped like IDs or phones but failing their checks stay as they are."""
    text = f"value {sample} end"
    assert build().redact(text).text == text


def test_more_phone_formats() -> None:
    """Proves +44 (0) numbers, dotted NANP and mobile trunk numbers are caught."""
    flt = build()
    for sample in ["+44 (0)20 7946 0958", "202.555.0143", "07700 900123", "030 901820", "+1 (202) 555-0143"]:
        assert flt.redact(f"call {sample}.").text == "call [PHONE].", sample


def test_detect_subset() -> None:
    """Proves `detect` limits what is redacted and what the instance declares."""
    flt = build(detect=["email"])
    assert flt.redact("a@b.io +44 20 7946 0958").text == "[EMAIL] +44 20 7946 0958"
    assert flt.capabilities == frozenset({"email"})


@pytest.mark.parametrize(
    "options",
    [
        {"blocklist": "not-a-list"},
        {"blocklist": [3]},
        {"blocklist": ["[PHONE]"]},
        {"detect": ["names"]},
        {"detect": []},
        {"unknown": True},
    ],
)
def test_bad_options_refused(options: dict[str, object]) -> None:
    """Proves every malformed option is refused with PII_CONFIG_INVALID naming the key."""
    with pytest.raises(LoomError) as info:
        PluginHost(environ={}).create("pii", "regex", BackendContext(options=options))
    assert info.value.code is ErrorCode.PII_CONFIG_INVALID
    assert "pii" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+44 20 7946 0958", "[PHONE]"),
        ("123-45-6789", "[ID]"),
        ("86095742719", "[ID]"),
        ("(202) 555-0143", "[PHONE]"),
        ("020 7946 0958", "[PHONE]"),
        ("x86095742719", "x86095742719"),
        ("v123-45-6789", "v123-45-6789"),
        ("1.202-555-0143", "1.202-555-0143"),
    ],
)
def test_whole_text_and_glued_boundaries(text: str, expected: str) -> None:
    """Proves matches at the very start/end of the text work, and digits glued to a word or number do not match."""
    assert build().redact(text).text == expected
