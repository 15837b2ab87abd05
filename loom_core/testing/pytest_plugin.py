"""The ``loom`` pytest plugin (``pytest11`` entry point): tiers and leak fixtures.

Loaded automatically wherever ``loom-framework`` is installed. It

* skips capability-gated tests (:func:`~loom_core.testing.base.requires`)
  at collection, with a reason naming the missing capability;
* turns any skip or unsanctioned xfail of a core-tier test into a failure
  (a ``pytest.skip()`` in a fixture, a ``skip`` mark on the class...);
* offers the fixtures ``leak_scanner`` (raw-byte scan of a directory for
  markers) and ``secret_leak_check`` (a value and its quoted / escaped /
  newline forms against exceptions, reprs, captured logs and output).

It imports only pytest and the standard library.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from loom_core.testing.base import (
    EXPECTED_FAILURE_ATTR,
    ConformanceSuite,
    missing_capabilities,
    skip_reason,
)
from loom_core.testing.leaks import find_forms, redaction_variants, scan_files


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "loom_core_tier: set by the loom plugin on core-tier conformance tests"
    )


def _suite_class(item: pytest.Item) -> type[ConformanceSuite] | None:
    cls = getattr(item, "cls", None)
    if isinstance(cls, type) and issubclass(cls, ConformanceSuite):
        return cls
    return None


def _test_name(item: pytest.Item) -> str:
    return str(getattr(item, "originalname", None) or item.name)


def _is_core(item: pytest.Item) -> bool:
    cls = _suite_class(item)
    return cls is not None and _test_name(item) in cls.all_core_test_names()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip capability-gated tests early and tag core-tier tests."""
    for item in items:
        cls = _suite_class(item)
        if cls is None:
            continue
        missing = missing_capabilities(cls, getattr(item, "function", None))
        if missing:
            item.add_marker(pytest.mark.skip(reason=skip_reason(missing)))
        if _is_core(item):
            item.add_marker(pytest.mark.loom_core_tier)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A core-tier test that ends up skipped (or xfailed without ``expected_failure``) fails."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    checker = item.stash.get(_CHECKER_KEY, None)
    if checker is not None and checker.checked:
        _scrub_report(report, checker.checked)
    if not report.skipped or not _is_core(item):
        return
    cls = _suite_class(item)
    assert cls is not None
    function = getattr(item, "function", None)
    if missing_capabilities(cls, function):
        return  # core only for backends declaring the capability
    if hasattr(report, "wasxfail"):
        if getattr(function, EXPECTED_FAILURE_ATTR, None):
            return  # the sanctioned strict xfail
        why = "xfail-marked without @expected_failure(reason)"
    else:
        why = "skipped"
    report.outcome = "failed"
    report.longrepr = (
        f"core-tier test {cls.__qualname__}.{_test_name(item)} was {why}; core tests cannot be "
        "skipped. Remove the skip, or override it with @expected_failure(\"reason\")."
    )
    if hasattr(report, "wasxfail"):
        del report.wasxfail


def _scrub_report(report: pytest.TestReport, values: list[bytes | str]) -> None:
    """Replace every form of the checked values in captured sections and the failure text."""
    forms = sorted(
        {f.decode("utf-8", "replace") for v in values for f in redaction_variants(v).values()},
        key=len,
        reverse=True,
    )

    def scrub(text: str) -> str:
        for form in forms:
            text = text.replace(form, "<value hidden by loom kit>")
        return text

    report.sections = [(title, scrub(content)) for title, content in report.sections]
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        cleaned = scrub(text)
        if cleaned != text:
            report.longrepr = cleaned


# -- leak fixtures ----------------------------------------------------------


