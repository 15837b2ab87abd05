"""Authentication as the seed specifies it, over real HTTP against `loom serve` subprocesses."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from loom_core.client import LoomemClient
from loom_core.errors import ErrorCode, LoomError

WRONG = "wrong-" + "c0ffee" * 10  # a distinctive wrong key; it must never reach the log


def test_every_route_but_health_needs_the_key(api_server: Any, token: str) -> None:
    """Without a header: 401 AUTH_REQUIRED with a plain Bearer challenge, on API and docs routes."""
    base = api_server.base_url
    assert httpx.get(f"{base}/health").status_code == 200
    for method, path in [("GET", "/v1/streams"), ("POST", "/v1/search"), ("GET", "/v1/chunks/x"),
                         ("DELETE", "/v1/streams/s"), ("GET", "/openapi.json"), ("GET", "/docs"),
                         ("GET", "/v1/admin/consistency"), ("GET", "/v1/encryption/status"),
                         ("POST", "/v1/admin/backfill/encrypt-at-rest"), ("POST", "/v1/admin/backups")]:
        response = httpx.request(method, f"{base}{path}", json={"query": "q"} if method == "POST" else None)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]["code"] == "AUTH_REQUIRED", (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer"), (method, path)
        assert "invalid_token" not in response.headers["www-authenticate"]
    ok = httpx.get(f"{base}/v1/streams", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200


def test_auth_is_checked_before_the_body_or_the_route(api_server: Any, token: str) -> None:
    """Without the key, a malformed body, a body over the size limit and an unknown path all get 401
    (not 422, 413 or 404, which would tell an outsider about the API); with the key they get those."""
    base = api_server.base_url
    broken = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    huge = {"content": b"x" * (100 * 1024), "headers": {"Content-Type": "application/json"}}  # limit: 64 KiB
    cases = [("POST", "/v1/search", broken, 422), ("POST", "/v1/streams/s/chunks", huge, 413),
             ("GET", "/v1/no-such-route", {}, 404)]
    for method, path, extra, with_key in cases:
        anonymous = httpx.request(method, f"{base}{path}", timeout=60, **extra)  # type: ignore[arg-type]
        assert anonymous.status_code == 401, (path, anonymous.status_code)
        assert anonymous.json()["error"]["code"] == "AUTH_REQUIRED"
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        headers = {**extra.get("headers", {}), "Authorization": f"Bearer {token}"}  # type: ignore[dict-item]
        keyed = httpx.request(method, f"{base}{path}", timeout=60,
                              **{**extra, "headers": headers})  # type: ignore[arg-type]
        assert keyed.status_code == with_key, (path, keyed.status_code)


def test_wrong_key_is_invalid_token_and_never_logged(api_server: Any) -> None:
    """A wrong key: 401 AUTH_INVALID with error="invalid_token", an audit line, and no key in the log."""
    response = httpx.get(f"{api_server.base_url}/v1/streams", headers={"Authorization": f"Bearer {WRONG}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_INVALID"
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    malformed = httpx.get(f"{api_server.base_url}/v1/streams", headers={"Authorization": f"Basic {WRONG}"})
    assert malformed.status_code == 401 and malformed.json()["error"]["code"] == "AUTH_REQUIRED"
    httpx.get(f"{api_server.base_url}/health")
    logs = api_server.logs()
    audit = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and '"audit"' in line]
    reasons = [e["fields"]["details"]["reason"] for e in audit if e["fields"]["action"] == "auth.failure"]
    assert "invalid" in reasons and "malformed" in reasons
    assert (WRONG in logs) is False, "the wrong key leaked into the server log"
    assert (WRONG in response.text) is False, "the wrong key was echoed in the response"


def _denials(logs: str) -> list[str]:
    """The reasons of the auth.failure audit events in a server's JSON log."""
    audit = [json.loads(line) for line in logs.splitlines() if line.startswith("{") and '"audit"' in line]
    return [e["fields"]["details"]["reason"] for e in audit if e["fields"]["action"] == "auth.failure"]


