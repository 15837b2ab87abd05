"""OAuth 2.0 for MCP clients that cannot send the key: the user enters it once, in a browser.

Endpoints (open: they are how a client without the key gets a token):

- ``GET /.well-known/oauth-authorization-server`` (RFC 8414) and
  ``GET /.well-known/oauth-protected-resource[/mcp]`` (RFC 9728): discovery.
- ``POST /oauth/register`` (RFC 7591): public clients only, redirect URIs https or loopback http.
- ``GET /oauth/authorize`` shows a form asking for the API key; ``POST`` checks it in constant
  time and redirects to the registered redirect URI with a single-use code. PKCE S256 is required.
- ``POST /oauth/token``: the ``authorization_code`` and ``refresh_token`` grants, through the
  mcp SDK's ``TokenHandler`` (PKCE check, redirect-URI binding, RFC 6749 error bodies).

Nothing is stored but pending codes (memory, two minutes, single use): client ids, access and
refresh tokens are signed under keys derived from the API key (:mod:`loom_core.server.tokens`),
so a restart keeps them valid and a new API key invalidates them all. Without a key (passthrough
mode) every endpoint answers 404 ``OAUTH_UNAVAILABLE``: there is nothing to authorize.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from mcp.server.auth.handlers.authorize import AuthorizationRequest
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    IdentityAssertionParams,
    RefreshToken,
    TokenError,
    construct_redirect_uri,
)
from mcp.shared.auth import (
    InvalidRedirectUriError,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from pydantic import AnyUrl, ValidationError

from loom_core.audit import AuditEvent, emit
from loom_core.errors import ErrorCode, LoomError
from loom_core.server.auth import Authenticator
from loom_core.server.errors import describe_validation_errors
from loom_core.server.gate import is_loopback
from loom_core.server.limits import Scope
from loom_core.server.mcp import MCP_PATH
from loom_core.server.tokens import TokenSigner

log = logging.getLogger("loom.server.oauth")

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600
CODE_SECONDS = 120
#: pending codes held at once; each needs the key to create, so this only bounds a key holder
MAX_PENDING_CODES = 10_000
MAX_REDIRECT_URIS = 5
MAX_REDIRECT_URI_CHARS = 512
MAX_CLIENT_NAME_CHARS = 200
#: a S256 challenge is the 43-character base64url SHA-256 of the verifier
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_GRANTS = ["authorization_code", "refresh_token"]
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _unavailable() -> LoomError:
    return LoomError(ErrorCode.OAUTH_UNAVAILABLE, (
        "this server runs without an API key (local passthrough mode), so OAuth is off: connect the "
        "MCP client without authorization"))


@dataclass(frozen=True)
class PendingCode:
    client_id: str
    redirect_uri: str
    explicit: bool
    code_challenge: str
    resource: str | None
    expires_at: int


class LoomOAuthProvider:
    """The SDK's ``OAuthAuthorizationServerProvider`` over signed artefacts and in-memory codes.

    Only the token endpoint goes through the SDK's handler; registration and authorization are
    this module's own (the SDK's hand the user to another identity provider by redirect and
    issue client secrets, where Loom asks for its one key and has public clients only).
    """

    def __init__(self, signer: TokenSigner) -> None:
        self.signer = signer
        self._codes: dict[str, PendingCode] = {}

    def __repr__(self) -> str:
        return f"LoomOAuthProvider(pending_codes={len(self._codes)})"

    # -- clients ---------------------------------------------------------------------------

    def issue_client(self, metadata: OAuthClientMetadata) -> OAuthClientInformationFull:
        uris = [str(uri) for uri in metadata.redirect_uris or []]
        claims = {"uris": uris, "name": metadata.client_name}
        client_id = self.signer.issue("client", claims, lifetime=None)
        return self._client(client_id, claims, self.signer.now())

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.client(client_id)

    def client(self, client_id: str) -> OAuthClientInformationFull | None:
        """The registered client ``client_id`` names, if this server (with this key) issued it."""
        verified = self.signer.verify("client", client_id)
        if verified is None:
            return None
        issued = verified.claims.get("iat")
        return self._client(client_id, verified.claims, issued if isinstance(issued, int) else None)

    @staticmethod
    def _client(client_id: str, claims: Mapping[str, Any], issued: int | None) -> OAuthClientInformationFull:
        return OAuthClientInformationFull(
            client_id=client_id, client_id_issued_at=issued, redirect_uris=claims.get("uris") or None,
            client_name=claims.get("name"), token_endpoint_auth_method="none",  # noqa: S106 - public client
            grant_types=list(_GRANTS),
            response_types=["code"],
        )

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:  # pragma: no cover
        raise NotImplementedError("registration is handled by loom_core.server.oauth.register")

    async def authorize(self, client: OAuthClientInformationFull,
                        params: AuthorizationParams) -> str:  # pragma: no cover
        raise NotImplementedError("authorization is handled by loom_core.server.oauth.authorize")

    # -- codes -----------------------------------------------------------------------------

    def new_code(self, client_id: str, redirect_uri: str, explicit: bool, challenge: str,
                 resource: str | None) -> str:
        now = self.signer.now()
        for stale in [code for code, pending in self._codes.items() if pending.expires_at <= now]:
            del self._codes[stale]
        if len(self._codes) >= MAX_PENDING_CODES:
            del self._codes[next(iter(self._codes))]  # the oldest
        code = secrets.token_urlsafe(32)
        self._codes[code] = PendingCode(client_id, redirect_uri, explicit, challenge, resource, now + CODE_SECONDS)
        return code

    async def load_authorization_code(self, client: OAuthClientInformationFull,
                                      authorization_code: str) -> AuthorizationCode | None:
        # taken out on first sight: a code is single use, also when the exchange then fails (wrong verifier)
        pending = self._codes.pop(authorization_code, None)
        if pending is None or pending.client_id != client.client_id or pending.expires_at <= self.signer.now():
            return None
        return AuthorizationCode(
            code=authorization_code, scopes=[], expires_at=float(pending.expires_at), client_id=pending.client_id,
            code_challenge=pending.code_challenge, redirect_uri=AnyUrl(pending.redirect_uri),
            redirect_uri_provided_explicitly=pending.explicit, resource=pending.resource,
        )

    async def exchange_authorization_code(self, client: OAuthClientInformationFull,
                                          authorization_code: AuthorizationCode) -> OAuthToken:
        return self._tokens(client.client_id)

    # -- tokens ----------------------------------------------------------------------------

    def _tokens(self, client_id: str) -> OAuthToken:
        claims = {"cid": _client_tag(client_id)}
        return OAuthToken(
            access_token=self.signer.issue("access", claims, ACCESS_TOKEN_SECONDS),
            expires_in=ACCESS_TOKEN_SECONDS,
            refresh_token=self.signer.issue("refresh", claims, REFRESH_TOKEN_SECONDS),
        )

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        verified = self.signer.verify("refresh", refresh_token)
        if verified is None or verified.expired or verified.claims.get("cid") != _client_tag(client.client_id):
            return None
        # expiry was checked above, by the signer's clock
        return RefreshToken(token=refresh_token, client_id=client.client_id, scopes=[], expires_at=None)

    async def exchange_refresh_token(self, client: OAuthClientInformationFull, refresh_token: RefreshToken,
                                     scopes: list[str]) -> OAuthToken:
        return self._tokens(client.client_id)

    async def load_access_token(self, token: str) -> AccessToken | None:
        verified = self.signer.verify("access", token)
        if verified is None or verified.expired:
            return None
        expires = verified.claims.get("exp")
        return AccessToken(token=token, client_id=str(verified.claims.get("cid", "")), scopes=[],
                           expires_at=expires if isinstance(expires, int) else None)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:  # pragma: no cover
        """Signed tokens cannot be revoked one by one: changing the API key revokes them all."""

    async def exchange_identity_assertion(self, client: OAuthClientInformationFull,
                                          params: IdentityAssertionParams) -> OAuthToken:  # pragma: no cover
        raise TokenError(error="unsupported_grant_type", error_description="only authorization_code and refresh_token")


# -- helpers ---------------------------------------------------------------------------------


def _client_tag(client_id: str) -> str:
    """A short digest of a client id, binding a refresh token to its client without copying the id."""
    return sha256(client_id.encode("utf-8")).hexdigest()[:24]


def site_url(request: Request, public_url: str) -> str:
    """The server's external base URL: ``server.public_url`` when set (behind a proxy), else the
    scheme and ``Host`` the request came with."""
    if public_url:
        return public_url.rstrip("/")
    return str(request.base_url).rstrip("/")


def resource_metadata_url(base: str) -> str:
    """RFC 9728 §3.1: the metadata of the resource ``<base>/mcp``."""
    return f"{base}/.well-known/oauth-protected-resource{MCP_PATH}"


def check_public_url(url: str) -> None:
    """Refuse a ``server.public_url`` that cannot be an OAuth issuer (RFC 8414 §2)."""
    if not url:
        return
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise LoomError(ErrorCode.CONFIG_INVALID, "server.public_url must be the server's external URL, "
                        "such as https://memory.example.org, without a query or fragment",
                        details={"key": "server.public_url"})


def mcp_challenge(public_url: str) -> Callable[[Scope], str | None]:
    """For the gate: a refused ``/mcp`` request names the resource metadata an MCP client starts
    OAuth discovery from (RFC 9728 §5.1)."""

    def challenge(scope: Scope) -> str | None:
        path, root = scope.get("path", ""), scope.get("root_path", "")
        if (path[len(root):] if root and path.startswith(root) else path) != MCP_PATH:
            return None
        base = public_url.rstrip("/") if public_url else str(Request(scope).base_url).rstrip("/")
        return f'resource_metadata="{resource_metadata_url(base)}"'

    return challenge


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` may not be a redirect URI, or ``None``: https anywhere, http only on loopback."""
    if len(uri) > MAX_REDIRECT_URI_CHARS:
        return f"a redirect URI may be at most {MAX_REDIRECT_URI_CHARS} characters"
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        return "a redirect URI must be an absolute https URL, or http on a loopback address"
    if parts.fragment:
        return "a redirect URI must not have a fragment"
    if host and (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))):
        return None
    return "a redirect URI must be https, or http on a loopback address (127.0.0.1, [::1], localhost)"


