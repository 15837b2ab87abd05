"""The real suites catch real bugs: deliberately broken backends fail exactly the tests aimed at them.

``kit_cases/broken_backends.py`` is run once in a pytest subprocess.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "kit_cases" / "broken_backends.py"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("kit-broken")
    shutil.copy(CASES, tmp / "broken_backends.py")
    xml = tmp / "out.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={xml}", "broken_backends.py"],
        cwd=tmp, capture_output=True, text=True, check=False,
    )
    found: dict[str, str] = {}
    for case in ET.parse(xml).iter("testcase"):  # noqa: S314 - our own subprocess's report
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        children = list(case)
        found[f"{cls}::{case.get('name')}"] = children[0].tag if children else "passed"
    return found


def _failed(outcomes: dict[str, str], test: str) -> bool:
    return outcomes.get(test) in {"failure", "error"}


def test_secrets_suite_catches_sloppy_provider(outcomes: dict[str, str]) -> None:
    """Proves stripping, logging values, returning None and serving any scheme each fail their kit test."""
    for test in [
        "test_round_trip_exact_bytes[spaces]",
        "test_missing_entry_fails_closed",
        "test_value_never_leaks",
        "test_wrong_scheme_refused",
        "test_invalid_refs_refused",
    ]:
        assert _failed(outcomes, f"TestSloppyProvider::{test}"), test
    assert outcomes["TestSloppyProvider::test_round_trip_exact_bytes[plain]"] == "passed"
    assert outcomes["TestSloppyProvider::test_core_tier_intact"] == "passed"


def test_pii_suite_catches_number_eater(outcomes: dict[str, str]) -> None:
    """Proves a filter that mangles ordinary numbers and invents tokens fails the matching kit tests."""
    versions = "Upgrade from version 1.2.3 to 10.0.19045.3693 (build 4521)."
    assert _failed(outcomes, f"TestNumberEater::test_clean_text_unchanged[{versions}]")
    assert _failed(outcomes, "TestNumberEater::test_only_contract_tokens_introduced")
    assert _failed(outcomes, "TestNumberEater::test_international_phones")
    assert outcomes["TestNumberEater::test_clean_text_unchanged[]"] == "passed"


def test_pii_suite_catches_a_filter_bound_by_spaces(outcomes: dict[str, str]) -> None:
    """Proves a filter that only finds PII between spaces fails the placement test, and only that."""
    assert _failed(outcomes, "TestSpaceBoundFilter::test_found_wherever_text_places_it")
    assert outcomes["TestSpaceBoundFilter::test_emails"] == "passed"


def test_llm_suite_catches_lazy_backend(outcomes: dict[str, str]) -> None:
    """Proves float64/unnormalised vectors, constant vectors and an empty completion are all caught."""
    for test in [
        "test_embed_shape_dtype_unit_norm",
        "test_embed_distinguishes_texts",
        "test_complete_matches_chat_capability",
        "test_usage_accounts_every_call",
    ]:
        assert _failed(outcomes, f"TestLazyLLM::{test}"), test
    assert outcomes["TestLazyLLM::test_close_idempotent"] == "passed"
