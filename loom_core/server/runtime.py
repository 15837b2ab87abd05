"""Build what the server runs on: effective configuration, plugin host, memory engine.

Kept apart from the app factory so ``loom serve``, tests and embedding
applications assemble the server the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from loom_core.config import LoomConfig
from loom_core.config.loader import config_error
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine


def with_overrides(
    config: LoomConfig,
    *,
    data_dir: Path | str | None = None,
    host: str | None = None,
    port: int | None = None,
) -> LoomConfig:
    """``config`` with command-line overrides of ``[server]`` applied (and validated)."""
    update: dict[str, Any] = {}
    if data_dir is not None:
        update["data_dir"] = Path(data_dir)
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    if not update:
        return config
    try:
        server = type(config.server).model_validate({**config.server.model_dump(), **update})
    except ValidationError as exc:
        raise config_error(exc, ("server",)) from None
    return config.model_copy(update={"server": server})


def make_host(config: LoomConfig, environ: Mapping[str, str] | None = None) -> PluginHost:
    """A plugin host honouring ``plugins.disabled`` (plus ``LOOM_DISABLE_PLUGINS``)."""
    return PluginHost.for_config(config, environ)


def open_engine(
    config: LoomConfig,
    host: PluginHost,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> MemoryEngine:
    """Open the memory engine on ``data_dir`` (default ``server.data_dir``), creating it.

    Goes through the encryption glue, so the master key is checked against the
    data directory first (``ENCRYPTION_*`` codes) and rows are sealed when a
    key is configured.
    """
    from loom_core.crypto.engine_glue import open_engine as open_with_codec

    directory = Path(data_dir if data_dir is not None else config.server.data_dir)
    created = _missing_parents(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # memories: only this user reads them
    except OSError as exc:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"server.data_dir {str(directory)!r} cannot be used as the data directory "
            f"({type(exc).__name__}: {exc.strerror or exc}); point it (or --data-dir, LOOM_DATA_DIR) at a "
            "directory this user may create or write",
            details={"key": "server.data_dir"},
        ) from None
    try:
        engine: MemoryEngine = open_with_codec(
            config, host, directory, environ if environ is not None else host.environ
        )
    except BaseException:
        _remove_if_empty(created)  # a refused start leaves no empty data directory behind to puzzle over
        raise
    return engine


def _missing_parents(directory: Path) -> list[Path]:
    """``directory`` and those of its parents that do not exist yet, innermost first."""
    missing: list[Path] = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


def _remove_if_empty(created: list[Path]) -> None:
    for path in created:  # innermost first; stops at the first that is not empty
        try:
            path.rmdir()
        except OSError:
            return