def _oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=_NO_STORE)


def _audit(request: Request, action: str, outcome: str, **details: Any) -> None:
    emit(AuditEvent(action=action, outcome=outcome, actor="oauth", resource=request.url.path, details=details),
         getattr(request.app.state, "hook", None))


# -- the authorization page ------------------------------------------------------------------

_FORM_FIELDS = ("client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "state",
                "scope", "resource")


@dataclass(frozen=True)
class AuthorizationAsk:
    """A valid authorization request: who asks, where the answer goes, the PKCE challenge."""

    client: OAuthClientInformationFull
    redirect_uri: str
    explicit: bool
    state: str | None
    challenge: str
    resource: str | None
    fields: dict[str, str]


def check_authorization(provider: LoomOAuthProvider, params: Mapping[str, str]) -> AuthorizationAsk | Response:
    """The request, or the answer refusing it: a page when client or redirect URI is wrong (never a
    redirect to an unchecked URI), else a redirect carrying the RFC 6749 error and ``state``."""
    client_id = params.get("client_id", "")
    client = provider.client(client_id) if client_id else None
    if client is None:
        return _page_error("This application is not registered with this server (unknown client_id). "
                           "Let it register again and retry.")
    try:
        asked = AnyUrl(params["redirect_uri"]) if "redirect_uri" in params else None
        redirect = str(client.validate_redirect_uri(asked))
    except (ValidationError, InvalidRedirectUriError):
        return _page_error("The redirect_uri is not one this application registered; nothing was sent to it.")
    state = params.get("state")
    try:
        ask = AuthorizationRequest.model_validate(dict(params))
    except ValidationError as exc:
        kind = "unsupported_response_type" if any(e["loc"] == ("response_type",) for e in exc.errors()) \
            else "invalid_request"
        message, _ = describe_validation_errors(exc.errors(include_input=False))
        return _redirect(redirect, error=kind, error_description=message, state=state)
    if params.get("code_challenge_method") != "S256" or not _S256_CHALLENGE.fullmatch(ask.code_challenge):
        return _redirect(redirect, error="invalid_request", state=state,
                         error_description="PKCE is required: code_challenge_method=S256 and an S256 code_challenge")
    fields = {name: params[name] for name in _FORM_FIELDS if isinstance(params.get(name), str)}
    return AuthorizationAsk(client=client, redirect_uri=redirect, explicit=asked is not None, state=state,
                            challenge=ask.code_challenge, resource=ask.resource, fields=fields)


