"""The error catalogue is complete, documented and safe to print."""

from __future__ import annotations

from pathlib import Path

from loom_core.errors import CATALOGUE, ErrorCode, LoomError, render_catalogue_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_has_meaning_and_fix() -> None:
    """Each code has a catalogue row; add one to ``_CATALOGUE_ROWS`` when adding a code."""
    missing = [c for c in ErrorCode if c not in CATALOGUE or not all(CATALOGUE[c])]
    assert missing == []


def test_codes_are_their_own_names() -> None:
    """A code's value is its name, so JSON output and enum agree."""
    assert all(c.value == c.name for c in ErrorCode)


def test_docs_errors_md_is_generated_from_the_catalogue() -> None:
    """Regenerate with ``python -m loom_core.errors > docs/errors.md``."""
    assert (ROOT / "docs" / "errors.md").read_text() == render_catalogue_markdown()


def test_loom_error_shapes() -> None:
    """str, repr and JSON carry code and message, nothing else."""
    err = LoomError(ErrorCode.CONFIG_INVALID, "server.port: must be 1-65535", details={"key": "server.port"})
    assert str(err) == "CONFIG_INVALID: server.port: must be 1-65535"
    assert repr(err) == "LoomError('CONFIG_INVALID', 'server.port: must be 1-65535')"
    assert err.to_dict() == {
        "code": "CONFIG_INVALID",
        "message": "server.port: must be 1-65535",
        "details": {"key": "server.port"},
    }
