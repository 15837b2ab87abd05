"""What the commands that work on a data directory without a server share.

``loom backup``, ``loom export`` / ``import`` and ``loom encryption`` load the
same configuration, build the same plugin host and open the same directory
(``--data-dir`` or ``server.data_dir``) with the configured row codec.

Only ``loom serve``, ``loom import`` and ``loom backup restore`` may create a
data directory. The commands that read one (backup, export, encryption)
refuse a directory holding no store: opening it would create an empty one,
and a mistyped ``--data-dir`` would give an empty backup that reports success.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def load_cli_config(config_path: Path | None) -> tuple[Any, Any]:
    """The configuration and a plugin host for a command that opens a data directory."""
    from loom_core.config import load_config
    from loom_core.plugins.host import PluginHost

    config = load_config(config_path, os.environ)
    return config, PluginHost.for_config(config, os.environ)


def data_dir_of(config: Any, data_dir: Path | None) -> Path:
    """``--data-dir`` when given, else ``server.data_dir``."""
    return Path(data_dir if data_dir is not None else config.server.data_dir)


def existing_data_dir(config: Any, data_dir: Path | None) -> Path:
    """``data_dir_of`` for a command that needs a store there already; ``CONFIG_INVALID`` if none."""
    from loom_core.errors import ErrorCode, LoomError
    from loom_core.memory.backends_record import STORAGE_DIR

    directory = data_dir_of(config, data_dir)
    if not (directory / STORAGE_DIR).is_dir():
        given = "--data-dir" if data_dir is not None else "server.data_dir"
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"{str(directory)!r} ({given}) holds no Loomem data (no {STORAGE_DIR}/ directory); point {given} at the "
            "directory the server uses (`loom serve` creates one on first start)",
            details={"key": "server.data_dir", "path": str(directory)},
        )
    return directory


def open_memory(config: Any, host: Any, data_dir: Path | None, *, create: bool = False) -> Any:
    """The memory engine for the data directory with the configured backends and row codec.

    Without ``create`` the directory must already hold a store (see the module docstring).
    """
    from loom_core.crypto.engine_glue import open_engine

    directory = data_dir_of(config, data_dir) if create else existing_data_dir(config, data_dir)
    return open_engine(config, host, directory, os.environ)


__all__ = ["data_dir_of", "existing_data_dir", "load_cli_config", "open_memory"]
