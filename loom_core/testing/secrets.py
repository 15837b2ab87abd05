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
    so far (built through ``PluginHost().create("secrets", NAME, ctx)`` when
    possible, so the entry point is exercised too). Each call may return a
    new provider; the suite closes what it gets.
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
``auth_material: list[bytes]`` (optional attribute)
    The credential values (passwords, tokens) the store used; they must
    never appear in errors, reprs, logs or output either.

Capability ``binary``: ``put`` also accepts bytes that are not UTF-8, and
they round-trip exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any, cast

import pytest

from loom_core.contracts.secrets import SecretRef, SecretsProvider, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires
from loom_core.testing.leaks import changed_paths, snapshot_tree

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
}

SECRETS_CODES = frozenset(code for code in ErrorCode if code.value.startswith("SECRETS_"))
MISSING_CODES = frozenset({ErrorCode.SECRETS_NOT_FOUND, ErrorCode.SECRETS_FIELD_NOT_FOUND})
NO_AUTH_CODES = frozenset({ErrorCode.SECRETS_AUTH_MISSING, ErrorCode.SECRETS_PROVIDER_UNAVAILABLE})
BAD_AUTH_CODES = frozenset({ErrorCode.SECRETS_AUTH_INVALID, ErrorCode.SECRETS_ACCESS_DENIED})

_ENTRY_NAMES = {label: "loom_kit_" + label.replace("-", "_") for label in ROUND_TRIP_VALUES}


def _validated(provider: SecretsProvider, ref: SecretRef) -> bool:
    """Call ``validate``; True when it returned (so "no exception" is a visible result)."""
    provider.validate(ref)
    return True


def _close(provider: object) -> None:
    with suppress(Exception):
        provider.close()  # type: ignore[attr-defined]


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
        trailing spaces and a 4 KiB value. Fix: do not strip, decode, re-encode
        or unescape stored values; return ``SecretValue(raw_bytes)``.
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

        Fix: store and return raw bytes; never decode them as text.
        """
        value = bytes(range(256)) + b"\xff\xfe-binary-secret"
        ref = SecretRef.parse(secret_store.put("loom_kit_binary", value))
        provider = secret_store.provider()
        try:
            assert (provider.resolve(ref).reveal() == value) is True, "binary value changed on the way"
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

    @core
    def test_unreachable_vault_fails_closed(self, secret_store: Any) -> None:
        """Proves that with the vault gone ``validate`` still passes and ``resolve`` raises ``SECRETS_*``.

        Runs only its first half (validate on a missing entry, above) when
        the fixture has no ``break_vault``. Fix: keep ``validate`` free of I/O,
        and map a missing/unreadable vault to a coded error (e.g.
        ``SECRETS_PROVIDER_UNAVAILABLE``) instead of returning a default.
        """
        ref = SecretRef.parse(secret_store.put("loom_kit_vault", b"vault-gone-value-3f81"))
        breaker = getattr(secret_store, "break_vault", None)
        if breaker is None:
            return
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

        Checks the raw value and its quoted, repr/JSON-escaped, CRLF and
        per-line forms against ``repr``/``str`` of the ``SecretValue`` and the
        provider, every error the provider raised in the same session, all
        log records (DEBUG, root logger) and stdout/stderr. Fix: never log or
        format resolved values; put references, names and reasons in errors.
        """
        value = b"leak \"probe\" 'quoted'\nsecond-line-\\-of-leak-probe-0d9e"
        ref = SecretRef.parse(secret_store.put("loom_kit_leak", value))
        provider = secret_store.provider()
        errors: list[BaseException] = []
        try:
            got = provider.resolve(ref)
            for raw in [secret_store.missing_ref(), f"{ref.raw}#no_such_field_x", ref.raw + "_missing"]:
                try:
                    provider.resolve(SecretRef.parse(raw))
                except Exception as exc:
                    errors.append(exc)
            objects: list[object] = [got, provider]
        finally:
            _close(provider)
        secret_leak_check.assert_absent(value, what="resolved secret", exceptions=errors, objects=objects)

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

        Fix: check credentials before any lookup and raise the coded error
        naming the variable or file the user must set.
        """
        exc = self._auth_failure(secret_store, "provider_without_auth", NO_AUTH_CODES)
        secret_leak_check.assert_absent(b"auth-protected-value-71e5", what="entry value", exceptions=[exc])

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


__all__ = ["ROUND_TRIP_VALUES", "SecretsProviderSuite"]
