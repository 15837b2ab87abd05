"""op:// resolves through ``op read`` with the token in the child's environment only."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loom_secrets_op.cli import PASSTHROUGH
from loom_secrets_op.provider import OpProvider
from loom_secrets_op.testing import FakeOp

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import SecretRef, SecretsProvider
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost

Make = Callable[..., OpProvider]
Failure = Callable[[OpProvider, str], LoomError]


def get(provider: OpProvider, raw: str) -> bytes:
    return provider.resolve(SecretRef.parse(raw)).reveal()


def test_resolves_exact_bytes(fake_op: FakeOp, make_provider: Make) -> None:
    """The value comes back byte for byte; one trailing newline in the value is kept (``--no-newline``)."""
    plain = fake_op.put("prod", "db", "password", b"pg-password-value")
    trailing = fake_op.put("prod", "cert", "pem", b"-----BEGIN-----\nabc\n-----END-----\n")
    p = make_provider()
    assert isinstance(p, SecretsProvider)
    assert get(p, plain) == b"pg-password-value"
    assert get(p, trailing) == b"-----BEGIN-----\nabc\n-----END-----\n"


def test_section_and_names_with_spaces(fake_op: FakeOp, make_provider: Make) -> None:
    """``op://vault/item/section/field`` and names with spaces and dots resolve."""
    ref = fake_op.put("prod", "Web App.v2", "api key", b"sectioned-value", section="Server Creds")
    assert ref == "op://prod/Web App.v2/Server Creds/api key"
    assert get(make_provider(), ref) == b"sectioned-value"


def test_child_argv_and_environment(fake_op: FakeOp, make_provider: Make, token: str) -> None:
    """argv is ``op read --no-newline REF``; the token is only in the environment, which is minimal."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    get(make_provider(), ref)
    (call,) = fake_op.calls()
    assert call["argv"][1:] == ["read", "--no-newline", ref]
    assert Path(call["argv"][0]).name == "op"
    assert (token in " ".join(call["argv"])) is False, "token appeared in argv"
    assert call["env"]["OP_SERVICE_ACCOUNT_TOKEN"] == token
    allowed = {"PATH", "HOME", "OP_SERVICE_ACCOUNT_TOKEN", *PASSTHROUGH}
    extra = set(call["env"]) - allowed - {"PWD", "SHLVL", "_", "LC_CTYPE"}  # set by the interpreter
    assert extra == set(), f"unexpected variables reached op: {sorted(extra)}"
    assert "AWS_SECRET_ACCESS_KEY" not in call["env"]


def test_query_attribute_is_passed_through(fake_op: FakeOp, make_provider: Make) -> None:
    """``?attribute=otp`` is valid syntax and reaches op unchanged."""
    fake_op.put("prod", "totp", "one-time password", b"123456-otp")
    ref = "op://prod/totp/one-time password?attribute=otp"
    assert get(make_provider(), ref) == b"123456-otp"
    assert fake_op.calls()[-1]["argv"][-1] == ref


def test_missing_token_fails_without_running_op(fake_op: FakeOp, make_provider: Make, failure: Failure) -> None:
    """No (or a blank) OP_SERVICE_ACCOUNT_TOKEN is SECRETS_AUTH_MISSING and op never starts."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    for env in ({"OP_SERVICE_ACCOUNT_TOKEN": None}, {"OP_SERVICE_ACCOUNT_TOKEN": "  "}):
        err = failure(make_provider(**env), ref)
        assert err.code == ErrorCode.SECRETS_AUTH_MISSING
        assert "OP_SERVICE_ACCOUNT_TOKEN" in err.message
    assert fake_op.calls() == []


