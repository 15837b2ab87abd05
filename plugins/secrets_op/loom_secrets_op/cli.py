"""Run ``op read`` with a minimal environment and the token outside argv.

The child gets ``PATH``, ``HOME`` and the service account token, plus a short
allowlist of settings ``op`` itself reads (config directory, proxies, CA
bundle, locale). Everything else in the caller's environment — other
secrets above all — stays out. The reference is the only argument besides
the command and ``--no-newline``, so ``ps`` shows nothing sensitive.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from loom_core.errors import ErrorCode, LoomError
from loom_secrets_op import errors
from loom_secrets_op.reference import OpRef

TOKEN_VAR = "OP_SERVICE_ACCOUNT_TOKEN"  # noqa: S105 (a variable name, not a value)
OP_PATH_VAR = "LOOM_OP_PATH"
PASSTHROUGH = (
    "OP_CONFIG_DIR",
    "OP_CACHE",
    "OP_INTEGRATION_NAME",
    "OP_INTEGRATION_ID",
    "OP_INTEGRATION_BUILDNUMBER",
    "XDG_CONFIG_HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
)


@dataclass(frozen=True)
class OpCommand:
    """Where ``op`` is and how long it may take. Holds no credentials."""

    executable: str
    timeout: float


def find_op(configured: str | None, environ: Mapping[str, str]) -> str:
    """The ``op`` executable: option ``op_path``, else ``LOOM_OP_PATH``, else ``op`` on ``PATH``."""
    wanted = configured or environ.get(OP_PATH_VAR, "").strip() or "op"
    source = "option op_path" if configured else (OP_PATH_VAR if environ.get(OP_PATH_VAR) else "PATH")
    if os.sep in wanted:
        path = Path(wanted).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"the 1Password CLI {str(path)!r} (from {source}) does not exist or is not executable; "
            f"install op or point option op_path / {OP_PATH_VAR} at it",
        )
    found = shutil.which(wanted, path=environ.get("PATH", os.defpath))
    if found is None:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"the 1Password CLI {wanted!r} is not on PATH; install op or set option op_path / {OP_PATH_VAR}",
        )
    return found


def child_environ(environ: Mapping[str, str], token: str) -> dict[str, str]:
    env = {"PATH": environ.get("PATH", os.defpath), TOKEN_VAR: token}
    for name in ("HOME", *PASSTHROUGH):
        if name in environ:
            env[name] = environ[name]
    return env


def read(command: OpCommand, ref: OpRef, environ: Mapping[str, str], token: str) -> bytes:
    """``op read --no-newline REF``: the exact value bytes, or a coded ``LoomError``."""
    argv = [command.executable, "read", "--no-newline", ref.raw]
    try:
        done = subprocess.run(
            argv,
            env=child_environ(environ, token),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=command.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"{ref.raw}: op read did not finish within {command.timeout:g} s and was stopped",
        ) from None
    except OSError as exc:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"{ref.raw}: the 1Password CLI {command.executable!r} could not be started ({type(exc).__name__})",
        ) from None
    if done.returncode != 0:
        category = errors.classify(done.stderr, ref)
        raise LoomError(
            category.code,
            f"{ref.raw}: {category.reason} (op exited with status {done.returncode})",
        )
    if not done.stdout:
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"{ref.raw}: op returned an empty value; store a value in the field or fix the reference",
        )
    return done.stdout
