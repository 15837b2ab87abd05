"""A stand-in ``op`` per test, in the test's temporary directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loom_secrets_op.provider import OpProvider
from loom_secrets_op.testing import FakeOp

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import SecretRef
from loom_core.errors import LoomError
from loom_core.plugins.host import PluginHost

TOKEN = "ops_eyJ0ZXN0IjoidG9rZW4ifQ-stand-in-service-account-token"


@pytest.fixture
def fake_op(tmp_path: Path) -> FakeOp:
    """A stand-in op with token TOKEN allowed to read vaults ``prod`` and ``shared``."""
    op = FakeOp(tmp_path / "bin")
    op.grant(TOKEN, ["prod", "shared"])
    op.put("locked", "admin", "password", b"locked-vault-secret")
    return op


@pytest.fixture
def wrapped_op(fake_op: FakeOp, tmp_path: Path) -> Path:
    """An ``op`` that is a shell script running the stand-in as its child, as a wrapper might.

    It writes its own pid to ``op.pid`` beside it; the stand-in's pid is in its call log.
    """
    wrapper = tmp_path / "wrapper" / "op"
    wrapper.parent.mkdir()
    pid_file = wrapper.with_suffix(".pid")
    wrapper.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\n"{fake_op.path}" "$@"\nexit $?\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """A runner environment: the token plus unrelated variables that must not reach the child."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "OP_SERVICE_ACCOUNT_TOKEN": TOKEN,
        "AWS_SECRET_ACCESS_KEY": "unrelated-secret-not-for-op",
        "LOOM_KEEPASS_DB_MAIN_PATH": "/nowhere.kdbx",
    }


@pytest.fixture
def make_provider(fake_op: FakeOp, environ: dict[str, str]) -> Callable[..., OpProvider]:
    """``make_provider(options=..., **env_overrides)`` through the installed entry point."""

    def build(options: dict[str, Any] | None = None, **env: str | None) -> OpProvider:
        merged = {**environ, **{k: v for k, v in env.items() if v is not None}}
        for key in [k for k, v in env.items() if v is None]:
            merged.pop(key, None)
        opts = {"op_path": str(fake_op.path)} if options is None else options
        provider: OpProvider = PluginHost(environ={}).create(
            "secrets", "op", BackendContext(options=opts, environ=merged)
        )
        return provider

    return build


def _failure(provider: OpProvider, raw: str) -> LoomError:
    with pytest.raises(LoomError) as info:
        provider.resolve(SecretRef.parse(raw))
    return info.value


@pytest.fixture(scope="session")
def failure() -> Callable[[OpProvider, str], LoomError]:
    """``failure(provider, ref)``: the LoomError resolving ``ref`` raises (fails if it resolves)."""
    return _failure


@pytest.fixture(scope="session")
def token() -> str:
    return TOKEN
