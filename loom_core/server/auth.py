"""Bearer-key authentication, exactly one key, and passthrough when none is configured.

The key comes from the environment variable named by
``server.auth_token_env`` (default ``LOOMEM_AUTH_TOKEN``) or from the secret
reference ``server.auth_token_ref``. Every route except ``GET /health``
depends on :func:`require_auth`; admin routes depend on :func:`require_admin`.
Keys are compared in constant time on bytes. A failure is a ``401`` with a
``WWW-Authenticate: Bearer`` challenge and an audit event that names the
reason and the route, never the token that was sent.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from loom_core.audit import AuditEvent, emit
from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import looks_like_variable_name
from loom_core.secrets.bounded import DEFAULT_RESOLVE_SECONDS
from loom_core.secrets.providers import SecretsHost, resolve_key_setting
from loom_core.server.logging import clip_path
from loom_core.server.tokens import Clock, TokenSigner, looks_like

log = logging.getLogger("loom.server.auth")

PASSTHROUGH_ACTOR = "local-passthrough"
KEY_ACTOR = "api-key"
#: Keys shorter than this still work but draw a start-up warning (the seed asks for 64+ hex chars).
RECOMMENDED_KEY_LENGTH = 32

#: The scheme as the OpenAPI document declares it (see :func:`declare_bearer_security`).
BEARER_SCHEME_NAME = "bearer"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "The key from the variable named by server.auth_token_env (default LOOMEM_AUTH_TOKEN)",
}
#: The OAuth endpoints and discovery documents: how a client without the key gets a token.
OAUTH_PATHS = frozenset({
    "/oauth/register", "/oauth/authorize", "/oauth/token",
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
})
OPEN_PATHS = frozenset({"/health"}) | OAUTH_PATHS
TOKEN_ACTOR = "oauth-token"  # noqa: S105 - an actor name in audit events


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. One key means every authenticated caller is admin."""

    actor: str
    is_admin: bool


def resolve_api_key(
    auth_token_env: str,
    auth_token_ref: str,
    environ: Mapping[str, str],
    host: SecretsHost | None = None,
    timeout: float = DEFAULT_RESOLVE_SECONDS,
    *,
    env_configured: bool = False,
) -> SecretValue | None:
    """The configured key, or ``None`` for passthrough mode. Fails closed on anything odd.

    A reference that cannot be resolved, or a variable that is set but blank,
    is an error rather than a silent fall back to passthrough; so is a
    reference together with the variable (two keys, one of them ignored), and
    a variable named in the configuration (``env_configured``) that is not set:
    whoever wrote ``server.auth_token_env`` meant the server to need a key (and a
    key pasted there by mistake names no variable).
    """
    if auth_token_ref:
        resolved = resolve_key_setting(
            auth_token_ref, ref_setting="server.auth_token_ref", env_name=auth_token_env,
            env_setting="server.auth_token_env", what="API key", environ=environ, host=host, timeout=timeout,
        )
        return None if resolved is None else _trimmed(resolved)
    raw = environ.get(auth_token_env)
    if raw is None:
        if env_configured:
            named = f" ({auth_token_env})" if looks_like_variable_name(auth_token_env) else ""
            raise LoomError(
                ErrorCode.CONFIG_INVALID,
                f"server.auth_token_env is set in the configuration, but the variable it names{named} is not "
                "set: set that variable to the API key (the setting holds the variable's name, never the key), "
                "or remove server.auth_token_env to run in local passthrough mode",
                details={"key": "server.auth_token_env"},
            )
        return None
    if not raw.strip():
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"environment variable {auth_token_env} (server.auth_token_env) is set but empty; "
            f"set it to a long random key, or unset it for local passthrough mode",
        )
    return _trimmed(SecretValue(raw.encode("utf-8")))


def _trimmed(key: SecretValue) -> SecretValue:
    """The key without surrounding whitespace. A key read from a file or an env file often
    ends in a newline, and HTTP strips the header value, so such a key could never match:
    the server would start "secured" and refuse every request."""
    raw = key.reveal()
    return key if raw == raw.strip() else SecretValue(raw.strip())


