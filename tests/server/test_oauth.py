"""OAuth 2.0 for MCP clients, end to end over real HTTP (httpx) against real servers on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from mcp.client import Client

from loom_core.config import LoomConfig
from loom_core.plugins.host import PluginHost
from loom_core.server.app import create_app
from tests.server.conftest import TOKEN, ServerProcess
from tests.server.test_lifecycle import Recorder, running
from tests.server.test_mcp import audit_events, with_client

REDIRECT = "http://127.0.0.1:33418/callback"
WRONG = "not-the-key-" + "a1b2c3" * 8


def pkce() -> tuple[str, str]:
    """``(verifier, S256 challenge)``."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def register(base: str, uris: list[str] | None = None, **extra: Any) -> httpx.Response:
    body = {"redirect_uris": uris if uris is not None else [REDIRECT], "client_name": "Test <b>Client</b>", **extra}
    return httpx.post(f"{base}/oauth/register", json=body)


def ask(client_id: str, challenge: str, state: str = "st-123", **extra: str) -> dict[str, str]:
    return {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT, "code_challenge": challenge,
            "code_challenge_method": "S256", "state": state, **extra}


def authorize(base: str, params: dict[str, str], key: str) -> httpx.Response:
    return httpx.post(f"{base}/oauth/authorize", data={**params, "api_key": key}, follow_redirects=False)


