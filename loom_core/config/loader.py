"""Read ``config.toml``, apply the environment overrides the seed names, validate.

Errors name the key (``server.port``) and say what is expected, and never
echo a rejected value: a value in the wrong place may be a secret.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from loom_core.config.model import LoomConfig, SecretLiteralError
from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import parse_flag

#: Keys whose value is a secret; they may never appear as literals.
LITERAL_SECRET_KEYS = frozenset(
    {"auth_token", "token", "api_key", "master_key", "password", "secret", "bot_token", "chat_id"}
)


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[tuple[str, str], Any, str]]:
    """(section, key), value, variable name — for the variables the seed names."""
    out: list[tuple[tuple[str, str], Any, str]] = []
    if "LOOMEM_LOG_FORMAT" in environ:
        out.append((("server", "log_format"), environ["LOOMEM_LOG_FORMAT"].strip().lower(), "LOOMEM_LOG_FORMAT"))
    # The flag can only add the requirement: "0" in the environment must not switch off an
    # `expect_enabled = true` in the file and let a server meant to be encrypted start in plaintext.
    if parse_flag("LOOMEM_AT_REST_EXPECT_ENABLED", environ.get("LOOMEM_AT_REST_EXPECT_ENABLED", "")):
        out.append((("encryption", "expect_enabled"), True, "LOOMEM_AT_REST_EXPECT_ENABLED"))
    if environ.get("LOOM_DATA_DIR"):
        out.append((("server", "data_dir"), environ["LOOM_DATA_DIR"], "LOOM_DATA_DIR"))
    return out


def _refuse_literal_secrets(raw: Mapping[str, Any], prefix: str = "") -> None:
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _refuse_literal_secrets(value, f"{path}.")
        elif key.lower() in LITERAL_SECRET_KEYS:
            raise LoomError(
                ErrorCode.CONFIG_SECRET_LITERAL,
                f"{path}: secrets never go in the config file; set `{path}_env` to the name of an "
                f"environment variable or `{path}_ref` to a secret reference (env://NAME)",
                details={"key": path},
            )


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def validate_config(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> LoomConfig:
    """Validate a parsed TOML mapping (plus env overrides) into :class:`LoomConfig`."""
    env = os.environ if environ is None else environ
    _refuse_literal_secrets(raw)
    data: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for (section, key), value, _var in _env_overrides(env):
        bucket = data.setdefault(section, {})
        if isinstance(bucket, dict):
            bucket[key] = value
    try:
        return LoomConfig.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc) from None


def config_error(exc: ValidationError, section: tuple[str, ...] = ()) -> LoomError:
    """The coded error for a failed validation of the configuration (or of its ``section``):
    every problem named by its key, never echoing a rejected value."""
    problems = []
    literal = False
    for err in exc.errors():
        key = _location((*section, *err["loc"]))
        ctx_error = (err.get("ctx") or {}).get("error")
        literal = literal or isinstance(ctx_error, SecretLiteralError)
        if err["type"] == "extra_forbidden":
            problems.append(f"{key}: unknown key (see config.example.toml for every key)")
        else:
            message = str(ctx_error) if ctx_error is not None else err["msg"]
            problems.append(f"{key}: {message}")
    code = ErrorCode.CONFIG_SECRET_LITERAL if literal else ErrorCode.CONFIG_INVALID
    return LoomError(code, "; ".join(problems), details={"problems": problems})


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> LoomConfig:
    """Load ``path`` (or defaults when ``None``), apply env overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise LoomError(ErrorCode.CONFIG_NOT_FOUND, f"config file {str(file)!r} does not exist")
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise LoomError(ErrorCode.CONFIG_INVALID, f"{file}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LoomError(ErrorCode.CONFIG_INVALID, f"{file}: cannot be read: {exc}") from None
    return validate_config(raw, environ)