class Authenticator:
    """Checks ``Authorization`` headers against the one configured key, or an access token the
    OAuth flow issued for it (equivalent to the key, signed under a key derived from it)."""

    def __init__(self, key: SecretValue | None, hook: Any | None = None, clock: Clock = time.time) -> None:
        self._key = key
        self._hook = hook
        self.tokens = TokenSigner(key, clock) if key is not None else None

    def __repr__(self) -> str:
        return f"Authenticator(mode={'passthrough' if self._key is None else 'bearer'})"

    def check_key(self, candidate: str) -> bool:
        """Whether ``candidate`` is the API key (constant time; the OAuth form asks for it)."""
        return self._key is not None and hmac.compare_digest(_header_bytes(candidate.strip()), self._key.reveal())

    @property
    def passthrough(self) -> bool:
        """True when no key is configured: every request is accepted as admin."""
        return self._key is None

    def announce(self) -> None:
        """Say loudly at start-up which mode the server is in."""
        if self._key is None:
            log.warning(
                "AUTHENTICATION DISABLED: no API key configured, running in local passthrough mode; "
                "every request is accepted with admin privileges. Never expose this instance to a network; "
                "set the variable named by server.auth_token_env to enable authentication."
            )
        elif len(self._key) < RECOMMENDED_KEY_LENGTH:
            log.warning(
                "the API key is %d bytes long; use a long random key (64+ hex characters)", len(self._key)
            )
        else:
            log.info("bearer-key authentication enabled")

    def authenticate(self, authorization: str | None, *, method: str = "", path: str = "",
                     client: str = "") -> Principal:
        """Return the caller's principal or raise ``AUTH_REQUIRED`` / ``AUTH_INVALID``."""
        if self._key is None:
            return Principal(actor=PASSTHROUGH_ACTOR, is_admin=True)
        if not authorization:
            self.record_denial("missing", method, path, client)
            raise LoomError(ErrorCode.AUTH_REQUIRED, "this route needs an `Authorization: Bearer <key>` header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self.record_denial("malformed", method, path, client)
            raise LoomError(
                ErrorCode.AUTH_REQUIRED, "the Authorization header must have the form `Bearer <key>`"
            )
        if hmac.compare_digest(_header_bytes(token), self._key.reveal()):
            return Principal(actor=KEY_ACTOR, is_admin=True)
        if self.tokens is not None and looks_like("access", token):
            verified = self.tokens.verify("access", token)
            if verified is not None and not verified.expired:
                return Principal(actor=TOKEN_ACTOR, is_admin=True)
            if verified is not None:
                self.record_denial("expired_token", method, path, client)
                raise LoomError(ErrorCode.AUTH_INVALID, "the access token has expired; refresh it or authorize again")
        self.record_denial("invalid", method, path, client)
        raise LoomError(ErrorCode.AUTH_INVALID, "the Bearer key is not the configured key or a valid access token")

    def record_denial(self, reason: str, method: str, path: str, client: str) -> None:
        """Emit the ``auth.failure`` audit event of a refused request (never the credentials)."""
        emit(
            AuditEvent(
                action="auth.failure",
                outcome="denied",
                resource=clip_path(path) if path else None,
                details={"reason": reason, "method": method, "client": client},
            ),
            self._hook,
        )


def _header_bytes(value: str) -> bytes:
    """The bytes the client sent: ASGI servers decode header values as latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _authenticator(request: Request) -> Authenticator:
    auth = getattr(request.app.state, "authenticator", None)
    if not isinstance(auth, Authenticator):  # fail closed if the app was assembled without one
        raise LoomError(ErrorCode.INTERNAL_ERROR, "the server has no authenticator configured")
    return auth


async def require_auth(
    request: Request,
) -> Principal:
    """FastAPI dependency: the authenticated principal of this request.

    The server's :class:`~loom_core.server.gate.AuthGate` has already checked
    the key before the body was read; its principal is used. An app assembled
    without the gate is checked here.
    """
    checked = getattr(request.state, "principal", None)
    if isinstance(checked, Principal):
        return checked
    client = request.client.host if request.client is not None else ""
    principal = _authenticator(request).authenticate(
        request.headers.get("authorization"), method=request.method, path=request.url.path, client=client
    )
    request.state.principal = principal
    return principal


async def require_admin(principal: Annotated[Principal, Depends(require_auth)]) -> Principal:
    """FastAPI dependency for admin routes (backfill, encryption status, ...)."""
    if not principal.is_admin:  # pragma: no cover - one key is always admin today
        raise LoomError(ErrorCode.AUTH_INVALID, "this route needs admin privileges")
    return principal


def declare_bearer_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark every operation but ``/health`` as Bearer-protected in an OpenAPI document.

    Declared on the document rather than through a FastAPI security
    dependency, which would cost every request a second header parse.
    """
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER_SCHEME_NAME] = dict(BEARER_SCHEME)
    for path, operations in schema.get("paths", {}).items():
        if path in OPEN_PATHS:
            continue
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.setdefault("security", [{BEARER_SCHEME_NAME: []}])
    return schema


def audit(request: Request, action: str, resource: str | None, outcome: str = "success",
          **details: Any) -> None:
    """Record a delete or admin action as an audit event (ids only, never content)."""
    principal = getattr(request.state, "principal", None)
    actor = principal.actor if isinstance(principal, Principal) else "anonymous"
    hook = getattr(request.app.state, "hook", None)
    emit(AuditEvent(action=action, outcome=outcome, actor=actor, resource=resource, details=details), hook)


@contextmanager
def audited(request: Request, action: str, resource: str | None) -> Iterator[dict[str, Any]]:
    """Emit one audit event for the wrapped action: success, or failure with the error code.

    The yielded dict collects extra facts (counts, flags) for the event.
    """
    facts: dict[str, Any] = {}
    try:
        yield facts
    except BaseException as exc:
        code = exc.code.value if isinstance(exc, LoomError) else "INTERNAL_ERROR"
        audit(request, action, resource, outcome="failure", code=code, **facts)
        raise
    audit(request, action, resource, **facts)


AuthDep = Annotated[Principal, Depends(require_auth)]
AdminDep = Annotated[Principal, Depends(require_admin)]