def test_client_raises_the_servers_codes(api_server: Any, token: str) -> None:
    """LoomemClient turns error answers into LoomError with the server's stable code."""
    with LoomemClient(api_server.base_url, token=WRONG) as bad:
        with pytest.raises(LoomError) as info:
            bad.list_streams()
        assert info.value.code is ErrorCode.AUTH_INVALID
        assert (WRONG in repr(bad)) is False
    with LoomemClient(api_server.base_url, token=token) as client:
        chunk = client.add_chunk("client-stream", "a note written through the client")
        assert client.get_chunk(chunk["id"])["content"] == "a note written through the client"
        with pytest.raises(LoomError) as info:
            client.get_chunk("01-missing")
        assert info.value.code is ErrorCode.NOT_FOUND
        with pytest.raises(LoomError) as info:
            client.search("")
        assert info.value.code is ErrorCode.VALIDATION_FAILED


def test_client_reports_an_unreachable_server() -> None:
    """A refused connection is SERVER_UNAVAILABLE, not a raw httpx exception."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with LoomemClient(f"http://127.0.0.1:{port}", timeout=2) as client, pytest.raises(LoomError) as info:
        client.health()
    assert info.value.code is ErrorCode.SERVER_UNAVAILABLE


def test_passthrough_mode_accepts_everything_and_says_so(spawn: Callable[..., Any]) -> None:
    """With no key configured, requests need no header, /health says passthrough, start-up warns."""
    server = spawn(token=None).start()
    health = httpx.get(f"{server.base_url}/health").json()
    assert health["auth"] == "passthrough"
    assert httpx.get(f"{server.base_url}/v1/streams").status_code == 200
    assert httpx.get(f"{server.base_url}/openapi.json").status_code == 200
    warnings = [json.loads(line) for line in server.logs().splitlines()
                if line.startswith("{") and '"WARNING"' in line]
    assert any("passthrough" in w["message"] and "AUTHENTICATION DISABLED" in w["message"] for w in warnings)


def test_passthrough_answers_only_requests_addressed_to_this_machine(spawn: Callable[..., Any]) -> None:
    """Without a key a web page could reach the server through DNS rebinding (its own domain resolved to
    127.0.0.1, its Host header unchanged) and read, write and delete every stream. Passthrough answers
    only loopback host names; with a key configured any Host is fine."""
    server = spawn(token=None).start()
    port = server.base_url.rsplit(":", 1)[1]
    for host in ("attacker.example", f"attacker.example:{port}", "192.168.1.5", "localhost.evil.test", "[::2]"):
        response = httpx.get(f"{server.base_url}/v1/streams", headers={"Host": host})
        assert response.status_code == 401, host
        assert response.json()["error"]["code"] == "AUTH_REQUIRED" and "passthrough" in response.text
    assert _denials(server.logs()).count("passthrough_non_local_host") == 5  # a rebinding attempt is audited
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST", "127.0.0.2", "localhost.",
                 "[::ffff:127.0.0.1]", ""):  # "": no Host header at all (HTTP/1.0), which browsers never send
        assert httpx.get(f"{server.base_url}/v1/streams", headers={"Host": host}).status_code == 200, host
    assert httpx.get(f"{server.base_url}/health", headers={"Host": "attacker.example"}).status_code == 200


def test_passthrough_refuses_what_a_page_on_another_origin_sends(spawn: Callable[..., Any]) -> None:
    """A page the user visits can POST to 127.0.0.1 without a preflight (a body-less admin POST, a
    text/plain body): its browser adds Origin (or Sec-Fetch-Site: cross-site). Without a key such a
    request wrote a backup; now it is refused and audited, and nothing is written."""
    server = spawn(token=None).start()
    port = server.base_url.rsplit(":", 1)[1]
    attempts = [
        {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        {"Origin": "null"},
        {"Origin": "http://localhost.evil.test"},
        {"Sec-Fetch-Site": "cross-site"},
    ]
    for headers in attempts:
        response = httpx.post(f"{server.base_url}/v1/admin/backups", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "AUTH_REQUIRED" and "another origin" in response.text
    assert _denials(server.logs()).count("passthrough_cross_origin") == len(attempts)
    backups = server.log_path.parent / "data-backups"  # server.backup_dir's default
    assert not backups.exists() or not any(backups.iterdir()), "a refused request still wrote a backup"
    assert httpx.post(f"{server.base_url}/v1/admin/backups").status_code == 201  # the test can see one
    assert any(backups.iterdir())
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}"):
        response = httpx.get(f"{server.base_url}/v1/streams", headers={"Origin": origin})
        assert response.status_code == 200, origin


def test_with_a_key_any_host_name_is_served(api_server: Any, token: str) -> None:
    response = httpx.get(f"{api_server.base_url}/v1/streams",
                         headers={"Host": "memory.example.org", "Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_passthrough_on_a_network_address_warns_again(spawn: Callable[..., Any]) -> None:
    """Binding a non-loopback address without a key adds a warning that the open server is reachable."""
    everywhere = "0.0.0.0"  # noqa: S104 - the point of the test
    server = spawn(token=None, extra_args=["--host", everywhere]).start()
    warnings = [json.loads(line)["message"] for line in server.logs().splitlines()
                if line.startswith("{") and '"WARNING"' in line]
    assert any("reachable from the network" in w and everywhere in w for w in warnings)


def test_key_named_by_auth_token_env_is_used(spawn: Callable[..., Any], tmp_path: Any) -> None:
    """server.auth_token_env names the variable; LOOMEM_AUTH_TOKEN is then ignored."""
    config = tmp_path / "alt.toml"
    config.write_text('[server]\nauth_token_env = "ALT_LOOMEM_KEY"\n', encoding="utf-8")
    key = "alt-" + "5" * 60
    server = spawn(token="ignored-" + "9" * 40, env={"ALT_LOOMEM_KEY": key},
                   extra_args=["--config", str(config)]).start()
    assert httpx.get(f"{server.base_url}/v1/streams", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    old = httpx.get(f"{server.base_url}/v1/streams", headers={"Authorization": f"Bearer ignored-{'9' * 40}"})
    assert old.status_code == 401


def test_key_from_a_secret_reference(spawn: Callable[..., Any], tmp_path: Any) -> None:
    """server.auth_token_ref resolves through the secrets providers (env:// here)."""
    config = tmp_path / "ref.toml"
    config.write_text('[server]\nauth_token_ref = "env://REF_LOOMEM_KEY"\n', encoding="utf-8")
    key = "ref-" + "a1" * 30
    server = spawn(token=None, env={"REF_LOOMEM_KEY": key}, extra_args=["--config", str(config)]).start()
    assert httpx.get(f"{server.base_url}/health").json()["auth"] == "bearer"
    assert httpx.get(f"{server.base_url}/v1/streams", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert httpx.get(f"{server.base_url}/v1/streams").status_code == 401


def test_blank_key_refuses_to_start(tmp_path: Any, unused_port: int) -> None:
    """LOOMEM_AUTH_TOKEN set but empty: `loom serve` exits 1 with CONFIG_INVALID instead of going open."""
    env = {"PATH": "/usr/bin:/bin", "LOOMEM_AUTH_TOKEN": ""}
    result = subprocess.run([sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir",
                             str(tmp_path / "d"), "--port", str(unused_port)], env=env, capture_output=True,
                            text=True,
                            timeout=120)
    assert result.returncode == 1
    assert "error[CONFIG_INVALID]" in result.stderr and "LOOMEM_AUTH_TOKEN" in result.stderr


def test_an_oversized_request_head_is_refused_before_it_is_read_whole(api_server: Any) -> None:
    """With httptools a header of any size was read and parsed (a 100 MB one stalled every client for
    seconds, no key needed); the server now answers 400 once the head passes 16 KiB."""
    import socket

    host, port = api_server.base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(b"GET /v1/streams HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"a" * 64_000)
        with contextlib.suppress(OSError):  # the server may already have answered and closed
            conn.sendall(b"a" * 64_000 + b"\r\n\r\n")
        reply = conn.recv(100)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert httpx.get(f"{api_server.base_url}/health").status_code == 200


@pytest.mark.parametrize("size", [17_000, 70_000])
def test_a_large_head_sent_in_one_piece_is_refused_too(api_server: Any, token: str, size: int) -> None:
    """h11 bounds only a head still incomplete in its buffer: 70 KB of header arriving in one write was
    parsed and served (200). Any head over 16 KiB is now answered 431 with the coded error."""
    import socket

    host, port = api_server.base_url.removeprefix("http://").rsplit(":", 1)
    head = (f"GET /v1/streams HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n"
            f"X-Pad: {'a' * size}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(head)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    status, _, body = reply.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 431 "), status[:40]
    assert json.loads(body)["error"]["code"] == "HEADERS_TOO_LARGE"
    small = httpx.get(f"{api_server.base_url}/v1/streams", headers={"Authorization": f"Bearer {token}",
                                                                     "X-Pad": "a" * 15_000})
    assert small.status_code == 200


@pytest.mark.parametrize("trusted", ["", "127.0.0.1"])
def test_only_configured_proxies_choose_the_audited_client_address(
    spawn: Callable[..., Any], tmp_path: Any, trusted: str
) -> None:
    """uvicorn believed X-Forwarded-For from any local client, which could then write the address its
    auth.failure audit event records. Only `server.trusted_proxies` are believed now."""
    config = tmp_path / "proxies.toml"
    config.write_text(f'[server]\ntrusted_proxies = "{trusted}"\n', encoding="utf-8")
    server = spawn(token="k-" + "5" * 40, extra_args=["--config", str(config)]).start()
    httpx.get(f"{server.base_url}/v1/streams", headers={"X-Forwarded-For": "6.6.6.6"})
    audit = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{") and '"audit"' in line]
    [failure] = [e["fields"] for e in audit if e["fields"]["action"] == "auth.failure"]
    assert failure["details"]["client"] == ("6.6.6.6" if trusted else "127.0.0.1")


def test_health_answers_head_and_no_route_redirects(api_server: Any, token: str) -> None:
    """Monitors probing with HEAD got 405; an authenticated GET /v1/streams/ answered 307 with a
    Location built from the client's Host header (an open redirect to any host it named)."""
    assert httpx.head(f"{api_server.base_url}/health").status_code == 200
    slashed = httpx.get(f"{api_server.base_url}/v1/streams/",
                        headers={"Authorization": f"Bearer {token}", "Host": "evil.example"})
    assert slashed.status_code == 404 and "location" not in slashed.headers


def test_two_authorization_headers_are_refused(api_server: Any, token: str) -> None:
    """The first of two headers counted: "Bearer <key>" then "Bearer bad" was let in, which is up to
    whichever hop reads first. A request with more than one is refused."""
    response = httpx.get(f"{api_server.base_url}/v1/streams",
                         headers=[("Authorization", f"Bearer {token}"), ("Authorization", "Bearer bad")])
    assert response.status_code == 401 and response.json()["error"]["code"] == "AUTH_INVALID"
    assert "more than one Authorization header" in response.text
    assert "several_authorization_headers" in _denials(api_server.logs())
    single = httpx.get(f"{api_server.base_url}/v1/streams", headers={"Authorization": f"Bearer {token}"})
    assert single.status_code == 200


def test_serve_warns_about_settings_that_do_nothing_yet(spawn: Callable[..., Any], tmp_path: Any) -> None:
    """An operator who turns on [pii] is told at start-up that nothing is filtered in this release."""
    config = tmp_path / "pii.toml"
    config.write_text("[pii]\nenabled = true\n", encoding="utf-8")
    server = spawn(token="k-" + "6" * 40, extra_args=["--config", str(config)]).start()
    warnings = [json.loads(line)["message"] for line in server.logs().splitlines()
                if line.startswith("{") and '"WARNING"' in line]
    assert any("[pii]" in w and "nothing is filtered" in w for w in warnings)


def test_405_lists_every_method_the_path_serves(api_server: Any, token: str) -> None:
    """Starlette's 405 named only the first route's methods (``allow: GET`` on /v1/chunks/{id}, whose
    DELETE is another route)."""
    auth = {"Authorization": f"Bearer {token}"}
    for path, expected in (("/v1/chunks/01J00000000000000000000000", {"GET", "DELETE"}),
                           ("/v1/streams/s/chunks", {"GET", "POST"})):
        response = httpx.put(f"{api_server.base_url}{path}", headers=auth)
        assert response.status_code == 405
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert expected <= allowed and "PUT" not in allowed, (path, allowed)
        assert response.json()["error"]["code"] == "USAGE_ERROR"
