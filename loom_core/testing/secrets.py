"""Conformance suite for secrets providers.

Fixture contract
----------------
A plugin's test class subclasses :class:`SecretsProviderSuite`, sets
``capabilities`` to what its provider declares, and provides one fixture,
``secret_store`` (function scope is safest), returning an object with:

``put(name: str, value: bytes) -> str``
    Store ``value`` under a fresh entry called ``name`` in a vault the
    provider will read (create files only under the test's ``tmp_path``), and
    return the reference string that resolves to it (``scheme://...``).
    Values are valid UTF-8 and non-empty; ``name`` is ASCII letters, digits
    and ``_``.
``provider() -> SecretsProvider``
    A provider, configured as in production, that sees every entry ``put``
    so far, built through ``PluginHost(...).create("secrets", NAME, ctx)``
    (the installed entry point, or a host the plugin object is registered
    with), so the registration is exercised too: the suite reads the
    backend's :class:`~loom_core.contracts.secrets.AuthPolicy` from it and
    builds the provider with only the environment that policy allows, as
    runs do. Each call may return a new provider; the suite closes what it gets.
``missing_ref() -> str``
    A well-formed reference of the provider's scheme naming an entry that
    does not exist.
``invalid_refs() -> list[str]``
    Malformed references of the provider's scheme (at least one), which
    ``SecretRef.parse`` or ``provider.validate`` must refuse with
    ``SECRETS_REF_INVALID``.
``break_vault() -> None`` (optional)
    Make the vault unreachable (delete its file or directory, empty the
    environment, stop the stand-in server). When present, the suite proves
    ``validate`` still works and a fresh provider's ``resolve`` fails closed.
``allowed_dirs: list[Path]`` (optional attribute)
    Directories the provider may write to; anything written elsewhere under
    the test's temporary root or working directory fails the suite.

With capability ``auth`` (the provider needs credentials), also:

``provider_without_auth() -> SecretsProvider``
    Build the provider with its credentials absent. Either this call raises
    a ``SECRETS_*`` :class:`LoomError`, or the returned provider's
    ``resolve`` does.
``provider_with_bad_auth() -> SecretsProvider``
    Same with wrong credentials.
``auth_material: list[bytes]``
    The credential values (passwords, tokens) the store used; they must
    never appear in errors, reprs of providers, logs, output or a child
    process's argv.
``auth_environ: dict[str, str]``
    The environment variables that would unlock the vault in production
    (token, password and the variables naming them). The suite puts them in
    the *process* environment and proves ``provider_without_auth`` still
    fails: credentials come only from ``BackendContext.environ``.

Capability ``binary``: ``put`` also accepts bytes that are not UTF-8, and
they round-trip exactly.

Further optional members (files and scans)
------------------------------------------
``vault_paths: list[Path]``
    Files or directories that hold stored values in plaintext by design
    (a directory of secret files); the artifact scan skips them.
``artifact_dirs: list[Path]``
    More directories (a stand-in's state, a temporary directory the
    provider is pointed at) whose files must never hold a resolved value.
    Every file under ``allowed_dirs`` and ``artifact_dirs``, and every file
    created or changed under the pytest temporary root, is scanned.

Optional hooks (a test needing a missing hook is skipped, naming it)
--------------------------------------------------------------------
``put_duplicate(name: str, value: bytes) -> str``
    Store two entries that one reference matches equally (same title in
    the same group), both holding ``value``; return that reference.
    Resolving it must raise ``SECRETS_AMBIGUOUS``, never pick one.
``put_empty(name: str) -> str``
    Store an entry whose value is empty; resolving it must raise
    ``SECRETS_VALUE_UNSAFE`` or ``SECRETS_NOT_FOUND``, never return ``b""``.
``missing_field_ref(ref: str | None = None) -> str``
    A reference to an entry that exists, naming a field it does not have.
    Without ``ref`` the hook creates the entry; with ``ref`` (one ``put``
    returned) it names a missing field of that same entry, so the leak test
    can prove the entry's value stays out of the error. Must raise
    ``SECRETS_FIELD_NOT_FOUND``, and ``missing_ref()`` then must raise
    exactly ``SECRETS_NOT_FOUND``.
``process_log() -> list[tuple[list[str], dict[str, str]]]``
    ``(argv, environment)`` of every child process the provider started so
    far (a stand-in CLI records them). No resolved value may appear in any
    argv or environment, and no ``auth_material`` in any argv.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import pytest

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.secrets import AuthPolicy, SecretRef, SecretsProvider, SecretValue, is_scheme
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires
from loom_core.testing.leaks import (
    changed_paths,
    find_forms,
    redaction_variants,
    scan_paths,
    snapshot_tree,
    walk_files,
)

#: Values every provider must return byte for byte; the labels are printable.
ROUND_TRIP_VALUES: dict[str, bytes] = {
    "plain": b"plain-Secr3t-value-7f3a9c",
    "quotes": b"with \"double\" and 'single' quotes-91c2",
    "backslashes": b"back\\slash\\n-not-a-newline\\-55d0",
    "newlines": b"first-line-of-secret\nsecond-line-of-secret\nthird-a8e1",
    "crlf-and-tab": b"tab\there\r\ncrlf-line-e2d8",
    "spaces": b"  leading and trailing spaces-3b7e  ",
    "unicode": "unicod\u00e9-\u79d8\u5bc6-\U0001f511-c4f9".encode(),
    "shell-meta": b"$(dollar) `tick` ;semi|pipe&amp-07bb",
    "long": b"long-" + bytes(range(48, 58)) * 400 + b"-end",
    "trailing-newline": b"value-ending-in-a-newline-4c1d\n",
    "trailing-crlf": b"value-ending-in-crlf-9e27\r\n",
}

SECRETS_CODES = frozenset(code for code in ErrorCode if code.value.startswith("SECRETS_"))
MISSING_CODES = frozenset({ErrorCode.SECRETS_NOT_FOUND, ErrorCode.SECRETS_FIELD_NOT_FOUND})
NO_AUTH_CODES = frozenset({ErrorCode.SECRETS_AUTH_MISSING, ErrorCode.SECRETS_PROVIDER_UNAVAILABLE})
BAD_AUTH_CODES = frozenset({ErrorCode.SECRETS_AUTH_INVALID, ErrorCode.SECRETS_ACCESS_DENIED})

_ENTRY_NAMES = {label: "loom_kit_" + label.replace("-", "_") for label in ROUND_TRIP_VALUES}

#: The value of the kit's leak probe (quotes, a backslash, an inner newline, a trailing CRLF).
LEAK_PROBE_VALUE = b"leak \"probe\" 'quoted'\nsecond-line-\\-of-leak-probe-0d9e\r\n"
#: The value the kit round-trips for capability ``binary``.
BINARY_VALUE = bytes(range(256)) + b"\xff\xfe-binary-secret"
#: The forms of :func:`~loom_core.testing.leaks.redaction_variants` a job's output must never
#: show once redacted: the value quoted and escaped as scripts print it, and with its line
#: breaks rewritten. (``newline-escaped`` only for text: it is how text is printed.)
REDACTED_FORMS = (
    "raw",
    "double-quoted",
    "single-quoted",
    "shell-quoted",
    "repr-escaped",
    "json-escaped",
    "json-escaped-utf8",
    "crlf",
    "lf",
    "newline-escaped",
)


def _validated(provider: SecretsProvider, ref: SecretRef) -> bool:
    """Call ``validate``; True when it returned (so "no exception" is a visible result)."""
    provider.validate(ref)
    return True


def _close(provider: object) -> None:
    with suppress(Exception):
        provider.close()  # type: ignore[attr-defined]


def _life_cycle(secret_store: Any, refs: Sequence[SecretRef], *, validate: bool = False, repeat: int = 1) -> None:
    """One provider's whole life: resolve ``refs`` (validating first if asked),
    a missing reference, then close; the tests inspect what it left behind."""
    provider = secret_store.provider()
    try:
        for ref in refs:
            if validate:
                provider.validate(ref)
            for _ in range(repeat):
                provider.resolve(ref)
        with suppress(LoomError):
            provider.resolve(SecretRef.parse(secret_store.missing_ref()))
    finally:
        _close(provider)


def _hook(secret_store: Any, name: str) -> Callable[..., Any]:
    """The fixture's optional hook ``name``; skips the test, naming the hook, when absent."""
    hook = getattr(secret_store, name, None)
    if not callable(hook):
        pytest.skip(f"secret_store has no optional hook {name}() (see the SecretsProviderSuite fixture contract)")
    return cast(Callable[..., Any], hook)


