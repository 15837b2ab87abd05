"""The base every per-kind conformance suite builds on: tiers and the guard.

A plugin's ``tests/`` subclasses one suite (``PIIFilterSuite``,
``SecretsProviderSuite``, ...), sets :attr:`ConformanceSuite.capabilities` to
what its backend declares, and provides the one fixture the suite's docstring
names. Tests come in two tiers:

* **core** (:func:`core`): every backend must pass them. A subclass may not
  override, delete or skip them; the only accepted override is one wrapped in
  :func:`expected_failure` with a reason, which turns it into a strict xfail
  (so it is reported, and fails again once the backend is fixed).
* **optional** (:func:`requires`): run only when the backend declares the
  named capabilities, otherwise skipped with a reason naming what is missing.

The guard (:meth:`ConformanceSuite.test_core_tier_intact`) fails and lists
every core test a subclass broke, and the ``loom`` pytest plugin turns any
skip of a core test into a failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

CORE_ATTR = "__loom_core__"
REQUIRES_ATTR = "__loom_requires__"
EXPECTED_FAILURE_ATTR = "__loom_expected_failure__"
GUARD_NAME = "test_core_tier_intact"
#: Fixtures of the kit that core tests rely on; a suite subclass may not redefine them.
KIT_FIXTURES = frozenset({"secret_leak_check", "leak_scanner", "_loom_capability_gate"})
_KIT_MODULE = "loom_core.testing"


def core(fn: F) -> F:
    """Mark ``fn`` as a core-tier test: it cannot be skipped or overridden."""
    setattr(fn, CORE_ATTR, True)
    return fn


def requires(*capabilities: str) -> Callable[[F], F]:
    """Run the test only when the suite's ``capabilities`` include all of ``capabilities``.

    Combined with :func:`core`, the test is mandatory for every backend that
    declares the capabilities.
    """
    if not capabilities or not all(isinstance(c, str) and c for c in capabilities):
        raise ValueError("requires() needs at least one non-empty capability name")

    def mark(fn: F) -> F:
        setattr(fn, REQUIRES_ATTR, frozenset(capabilities) | getattr(fn, REQUIRES_ATTR, frozenset()))
        return fn

    return mark


def expected_failure(reason: str) -> Callable[[F], F]:
    """The only accepted way to override a core test: a strict xfail with ``reason``.

    The reason is shown in every run; once the backend passes the test, the
    strict xfail fails, reminding the author to remove the override.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("expected_failure() needs a non-empty reason saying why the backend fails")

    def mark(fn: F) -> F:
        setattr(fn, EXPECTED_FAILURE_ATTR, reason)
        marked: F = pytest.mark.xfail(strict=True, reason=reason)(fn)
        return marked

    return mark


def _is_fixture(value: object) -> bool:
    """Whether ``value`` is what ``@pytest.fixture`` made (pytest 8.4+ and earlier)."""
    return hasattr(value, "_fixture_function_marker") or hasattr(value, "_pytestfixturefunction")


def _kit_value(cls: type, name: str) -> object:
    """The kit's own definition of ``name`` (the first suite class in the MRO defining it)."""
    for klass in cls.__mro__:
        if klass.__module__.startswith(_KIT_MODULE) and name in vars(klass):
            return vars(klass)[name]
    return None


def missing_capabilities(cls: type, fn: object) -> frozenset[str]:
    """Capabilities ``fn`` requires that ``cls.capabilities`` lacks."""
    needed: frozenset[str] = getattr(fn, REQUIRES_ATTR, frozenset())
    declared = frozenset(getattr(cls, "capabilities", frozenset()))
    return needed - declared


def skip_reason(missing: frozenset[str]) -> str:
    """The skip message for a capability-gated test (names every missing capability)."""
    names = ", ".join(repr(c) for c in sorted(missing))
    return f"backend does not declare capability {names}"


