"""Signed, self-contained OAuth artefacts: access tokens, refresh tokens and client ids.

Each is ``<prefix>.<base64url JSON claims>.<base64url HMAC-SHA256>`` under a key
derived from the API key with HKDF (one derived key per kind, so an access token
can never pass as a refresh token or a client id). Nothing is stored: a restart
keeps every unexpired token valid, and changing the API key (and restarting)
invalidates every token and client id ever issued, which is the only revocation
there is. The claims hold no secret (expiry, a client id, a random nonce).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any, Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from loom_core.contracts.secrets import SecretValue

Kind = Literal["access", "refresh", "client"]
PREFIXES: Mapping[Kind, str] = {"access": "loomat", "refresh": "loomrt", "client": "loomcl"}
_SALT = b"loomem-oauth-v1"
#: longest token accepted for checking (a client id carries its redirect URIs)
MAX_TOKEN_CHARS = 8192

Clock = Callable[[], float]


@dataclass(frozen=True)
class Verified:
    """The outcome of checking a token: its claims, or why it was refused."""

    claims: dict[str, Any]
    expired: bool = False


class TokenSigner:
    """Issues and checks the three kinds of artefact under keys derived from the API key."""

    def __init__(self, api_key: SecretValue, clock: Clock = time.time) -> None:
        self._keys = {kind: _derive(api_key, kind) for kind in PREFIXES}
        self._clock = clock

    def __repr__(self) -> str:
        return "TokenSigner(<derived keys hidden>)"

    def now(self) -> int:
        """Seconds since the epoch by the signer's clock (injectable for tests)."""
        return int(self._clock())

    def issue(self, kind: Kind, claims: Mapping[str, Any], lifetime: int | None) -> str:
        """A new artefact of ``kind`` holding ``claims``, expiring ``lifetime`` seconds from now
        (``None``: until the API key changes)."""
        body = dict(claims)
        body["iat"] = self.now()
        body["n"] = secrets.token_urlsafe(12)  # two artefacts with equal claims still differ
        if lifetime is not None:
            body["exp"] = body["iat"] + lifetime
        payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        prefix = PREFIXES[kind]
        return f"{prefix}.{payload}.{_b64(self._mac(kind, prefix, payload))}"

    def verify(self, kind: Kind, token: str) -> Verified | None:
        """The claims of a genuine artefact of ``kind`` (``expired`` set when past its expiry),
        or ``None`` for anything else. The signature is compared in constant time."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        prefix, _, rest = token.partition(".")
        payload, _, signature = rest.partition(".")
        if prefix != PREFIXES[kind] or not payload or not signature:
            return None
        try:
            sent = _unb64(signature)
        except (ValueError, binascii.Error):
            return None
        if not hmac.compare_digest(sent, self._mac(kind, prefix, payload)):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):  # pragma: no cover - only a holder of the key could sign it
            return None
        if not isinstance(claims, dict):  # pragma: no cover - as above
            return None
        expires = claims.get("exp")
        expired = isinstance(expires, int) and self.now() >= expires
        return Verified(claims=claims, expired=expired)

    def _mac(self, kind: Kind, prefix: str, payload: str) -> bytes:
        return hmac.new(self._keys[kind], f"{prefix}.{payload}".encode("ascii"), sha256).digest()


def looks_like(kind: Kind, token: str) -> bool:
    """Whether ``token`` has the prefix of ``kind`` (cheap; says nothing about validity)."""
    return token.startswith(PREFIXES[kind] + ".")


def _derive(api_key: SecretValue, kind: Kind) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=f"loomem oauth {kind}".encode("ascii"))
    return hkdf.derive(api_key.reveal())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
