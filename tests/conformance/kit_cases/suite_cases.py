"""Test classes that break the kit's rules on purpose; run only in a subprocess by test_kit_guard.py.

The file name does not start with ``test_`` so the normal run never collects it.
"""

from __future__ import annotations

import logging

import pytest

from loom_core.testing.base import ConformanceSuite, core, expected_failure, requires

LEAK_PROBE = "kit-probe-9f2e-do-not-print"


class MiniSuite(ConformanceSuite):
    @core
    def test_alpha(self) -> None:
        """A core test that passes."""

    @core
    def test_beta(self) -> None:
        """A core test that fails for 'weak' backends."""
        assert not getattr(self, "weak", False)

    @requires("extra")
    def test_optional(self) -> None:
        """An optional test gated on capability 'extra'."""

    @requires("extra")
    @core
    def test_core_when_declared(self) -> None:
        """Core only for backends declaring 'extra'."""


class TestCompliant(MiniSuite):
    capabilities = frozenset({"extra"})


class TestNoCapability(MiniSuite):
    pass


class TestOverridden(MiniSuite):
    def test_alpha(self) -> None:
        """Overrides a core test without expected_failure."""


class TestDeleted(MiniSuite):
    test_beta = None


class TestSanctioned(MiniSuite):
    weak = True

    @expected_failure("backend X cannot do beta yet (issue 12)")
    def test_beta(self) -> None:
        MiniSuite.test_beta(self)


class TestSanctionedButPasses(MiniSuite):
    @expected_failure("claims to fail but passes")
    def test_beta(self) -> None:
        MiniSuite.test_beta(self)


class TestGuardRemoved(MiniSuite):
    test_core_tier_intact = None


@pytest.mark.skip(reason="too slow")
class TestSkippedClass(MiniSuite):
    pass


class TestSkippedAtRuntime(MiniSuite):
    @pytest.fixture(autouse=True)
    def _bail(self) -> None:
        pytest.skip("backend not available")


@pytest.mark.xfail(reason="flaky")
class TestXfailClass(MiniSuite):
    weak = True


class PassingMixin:
    def test_alpha(self) -> None:
        """Listed before the suite, so it wins over the core test by method resolution order."""


class TestMixinReplaced(PassingMixin, MiniSuite):
    pass


class GuardMixin:
    def test_core_tier_intact(self) -> None:
        """Tries to silence the guard from a mixin."""


class TestMixinGuard(GuardMixin, PassingMixin, MiniSuite):
    pass


class SanctionedMixin:
    @expected_failure("shared by our backends that lack beta")
    def test_beta(self) -> None:
        raise AssertionError("beta unsupported")


class TestMixinSanctioned(SanctionedMixin, MiniSuite):
    pass


class TestFixtureShadowed(MiniSuite):
    @pytest.fixture
    def secret_leak_check(self) -> None:
        """A no-op in place of the kit's leak check."""


class LaterBase(ConformanceSuite):
    @core
    def test_gamma(self) -> None:
        """Deleted from the class after creation below."""


class TestDeletedLater(LaterBase):
    pass


delattr(LaterBase, "test_gamma")


def test_leak_in_logs(secret_leak_check: object) -> None:
    """Logs and prints the probe; the leak check must fail without printing it."""
    logging.getLogger("some.backend").debug("resolved %s", LEAK_PROBE)
    print("value is", LEAK_PROBE)
    secret_leak_check.assert_absent(LEAK_PROBE, what="probe")  # type: ignore[attr-defined]


def test_leak_escaped_in_exception(secret_leak_check: object) -> None:
    """An exception holding the repr-escaped multi-line probe must be caught."""
    value = LEAK_PROBE + "\nsecond-line-of-probe"
    error = ValueError(f"bad value {value!r}")
    secret_leak_check.assert_absent(value, what="probe", exceptions=[error])  # type: ignore[attr-defined]


def test_no_leak(secret_leak_check: object) -> None:
    """Nothing leaks: the check passes."""
    logging.getLogger("some.backend").info("resolved env://NAME")
    secret_leak_check.assert_absent(LEAK_PROBE, what="probe", exceptions=[ValueError("env://NAME")])  # type: ignore[attr-defined]
