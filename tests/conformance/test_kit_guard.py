"""Tests of the kit itself: tiers, the core-tier guard, capability skips and leak-safe failures.

``kit_cases/suite_cases.py`` holds test classes that break the rules on
purpose; it is run once in a pytest subprocess and each outcome is read from
its JUnit XML.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loom_core.testing.base import ConformanceSuite, core, expected_failure, requires

CASES = Path(__file__).parent / "kit_cases" / "suite_cases.py"
LEAK_PROBE = "kit-probe-9f2e-do-not-print"


class Run:
    def __init__(self, outcomes: dict[str, tuple[str, str]], output: str) -> None:
        self.outcomes = outcomes
        self.output = output

    def outcome(self, test: str) -> str:
        return self.outcomes[test][0]

    def message(self, test: str) -> str:
        return self.outcomes[test][1]


def _run_cases(tmp: Path, *extra: str) -> Run:
    shutil.copy(CASES, tmp / "suite_cases.py")
    xml = tmp / "out.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-vv", f"--junitxml={xml}",
         "suite_cases.py", *extra],
        cwd=tmp, capture_output=True, text=True, check=False,
    )
    outcomes: dict[str, tuple[str, str]] = {}
    for case in ET.parse(xml).iter("testcase"):  # noqa: S314 - our own subprocess's report
        name = case.get("classname", "").removeprefix("suite_cases").lstrip(".")
        key = f"{name}::{case.get('name')}" if name else str(case.get("name"))
        children = list(case)
        if not children:
            outcomes[key] = ("passed", "")
            continue
        child = children[0]
        tag = "xfail" if child.get("type") == "pytest.xfail" else child.tag
        outcomes[key] = (tag, (child.get("message") or "") + (child.text or ""))
    return Run(outcomes, proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run_cases(tmp_path_factory.mktemp("kit-cases"))


def test_compliant_class_passes(run: Run) -> None:
    """Proves a subclass that keeps every core test and declares the capability passes everything."""
    for test in ["test_core_tier_intact", "test_alpha", "test_beta", "test_optional", "test_core_when_declared"]:
        assert run.outcome(f"TestCompliant::{test}") == "passed", test


def test_missing_capability_skips_with_reason(run: Run) -> None:
    """Proves optional and capability-gated core tests are skipped, naming the missing capability."""
    for test in ["test_optional", "test_core_when_declared"]:
        assert run.outcome(f"TestNoCapability::{test}") == "skipped"
        assert "'extra'" in run.message(f"TestNoCapability::{test}")
    assert run.outcome("TestNoCapability::test_core_tier_intact") == "passed"


def test_override_without_reason_fails_guard(run: Run) -> None:
    """Proves overriding a core test without @expected_failure makes the guard fail and name it."""
    assert run.outcome("TestOverridden::test_core_tier_intact") == "failure"
    assert "TestOverridden.test_alpha" in run.message("TestOverridden::test_core_tier_intact")


def test_replacing_from_a_mixin_fails_guard(run: Run) -> None:
    """Proves a core test replaced by a mixin listed before the suite, a guard replaced the same
    way, and a kit fixture redefined in the class all fail the guard (the class's own namespace,
    all the guard used to read, shows none of them); a sanctioned mixin passes."""
    assert run.outcome("TestMixinReplaced::test_core_tier_intact") == "failure"
    assert "replaced by PassingMixin.test_alpha" in run.message("TestMixinReplaced::test_core_tier_intact")
    assert run.outcome("TestMixinGuard::test_core_tier_intact") == "failure"
    assert "the guard is replaced by GuardMixin" in run.message("TestMixinGuard::test_core_tier_intact")
    assert run.outcome("TestMixinSanctioned::test_core_tier_intact") == "passed"
    assert run.outcome("TestMixinSanctioned::test_beta") == "xfail"
    assert run.outcome("TestFixtureShadowed::test_core_tier_intact") == "failure"
    assert "fixture 'secret_leak_check' is redefined" in run.message("TestFixtureShadowed::test_core_tier_intact")


def test_deleting_fails_guard(run: Run) -> None:
    """Proves setting a core test to None, or deleting it after class creation, fails the guard."""
    assert run.outcome("TestDeleted::test_core_tier_intact") == "failure"
    assert "TestDeleted.test_beta" in run.message("TestDeleted::test_core_tier_intact")
    assert run.outcome("TestDeletedLater::test_core_tier_intact") == "failure"
    assert "test_gamma" in run.message("TestDeletedLater::test_core_tier_intact")


def test_expected_failure_is_a_strict_xfail(run: Run) -> None:
    """Proves @expected_failure(reason) is accepted, shows the reason, and fails once the test passes."""
    assert run.outcome("TestSanctioned::test_core_tier_intact") == "passed"
    assert run.outcome("TestSanctioned::test_beta") == "xfail"
    assert "issue 12" in run.message("TestSanctioned::test_beta")
    assert run.outcome("TestSanctionedButPasses::test_beta") == "failure"
    assert "XPASS(strict)" in run.message("TestSanctionedButPasses::test_beta")


def test_guard_cannot_be_removed(run: Run) -> None:
    """Proves setting the guard itself to None restores it, and it reports the attempt."""
    assert run.outcome("TestGuardRemoved::test_core_tier_intact") == "failure"
    assert "guard itself" in run.message("TestGuardRemoved::test_core_tier_intact")


def test_skipping_core_tests_fails(run: Run) -> None:
    """Proves a class-level skip mark or a runtime pytest.skip() cannot skip core tests."""
    for cls in ["TestSkippedClass", "TestSkippedAtRuntime"]:
        for test in ["test_core_tier_intact", "test_alpha", "test_beta"]:
            assert run.outcome(f"{cls}::{test}") == "error", f"{cls}::{test}"
            assert "cannot be skipped" in run.message(f"{cls}::{test}")
        assert run.outcome(f"{cls}::test_optional") == "skipped"


def test_plain_xfail_cannot_hide_core_failure(run: Run) -> None:
    """Proves a plain xfail mark (without @expected_failure) turns a failing core test into a failure."""
    assert run.outcome("TestXfailClass::test_beta") == "failure"
    assert "without @expected_failure" in run.message("TestXfailClass::test_beta")


def test_leak_check_fails_without_printing_value(run: Run) -> None:
    """Proves secret_leak_check catches logged/printed and repr-escaped leaks, and the run never shows the value."""
    assert run.outcome("test_leak_in_logs") == "failure"
    message = run.message("test_leak_in_logs")
    assert "captured logs: raw" in message and "captured stdout/stderr: raw" in message
    assert run.outcome("test_leak_escaped_in_exception") == "failure"
    assert "repr-escaped" in run.message("test_leak_escaped_in_exception")
    assert run.outcome("test_no_leak") == "passed"
    assert (LEAK_PROBE in run.output) is False, "the probe value appeared in pytest's output"
    assert (LEAK_PROBE in str(run.outcomes)) is False, "the probe value appeared in the JUnit report"


def test_suites_refuse_to_run_without_the_plugin(tmp_path: Path) -> None:
    """Proves a suite run with the loom plugin disabled fails instead of silently not enforcing tiers."""
    run = _run_cases(tmp_path, "-p", "no:loom", "-k", "TestCompliant")
    assert run.outcome("TestCompliant::test_alpha") == "error"
    assert "plugin is not active" in run.message("TestCompliant::test_alpha")


def test_expected_failure_needs_a_reason() -> None:
    """Proves @expected_failure without a real reason is refused when the class is defined."""
    for reason in ["", "   "]:
        with pytest.raises(ValueError, match="non-empty reason"):
            expected_failure(reason)


def test_requires_needs_a_capability() -> None:
    """Proves @requires() with no capability name is refused."""
    with pytest.raises(ValueError):
        requires()


def test_core_names_collected_through_levels() -> None:
    """Proves core tests declared at several levels are all tracked, and re-decorating counts as override."""

    class Kind(ConformanceSuite):
        @core
        def test_one(self) -> None: ...

    class Plugin(Kind):
        @core
        def test_one(self) -> None: ...

    assert Kind.all_core_test_names() == {"test_one", "test_core_tier_intact"}
    assert any("Plugin.test_one" in v for v in Plugin.core_tier_violations())
    assert Kind.core_tier_violations() == []
