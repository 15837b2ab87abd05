"""One set of boolean spellings for every flag Loom reads."""

from __future__ import annotations

import pytest

from loom_core.crypto.masterkey import expect_enabled
from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import parse_flag

ON = ["1", "true", "TRUE", "t", "yes", "Y", "on", " on "]
OFF = ["0", "false", "F", "no", "n", "off", ""]


@pytest.mark.parametrize("spelling", ON)
def test_on_spellings(spelling: str) -> None:
    """Every accepted on-spelling is on."""
    assert parse_flag("X", spelling) is True


@pytest.mark.parametrize("spelling", OFF)
def test_off_spellings(spelling: str) -> None:
    """Every accepted off-spelling is off."""
    assert parse_flag("X", spelling) is False


def test_typo_in_an_own_flag_is_an_error() -> None:
    """A spelling that is neither on nor off is CONFIG_INVALID naming the flag, never a silent off."""
    with pytest.raises(LoomError) as info:
        parse_flag("LOOMEM_AT_REST_EXPECT_ENABLED", "perhaps")
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "LOOMEM_AT_REST_EXPECT_ENABLED" in info.value.message


@pytest.mark.parametrize("spelling", ["t", "y", "YES"])
def test_encryption_expect_flag_reads_the_same_spellings_as_the_config(spelling: str) -> None:
    """The encryption start-up check accepts what the config loader accepts (it once ignored t and y)."""

    class Settings:
        expect_enabled = False

    assert expect_enabled(Settings(), {"LOOMEM_AT_REST_EXPECT_ENABLED": spelling}) is True
    with pytest.raises(LoomError):
        expect_enabled(Settings(), {"LOOMEM_AT_REST_EXPECT_ENABLED": "maybe"})