class LeakScanner:
    """Raw-byte scan of a directory tree; failures list files and marker labels only."""

    def find(self, root: Path, markers: Mapping[str, bytes] | Iterable[bytes]) -> list[str]:
        return [str(leak) for leak in scan_files(Path(root), markers)]

    def assert_clean(
        self, root: Path, markers: Mapping[str, bytes] | Iterable[bytes], *, what: str = ""
    ) -> None:
        """Fail (without printing the markers) if any file under ``root`` holds a marker."""
        found = self.find(root, markers)
        if found:
            label = f" ({what})" if what else ""
            pytest.fail(f"plaintext markers found in files under {root}{label}:\n  " + "\n  ".join(found))


@pytest.fixture
def leak_scanner() -> LeakScanner:
    """``leak_scanner.assert_clean(dir, {"label": b"marker"})`` scans every file's raw bytes."""
    return LeakScanner()


class SecretLeakCheck:
    """Checks a secret is absent from every surface a test can observe.

    Surfaces: ``str`` and ``repr`` of the given exceptions (and their
    ``__cause__`` / ``__context__`` chain and args), ``repr``/``str`` of given
    objects, given texts, every log record captured at DEBUG on the root
    logger, and everything written to stdout/stderr (fd level). Failure
    messages name the surface and the form ("repr-escaped", "line 2"), never
    the value.
    """

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
        self._caplog = caplog
        self._capfd = capfd
        self.output_seen = ""
        self.checked: list[bytes | str] = []  # values whose forms are scrubbed from the report

    def surfaces(
        self,
        *,
        exceptions: Iterable[BaseException] = (),
        objects: Iterable[object] = (),
        texts: Iterable[str | bytes] = (),
    ) -> dict[str, str | bytes]:
        found: dict[str, str | bytes] = {}
        for n, exc in enumerate(exceptions):
            for depth, link in enumerate(_exception_chain(exc)):
                code = getattr(getattr(link, "code", None), "value", None)
                kind = type(link).__name__ + (f" {code}" if code else "")
                tag = f"exception[{n}] ({kind})" + (f" chain[{depth}]" if depth else "")
                found[f"{tag} str"] = str(link)
                found[f"{tag} repr"] = repr(link)
                found[f"{tag} args"] = repr(link.args)
                details = getattr(link, "details", None)
                if details:
                    found[f"{tag} details"] = repr(details)
        for n, obj in enumerate(objects):
            found[f"object[{n}] repr"] = repr(obj)
            found[f"object[{n}] str"] = str(obj)
        for n, text in enumerate(texts):
            found[f"text[{n}]"] = text
        logged: list[str] = [self._caplog.text]
        for record in self._caplog.records:
            logged.append(record.getMessage())
            logged.append(repr(record.args))
            if record.exc_text:
                logged.append(record.exc_text)
        found["captured logs"] = "\n".join(logged)
        out, err = self._capfd.readouterr()
        self.output_seen += out + err
        found["captured stdout/stderr"] = self.output_seen
        return found

    def leaks(self, value: bytes | str, **surfaces: Any) -> list[str]:
        """``"<surface>: <form>"`` for every form of ``value`` found on a surface."""
        self.checked.append(value)
        forms = redaction_variants(value)
        return [
            f"{where}: {label}"
            for where, text in self.surfaces(**surfaces).items()
            for label in find_forms(text, forms)
        ]

    def assert_absent(self, value: bytes | str, *, what: str = "secret", **surfaces: Any) -> None:
        """Fail, naming surfaces and forms only, if ``value`` leaked anywhere observable."""
        found = self.leaks(value, **surfaces)
        if found:
            pytest.fail(f"{what} leaked (value not shown):\n  " + "\n  ".join(found), pytrace=False)


def _exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_CHECKER_KEY = pytest.StashKey[SecretLeakCheck]()


@pytest.fixture
def secret_leak_check(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> Generator[SecretLeakCheck, None, None]:
    """A :class:`SecretLeakCheck` with logs captured at DEBUG on the root logger.

    Values it checked are also scrubbed from the test's report (captured
    log/output sections), so a failing leak test does not print them.
    """
    caplog.set_level(logging.DEBUG)
    checker = SecretLeakCheck(caplog, capfd)
    request.node.stash[_CHECKER_KEY] = checker
    yield checker
