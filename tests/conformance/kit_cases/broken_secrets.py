"""A sound secrets provider and one broken variant per kit check; run only in a subprocess.

``test_kit_catches_secrets.py`` runs this file with pytest and checks that
the sound provider passes every secrets-suite test (hooks included), that
each broken variant fails exactly the tests aimed at its bug, and that a
store without the optional hooks gets them skipped, each naming its hook.

The ``kit://NAME[#field]`` vault lives in memory; a resolve starts a real
child process (``true``) the way CLI-backed providers do, and the store's
``process_log`` returns what each child was given.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import AuthPolicy, SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.plugins.registry import BackendRegistry
from loom_core.testing.secrets import SecretsProviderSuite

TOKEN = "kit-token-3c9e-do-not-print"
TOKEN_VAR = "KIT_TOKEN"
TRUE = shutil.which("true") or "/bin/true"
_NAME = re.compile(r"[A-Za-z0-9_]+")
_FIELD = re.compile(r"[a-z_]+")


class Vault:
    """Entries (a name may hold several, each a dict of fields) and a log of started children."""

    def __init__(self) -> None:
        self.entries: dict[str, list[dict[str, bytes]]] = {}
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.lock = threading.Lock()
        self.reachable = True


class SoundProvider:
    """Follows the contract: exact bytes, coded refusals, token only from its context, child argv clean."""

    scheme = "kit"
    capabilities = frozenset({"auth"})

    def __init__(self, vault: Vault, environ: Mapping[str, str], cache_dir: Path) -> None:
        self._vault = vault
        self._environ = dict(environ)
        self._cache_dir = cache_dir

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token={'set' if self._token() else 'unset'})"

    def validate(self, ref: SecretRef) -> None:
        if ref.scheme != self.scheme or not _NAME.fullmatch(ref.path):
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{ref.raw!r}: expected kit://NAME[#field]")
        if ref.fragment is not None and not _FIELD.fullmatch(ref.fragment):
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{ref.raw!r}: fields are lower-case names")

    def _token(self) -> str:
        return self._environ.get(TOKEN_VAR, "")

    def _missing_token(self, ref: SecretRef) -> LoomError:
        return LoomError(ErrorCode.SECRETS_AUTH_MISSING, f"{ref.raw}: set {TOKEN_VAR}")

    def _spawn(self, ref: SecretRef, token: str) -> None:
        argv = [TRUE, "read", ref.raw]
        env = {TOKEN_VAR: token}
        subprocess.run(argv, env=env, check=True)
        with self._vault.lock:
            self._vault.calls.append((argv, env))

    def _entry(self, ref: SecretRef) -> dict[str, bytes]:
        entries = self._vault.entries.get(ref.path, [])
        if not entries:
            raise self._not_found(ref)
        if len(entries) > 1:
            raise LoomError(ErrorCode.SECRETS_AMBIGUOUS, f"{ref.raw}: {len(entries)} entries match")
        return entries[0]

    def _not_found(self, ref: SecretRef) -> LoomError:
        return LoomError(ErrorCode.SECRETS_NOT_FOUND, f"{ref.raw}: no such entry")

    def _field(self, ref: SecretRef, entry: dict[str, bytes]) -> bytes:
        field = ref.fragment or "value"
        if field not in entry:
            raise LoomError(ErrorCode.SECRETS_FIELD_NOT_FOUND, f"{ref.raw}: no field {field!r}")
        return entry[field]

    def _checked(self, ref: SecretRef, value: bytes) -> bytes:
        if not value:
            raise LoomError(ErrorCode.SECRETS_VALUE_UNSAFE, f"{ref.raw}: the value is empty")
        return value

    def resolve(self, ref: SecretRef) -> SecretValue:
        self.validate(ref)
        token = self._token()
        if not token:
            raise self._missing_token(ref)
        if token != TOKEN:
            raise LoomError(ErrorCode.SECRETS_AUTH_INVALID, f"{ref.raw}: the token was refused")
        if not self._vault.reachable:
            raise LoomError(ErrorCode.SECRETS_PROVIDER_UNAVAILABLE, f"{ref.raw}: the vault cannot be reached")
        self._spawn(ref, token)
        return SecretValue(self._checked(ref, self._field(ref, self._entry(ref))))

    def close(self) -> None:
        return None


class KitStore:
    """``secret_store`` with every optional hook."""

    provider_class: type[SoundProvider] = SoundProvider

    def __init__(self, tmp_path: Path) -> None:
        self.vault = Vault()
        self.cache_dir = tmp_path / "cache"
        self.cache_dir.mkdir()
        self.allowed_dirs = [self.cache_dir]
        self.auth_material = [TOKEN.encode()]
        self.auth_environ = {TOKEN_VAR: TOKEN}

    #: what the ``kit`` backend registers: its token is its credential, and it reads nothing else
    auth_policy: AuthPolicy | None = AuthPolicy(credentials=frozenset({TOKEN_VAR}))

    def _build(self, environ: Mapping[str, str]) -> SoundProvider:
        """Through a plugin host, as a plugin's own tests build through its entry point."""
        store = self

        class Plugin:
            @staticmethod
            def loom_register_backends(registry: BackendRegistry) -> None:
                registry.add_secrets(
                    "kit",
                    lambda ctx: store.provider_class(store.vault, ctx.environ, store.cache_dir),
                    capabilities=store.provider_class.capabilities,
                    auth_policy=store.auth_policy,
                )

        host = PluginHost(environ={})
        host.register_plugin(Plugin(), "kit-cases")
        provider: SoundProvider = host.create("secrets", "kit", BackendContext(environ=dict(environ)))
        return provider

    def put(self, name: str, value: bytes) -> str:
        self.vault.entries[name] = [{"value": value}]
        return f"kit://{name}"

    def provider(self) -> SoundProvider:
        return self._build({TOKEN_VAR: TOKEN})

    def missing_ref(self) -> str:
        return "kit://loom_kit_absent"

    def invalid_refs(self) -> list[str]:
        return ["kit://a-b", "kit://name#Bad-Field"]

    def provider_without_auth(self) -> SoundProvider:
        return self._build({"KIT_TOKN": TOKEN})  # a runner whose token variable is misspelt

    def provider_with_bad_auth(self) -> SoundProvider:
        return self._build({TOKEN_VAR: "wrong-token-for-the-kit"})

    def put_duplicate(self, name: str, value: bytes) -> str:
        self.vault.entries[name] = [{"value": value}, {"value": value}]
        return f"kit://{name}"

    def put_empty(self, name: str) -> str:
        self.vault.entries[name] = [{"value": b""}]
        return f"kit://{name}"

    def missing_field_ref(self, ref: str | None = None) -> str:
        if ref is None:
            self.vault.entries["loom_kit_fieldless"] = [{"value": b"only-a-value-field-5a1c"}]
            ref = "kit://loom_kit_fieldless"
        return ref.partition("#")[0] + "#no_such_field"

    def break_vault(self) -> None:
        self.vault.reachable = False

    def process_log(self) -> list[tuple[list[str], dict[str, str]]]:
        with self.vault.lock:
            return list(self.vault.calls)


