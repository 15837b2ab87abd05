"""Key resolution and the header check, without a server: fail closed, constant-time compare."""

from __future__ import annotations

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.server.auth import KEY_ACTOR, PASSTHROUGH_ACTOR, Authenticator, resolve_api_key

KEY = "0123456789abcdef" * 4


def test_no_variable_means_passthrough() -> None:
    """With the variable unset there is no key, and every request is admin."""
    key = resolve_api_key("LOOMEM_AUTH_TOKEN", "", {})
    assert key is None
    auth = Authenticator(key)
    assert auth.passthrough
    principal = auth.authenticate(None)
    assert principal.actor == PASSTHROUGH_ACTOR and principal.is_admin


def test_variable_named_by_config_is_read() -> None:
    """server.auth_token_env names the variable; other variables are ignored."""
    key = resolve_api_key("MY_KEY", "", {"MY_KEY": KEY, "LOOMEM_AUTH_TOKEN": "other-other-other"})
    assert key is not None and key.reveal() == KEY.encode()
    assert Authenticator(key).authenticate(f"Bearer {KEY}").actor == KEY_ACTOR


@pytest.mark.parametrize("stored", [KEY + "\n", KEY + "\r\n", f"  {KEY}\t"])
def test_a_key_with_surrounding_whitespace_still_authenticates(stored: str) -> None:
    """A key read from a file or an env file often ends in a newline; HTTP strips the header's
    value, so the untrimmed key could never match (the server started "secured" and refused
    every request). The configured key is trimmed."""
    key = resolve_api_key("LOOMEM_AUTH_TOKEN", "", {"LOOMEM_AUTH_TOKEN": stored})
    assert key is not None and key.reveal() == KEY.encode()
    assert Authenticator(key).authenticate(f"Bearer {KEY}").actor == KEY_ACTOR
    from loom_core.plugins.host import PluginHost

    env = {"KEY_FILE_VALUE": stored}
    referenced = resolve_api_key("", "env://KEY_FILE_VALUE", env, PluginHost(environ=env))
    assert referenced is not None and referenced.reveal() == KEY.encode()


def test_blank_variable_fails_closed_without_echoing() -> None:
    """A set-but-blank variable is CONFIG_INVALID, not a silent switch to passthrough."""
    with pytest.raises(LoomError) as info:
        resolve_api_key("LOOMEM_AUTH_TOKEN", "", {"LOOMEM_AUTH_TOKEN": "   "})
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "LOOMEM_AUTH_TOKEN" in info.value.message


def test_a_reference_and_the_variable_together_are_refused() -> None:
    """server.auth_token_ref plus a set LOOMEM_AUTH_TOKEN is CONFIG_INVALID naming both, not a
    precedence rule that silently ignores one of the two keys; neither value is echoed."""
    from loom_core.plugins.host import PluginHost

    env = {"LOOMEM_AUTH_TOKEN": KEY, "REF_KEY": "ref-" + KEY}
    with pytest.raises(LoomError) as info:
        resolve_api_key("LOOMEM_AUTH_TOKEN", "env://REF_KEY", env, PluginHost(environ=env))
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "server.auth_token_ref" in info.value.message and "LOOMEM_AUTH_TOKEN" in info.value.message
    assert KEY not in str(info.value)
    key = resolve_api_key("LOOMEM_AUTH_TOKEN", "env://REF_KEY", {"REF_KEY": "ref-" + KEY},
                          PluginHost(environ={"REF_KEY": "ref-" + KEY}))
    assert key is not None and key.reveal() == ("ref-" + KEY).encode()
    same = {"LOOMEM_AUTH_TOKEN": KEY}  # a reference to the very variable is one key, not two
    key = resolve_api_key("LOOMEM_AUTH_TOKEN", "env://LOOMEM_AUTH_TOKEN", same, PluginHost(environ=same))
    assert key is not None and key.reveal() == KEY.encode()


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, ErrorCode.AUTH_REQUIRED),
        ("", ErrorCode.AUTH_REQUIRED),
        (f"Basic {KEY}", ErrorCode.AUTH_REQUIRED),
        ("Bearer", ErrorCode.AUTH_REQUIRED),
        ("Bearer wrong-key-of-some-length", ErrorCode.AUTH_INVALID),
        (f"Bearer {KEY}x", ErrorCode.AUTH_INVALID),
        (f"Bearer {KEY[:-1]}", ErrorCode.AUTH_INVALID),
        ("Bearer \u00e9t\u00e9", ErrorCode.AUTH_INVALID),
    ],
)
def test_bad_headers_are_refused_with_the_right_code(header: str | None, code: ErrorCode) -> None:
    """Missing or malformed headers are AUTH_REQUIRED, a wrong key AUTH_INVALID."""
    from loom_core.contracts.secrets import SecretValue

    auth = Authenticator(SecretValue(KEY.encode()))
    with pytest.raises(LoomError) as info:
        auth.authenticate(header, method="GET", path="/v1/streams")
    assert info.value.code is code
    assert (KEY in str(info.value)) is False, "key leaked into the error"


def test_scheme_is_case_insensitive() -> None:
    """RFC 7235: the auth scheme name is case-insensitive."""
    from loom_core.contracts.secrets import SecretValue

    auth = Authenticator(SecretValue(KEY.encode()))
    assert auth.authenticate(f"bearer {KEY}").is_admin


def test_the_gate_leaves_health_open_under_a_proxy_prefix() -> None:
    """Mounted under a root path (a reverse proxy's prefix), /health is still open and the API is
    still refused without the key: the gate matches the app's own path, not the prefixed one."""
    import asyncio

    from loom_core.server.gate import AuthGate

    reached: list[str] = []

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        reached.append(str(scope["path"]))

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    gate = AuthGate(app, Authenticator(resolve_api_key("K", "", {"K": KEY})))  # type: ignore[arg-type]
    for path in ("/loomem/health", "/loomem/v1/streams"):
        scope = {"type": "http", "path": path, "root_path": "/loomem", "headers": [], "method": "GET",
                 "client": ("127.0.0.1", 1)}
        asyncio.run(gate(scope, receive, send))  # type: ignore[arg-type]
    assert reached == ["/loomem/health"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [401]



def test_a_variable_named_in_the_configuration_must_be_set() -> None:
    """`server.auth_token_env` written in the file means the server is meant to need a key: the
    variable missing is CONFIG_INVALID, not passthrough. A key pasted into the setting instead of
    a variable name (6 in 16 hex keys start with a letter, so they pass as a name) is not echoed."""
    from loom_core.config.loader import validate_config
    from loom_core.server.app import create_app

    pasted = "c3" + "9f" * 31
    config = validate_config({"server": {"auth_token_env": pasted}}, {})
    with pytest.raises(LoomError) as info:
        create_app(config=config, environ={})
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert pasted not in info.value.message and pasted not in str(info.value.details)
    upper = pasted.upper()  # upper-case hex, 64 characters: spelled like a variable, still not shown
    with pytest.raises(LoomError) as hidden:
        resolve_api_key(upper, "", {}, env_configured=True)
    assert upper not in hidden.value.message
    with pytest.raises(LoomError) as named:
        resolve_api_key("TEAM_LOOMEM_KEY", "", {}, env_configured=True)
    assert "TEAM_LOOMEM_KEY" in named.value.message  # a conventional name is shown, to fix a typo
    assert resolve_api_key("TEAM_LOOMEM_KEY", "", {}) is None  # the default name, unset: passthrough
