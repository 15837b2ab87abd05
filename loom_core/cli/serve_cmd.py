"""``loom serve`` / ``loomem-server``: run the Loomem HTTP server with uvicorn.

The key is resolved, the port bound and the engine opened before uvicorn
starts, so a busy port, a locked data directory, a blank key or a bad
configuration is reported as ``error[CODE]: message`` and
exit status 1 instead of a traceback from inside the server.
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loom_core.memory.engine import MemoryEngine


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
    from loom_core.server.gate import is_loopback
    from loom_core.server.logging import configure_logging
    from loom_core.server.runtime import make_host, open_engine, with_overrides

    config = with_overrides(load_config(args.config, os.environ), data_dir=args.data_dir, host=args.host,
                            port=args.port)
    configure_logging(config.server.log_format, config.server.log_level)
    if config.server.log_format == "json" and not getattr(args, "format_chosen", False):
        args.format = "json"  # main() prints a refusal to start in this format
    host = make_host(config, os.environ)
    opened: list[MemoryEngine] = []
    # The key is resolved here, before any data is touched. The app owns the engine opened below, so its
    # lifespan closes it on SIGTERM (uvicorn re-raises the signal after shutdown; code after run() may not run).
    app = create_app(config, host=host, environ=os.environ, engine_factory=lambda: opened[0])
    if app.state.authenticator.passthrough and not is_loopback(config.server.host):
        logging.getLogger("loom.server.auth").warning(
            "passthrough mode on %s: this unauthenticated server is reachable from the network (it answers "
            "only requests naming localhost, 127.0.0.1 or [::1] as host); set the variable named by "
            "server.auth_token_env or bind 127.0.0.1", config.server.host
        )
    trusted_proxies = config.server.trusted_proxies.strip()
    listener = bind_listener(config.server.host, config.server.port)
    try:
        engine = open_engine(config, host, environ=os.environ)
    except BaseException:
        listener.close()
        raise
    opened.append(engine)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.server.host, port=config.server.port, log_config=None,
        log_level=config.server.log_level, server_header=False, timeout_graceful_shutdown=10,
        # h11 refuses a request head over 16 KiB; httptools had no limit and rebuilt a long header
        # value by repeated appends (a 100 MB header stalled every client for seconds, no key needed)
        http="h11",
        # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: any local client could write the
        # address its audit events record. Only configured proxies are believed.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
    ))
    shown_host = f"[{config.server.host}]" if ":" in config.server.host else config.server.host
    logging.getLogger("loom.server").info(
        "loomem serving http://%s:%d (data directory %s)", shown_host, listener.getsockname()[1],
        config.server.data_dir,
    )
    try:
        server.run(sockets=[listener])
    finally:
        engine.close()  # idempotent; covers a start-up that failed before the lifespan took it
        listener.close()
    if not server.started:  # start-up failed (a loom_startup hook raised); uvicorn logged why
        return 3
    return 0


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind the listening socket first, so a busy port fails before the data directory is opened."""
    from loom_core.errors import ErrorCode, LoomError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto is IPPROTO_TCP. With proto 0, Nagle holds each response's second
    # segment for the client's delayed ACK: ~40 ms on every keep-alive request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LoomError(
            ErrorCode.SERVER_BIND_FAILED,
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; stop whatever uses the port "
            f"or choose another with --port / server.port",
            details={"host": host, "port": port},
        ) from None
    sock.set_inheritable(True)
    return sock