def store_for(provider_class: type[SoundProvider]) -> Any:
    """A fixture method building a :class:`KitStore` whose providers are ``provider_class``."""

    @pytest.fixture
    def secret_store(self: Any, tmp_path: Path) -> KitStore:
        store = KitStore(tmp_path)
        store.provider_class = provider_class
        return store

    return secret_store


class TestSound(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(SoundProvider)


class BareStore:
    """Only the required members (and auth): every optional hook is absent."""

    def __init__(self, tmp_path: Path) -> None:
        self._store = KitStore(tmp_path)
        self.allowed_dirs = self._store.allowed_dirs
        self.auth_material = self._store.auth_material
        self.auth_environ = self._store.auth_environ
        self.put = self._store.put
        self.provider = self._store.provider
        self.missing_ref = self._store.missing_ref
        self.invalid_refs = self._store.invalid_refs
        self.provider_without_auth = self._store.provider_without_auth
        self.provider_with_bad_auth = self._store.provider_with_bad_auth


class TestWithoutHooks(SecretsProviderSuite):
    capabilities = frozenset({"auth"})

    @pytest.fixture
    def secret_store(self, tmp_path: Path) -> BareStore:
        return BareStore(tmp_path)


# -- one bug each -----------------------------------------------------------


class StripsOutput(SoundProvider):
    """Strips the trailing newline, as a provider reading CLI output with .strip() does."""

    def resolve(self, ref: SecretRef) -> SecretValue:
        return SecretValue(super().resolve(ref).reveal().rstrip(b"\r\n"))


class TestStripsOutput(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(StripsOutput)


class PicksFirst(SoundProvider):
    """Returns the first of several matching entries."""

    def _entry(self, ref: SecretRef) -> dict[str, bytes]:
        entries = self._vault.entries.get(ref.path, [])
        if not entries:
            raise self._not_found(ref)
        return entries[0]


class TestPicksFirst(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(PicksFirst)


class AllowsEmpty(SoundProvider):
    """Returns an empty value as b""."""

    def _checked(self, ref: SecretRef, value: bytes) -> bytes:
        return value


class TestAllowsEmpty(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(AllowsEmpty)


class FieldBlind(SoundProvider):
    """Reports a missing field as a missing entry."""

    def _field(self, ref: SecretRef, entry: dict[str, bytes]) -> bytes:
        field = ref.fragment or "value"
        if field not in entry:
            raise self._not_found(ref)
        return entry[field]


class TestFieldBlind(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(FieldBlind)


class CachesToDisk(SoundProvider):
    """Keeps resolved values in a cache file in its own (allowed) directory."""

    def resolve(self, ref: SecretRef) -> SecretValue:
        value = super().resolve(ref)
        with (self._cache_dir / "values.cache").open("ab") as cache:
            cache.write(ref.raw.encode() + b"=" + value.reveal() + b"\n")
        return value


class TestCachesToDisk(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(CachesToDisk)


class TokenInArgv(SoundProvider):
    """Passes the token to its child on the command line."""

    def _spawn(self, ref: SecretRef, token: str) -> None:
        argv = [TRUE, "read", "--token", token, ref.raw]
        subprocess.run(argv, env={}, check=True)
        with self._vault.lock:
            self._vault.calls.append((argv, {}))


class TestTokenInArgv(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(TokenInArgv)


class ExportsToken(SoundProvider):
    """Exports the token into os.environ so children inherit it."""

    def _spawn(self, ref: SecretRef, token: str) -> None:
        os.environ[TOKEN_VAR] = token
        super()._spawn(ref, token)


class FallsBack(SoundProvider):
    """Answers with a built-in default when its vault cannot be reached ("provider fallback drift")."""

    def resolve(self, ref: SecretRef) -> SecretValue:
        if not self._vault.reachable:
            return SecretValue(b"default-when-the-vault-is-down")
        return super().resolve(ref)


class TestFallsBack(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(FallsBack)


class TestExportsToken(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(ExportsToken)


class SetsDebugFlag(SoundProvider):
    """Sets the same harmless-looking variable on every resolve: set by the first test already."""

    def resolve(self, ref: SecretRef) -> SecretValue:
        os.environ["KIT_PROVIDER_DEBUG"] = "1"
        return super().resolve(ref)


class TestSetsDebugFlag(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(SetsDebugFlag)


class ReadsProcessEnviron(SoundProvider):
    """Falls back to the process environment when its context has no token."""

    def _token(self) -> str:
        return self._environ.get(TOKEN_VAR) or os.environ.get(TOKEN_VAR, "")


class TestReadsProcessEnviron(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(ReadsProcessEnviron)


class FlakyCodes(SoundProvider):
    """Reports a repeated miss as a provider failure ("negative cache hit")."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._misses: set[str] = set()

    def _not_found(self, ref: SecretRef) -> LoomError:
        if ref.raw in self._misses:
            return LoomError(ErrorCode.SECRETS_PROVIDER_FAILED, f"{ref.raw}: known miss")
        self._misses.add(ref.raw)
        return super()._not_found(ref)


class TestFlakyCodes(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(FlakyCodes)


class SharedSlot(SoundProvider):
    """Keeps the reference being resolved on the provider: threads overwrite each other's."""

    def resolve(self, ref: SecretRef) -> SecretValue:
        self._current = ref
        time.sleep(0.02)
        return super().resolve(self._current)


class TestSharedSlot(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(SharedSlot)


class ReprShowsToken(SoundProvider):
    """Shows its token in repr."""

    def __repr__(self) -> str:
        return f"ReprShowsToken(token={self._token()!r})"


class TestReprShowsToken(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(ReprShowsToken)


class MissingAuthEchoes(SoundProvider):
    """Lists the variables it did find when the token is missing, values included."""

    def _missing_token(self, ref: SecretRef) -> LoomError:
        seen = ", ".join(f"{k}={v}" for k, v in self._environ.items())
        return LoomError(ErrorCode.SECRETS_AUTH_MISSING, f"{ref.raw}: set {TOKEN_VAR} (found {seen})")


class TestMissingAuthEchoes(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(MissingAuthEchoes)


# -- redaction: quoted, escaped and per-line forms ------------------------------


class FieldErrorShowsEntry(SoundProvider):
    """Lists the entry's fields, values included (as bytes reprs), when a field is missing."""

    def _field(self, ref: SecretRef, entry: dict[str, bytes]) -> bytes:
        field = ref.fragment or "value"
        if field not in entry:
            raise LoomError(ErrorCode.SECRETS_FIELD_NOT_FOUND, f"{ref.raw}: no field {field!r} in {entry!r}")
        return entry[field]


class TestFieldErrorShowsEntry(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(FieldErrorShowsEntry)


class LogsOneLine(SoundProvider):
    """Logs the second line of every multi-line value it resolves (a "preview")."""

    def resolve(self, ref: SecretRef) -> SecretValue:
        value = super().resolve(ref)
        lines = value.reveal().splitlines()
        if len(lines) > 1:
            logging.getLogger("kit.provider").debug("resolved %s (%s...)", ref.raw, lines[1].decode())
        return value


class TestLogsOneLine(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(LogsOneLine)


class ReadsUndeclaredVariable(SoundProvider):
    """Works only with a variable its backend's AuthPolicy does not name (its store declares none)."""


def _undeclared_store(self: Any, tmp_path: Path) -> KitStore:
    store = KitStore(tmp_path)
    store.provider_class = ReadsUndeclaredVariable
    store.auth_policy = None  # registered without a policy: the provider is built seeing nothing
    return store


class TestReadsUndeclaredVariable(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = pytest.fixture(_undeclared_store)


# -- credentials: declared as credentials, and tested -------------------------------


class TokenOnlyRead(SoundProvider):
    """Sound itself; its store registers the token as a plain ``reads`` variable (jobs would see it)."""


def _token_read_store(self: Any, tmp_path: Path) -> KitStore:
    store = KitStore(tmp_path)
    store.provider_class = TokenOnlyRead
    store.auth_policy = AuthPolicy(reads=frozenset({TOKEN_VAR}))
    return store


class TestTokenOnlyRead(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = pytest.fixture(_token_read_store)


class TokenInNotFound(SoundProvider):
    """Quotes its token when an entry is missing ("debugging help")."""

    def _not_found(self, ref: SecretRef) -> LoomError:
        return LoomError(ErrorCode.SECRETS_NOT_FOUND, f"{ref.raw}: no such entry (token {self._token()})")


class TestTokenInNotFound(SecretsProviderSuite):
    capabilities = frozenset({"auth"})
    secret_store = store_for(TokenInNotFound)


class HidesAuth(SoundProvider):
    """Needs a token (its policy says so) but does not declare capability ``auth``."""

    capabilities: frozenset[str] = frozenset()


class TestHidesAuth(SecretsProviderSuite):
    capabilities = frozenset()
    secret_store = store_for(HidesAuth)
