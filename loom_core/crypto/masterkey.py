"""The at-rest master key: where it comes from, how it is checked, how it prints.

The key arrives as 32 bytes of base64 text in an environment variable (or a
secret reference). Anything else refuses start-up with
``ENCRYPTION_KEY_INVALID``, because a typo that silently disabled encryption
or derived a weak key would be discovered only after data was written.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import looks_like_variable_name, parse_flag
from loom_core.secrets.bounded import DEFAULT_RESOLVE_SECONDS

if TYPE_CHECKING:
    from loom_core.contracts.cipher import Cipher
    from loom_core.secrets.providers import SecretsHost

MASTER_KEY_SIZE = 32
DEFAULT_MASTER_KEY_ENV = "LOOMEM_AT_REST_MASTER_KEY"
EXPECT_ENABLED_ENV = "LOOMEM_AT_REST_EXPECT_ENABLED"


class MasterKey:
    """32 key bytes that never show themselves; ``source`` says where they came from."""

    __slots__ = ("_key", "source")

    def __init__(self, key: bytes, source: str) -> None:
        if len(key) != MASTER_KEY_SIZE:
            raise LoomError(
                ErrorCode.ENCRYPTION_KEY_INVALID,
                f"the master key from {source} is {len(key)} bytes; it must be exactly "
                f"{MASTER_KEY_SIZE} bytes (base64 of 32 random bytes)",
            )
        self._key = bytes(key)
        self.source = source

    def reveal(self) -> bytes:
        """The raw key, for the cipher only."""
        return self._key

    def fingerprint(self, cipher: Cipher) -> str:
        """The cipher's one-way digest of the key (safe to log and store)."""
        return cipher.fingerprint(self._key)

    def __repr__(self) -> str:
        return f"MasterKey(<redacted>, source={self.source!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("MasterKey cannot be pickled")


def parse_master_key(text: str | bytes, source: str) -> MasterKey:
    """Decode base64 ``text`` into a :class:`MasterKey`.

    Standard and URL-safe alphabets are accepted, padding required; the
    message names ``source`` (a variable name or reference), never the value.
    """
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    raw = raw.strip()
    how = (
        'generate one with `python3 -c "import os,base64;'
        'print(base64.b64encode(os.urandom(32)).decode())"`'
    )
    if not raw:
        raise LoomError(ErrorCode.ENCRYPTION_KEY_INVALID, f"the master key in {source} is empty; {how}")
    alphabet = b"-_" if ("-" in raw or "_" in raw) else None
    try:
        key = base64.b64decode(raw.encode("ascii"), altchars=alphabet, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_INVALID,
            f"the master key in {source} is not valid base64 ({len(raw)} characters); {how}",
        ) from None
    if len(key) != MASTER_KEY_SIZE:
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_INVALID,
            f"the master key in {source} decodes to {len(key)} bytes; it must be exactly "
            f"{MASTER_KEY_SIZE} bytes; {how}",
        )
    return MasterKey(key, source)


def expect_enabled(settings: Any, environ: Mapping[str, str]) -> bool:
    """Whether encryption is required: ``encryption.expect_enabled`` or the env flag."""
    if bool(getattr(settings, "expect_enabled", False)):
        return True
    return parse_flag(EXPECT_ENABLED_ENV, environ.get(EXPECT_ENABLED_ENV, ""))


def load_master_key(
    settings: Any,
    environ: Mapping[str, str],
    host: SecretsHost,
    timeout: float = DEFAULT_RESOLVE_SECONDS,
) -> MasterKey | None:
    """The configured master key, or ``None`` when encryption is off.

    ``settings`` is the ``[encryption]`` section. The key comes from a secret
    reference (``master_key_ref``) or the environment variable
    (``master_key_env``); both set is ``CONFIG_INVALID``. With ``expect_enabled`` and no key, raises
    ``ENCRYPTION_KEY_MISSING``; a present but malformed key raises
    ``ENCRYPTION_KEY_INVALID``. ``host`` is the configured plugin host, so a
    reference resolves only through providers the configuration allows.
    """
    ref = str(getattr(settings, "master_key_ref", "") or "")
    env_name = str(getattr(settings, "master_key_env", "") or DEFAULT_MASTER_KEY_ENV)
    if ref:
        return parse_master_key(_resolve_ref(ref, env_name, environ, host, timeout), f"secret reference {ref!r}")
    value = environ.get(env_name)
    if value is not None and value.strip():
        return parse_master_key(value, f"environment variable {env_name}")
    if value is not None:  # set but blank: a deployment mistake, not "off"
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_INVALID,
            f"environment variable {env_name} is set but empty; set it to 32 bytes of base64 or unset it",
        )
    if expect_enabled(settings, environ):
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISSING,
            f"encryption at rest is expected ({EXPECT_ENABLED_ENV} / encryption.expect_enabled) "
            f"but no master key is set; set {env_name} (32 bytes, base64)",
        )
    if env_name != DEFAULT_MASTER_KEY_ENV:
        # Naming another variable says the data is meant to be encrypted: starting in plaintext because
        # it is missing (or because a key was pasted where its name belongs) would be silent.
        shown = f" ({env_name})" if looks_like_variable_name(env_name) else ""
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISSING,
            f"encryption.master_key_env names a variable{shown} that is not set: set it to the master key "
            "(the setting holds the variable's name, never the key), or remove the setting to run without "
            "encryption at rest",
        )
    return None


def _resolve_ref(ref: str, env_name: str, environ: Mapping[str, str], host: SecretsHost, timeout: float) -> str:
    """Resolve ``encryption.master_key_ref`` through the secrets backend for its scheme."""
    from loom_core.secrets.providers import resolve_key_setting

    value = resolve_key_setting(
        ref, ref_setting="encryption.master_key_ref", env_name=env_name, env_setting="encryption.master_key_env",
        what="master key", environ=environ, host=host, timeout=timeout,
    )
    return value.reveal().decode("ascii", "replace")