class ConformanceSuite:
    """Base of every per-kind suite. Subclasses set :attr:`capabilities`.

    Set ``capabilities`` to exactly what the backend under test declares;
    each kind's suite checks that it matches the backend.
    """

    capabilities: ClassVar[frozenset[str]] = frozenset()

    #: Core test names each class declared itself (kept even if later deleted).
    __loom_declared_core__: ClassVar[frozenset[str]] = frozenset()
    #: Violations found when each subclass was created.
    __loom_violations__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inherited = cls.core_test_names()
        own = {
            name
            for name, value in vars(cls).items()
            if callable(value) and getattr(value, CORE_ATTR, False) and name not in inherited
        }
        cls.__loom_declared_core__ = frozenset(own)
        violations: list[str] = []
        for name in sorted(inherited & set(vars(cls))):
            value = vars(cls)[name]
            if name == GUARD_NAME:
                violations.append(f"{cls.__qualname__}.{name}: the guard itself may not be overridden")
                setattr(cls, name, ConformanceSuite.__dict__[GUARD_NAME])  # keep it running
            elif value is None or not callable(value):
                violations.append(f"{cls.__qualname__}.{name}: core test deleted (set to {value!r})")
            elif not getattr(value, EXPECTED_FAILURE_ATTR, None):
                violations.append(
                    f"{cls.__qualname__}.{name}: core test overridden without @expected_failure(reason)"
                )
        violations.extend(cls._foreign_replacements(inherited))
        cls.__loom_violations__ = tuple(violations)

    @classmethod
    def _foreign_replacements(cls, inherited: frozenset[str]) -> list[str]:
        """Core tests and kit fixtures replaced from outside the suite hierarchy.

        ``vars(cls)`` does not show a mixin listed before the suite
        (``class TestX(Mixin, Suite)``): its methods and fixtures win by method
        resolution order all the same. A replaced guard is put back so it runs.
        """
        found: list[str] = []
        for name in sorted(inherited):
            owner = next(k for k in cls.__mro__ if name in vars(k))
            if issubclass(owner, ConformanceSuite):
                continue  # the kit's own, or checked when that class was created
            if name == GUARD_NAME:
                found.append(f"{cls.__qualname__}.{name}: the guard is replaced by {owner.__qualname__}")
                setattr(cls, name, ConformanceSuite.__dict__[GUARD_NAME])
            elif not getattr(vars(owner)[name], EXPECTED_FAILURE_ATTR, None):
                found.append(
                    f"{cls.__qualname__}.{name}: core test replaced by {owner.__qualname__}.{name} "
                    "without @expected_failure(reason)"
                )
        for name in sorted(KIT_FIXTURES | cls._kit_internals()):
            for klass in cls.__mro__:
                if name in vars(klass) and not klass.__module__.startswith(_KIT_MODULE):
                    what = "fixture" if name in KIT_FIXTURES or _is_fixture(_kit_value(cls, name)) else "helper"
                    found.append(
                        f"{cls.__qualname__}: {what} {name!r} is redefined by {klass.__qualname__}; "
                        "the core tests depend on the kit's own"
                    )
        return found

    @classmethod
    def _kit_internals(cls) -> frozenset[str]:
        """Fixtures and private helpers the kit's suite classes define (``provider``, ``store``,
        ``_expect_secrets_error``...): core tests call them, so a subclass replacing one could
        make a core test check something else than the backend."""
        names: set[str] = set()
        for klass in cls.__mro__:
            if not (isinstance(klass, type) and issubclass(klass, ConformanceSuite)):
                continue
            if not klass.__module__.startswith(_KIT_MODULE):
                continue
            for name, value in vars(klass).items():
                private = name.startswith("_") and not name.startswith("__")
                if private or _is_fixture(value):
                    names.add(name)
        return frozenset(names)

    @classmethod
    def core_test_names(cls) -> frozenset[str]:
        """Every core test declared by ``cls``'s ancestors (not by ``cls`` itself)."""
        names: set[str] = set()
        for klass in cls.__mro__[1:]:
            names |= vars(klass).get("__loom_declared_core__", frozenset())
        return frozenset(names)

    @classmethod
    def all_core_test_names(cls) -> frozenset[str]:
        """Every core test of ``cls``, including those it declares."""
        names: set[str] = set()
        for klass in cls.__mro__:
            names |= vars(klass).get("__loom_declared_core__", frozenset())
        return frozenset(names)

    @classmethod
    def core_tier_violations(cls) -> list[str]:
        """Violations recorded at class creation plus core tests removed since."""
        found: list[str] = []
        for klass in reversed(cls.__mro__):
            found.extend(vars(klass).get("__loom_violations__", ()))
        for name in sorted(cls.all_core_test_names()):
            value = getattr(cls, name, None)
            if value is None or not callable(value):
                message = f"{cls.__qualname__}.{name}: core test missing (deleted after class creation)"
                if not any(v.endswith(f".{name}: core test deleted (set to {value!r})") for v in found):
                    found.append(message)
        return list(dict.fromkeys(found))

    @pytest.fixture(autouse=True)
    def _loom_environ_restored(self) -> Iterator[None]:
        """Put ``os.environ`` back as it was after every test.

        A backend that sets a variable on every call (a debug flag, say) would
        otherwise have set it in an earlier test, and the test that checks
        ``os.environ`` is left alone would see no change.
        """
        saved = dict(os.environ)
        yield
        if dict(os.environ) != saved:
            os.environ.clear()
            os.environ.update(saved)

    @pytest.fixture(autouse=True)
    def _loom_capability_gate(self, request: pytest.FixtureRequest) -> None:
        """Refuse to run without the ``loom`` plugin; skip tests needing missing capabilities."""
        plugins = request.config.pluginmanager
        if not (plugins.hasplugin("loom") or plugins.hasplugin("loom_core.testing.pytest_plugin")):
            pytest.fail(
                "the 'loom' pytest plugin is not active, so core tiers are not enforced; "
                "install loom-framework (pytest11 entry point) or run pytest with -p loom_core.testing.pytest_plugin"
            )
        missing = missing_capabilities(type(self), getattr(request, "function", None))
        if missing:
            pytest.skip(skip_reason(missing))

    @core
    def test_core_tier_intact(self) -> None:
        """Proves the subclass kept every core-tier test.

        Fix: remove the override / ``= None`` of the listed core tests, or wrap
        an override in ``@expected_failure("why this backend fails it")``.
        """
        violations = type(self).core_tier_violations()
        assert not violations, "core-tier tests were overridden or deleted:\n  " + "\n  ".join(violations)


ConformanceSuite.__loom_declared_core__ = frozenset({GUARD_NAME})
