"""What the commands that work on a data directory without a server share.

``loom backup``, ``loom export`` / ``import`` and ``loom encryption`` load the
same configuration, build the same plugin host and open the same directory
(``--data-dir`` or ``server.data_dir``) with the configured row codec.
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


def open_memory(config: Any, host: Any, data_dir: Path | None) -> Any:
    """The memory engine for the data directory with the configured backends and row codec."""
    from loom_core.crypto.engine_glue import open_engine

    return open_engine(config, host, data_dir_of(config, data_dir), os.environ)


__all__ = ["data_dir_of", "load_cli_config", "open_memory"]
