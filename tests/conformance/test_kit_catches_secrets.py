"""Each secrets-kit check can fail: a provider with exactly one bug fails exactly the check aimed at it.

``kit_cases/broken_secrets.py`` (a sound provider, one broken variant per
check, and a store without the optional hooks) is run once in a pytest
subprocess; outcomes are read from its JUnit XML.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "kit_cases" / "broken_secrets.py"
TOKEN = "kit-token-3c9e-do-not-print"
LEAK_LINE = "second-line-\\-of-leak-probe-0d9e"  # line 2 of the kit's leak probe value

#: Broken class -> the only suite tests it may fail.
EXPECTED_FAILURES: dict[str, set[str]] = {
    "TestStripsOutput": {
        "test_round_trip_exact_bytes[trailing-newline]",
        "test_round_trip_exact_bytes[trailing-crlf]",
    },
    "TestPicksFirst": {"test_ambiguous_reference_refused"},
    "TestAllowsEmpty": {"test_empty_value_refused"},
    "TestFieldBlind": {"test_missing_field_distinct_from_missing_entry"},
    "TestCachesToDisk": {"test_values_absent_from_artifacts"},
    "TestTokenInArgv": {"test_child_processes_never_see_values_or_credentials_in_argv"},
    "TestExportsToken": {"test_process_environ_untouched"},
    "TestSetsDebugFlag": {"test_process_environ_untouched"},
    "TestFallsBack": {"test_unreachable_vault_fails_closed"},
    "TestReadsProcessEnviron": {"test_auth_never_taken_from_process_environ"},
    "TestFlakyCodes": {"test_failures_are_deterministic"},
    "TestSharedSlot": {"test_concurrent_resolves_return_exact_values"},
    # the working provider's repr is also searched for credentials in the leak test
    "TestReprShowsToken": {"test_credentials_never_in_provider_repr", "test_value_never_leaks"},
    "TestMissingAuthEchoes": {"test_missing_auth_fails_closed"},
    "TestFieldErrorShowsEntry": {"test_value_never_leaks"},
    "TestLogsOneLine": {"test_value_never_leaks"},
    "TestReadsUndeclaredVariable": {"test_registered_with_auth_policy_and_works_within_it"},
    "TestTokenOnlyRead": {"test_credentials_declared_as_credentials"},
    "TestTokenInNotFound": {"test_value_never_leaks"},
    "TestHidesAuth": {"test_auth_capability_matches_policy"},
}

HOOK_TESTS = {
    "put_duplicate": "test_ambiguous_reference_refused",
    "put_empty": "test_empty_value_refused",
    "missing_field_ref": "test_missing_field_distinct_from_missing_entry",
    "process_log": "test_child_processes_never_see_values_or_credentials_in_argv",
    "break_vault": "test_unreachable_vault_fails_closed",
}


class Run:
    """``outcomes[class][test] = (outcome, message)`` plus the run's whole output."""

    def __init__(self, outcomes: dict[str, dict[str, tuple[str, str]]], output: str) -> None:
        self.outcomes = outcomes
        self.output = output

    def failed(self, cls: str) -> set[str]:
        return {test for test, (outcome, _) in self.outcomes[cls].items() if outcome in {"failure", "error"}}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    tmp = tmp_path_factory.mktemp("kit-secrets")
    shutil.copy(CASES, tmp / "broken_secrets.py")
    xml = tmp / "out.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", f"--junitxml={xml}",
         "broken_secrets.py"],
        cwd=tmp, capture_output=True, text=True, check=False,
    )
    outcomes: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for case in ET.parse(xml).iter("testcase"):  # noqa: S314 - our own subprocess's report
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        children = list(case)
        if not children:
            outcomes[cls][str(case.get("name"))] = ("passed", "")
            continue
        child = children[0]
        outcomes[cls][str(case.get("name"))] = (child.tag, (child.get("message") or "") + (child.text or ""))
    return Run(dict(outcomes), proc.stdout + proc.stderr)


def test_sound_provider_passes_every_check(run: Run) -> None:
    """Proves the kit's checks hold no false alarm: the sound provider passes all, hooks included (none skipped)."""
    outcomes = run.outcomes["TestSound"]
    assert not run.failed("TestSound")
    for test in HOOK_TESTS.values():
        assert outcomes[test][0] == "passed", test
    skipped = {test for test, (outcome, _) in outcomes.items() if outcome == "skipped"}
    assert skipped == {"test_round_trip_binary"}  # the only capability it does not declare


@pytest.mark.parametrize("cls", sorted(EXPECTED_FAILURES))
def test_each_bug_fails_exactly_its_check(run: Run, cls: str) -> None:
    """Proves each new check can fail, and fails alone: the broken provider's other suite tests pass."""
    assert run.failed(cls) == EXPECTED_FAILURES[cls]


def test_missing_hooks_skip_naming_the_hook(run: Run) -> None:
    """Proves a store without an optional hook gets its test skipped with a reason naming the hook."""
    outcomes = run.outcomes["TestWithoutHooks"]
    for hook, test in HOOK_TESTS.items():
        outcome, message = outcomes[test]
        assert outcome == "skipped", test
        assert f"{hook}()" in message, test
    assert not run.failed("TestWithoutHooks")


def test_failures_do_not_print_the_credential(run: Run) -> None:
    """Proves the failing runs (token in argv, repr, environ, errors) never show the token in pytest's output."""
    assert run.failed("TestReprShowsToken")
    assert (TOKEN in run.output) is False, "the token appeared in pytest's output"
    assert (TOKEN in str(run.outcomes)) is False, "the token appeared in the JUnit report"


def test_redaction_catches_escaped_and_single_line_forms(run: Run) -> None:
    """Proves the leak test finds a value shown as a bytes repr in an error, or one line of it in a log.

    Both without printing it: pytest's output and report never show the
    leaked line.
    """
    in_error = run.outcomes["TestFieldErrorShowsEntry"]["test_value_never_leaks"][1]
    # the missing-field error of the probe's own entry, named by type and code
    assert "exception[2] (LoomError SECRETS_FIELD_NOT_FOUND) str: repr-escaped" in in_error
    assert "captured logs: line 2" in run.outcomes["TestLogsOneLine"]["test_value_never_leaks"][1]
    assert (LEAK_LINE in run.output) is False, "the leaked line appeared in pytest's output"
    assert (LEAK_LINE in str(run.outcomes)) is False, "the leaked line appeared in the JUnit report"


@pytest.mark.parametrize("scheme", ["my_vault", "vault.v2", "a+b"])
def test_a_scheme_no_reference_can_carry_fails_the_contract_check(scheme: str) -> None:
    """A provider serving ``my_vault`` could never be reached (references refuse ``_``): the kit says so
    in the contract check, rather than through a parse error deep in another test."""
    from loom_core.contracts.secrets import SecretRef, SecretValue
    from loom_core.testing.secrets import SecretsProviderSuite

    class Unreachable:
        capabilities: frozenset[str] = frozenset()

        def __init__(self) -> None:
            self.scheme = scheme

        def validate(self, ref: SecretRef) -> None:
            return None

        def resolve(self, ref: SecretRef) -> SecretValue:
            raise NotImplementedError

        def close(self) -> None:
            return None

    class Suite(SecretsProviderSuite):
        capabilities = frozenset()

    with pytest.raises(AssertionError, match="can never appear in a reference"):
        Suite().test_provider_satisfies_contract(Unreachable())  # type: ignore[arg-type]
