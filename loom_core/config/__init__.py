"""Configuration: ``config.toml`` validated into :class:`LoomConfig`."""

from loom_core.config.loader import load_config, validate_config
from loom_core.config.model import LoomConfig

__all__ = ["LoomConfig", "load_config", "validate_config"]