def code_from(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


def exchange(base: str, client_id: str, code: str, verifier: str, **extra: str) -> httpx.Response:
    return httpx.post(f"{base}/oauth/token", data={"grant_type": "authorization_code", "code": code,
                                                   "client_id": client_id, "code_verifier": verifier,
                                                   "redirect_uri": REDIRECT, **extra})


def grant(base: str, key: str = TOKEN) -> dict[str, Any]:
    """The whole flow: register, authorize with PKCE, exchange. Returns the token answer and the client id."""
    client_id = register(base).json()["client_id"]
    verifier, challenge = pkce()
    code = code_from(authorize(base, ask(client_id, challenge), key))["code"][0]
    answer = exchange(base, client_id, code, verifier)
    assert answer.status_code == 200, answer.text
    return {**answer.json(), "client_id": client_id, "code": code, "verifier": verifier}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mcp_tools(base: str, token: str) -> set[str]:
    async def scenario(client: Client) -> set[str]:
        return {tool.name for tool in (await client.list_tools()).tools}

    names: set[str] = with_client(base, bearer(token), scenario)
    return names


def test_discovery_documents_and_the_mcp_challenge(api_server: ServerProcess) -> None:
    base = api_server.base_url
    server_meta = httpx.get(f"{base}/.well-known/oauth-authorization-server").json()
    assert server_meta["issuer"] == base
    assert server_meta["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert server_meta["token_endpoint"] == f"{base}/oauth/token"
    assert server_meta["registration_endpoint"] == f"{base}/oauth/register"
    assert server_meta["code_challenge_methods_supported"] == ["S256"]
    assert server_meta["token_endpoint_auth_methods_supported"] == ["none"]
    resource = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp").json()
    assert resource["resource"] == f"{base}/mcp" and resource["authorization_servers"] == [base]
    assert httpx.get(f"{base}/.well-known/oauth-protected-resource").json()["resource"] == base
    refused = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert refused.status_code == 401
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith("Bearer") and \
        f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert "resource_metadata" not in httpx.get(f"{base}/v1/streams").headers["www-authenticate"]


def test_registration_takes_public_clients_with_safe_redirect_uris(api_server: ServerProcess) -> None:
    base = api_server.base_url
    ok = register(base, ["https://app.example/cb", "http://[::1]:8080/cb", "http://localhost/cb"],
                  token_endpoint_auth_method="client_secret_post")
    assert ok.status_code == 201
    client = ok.json()
    assert client["token_endpoint_auth_method"] == "none" and "client_secret" not in client
    assert client["redirect_uris"] == ["https://app.example/cb", "http://[::1]:8080/cb", "http://localhost/cb"]
    for bad in (["http://evil.example/cb"], ["javascript:alert(1)"], ["https://app.example/cb#frag"],
                ["ftp://127.0.0.1/cb"]):
        refused = register(base, bad)
        assert refused.status_code == 400, bad
        assert refused.json()["error"] in {"invalid_redirect_uri", "invalid_client_metadata"}, bad
    assert register(base, []).status_code == 400
    assert httpx.post(f"{base}/oauth/register", content=b"{not json").json()["error"] == "invalid_client_metadata"


def test_the_whole_flow_and_the_token_is_the_key(api_server: ServerProcess) -> None:
    base = api_server.base_url
    client_id = register(base).json()["client_id"]
    verifier, challenge = pkce()
    params = ask(client_id, challenge)
    form = httpx.get(f"{base}/oauth/authorize", params=params)
    assert form.status_code == 200 and form.headers["content-type"].startswith("text/html")
    assert form.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in form.headers["content-security-policy"]
    assert "Test &lt;b&gt;Client&lt;/b&gt;" in form.text and "<b>Client</b>" not in form.text
    assert REDIRECT in form.text and 'type=password' in form.text
    assert "<script" not in form.text and "http://" not in form.text.replace(REDIRECT, "")

    wrong = authorize(base, params, WRONG)
    assert wrong.status_code == 403 and "location" not in wrong.headers
    assert "not this server&#x27;s API key" in wrong.text and "type=password" in wrong.text

    answer = code_from(authorize(base, params, TOKEN))
    assert answer["state"] == ["st-123"]
    code = answer["code"][0]
    tokens = exchange(base, client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["refresh_token"]
    assert tokens.headers["cache-control"] == "no-store"
    again = exchange(base, client_id, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"

    access = body["access_token"]
    assert httpx.get(f"{base}/v1/streams", headers=bearer(access)).status_code == 200
    assert "remember" in mcp_tools(base, access)
    tampered = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    assert httpx.get(f"{base}/v1/streams", headers=bearer(tampered)).json()["error"]["code"] == "AUTH_INVALID"
    assert httpx.get(f"{base}/v1/streams", headers=bearer(body["refresh_token"])).status_code == 401

    refreshed = httpx.post(f"{base}/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id,
                                                         "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert httpx.get(f"{base}/v1/streams", headers=bearer(refreshed.json()["access_token"])).status_code == 200
    other = register(base).json()["client_id"]
    stolen = httpx.post(f"{base}/oauth/token", data={"grant_type": "refresh_token", "client_id": other,
                                                      "refresh_token": body["refresh_token"]})
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"

    events = audit_events(api_server)
    assert any(e["action"] == "auth.failure" and e["details"]["reason"] == "oauth_invalid_key" for e in events)
    assert any(e["action"] == "oauth.authorize" and e["outcome"] == "success" for e in events)
    assert any(e["action"] == "oauth.token" and e["details"].get("error") == "invalid_grant" for e in events)
    logs = api_server.logs()
    for secret in (TOKEN, WRONG, code, verifier, access, body["refresh_token"], refreshed.json()["access_token"]):
        assert secret not in logs


def test_a_wrong_verifier_burns_the_code(api_server: ServerProcess) -> None:
    base = api_server.base_url
    client_id = register(base).json()["client_id"]
    verifier, challenge = pkce()
    code = code_from(authorize(base, ask(client_id, challenge), TOKEN))["code"][0]
    wrong = exchange(base, client_id, code, pkce()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert exchange(base, client_id, code, verifier).json()["error"] == "invalid_grant"
    other = register(base).json()["client_id"]
    code = code_from(authorize(base, ask(client_id, challenge), TOKEN))["code"][0]
    assert exchange(base, other, code, verifier).json()["error"] == "invalid_grant"  # another client's code
    code = code_from(authorize(base, ask(client_id, challenge), TOKEN))["code"][0]
    moved = exchange(base, client_id, code, verifier, redirect_uri="http://127.0.0.1:1/elsewhere")
    assert moved.status_code == 400


@pytest.mark.parametrize("change, error", [
    ({"code_challenge": ""}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": ""}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
])
def test_authorization_without_s256_pkce_is_refused_to_the_client(api_server: ServerProcess,
                                                                  change: dict[str, str], error: str) -> None:
    base = api_server.base_url
    client_id = register(base).json()["client_id"]
    params = {k: v for k, v in {**ask(client_id, pkce()[1]), **change}.items() if v}
    for response in (httpx.get(f"{base}/oauth/authorize", params=params, follow_redirects=False),
                     authorize(base, params, TOKEN)):
        query = code_from(response)
        assert query["error"] == [error] and query["state"] == ["st-123"] and "code" not in query


def test_an_unregistered_redirect_or_client_gets_a_page_not_a_redirect(api_server: ServerProcess) -> None:
    base = api_server.base_url
    client_id = register(base).json()["client_id"]
    params = ask(client_id, pkce()[1], redirect_uri="http://127.0.0.1:33418/other")
    for response in (httpx.get(f"{base}/oauth/authorize", params=params), authorize(base, params, TOKEN)):
        assert response.status_code == 400 and "location" not in response.headers
        assert response.headers["x-frame-options"] == "DENY"
    forged = ask(client_id[:-3] + "xyz", pkce()[1])
    assert httpx.get(f"{base}/oauth/authorize", params=forged).status_code == 400
    assert authorize(base, forged, TOKEN).status_code == 400


def test_restart_keeps_tokens_and_a_new_key_voids_them(spawn: Callable[..., ServerProcess]) -> None:
    server = spawn().start()
    base = server.base_url
    first = grant(base)
    server.restart()
    assert httpx.get(f"{base}/v1/streams", headers=bearer(first["access_token"])).status_code == 200
    server.env["LOOMEM_AUTH_TOKEN"] = "rotated-" + "9e" * 30
    server.restart()
    refused = httpx.get(f"{base}/v1/streams", headers=bearer(first["access_token"]))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "AUTH_INVALID"
    refresh = httpx.post(f"{base}/oauth/token", data={"grant_type": "refresh_token", "client_id": first["client_id"],
                                                       "refresh_token": first["refresh_token"]})
    assert refresh.status_code == 401 and refresh.json()["error"] == "invalid_client"  # the client id too
    assert httpx.get(f"{base}/v1/streams", headers=bearer(server.env["LOOMEM_AUTH_TOKEN"])).status_code == 200
    second = grant(base, key=server.env["LOOMEM_AUTH_TOKEN"])
    assert httpx.get(f"{base}/v1/streams", headers=bearer(second["access_token"])).status_code == 200


def test_passthrough_turns_oauth_off_with_a_code(spawn: Callable[..., ServerProcess]) -> None:
    base = spawn(token=None).start().base_url
    for method, path in [("GET", "/.well-known/oauth-authorization-server"),
                         ("GET", "/.well-known/oauth-protected-resource"), ("POST", "/oauth/register"),
                         ("GET", "/oauth/authorize"), ("POST", "/oauth/token")]:
        response = httpx.request(method, f"{base}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "OAUTH_UNAVAILABLE", path


def test_expired_tokens_and_codes_are_refused_by_the_servers_clock(tmp_path: Path) -> None:
    """The clock is injected: an hour and a second later the access token is refused, the refresh
    token still works; a code older than two minutes is refused."""
    now = [1_900_000_000.0]
    recorder = Recorder()
    host = PluginHost(environ={})
    host.register_plugin(recorder, "test-recorder")
    app = create_app(LoomConfig(), host=host, data_dir=tmp_path / "data", environ={"LOOMEM_AUTH_TOKEN": TOKEN},
                     clock=lambda: now[0])
    with running(app) as (base, server):
        assert server.started
        tokens = grant(base)
        assert httpx.get(f"{base}/v1/streams", headers=bearer(tokens["access_token"])).status_code == 200
        now[0] += 3601
        expired = httpx.get(f"{base}/v1/streams", headers=bearer(tokens["access_token"]))
        assert expired.status_code == 401 and expired.json()["error"]["code"] == "AUTH_INVALID"
        assert "expired" in expired.json()["error"]["message"]
        refreshed = httpx.post(f"{base}/oauth/token", data={
            "grant_type": "refresh_token", "client_id": tokens["client_id"], "refresh_token": tokens["refresh_token"]})
        assert httpx.get(f"{base}/v1/streams", headers=bearer(refreshed.json()["access_token"])).status_code == 200

        client_id = register(base).json()["client_id"]
        verifier, challenge = pkce()
        code = code_from(authorize(base, ask(client_id, challenge), TOKEN))["code"][0]
        now[0] += 121
        late = exchange(base, client_id, code, verifier)
        assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
        now[0] += 31 * 24 * 3600
        stale = httpx.post(f"{base}/oauth/token", data={
            "grant_type": "refresh_token", "client_id": tokens["client_id"], "refresh_token": tokens["refresh_token"]})
        assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    events = [e for kind, e in recorder.calls if kind == "audit"]
    reasons = [e.details.get("reason") for e in events if e.action == "auth.failure"]
    assert "expired_token" in reasons
    for event in events:
        text = repr(event) + json.dumps(event.details)
        assert TOKEN not in text and tokens["access_token"] not in text and tokens["code"] not in text