def test_token_only_from_context_environ(
    fake_op: FakeOp, make_provider: Make, failure: Failure, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token in the process environment is not used when the context has none."""
    monkeypatch.setenv("OP_SERVICE_ACCOUNT_TOKEN", token)
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    assert failure(make_provider(OP_SERVICE_ACCOUNT_TOKEN=None), ref).code == ErrorCode.SECRETS_AUTH_MISSING


@pytest.mark.parametrize(
    ("ref", "code", "reason"),
    [
        ("op://nope/db/password", ErrorCode.SECRETS_NOT_FOUND, "vault"),
        ("op://prod/nope/password", ErrorCode.SECRETS_NOT_FOUND, "item"),
        ("op://prod/forbidden/password", ErrorCode.SECRETS_NOT_FOUND, "item"),
        ("op://prod/db/nope", ErrorCode.SECRETS_FIELD_NOT_FOUND, "field"),
        ("op://prod/db/sec/password", ErrorCode.SECRETS_FIELD_NOT_FOUND, "field"),
        ("op://locked/admin/password", ErrorCode.SECRETS_ACCESS_DENIED, "403"),
    ],
)
def test_cli_failures_map_to_distinct_codes(
    fake_op: FakeOp, make_provider: Make, failure: Failure, ref: str, code: ErrorCode, reason: str
) -> None:
    """Vault, item, field missing and 403 each get their code; the message names the ref, not stderr."""
    fake_op.put("prod", "db", "password", b"pg-password-value")
    err = failure(make_provider(), ref)
    assert err.code == code
    assert ref in err.message and reason in err.message
    assert "[ERROR]" not in err.message and "Specify the" not in err.message


def test_invalid_token_is_auth_invalid_and_not_echoed(
    fake_op: FakeOp, make_provider: Make, failure: Failure
) -> None:
    """A token op cannot decode is SECRETS_AUTH_INVALID; neither token appears in the error."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    bad = "ops_not-a-real-token-value-123"
    err = failure(make_provider(OP_SERVICE_ACCOUNT_TOKEN=bad), ref)
    assert err.code == ErrorCode.SECRETS_AUTH_INVALID
    assert (bad in f"{err} {err!r}") is False, "the rejected token leaked into the error"


def test_stdout_of_a_failed_call_is_never_echoed(fake_op: FakeOp, make_provider: Make, failure: Failure) -> None:
    """op printing something and then failing: SECRETS_PROVIDER_FAILED without stdout or stderr text."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    fake_op.crash_printing(b"half-printed-secret-value")
    err = failure(make_provider(), ref)
    assert err.code == ErrorCode.SECRETS_PROVIDER_FAILED
    text = f"{err} {err!r}"
    assert ("half-printed-secret-value" in text) is False, "child stdout echoed into the error"
    assert "unexpected internal error" not in text


def test_empty_value_is_refused(fake_op: FakeOp, make_provider: Make, failure: Failure) -> None:
    """op succeeding with no bytes is SECRETS_VALUE_UNSAFE, never an empty secret."""
    ref = fake_op.put("prod", "db", "empty", b"")
    assert failure(make_provider(), ref).code == ErrorCode.SECRETS_VALUE_UNSAFE


def test_timeout_stops_the_child(fake_op: FakeOp, make_provider: Make, failure: Failure) -> None:
    """A hanging op is stopped after ``timeout_seconds`` with SECRETS_PROVIDER_FAILED."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    fake_op.set_delay(30)
    p = make_provider(options={"op_path": str(fake_op.path), "timeout_seconds": 0.5})
    err = failure(p, ref)
    assert err.code == ErrorCode.SECRETS_PROVIDER_FAILED
    assert "did not finish" in err.message


def test_timeout_from_environment(fake_op: FakeOp, make_provider: Make, failure: Failure) -> None:
    """Without the option, LOOM_OP_TIMEOUT_SECONDS bounds op (runs build providers from env only)."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    fake_op.set_delay(30)
    err = failure(make_provider(LOOM_OP_TIMEOUT_SECONDS="0.5"), ref)
    assert err.code == ErrorCode.SECRETS_PROVIDER_FAILED and "0.5 s" in err.message
    with pytest.raises(LoomError) as info:
        make_provider(LOOM_OP_TIMEOUT_SECONDS="soon")
    assert info.value.code is ErrorCode.CONFIG_INVALID
    with pytest.raises(LoomError) as info:
        make_provider(LOOM_OP_TIMEOUT_SECONDS="900")
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert info.value.message.startswith("LOOM_OP_TIMEOUT_SECONDS must be"), "names where the value came from"


def test_binary_location_precedence(
    fake_op: FakeOp, make_provider: Make, failure: Failure, tmp_path: Path
) -> None:
    """option op_path wins over LOOM_OP_PATH, which wins over ``op`` on the context's PATH."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    missing = str(tmp_path / "no" / "op")
    assert get(make_provider(options={"op_path": str(fake_op.path)}, LOOM_OP_PATH=missing), ref)
    assert get(make_provider(options={}, LOOM_OP_PATH=str(fake_op.path)), ref)
    on_path = make_provider(options={}, PATH=f"{fake_op.path.parent}{os.pathsep}/usr/bin")
    assert get(on_path, ref) == b"pg-password-value"
    err = failure(make_provider(options={}, LOOM_OP_PATH=missing), ref)
    assert err.code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE and "LOOM_OP_PATH" in err.message


@pytest.mark.parametrize("where", ["option", "not-on-path", "not-executable"])
def test_missing_binary_is_unavailable(
    fake_op: FakeOp, make_provider: Make, failure: Failure, tmp_path: Path, where: str
) -> None:
    """No usable op binary is SECRETS_PROVIDER_UNAVAILABLE, before anything runs."""
    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    if where == "option":
        p = make_provider(options={"op_path": str(tmp_path / "missing-op")})
    elif where == "not-on-path":
        p = make_provider(options={}, PATH=str(tmp_path / "empty-bin"))
    else:
        plain = tmp_path / "op-not-exec"
        plain.write_text("#!/bin/sh\n")
        p = make_provider(options={"op_path": str(plain)})
    assert failure(p, ref).code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert fake_op.calls() == []


@pytest.mark.parametrize(
    "raw",
    [
        "op://prod/db",
        "op://a/b/c/d/e",
        "op://prod//password",
        "op://prod/db/pass%77ord",
        "op://prod/db/pass'word",
        "op://prod/db/password#frag",
        "op://prod/db/password?attribute=nope",
        "op://prod/db/password?attribute=otp&x=1",
        "op://prod/db/pass\nword",
        "keepass://prod/db/password",
    ],
)
def test_invalid_references_never_start_op(
    fake_op: FakeOp, make_provider: Make, raw: str
) -> None:
    """Malformed references are SECRETS_REF_INVALID from validate() and resolve(); op is not run."""
    p = make_provider()
    for call in (p.validate, p.resolve):
        with pytest.raises(LoomError) as info:
            call(SecretRef.parse(raw))
        assert info.value.code == ErrorCode.SECRETS_REF_INVALID
    assert fake_op.calls() == []


@pytest.mark.parametrize(
    "options", [{"token": "x"}, {"op_path": ""}, {"timeout_seconds": 0}, {"timeout_seconds": "5"}]
)
def test_bad_options_are_config_invalid(options: dict[str, Any]) -> None:
    """Unknown options and bad values are CONFIG_INVALID, never ignored."""
    with pytest.raises(LoomError) as info:
        PluginHost(environ={}).create("secrets", "op", BackendContext(options=options))
    assert info.value.code is ErrorCode.CONFIG_INVALID


def test_repr_shows_no_token(make_provider: Make, token: str) -> None:
    """The provider's repr says whether a token is set, never what it is."""
    shown = repr(make_provider())
    assert (token in shown) is False, "token in repr"
    assert "token=set" in shown


def test_stand_in_speaks_the_cli_interface(fake_op: FakeOp, token: str) -> None:
    """The stand-in itself: value plus newline without --no-newline, `[ERROR] date time msg` + exit 1."""
    import re
    import subprocess

    ref = fake_op.put("prod", "db", "password", b"pg-password-value")
    env = {"OP_SERVICE_ACCOUNT_TOKEN": token}
    plain = subprocess.run([str(fake_op.path), "read", ref], env=env, capture_output=True, check=False)
    assert (plain.returncode, plain.stdout, plain.stderr) == (0, b"pg-password-value\n", b"")
    exact = subprocess.run([str(fake_op.path), "read", "-n", ref], env=env, capture_output=True, check=False)
    assert exact.stdout == b"pg-password-value"
    missing = subprocess.run([str(fake_op.path), "read", ref], env={}, capture_output=True, check=False)
    assert missing.returncode == 1 and missing.stdout == b""
    assert re.fullmatch(rb"\[ERROR\] \d{4}/\d\d/\d\d \d\d:\d\d:\d\d could not read secret .*\n", missing.stderr)