def _probe_tag() -> str:
    """A random tag, so a value found on disk can only come from this test."""
    return os.urandom(6).hex()


def _forms(values: Iterable[bytes], prefix: str) -> dict[str, bytes]:
    """Every leak form of every value, labelled ``<prefix>[n] <form>`` (never the bytes)."""
    return {
        f"{prefix}[{n}] {label}": form
        for n, value in enumerate(values)
        for label, form in redaction_variants(value).items()
    }


def _redacted_forms(value: bytes) -> dict[str, bytes]:
    """The :data:`REDACTED_FORMS` of ``value`` (labels safe to print)."""
    variants = redaction_variants(value)
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        variants.pop("newline-escaped", None)
    return {label: variants[label] for label in REDACTED_FORMS if label in variants}


class _Builds:
    """Records the secrets backends ``PluginHost.create`` builds and builds each one with only
    what its registered :class:`AuthPolicy` allows of the context's environment, as runs do."""

    def __init__(self) -> None:
        self.policies: list[tuple[str, object]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from loom_core.plugins.host import PluginHost
        from loom_core.secrets.credentials import allowed_environ

        original = PluginHost.create
        builds = self

        def create(host: PluginHost, kind: Kind | str, name: str, context: BackendContext | None = None) -> Any:
            if Kind(kind) is not Kind.SECRETS:
                return original(host, kind, name, context)
            spec = host.backend(kind, name)
            policy = getattr(spec, "auth_policy", None)
            builds.policies.append((name, policy if getattr(spec, "auth_policy_declared", False) else None))
            ctx = context if context is not None else BackendContext(environ=host.environ)
            allowed = allowed_environ(policy if isinstance(policy, AuthPolicy) else AuthPolicy(), ctx.environ)
            return spec.factory(replace(ctx, environ=allowed))

        monkeypatch.setattr(PluginHost, "create", create)


def _is_under(path: Path, roots: Iterable[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == r or r in resolved.parents for r in (Path(p).resolve() for p in roots))


class SecretsProviderSuite(ConformanceSuite):
    """Guarantees of :class:`loom_core.contracts.secrets.SecretsProvider`.

    See the module docstring for the ``secret_store`` fixture contract.
    """

    @pytest.fixture
    def provider(self, secret_store: Any) -> Iterator[SecretsProvider]:
        """The provider under test, closed afterwards."""
        built = secret_store.provider()
        yield built
        _close(built)

    def _expect_secrets_error(self, call: Any, *codes: ErrorCode, what: str) -> LoomError:
        """Run ``call``; it must raise a coded ``SECRETS_*`` LoomError (never return)."""
        allowed = frozenset(codes) or SECRETS_CODES
        try:
            result = call()
        except LoomError as exc:
            assert exc.code in allowed, (
                f"{what}: raised {exc.code} but one of {sorted(c.value for c in allowed)} is required"
            )
            return exc
        except Exception as exc:
            pytest.fail(
                f"{what}: raised {type(exc).__name__} instead of a coded LoomError "
                f"({sorted(c.value for c in allowed)}); wrap provider failures in LoomError",
                pytrace=False,
            )
        kind = "None" if result is None else type(result).__name__
        pytest.fail(f"{what}: returned {kind} instead of raising (fail closed)", pytrace=False)

    # -- shape --------------------------------------------------------------

    @core
    def test_provider_satisfies_contract(self, provider: SecretsProvider) -> None:
        """Proves the object has the protocol's attributes and declares the suite's capabilities.

        Fix: give the provider ``scheme`` (lower-case), ``capabilities``
        (a frozenset equal to the test class's ``capabilities``),
        ``validate``, ``resolve`` and ``close``.
        """
        assert isinstance(provider, SecretsProvider), "provider lacks scheme/capabilities/validate/resolve/close"
        assert isinstance(provider.scheme, str) and provider.scheme, "scheme must be a non-empty string"
        assert provider.scheme == provider.scheme.lower(), "scheme must be lower-case (URIs compare it so)"
        assert is_scheme(provider.scheme), (
            f"scheme {provider.scheme!r} can never appear in a reference: use ASCII letters, digits and -"
        )
        assert frozenset(provider.capabilities) == type(self).capabilities, (
            f"provider declares {sorted(provider.capabilities)} but the test class says "
            f"{sorted(type(self).capabilities)}; make them equal"
        )

    @core
    def test_store_refs_use_provider_scheme(self, secret_store: Any, provider: SecretsProvider) -> None:
        """Proves references the fixture produces are of the provider's scheme and validate.

        Fix: make ``secret_store.put`` / ``missing_ref`` return ``<scheme>://...``
        references, and ``validate`` accept them.
        """
        ref = SecretRef.parse(secret_store.put("loom_kit_scheme", b"scheme-check-value-19ab"))
        missing = SecretRef.parse(secret_store.missing_ref())
        fresh = secret_store.provider()
        try:
            assert ref.scheme == fresh.scheme, f"put() returned a {ref.scheme}:// reference"
            assert missing.scheme == fresh.scheme, f"missing_ref() returned a {missing.scheme}:// reference"
            fresh.validate(ref)
        finally:
            _close(fresh)

    # -- round trip ---------------------------------------------------------

    @core
    @pytest.mark.parametrize("label", sorted(ROUND_TRIP_VALUES))
    def test_round_trip_exact_bytes(self, secret_store: Any, label: str) -> None:
        """Proves ``resolve`` returns exactly the stored bytes as a ``SecretValue``.

        Covers quotes, backslashes, newlines, CRLF, tabs, unicode, leading and
        trailing spaces, values ending in ``\\n`` and ``\\r\\n`` (what CLI
        providers that strip output lose) and a 4 KiB value. Fix: do not strip,
        decode, re-encode or unescape stored values (read CLI output without a
        trailing newline instead of stripping it); return ``SecretValue(raw_bytes)``.
        """
        value = ROUND_TRIP_VALUES[label]
        ref = SecretRef.parse(secret_store.put(_ENTRY_NAMES[label], value))
        provider = secret_store.provider()
        try:
            got = provider.resolve(ref)
        finally:
            _close(provider)
        assert isinstance(got, SecretValue), f"resolve returned {type(got).__name__}, not SecretValue"
        assert (got.reveal() == value) is True, f"{label!r} value did not round-trip byte for byte"

    @requires("binary")
    @core
    def test_round_trip_binary(self, secret_store: Any) -> None:
        """Proves non-UTF-8 bytes round-trip exactly (capability ``binary``).

        Fix: store the raw bytes and return ``SecretValue(raw_bytes)``; never decode them as text.
        """
        value = BINARY_VALUE
        ref = SecretRef.parse(secret_store.put("loom_kit_binary", value))
        provider = secret_store.provider()
        try:
            got = provider.resolve(ref)
            assert isinstance(got, SecretValue), f"resolve returned {type(got).__name__}, not SecretValue"
            assert (got.reveal() == value) is True, "binary value changed on the way"
        finally:
            _close(provider)

    # -- fail closed --------------------------------------------------------

    @core
    def test_missing_entry_fails_closed(self, secret_store: Any, provider: SecretsProvider) -> None:
        """Proves an unknown entry raises ``SECRETS_NOT_FOUND`` (or ``..._FIELD_NOT_FOUND``).

        Fix: when the vault has no such entry, raise
        ``LoomError(ErrorCode.SECRETS_NOT_FOUND, "<ref>: ...")``; never return
        ``None``, ``b""`` or a default.
        """
        ref = SecretRef.parse(secret_store.missing_ref())
        exc = self._expect_secrets_error(lambda: provider.resolve(ref), *MISSING_CODES, what="missing entry")
        assert ref.raw in str(exc), "the error message must name the reference so users can fix it"

    @core
    def test_wrong_scheme_refused(self, secret_store: Any, provider: SecretsProvider) -> None:
        """Proves the provider refuses references of another scheme (validate and resolve).

        Fix: check ``ref.scheme == self.scheme`` first and raise
        ``SECRETS_REF_INVALID``; never strip the scheme and look the rest up.
        """
        secret_store.put("loom_kit_other", b"other-scheme-value-5d21")
        other = "zz-other" if provider.scheme != "zz-other" else "zz-another"
        ref = SecretRef.parse(f"{other}://loom_kit_other")
        self._expect_secrets_error(
            lambda: _validated(provider, ref), ErrorCode.SECRETS_REF_INVALID, what="validate(other scheme)"
        )
        self._expect_secrets_error(
            lambda: provider.resolve(ref), ErrorCode.SECRETS_REF_INVALID, what="resolve(other scheme)"
        )

    @core
    def test_invalid_refs_refused(self, secret_store: Any, provider: SecretsProvider) -> None:
        """Proves malformed references are refused with ``SECRETS_REF_INVALID``.

        Fix: make ``validate`` check the reference syntax your scheme
        documents, and call it at the start of ``resolve``.
        """
        invalid = list(secret_store.invalid_refs())
        assert invalid, "secret_store.invalid_refs() must list at least one malformed reference"
        for raw in invalid:
            try:
                ref = SecretRef.parse(raw)
            except LoomError as exc:
                assert exc.code is ErrorCode.SECRETS_REF_INVALID, f"parse({raw!r}) raised {exc.code}"
                continue
            self._expect_secrets_error(
                lambda r=ref: _validated(provider, r),
                ErrorCode.SECRETS_REF_INVALID,
                what=f"validate({raw!r})",
            )
            self._expect_secrets_error(
                lambda r=ref: provider.resolve(r),
                ErrorCode.SECRETS_REF_INVALID,
                what=f"resolve({raw!r})",
            )

    @core
    def test_validate_does_not_touch_vault(self, secret_store: Any, provider: SecretsProvider) -> None:
        """Proves ``validate`` checks syntax only: a well-formed reference to a missing entry passes.

        Fix: ``validate`` must not open the vault or look the entry up; leave
        existence checks to ``resolve``.
        """
        ref = SecretRef.parse(secret_store.put("loom_kit_validate", b"validate-only-value-6e0c"))
        returned = cast(Any, provider).validate(ref)
        assert returned is None, "validate must return None, never the value"
        missing = SecretRef.parse(secret_store.missing_ref())
        try:
            provider.validate(missing)
        except LoomError as exc:
            pytest.fail(f"validate(missing ref) raised {exc.code}: it looked the entry up", pytrace=False)

    # not core: it needs the optional ``break_vault`` hook, and core tests cannot be skipped
    def test_unreachable_vault_fails_closed(self, secret_store: Any) -> None:
        """Proves that with the vault gone ``validate`` still passes and ``resolve`` raises ``SECRETS_*``.

        Skipped, saying so, when the fixture has no ``break_vault`` (it used to
        pass without checking anything). Fix: keep ``validate`` free of I/O,
        and map a missing/unreadable vault to a coded error (e.g.
        ``SECRETS_PROVIDER_UNAVAILABLE``) instead of returning a default.
        """
        breaker = getattr(secret_store, "break_vault", None)
        if breaker is None:
            pytest.skip(
                "secret_store has no break_vault(): add one (delete or corrupt the vault) so the kit can "
                "check that a provider whose vault is gone fails closed instead of returning a default"
            )
        ref = SecretRef.parse(secret_store.put("loom_kit_vault", b"vault-gone-value-3f81"))
        before = secret_store.provider()
        after: SecretsProvider | None = None
        try:
            breaker()
            before.validate(ref)
            try:
                after = secret_store.provider()
            except LoomError as exc:
                assert exc.code in SECRETS_CODES, f"building against a missing vault raised {exc.code}"
                return
            fresh = after
            self._expect_secrets_error(lambda: fresh.resolve(ref), what="resolve with the vault gone")
        finally:
            _close(before)
            if after is not None:
                _close(after)

    @core
    def test_close_is_idempotent_and_fails_closed_after(self, secret_store: Any) -> None:
        """Proves ``close`` can be called twice, and a closed provider never returns a wrong value.

        Fix: make ``close`` a no-op when already closed; after it, ``resolve``
        either still returns the exact value or raises a ``SECRETS_*`` error.
        """
        value = b"closed-provider-value-a4c0"
        ref = SecretRef.parse(secret_store.put("loom_kit_close", value))
        provider = secret_store.provider()
        provider.close()
        provider.close()
        try:
            got = provider.resolve(ref)
        except LoomError as exc:
            assert exc.code in SECRETS_CODES, f"closed provider raised {exc.code}, not a SECRETS_* code"
        else:
            assert isinstance(got, SecretValue), "closed provider returned something other than SecretValue"
            assert (got.reveal() == value) is True, "closed provider returned a different value"

    # -- redaction ----------------------------------------------------------

    @core
    def test_value_never_leaks(self, secret_store: Any, secret_leak_check: Any) -> None:
        """Proves a resolved value is absent from reprs, errors, logs and output, in every form.

        The value has quotes, a backslash, an inner ``\\n`` and a trailing
        ``\\r\\n``; its raw, quoted, shell-quoted, repr/JSON-escaped, stripped,
        LF/CRLF-converted and per-line forms are searched in ``repr``/``str``
        of the ``SecretValue`` and the provider, every error the provider
        raised in the same session (a missing entry, and with hook
        ``missing_field_ref`` a missing field of the very entry holding the
        value), all log records (DEBUG, root logger) and stdout/stderr; the
        ``auth_material`` is searched on the same surfaces. Fix: never log or
        format resolved values, entry contents or credentials; put references,
        names and reasons in errors.
        """
        value = b"leak \"probe\" 'quoted'\nsecond-line-\\-of-leak-probe-0d9e\r\n"
        ref = SecretRef.parse(secret_store.put("loom_kit_leak", value))
        provider = secret_store.provider()
        errors: list[BaseException] = []
        try:
            got = provider.resolve(ref)
            probes = [secret_store.missing_ref(), ref.raw + "_missing"]
            field_ref = getattr(secret_store, "missing_field_ref", None)
            if callable(field_ref):
                probes.append(field_ref(ref.raw))
            for raw in probes:
                try:
                    provider.resolve(SecretRef.parse(raw))
                except Exception as exc:
                    errors.append(exc)
            objects: list[object] = [got, provider]
        finally:
            _close(provider)
        secret_leak_check.assert_absent(value, what="resolved secret", exceptions=errors, objects=objects)
        for n, material in enumerate(getattr(secret_store, "auth_material", [])):
            secret_leak_check.assert_absent(material, what=f"auth_material[{n}]", exceptions=errors, objects=objects)

    @core
    def test_errors_name_reference_not_value(self, secret_store: Any, secret_leak_check: Any) -> None:
        """Proves a failure about an entry names the reference but not the entry's value.

        Resolves a missing sibling of a stored entry. Fix: build messages from
        ``ref.raw`` and a reason; never include entry contents.
        """
        value = b"neighbour-secret-value-9b3f"
        secret_store.put("loom_kit_neighbour", value)
        missing = SecretRef.parse(secret_store.missing_ref())
        provider = secret_store.provider()
        try:
            exc = self._expect_secrets_error(lambda: provider.resolve(missing), what="missing entry")
        finally:
            _close(provider)
        assert missing.raw in str(exc), "error message must contain the reference"
        secret_leak_check.assert_absent(value, what="stored value", exceptions=[exc])

    @core
    def test_redactor_masks_every_resolved_value(self, secret_store: Any) -> None:
        """Proves the kernel's ``Redactor`` built from what the provider resolves masks every value.

        Resolves the kit's values (every round-trip value, the leak probe's, and with
        capability ``binary`` the binary one), builds :class:`loom_core.secrets.Redactor`
        from the returned bytes as a run does, and redacts output holding each value raw,
        double-, single- and shell-quoted, repr- and JSON-escaped, and with its line breaks
        as CRLF, LF and ``\\n`` (whole, and streamed in 7-byte chunks). No form may
        survive. Fix: return exactly the stored bytes (a value the provider pads, decodes or
        re-encodes is not what jobs print); a value the redactor refuses is one a run
        would refuse too.
        """
        from loom_core.secrets import Redactor

        stored = {label: ROUND_TRIP_VALUES[label] for label in sorted(ROUND_TRIP_VALUES)}
        stored["leak-probe"] = LEAK_PROBE_VALUE
        if "binary" in type(self).capabilities:
            stored["binary"] = BINARY_VALUE
        refs = {
            label: SecretRef.parse(secret_store.put("loom_kit_redact_" + label.replace("-", "_"), value))
            for label, value in stored.items()
        }
        provider = secret_store.provider()
        try:
            resolved = {label: provider.resolve(ref) for label, ref in refs.items()}
        finally:
            _close(provider)
        names = {label: "KIT_" + label.upper().replace("-", "_") for label in resolved}
        redactor = Redactor({names[label]: value for label, value in resolved.items()})
        forms = {
            f"{label} {form}": pattern
            for label, value in resolved.items()
            for form, pattern in _redacted_forms(value.reveal()).items()
        }
        output = b"".join(b"job output: " + pattern + b" :end\n" for pattern in forms.values())
        stream = redactor.stream()
        streamed = b"".join(stream.feed(output[i : i + 7]) for i in range(0, len(output), 7)) + stream.finish()
        for how, redacted in (("redact()", redactor.redact(output)), ("stream()", streamed)):
            survived = find_forms(redacted, forms)
            assert not survived, f"{how} left these forms of resolved values in the output: {survived}"
            for label in resolved:
                assert redactor.token_for(names[label]).encode() in redacted, f"{how}: no token for {label!r}"

    # -- auth-source policy ---------------------------------------------------

    @core
    def test_registered_with_auth_policy_and_works_within_it(
        self, secret_store: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proves the backend is registered with an :class:`AuthPolicy` and its provider resolves a
        known-good reference when built with only the environment that policy allows.

        Runs build every secrets provider so: a variable the policy does not name (its
        credentials, the settings under its prefixes, the variables its indirections name,
        what else it ``reads``) is not in ``ctx.environ``. Fix: register with
        ``registry.add_secrets(NAME, factory, auth_policy=AuthPolicy(credentials=...,
        reads=...))`` listing every variable the provider and its children read; build the
        fixture's provider through ``PluginHost(...).create("secrets", NAME, ctx)``.
        """
        value = f"policy-probe-value-{_probe_tag()}".encode()
        ref = SecretRef.parse(secret_store.put("loom_kit_policy", value))
        builds = _Builds()
        builds.install(monkeypatch)
        provider = secret_store.provider()
        try:
            assert builds.policies, (
                "secret_store.provider() did not build through PluginHost(...).create('secrets', NAME, ctx): "
                "the kit cannot see the backend's registration and its AuthPolicy"
            )
            for name, policy in builds.policies:
                assert isinstance(policy, AuthPolicy), (
                    f"secrets backend {name!r} is registered without an AuthPolicy; "
                    "pass auth_policy=AuthPolicy(...) to registry.add_secrets"
                )
            got = provider.resolve(ref)
        except LoomError as exc:
            pytest.fail(
                f"built with only what its AuthPolicy allows, the provider failed: {exc.code.value}: {exc.message} "
                "(declare every variable it reads in its AuthPolicy)",
                pytrace=False,
            )
        finally:
            _close(provider)
        assert isinstance(got, SecretValue), f"resolve returned {type(got).__name__}, not SecretValue"
        assert (got.reveal() == value) is True, "built within its AuthPolicy, the provider returned another value"

    @core
    def test_auth_capability_matches_policy(self, secret_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Proves a backend whose :class:`AuthPolicy` names credentials declares capability ``auth``.

        The auth tests (missing and wrong credentials, credentials only from the
        context, never in reprs) run only with that capability, so a provider that
        needs a token and leaves it out would skip them all. Fix: add ``"auth"`` to
        the provider's and the test class's ``capabilities`` and give the fixture
        the auth hooks; or, if the provider needs no credentials, drop them from the
        policy (a variable it only reads goes in ``reads``).
        """
        builds = _Builds()
        builds.install(monkeypatch)
        _close(secret_store.provider())
        for name, policy in builds.policies:
            if not isinstance(policy, AuthPolicy) or "auth" in type(self).capabilities:
                continue
            declared = sorted(policy.credentials) + [f"{p}*" for p in policy.setting_prefixes]
            assert not declared, (
                f"secrets backend {name!r} declares credentials {declared} in its AuthPolicy but not "
                "capability 'auth', so the kit's auth tests are skipped: add 'auth' to capabilities"
            )

    @requires("auth")
    @core
    def test_credentials_declared_as_credentials(self, secret_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Proves every variable of ``auth_environ`` that holds ``auth_material`` is a credential of the policy.

        A credential listed only in ``reads`` is visible to the provider but also to
        every job, and ``env://`` could hand it to any workflow. A variable counts as a
        credential when the policy names it in ``credentials``, it starts with one of
        ``setting_prefixes``, or an indirection setting names it. Fix: move it to
        ``credentials=`` (or under a settings prefix).
        """
        from loom_core.secrets.credentials import protected_names

        auth_environ = dict(getattr(secret_store, "auth_environ", None) or {})
        material = [bytes(m) for m in getattr(secret_store, "auth_material", [])]
        assert auth_environ and material, (
            "secret_store.auth_environ and secret_store.auth_material are required with capability 'auth'"
        )
        builds = _Builds()
        builds.install(monkeypatch)
        _close(secret_store.provider())
        for name, policy in builds.policies:
            if not isinstance(policy, AuthPolicy) or policy.reads_any:
                continue
            protected = protected_names((policy,), auth_environ)
            holding = sorted(
                key for key, text in auth_environ.items()
                if any(m and m in text.encode("utf-8", "surrogateescape") for m in material)
            )
            exposed = [key for key in holding if key not in protected]
            assert not exposed, (
                f"secrets backend {name!r}: {exposed} hold credentials (auth_material) but its AuthPolicy "
                "does not declare them as credentials, so jobs would inherit them: list them in "
                "AuthPolicy(credentials=...)"
            )

    # -- filesystem ---------------------------------------------------------

    @core
    def test_nothing_written_outside_given_dirs(
        self, secret_store: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proves resolve/validate/close write nothing outside ``secret_store.allowed_dirs``.

        Snapshots the pytest temporary root and an empty working directory
        around a full provider life cycle. Fix: write caches, locks and logs
        only under the directory the backend context gives you.
        """
        ref = SecretRef.parse(secret_store.put("loom_kit_files", b"files-check-value-2c7d"))
        workdir = tmp_path_factory.mktemp("loom-kit-cwd")
        monkeypatch.chdir(workdir)
        roots = [tmp_path_factory.getbasetemp()]
        home = os.environ.get("HOME")
        before = [snapshot_tree(r) for r in roots]
        provider = secret_store.provider()
        provider.validate(ref)
        provider.resolve(ref)
        with suppress(LoomError):
            provider.resolve(SecretRef.parse(secret_store.missing_ref()))
        provider.close()
        allowed = [Path(p) for p in getattr(secret_store, "allowed_dirs", [])]
        written = [
            str(p)
            for root, snap in zip(roots, before, strict=True)
            for p in changed_paths(snap, snapshot_tree(root), allowed=allowed)
        ]
        assert not written, f"files written outside allowed_dirs (HOME={home}): {written}"

    # -- authentication -----------------------------------------------------

    def _auth_failure(self, secret_store: Any, build: str, codes: frozenset[ErrorCode]) -> LoomError:
        ref = SecretRef.parse(secret_store.put("loom_kit_auth", b"auth-protected-value-71e5"))
        try:
            provider = getattr(secret_store, build)()
        except LoomError as exc:
            assert exc.code in codes, f"{build}() raised {exc.code}; expected one of {sorted(codes)}"
            return exc
        try:
            return self._expect_secrets_error(lambda: provider.resolve(ref), *codes, what=f"{build}().resolve")
        finally:
            _close(provider)

    @requires("auth")
    @core
    def test_missing_auth_fails_closed(self, secret_store: Any, secret_leak_check: Any) -> None:
        """Proves a provider without credentials raises ``SECRETS_AUTH_MISSING`` (or ``..._UNAVAILABLE``).

        Neither the entry value nor any ``auth_material`` may appear in the
        error, logs or output. Fix: check credentials before any lookup and
        raise the coded error naming the variable or file the user must set
        (its name, never a value found elsewhere in the environment).
        """
        exc = self._auth_failure(secret_store, "provider_without_auth", NO_AUTH_CODES)
        secret_leak_check.assert_absent(b"auth-protected-value-71e5", what="entry value", exceptions=[exc])
        for n, material in enumerate(getattr(secret_store, "auth_material", [])):
            secret_leak_check.assert_absent(material, what=f"auth_material[{n}]", exceptions=[exc])

    @requires("auth")
    @core
    def test_bad_auth_fails_closed_without_leaking(self, secret_store: Any, secret_leak_check: Any) -> None:
        """Proves wrong credentials raise ``SECRETS_AUTH_INVALID`` / ``..._ACCESS_DENIED`` and leak nothing.

        Neither the entry value nor the credential material may appear in
        the error, logs or output. Fix: map the vault's auth failure to the
        coded error and never echo the credential.
        """
        exc = self._auth_failure(secret_store, "provider_with_bad_auth", BAD_AUTH_CODES)
        secret_leak_check.assert_absent(b"auth-protected-value-71e5", what="entry value", exceptions=[exc])
        for n, material in enumerate(getattr(secret_store, "auth_material", [])):
            secret_leak_check.assert_absent(material, what=f"auth_material[{n}]", exceptions=[exc])


    # -- fail closed: cases only some vaults can express (optional hooks) ---

    def test_ambiguous_reference_refused(self, secret_store: Any, secret_leak_check: Any) -> None:
        """Proves a reference matching two entries raises ``SECRETS_AMBIGUOUS`` (hook ``put_duplicate``).

        Fix: count the matches; with more than one raise
        ``LoomError(ErrorCode.SECRETS_AMBIGUOUS, "<ref>: ...")`` instead of
        returning the first (which one is "first" changes when the vault is
        edited).
        """
        put_duplicate = _hook(secret_store, "put_duplicate")
        value = b"twin-entry-value-" + _probe_tag().encode()
        ref = SecretRef.parse(put_duplicate("loom_kit_twin", value))
        provider = secret_store.provider()
        try:
            exc = self._expect_secrets_error(
                lambda: provider.resolve(ref), ErrorCode.SECRETS_AMBIGUOUS, what="two entries, one reference"
            )
        finally:
            _close(provider)
        assert ref.raw in str(exc), "the error message must name the reference so users can fix it"
        secret_leak_check.assert_absent(value, what="twin entry value", exceptions=[exc])

    def test_empty_value_refused(self, secret_store: Any) -> None:
        """Proves an empty entry fails closed, never resolving to ``b""`` (hook ``put_empty``).

        Expects ``SECRETS_VALUE_UNSAFE`` or ``SECRETS_NOT_FOUND``: an empty
        secret injected into a run is a silent misconfiguration. Fix: check
        the value's length before wrapping it and raise
        ``SECRETS_VALUE_UNSAFE`` naming the reference.
        """
        put_empty = _hook(secret_store, "put_empty")
        ref = SecretRef.parse(put_empty("loom_kit_empty"))
        provider = secret_store.provider()
        try:
            self._expect_secrets_error(
                lambda: provider.resolve(ref),
                ErrorCode.SECRETS_VALUE_UNSAFE,
                ErrorCode.SECRETS_NOT_FOUND,
                what="empty entry",
            )
        finally:
            _close(provider)

    def test_missing_field_distinct_from_missing_entry(self, secret_store: Any) -> None:
        """Proves a missing field and a missing entry get distinct codes (hook ``missing_field_ref``).

        A missing field is ``SECRETS_FIELD_NOT_FOUND``, a missing entry
        ``SECRETS_NOT_FOUND``; users fix them differently (add a field vs
        fix the entry path). Fix: look the entry up first (``SECRETS_NOT_FOUND``), then the field
        (``SECRETS_FIELD_NOT_FOUND``); never report one as the other.
        """
        missing_field_ref = _hook(secret_store, "missing_field_ref")
        field_ref = SecretRef.parse(missing_field_ref())
        entry_ref = SecretRef.parse(secret_store.missing_ref())
        provider = secret_store.provider()
        try:
            provider.validate(field_ref)
            exc = self._expect_secrets_error(
                lambda: provider.resolve(field_ref), ErrorCode.SECRETS_FIELD_NOT_FOUND, what="missing field"
            )
            self._expect_secrets_error(
                lambda: provider.resolve(entry_ref), ErrorCode.SECRETS_NOT_FOUND, what="missing entry"
            )
        finally:
            _close(provider)
        assert field_ref.raw in str(exc), "the error message must name the reference so users can fix it"

    # -- deterministic and thread-safe ---------------------------------------

    def _failure_code(self, provider: SecretsProvider, raw: str) -> ErrorCode:
        try:
            ref = SecretRef.parse(raw)
        except LoomError as exc:
            return exc.code
        return self._expect_secrets_error(lambda: provider.resolve(ref), what=f"resolve({raw!r})").code

    @core
    def test_failures_are_deterministic(self, secret_store: Any) -> None:
        """Proves resolving a failing reference again, or with a fresh provider, gives the same code.

        Covers the missing entry, every invalid reference and (with hook
        ``missing_field_ref``) a missing field. Fix: derive the code from the
        failure's cause only; never from call counts, caches warmed by an
        earlier failure, or timing.
        """
        probes = [secret_store.missing_ref(), *secret_store.invalid_refs()]
        field_ref = getattr(secret_store, "missing_field_ref", None)
        if callable(field_ref):
            probes.append(field_ref())
        first, second = secret_store.provider(), secret_store.provider()
        try:
            differing = []
            for raw in probes:
                codes = [self._failure_code(p, raw) for p in (first, first, second)]
                if len(set(codes)) != 1:
                    differing.append(f"{raw!r}: {[c.value for c in codes]}")
        finally:
            _close(first)
            _close(second)
        assert not differing, "the same failure gave different codes:\n  " + "\n  ".join(differing)

    @core
    def test_concurrent_resolves_return_exact_values(self, secret_store: Any) -> None:
        """Proves one provider resolving several references from several threads returns each its own value.

        Runs 12 resolves of 6 references on 6 threads at once. Fix: keep
        per-call state in locals, not on the provider; guard shared caches
        and lazily opened handles with a lock.
        """
        tag = _probe_tag()
        expected: dict[str, bytes] = {}
        for n in range(6):
            value = f"thread-{n}-value-{tag}".encode() + (b"\nsecond-line" if n % 2 else b"")
            expected[secret_store.put(f"loom_kit_thread_{n}", value)] = value
        jobs = [SecretRef.parse(raw) for raw in expected] * 2
        random.Random(7).shuffle(jobs)  # noqa: S311 - a fixed, interleaved order, not a secret
        provider = secret_store.provider()
        try:
            with ThreadPoolExecutor(max_workers=6) as pool:
                results = list(pool.map(lambda ref: provider.resolve(ref).reveal(), jobs))
        finally:
            _close(provider)
        wrong = sum(1 for ref, got in zip(jobs, results, strict=True) if got != expected[ref.raw])
        assert wrong == 0, f"{wrong} of {len(jobs)} concurrent resolves returned a value that is not their reference's"

    # -- artifacts and processes ----------------------------------------------

    @core
    def test_values_absent_from_artifacts(
        self, secret_store: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proves no resolved value (in any quoted, escaped or per-line form) lands in a file.

        After validating and resolving fresh values twice each (one quoted,
        multi-line, ending in ``\\r\\n``), scans every file under
        ``allowed_dirs`` and ``artifact_dirs`` and every file created or
        changed under the pytest temporary root (working directory and
        ``TMPDIR`` point there), skipping ``vault_paths``. Fix: never cache,
        spool or log values to disk; keep them in memory only.
        """
        tag = _probe_tag()
        values = [
            f"artifact-plain-value-{tag}".encode(),
            f"artifact \"quoted\" 'value' {tag}\nsecond-line-{tag}\r\n".encode(),
        ]
        refs = [SecretRef.parse(secret_store.put(f"loom_kit_artifact_{n}", v)) for n, v in enumerate(values)]
        scratch = tmp_path_factory.mktemp("loom-kit-artifacts")
        (scratch / "cwd").mkdir()
        (scratch / "tmp").mkdir()
        monkeypatch.chdir(scratch / "cwd")
        monkeypatch.setenv("TMPDIR", str(scratch / "tmp"))
        monkeypatch.setattr(tempfile, "tempdir", str(scratch / "tmp"))
        root = tmp_path_factory.getbasetemp()
        before = snapshot_tree(root)
        _life_cycle(secret_store, refs, validate=True, repeat=2)
        declared = [
            Path(d) for d in [*getattr(secret_store, "allowed_dirs", []), *getattr(secret_store, "artifact_dirs", [])]
        ]
        candidates = set(changed_paths(before, snapshot_tree(root)))
        for directory in declared:
            candidates.update(walk_files(directory))
        vault = [Path(v) for v in getattr(secret_store, "vault_paths", [])]
        scanned = sorted(p for p in candidates if not _is_under(p, vault))
        found = [str(leak) for leak in scan_paths(scanned, _forms(values, "value"))]
        assert not found, "resolved values found in files (values not shown):\n  " + "\n  ".join(found)

    @core
    def test_process_environ_untouched(self, secret_store: Any) -> None:
        """Proves a provider's life cycle leaves ``os.environ`` as it was, with no value or credential in it.

        Anything put there reaches every process the runner starts later.
        Fix: hand credentials to a child through ``subprocess.run(env=...)``
        built from ``BackendContext.environ``; never assign ``os.environ``.
        """
        value = f"environ-probe-value-{_probe_tag()}".encode()
        ref = SecretRef.parse(secret_store.put("loom_kit_environ", value))
        before = dict(os.environ)
        _life_cycle(secret_store, [ref])
        after = dict(os.environ)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        for key in changed:  # leave the process as the test found it
            if key in before:
                os.environ[key] = before[key]
            else:
                os.environ.pop(key, None)
        assert not changed, f"the provider changed os.environ variables {changed}"
        text = "\n".join(after.values())
        forms = _forms([value, *getattr(secret_store, "auth_material", [])], "secret")
        found = find_forms(text, forms)
        assert not found, f"os.environ holds {found} (values not shown)"

    def test_child_processes_never_see_values_or_credentials_in_argv(self, secret_store: Any) -> None:
        """Proves child processes get no resolved value at all and no credential in argv (hook ``process_log``).

        Any local user can read another process's argv (``ps``), and a
        child's environment is inherited by everything it starts. Fix: pass
        the reference only in argv, the credential only in the child's
        environment (or stdin), and read the value from the child's stdout.
        """
        process_log = _hook(secret_store, "process_log")
        value = f"child-probe \"value\" {_probe_tag()}\nline-two-of-child-probe\n".encode()
        ref = SecretRef.parse(secret_store.put("loom_kit_child", value))
        _life_cycle(secret_store, [ref])
        calls = list(process_log())
        assert calls, "process_log() recorded no child process; return (argv, environ) of each one the provider ran"
        value_forms = _forms([value], "value")
        auth_forms = _forms(getattr(secret_store, "auth_material", []), "auth_material")
        found = []
        for n, (argv, environ) in enumerate(calls):
            args = "\x00".join(str(a) for a in argv)
            found += [f"child[{n}] argv: {label}" for label in find_forms(args, {**value_forms, **auth_forms})]
            env_text = "\x00".join(f"{k}={v}" for k, v in dict(environ).items())
            found += [f"child[{n}] environment: {label}" for label in find_forms(env_text, value_forms)]
        assert not found, "secret material given to child processes (values not shown):\n  " + "\n  ".join(found)

    # -- authentication, continued ------------------------------------------

    @requires("auth")
    @core
    def test_auth_never_taken_from_process_environ(self, secret_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        """Proves credentials in ``os.environ`` do not unlock a provider whose context lacks them.

        Puts ``secret_store.auth_environ`` in the process environment, then
        expects ``provider_without_auth()`` still to fail closed. Fix: read
        credentials only from ``BackendContext.environ`` (and give children
        an environment built from it, never the inherited one).
        """
        auth_environ = getattr(secret_store, "auth_environ", None)
        if not auth_environ:
            pytest.fail(
                "secret_store.auth_environ is required with capability 'auth': the variables "
                "(name -> value) that unlock the vault in production",
                pytrace=False,
            )
        for name, text in dict(auth_environ).items():
            monkeypatch.setenv(name, text)
        self._auth_failure(secret_store, "provider_without_auth", NO_AUTH_CODES)

    @requires("auth")
    @core
    def test_credentials_never_in_provider_repr(self, secret_store: Any, secret_leak_check: Any) -> None:
        """Proves ``repr``/``str`` of providers (working, without auth, with bad auth) never show credentials.

        Runners log the objects they hold. Fix: give the provider a
        ``__repr__`` listing only non-secret settings (paths, aliases,
        "token=set"); keep credentials out of dataclass fields that repr shows.
        """
        material = list(getattr(secret_store, "auth_material", []))
        assert material, "secret_store.auth_material is required with capability 'auth' (the credential values)"
        ref = SecretRef.parse(secret_store.put("loom_kit_repr", b"repr-check-value-8d42"))
        built: list[object] = []
        try:
            working = secret_store.provider()
            built.append(working)
            working.resolve(ref)  # credentials loaded lazily are in place now
            for name in ("provider_without_auth", "provider_with_bad_auth"):
                try:
                    other = getattr(secret_store, name)()
                except LoomError:
                    continue
                built.append(other)
                with suppress(LoomError):
                    other.resolve(ref)
            for n, secret in enumerate(material):
                secret_leak_check.assert_absent(secret, what=f"auth_material[{n}]", objects=built)
        finally:
            for provider in built:
                _close(provider)

__all__ = ["ROUND_TRIP_VALUES", "SecretsProviderSuite"]
