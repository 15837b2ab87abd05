"""``loom serve`` / ``loomem-server``: run the Loomem HTTP server with uvicorn.

The key is resolved and the engine opened before uvicorn binds the port, so
a locked data directory, a blank key or a bad configuration is reported as ``error[CODE]: message`` and
exit status 1 instead of a traceback from inside the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="FILE", help="config.toml (default: built-in defaults)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (default: server.data_dir)")
    parser.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default: server.port, 8420)")


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    import uvicorn

    from loom_core.config import load_config
    from loom_core.server.app import create_app
    from loom_core.server.logging import configure_logging
    from loom_core.server.runtime import make_host, open_engine, with_overrides

    config = with_overrides(load_config(args.config, os.environ), data_dir=args.data_dir, host=args.host,
                            port=args.port)
    configure_logging(config.server.log_format, config.server.log_level)
    host = make_host(config, os.environ)
    app = create_app(config, host=host, environ=os.environ)  # resolves the key: fails before opening data
    if app.state.authenticator.passthrough and not _is_loopback(config.server.host):
        logging.getLogger("loom.server.auth").warning(
            "passthrough mode on %s: this unauthenticated server is reachable from the network; "
            "set the variable named by server.auth_token_env or bind 127.0.0.1", config.server.host
        )
    engine = open_engine(config, host, environ=os.environ)
    app.state.engine = engine
    try:
        uvicorn.run(app, host=config.server.host, port=config.server.port, log_config=None,
                    log_level=config.server.log_level, server_header=False, timeout_graceful_shutdown=10)
    finally:
        engine.close()
    return 0


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