def _redirect(uri: str, **params: str | None) -> RedirectResponse:
    return RedirectResponse(construct_redirect_uri(uri, **params), status_code=302, headers=_NO_STORE)


def _security_headers(form_target: str | None = None) -> dict[str, str]:
    """No framing (clickjacking), no outside resources, and a form that may post here and then be
    redirected to the client's redirect URI (browsers apply ``form-action`` to that redirect)."""
    action = "'self'"
    if form_target:
        parts = urlsplit(form_target)
        action += f" {parts.scheme}://{parts.netloc}"
    return {
        **_NO_STORE,
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": (f"default-src 'none'; style-src 'unsafe-inline'; form-action {action}; "
                                    "frame-ancestors 'none'; base-uri 'none'"),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}"
          "input[type=password]{width:100%;padding:.5rem;margin:.5rem 0 1rem;box-sizing:border-box}"
          "button{padding:.5rem 1.5rem}.error{color:#a00}code{word-break:break-all}")


def _html(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _page_error(message: str) -> HTMLResponse:
    return HTMLResponse(_html("Authorization refused", f"<p class=error>{html.escape(message)}</p>"),
                        status_code=400, headers=_security_headers())


def render_form(ask: AuthorizationAsk, error: str | None = None, status: int = 200) -> HTMLResponse:
    name = ask.client.client_name or "An unnamed application"
    hidden = "".join(f"<input type=hidden name={html.escape(k)} value=\"{html.escape(v)}\">"
                     for k, v in ask.fields.items())
    problem = f"<p class=error role=alert>{html.escape(error)}</p>" if error else ""
    body = (f"<p><strong>{html.escape(name)}</strong> asks for access to this Loomem memory server: it could "
            f"read, write and delete every stream, as the API key can.</p>"
            f"<p>After you allow it, your browser returns to <code>{html.escape(ask.redirect_uri)}</code>.</p>"
            f"{problem}<form method=post action=/oauth/authorize>{hidden}"
            "<label for=api_key>API key of this server</label>"
            "<input type=password id=api_key name=api_key autocomplete=off required autofocus>"
            "<button type=submit>Allow</button></form>")
    return HTMLResponse(_html("Connect to Loomem", body), status_code=status,
                        headers=_security_headers(ask.redirect_uri))


# -- routes ----------------------------------------------------------------------------------


def build_router(authenticator: Authenticator, provider: LoomOAuthProvider | None, public_url: str) -> APIRouter:
    """The OAuth endpoints and discovery documents (none of them in the OpenAPI document)."""
    router = APIRouter(include_in_schema=False)
    token_handler = TokenHandler(provider, ClientAuthenticator(provider)) if provider is not None else None

    def enabled() -> LoomOAuthProvider:
        if provider is None:
            raise _unavailable()
        return provider

    def base(request: Request) -> str:
        url = site_url(request, public_url)
        try:
            AnyUrl(url)
        except ValidationError:
            raise LoomError(ErrorCode.USAGE_ERROR, "the Host header does not make a valid URL; "
                                                   "set server.public_url to the server's external URL") from None
        return url

    @router.get("/.well-known/oauth-authorization-server")
    async def authorization_server_metadata(request: Request) -> JSONResponse:
        enabled()
        root = base(request)
        document = OAuthMetadata.model_validate({
            "issuer": root, "authorization_endpoint": f"{root}/oauth/authorize",
            "token_endpoint": f"{root}/oauth/token", "registration_endpoint": f"{root}/oauth/register",
            "response_types_supported": ["code"], "grant_types_supported": _GRANTS,
            "token_endpoint_auth_methods_supported": ["none"], "code_challenge_methods_supported": ["S256"],
        })
        return JSONResponse(document.model_dump(mode="json", exclude_none=True))

    @router.get("/.well-known/oauth-protected-resource")
    @router.get("/.well-known/oauth-protected-resource/mcp")
    async def protected_resource_metadata(request: Request) -> JSONResponse:
        enabled()
        root = base(request)
        resource = root + MCP_PATH if request.url.path.endswith(MCP_PATH) else root
        document = ProtectedResourceMetadata.model_validate({
            "resource": resource, "authorization_servers": [root], "resource_name": "Loomem",
            "bearer_methods_supported": ["header"],
        })
        return JSONResponse(document.model_dump(mode="json", exclude_none=True))

    @router.post("/oauth/register")
    async def register(request: Request) -> JSONResponse:
        issuer = enabled()
        try:
            metadata = OAuthClientMetadata.model_validate_json(await request.body())
        except ValidationError as exc:
            message, _ = describe_validation_errors(exc.errors(include_input=False))
            return _oauth_error("invalid_client_metadata", message)
        uris = [str(uri) for uri in metadata.redirect_uris or []]
        problems = [p for p in map(redirect_uri_problem, uris) if p]
        if len(uris) > MAX_REDIRECT_URIS:
            problems.append(f"at most {MAX_REDIRECT_URIS} redirect URIs")
        if problems:
            return _oauth_error("invalid_redirect_uri", "; ".join(sorted(set(problems))))
        if "authorization_code" not in metadata.grant_types or "code" not in metadata.response_types:
            return _oauth_error("invalid_client_metadata", "the client must use the authorization_code grant "
                                                           "with response type code")
        if metadata.client_name is not None and len(metadata.client_name) > MAX_CLIENT_NAME_CHARS:
            return _oauth_error("invalid_client_metadata",
                                f"client_name may be at most {MAX_CLIENT_NAME_CHARS} characters")
        # public clients only (RFC 7591 §3.2.1 lets the server replace the requested method): no secret to keep
        client = issuer.issue_client(metadata)
        _audit(request, "oauth.register", "success", client_name=metadata.client_name or "")
        return JSONResponse(client.model_dump(mode="json", exclude_none=True), status_code=201, headers=_NO_STORE)

    @router.get("/oauth/authorize")
    async def authorize_form(request: Request) -> Response:
        checked = check_authorization(enabled(), dict(request.query_params))
        return checked if isinstance(checked, Response) else render_form(checked)

    @router.post("/oauth/authorize")
    async def authorize(request: Request) -> Response:
        issuer = enabled()
        form = await request.form()
        params = {key: value for key, value in form.items() if isinstance(value, str)}
        checked = check_authorization(issuer, params)
        if isinstance(checked, Response):
            return checked
        name = checked.client.client_name or ""
        if not authenticator.check_key(params.get("api_key", "")):
            client = request.client.host if request.client is not None else ""
            authenticator.record_denial("oauth_invalid_key", request.method, request.url.path, client)
            return render_form(checked, "That is not this server's API key.", status=403)
        code = issuer.new_code(checked.client.client_id, checked.redirect_uri, checked.explicit, checked.challenge,
                               checked.resource)
        _audit(request, "oauth.authorize", "success", client_name=name)
        return _redirect(checked.redirect_uri, code=code, state=checked.state)

    @router.post("/oauth/token")
    async def token(request: Request) -> Response:
        enabled()
        assert token_handler is not None
        form = await request.form()
        grant = form.get("grant_type")
        answer: Response = await token_handler.handle(request)
        grant_type = grant if isinstance(grant, str) and len(grant) <= 64 else "?"
        if answer.status_code < 400:
            _audit(request, "oauth.token", "success", grant_type=grant_type)
        else:
            error = _error_name(answer)
            _audit(request, "oauth.token", "denied", grant_type=grant_type, error=error)
        return answer

    return router


def _error_name(answer: Response) -> str:
    """The RFC 6749 ``error`` of a token-endpoint refusal (never its description, which may quote input)."""
    try:
        body = json.loads(bytes(answer.body))
    except ValueError:
        return "?"
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else "?"
