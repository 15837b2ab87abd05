"""``loom config check [FILE]``: validate configuration without starting anything."""

from __future__ import annotations

import argparse
import json
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate a config file (defaults when omitted)")
    check.add_argument("file", nargs="?", help="path to config.toml")
    check.add_argument("--format", choices=["text", "json"], default=None)


def run(args: argparse.Namespace) -> int:
    from loom_core.cli.selection import selected_backends
    from loom_core.config import load_config
    from loom_core.errors import ErrorCode, LoomError
    from loom_core.plugins.discovery import disabled_from, installed, is_disabled, not_installed_message

    config = load_config(args.file, os.environ)
    disabled = disabled_from(os.environ, config.plugins.disabled)
    for kind, name in selected_backends(config):
        if is_disabled(kind, name, disabled):
            raise LoomError(ErrorCode.PLUGIN_DISABLED, f"{kind.value} backend {name!r} is selected but disabled")
        if not any(info.name == name for info in installed(kind)):
            raise LoomError(ErrorCode.PLUGIN_NOT_FOUND, not_installed_message(kind, name))
    from loom_core.config.reserved import reserved_in_use

    source = args.file or "(defaults)"
    warnings = reserved_in_use(config)
    if args.format == "json":
        print(json.dumps({"ok": True, "file": source, "warnings": warnings}))
    else:
        print(f"ok: {source} is a valid Loom configuration")
        for warning in warnings:
            print(f"warning: {warning}")
    return 0
