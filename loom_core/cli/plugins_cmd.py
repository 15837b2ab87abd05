"""``loom plugins``: every installed plugin with kind, name, distribution, version, status.

Only backends the configuration selects (or ``--load`` names) are imported;
the rest are listed from entry-point metadata alone.
"""

from __future__ import annotations

import argparse
import json
import os

from loom_core.contracts import Kind
from loom_core.errors import ErrorCode, LoomError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config.toml whose selected backends are loaded and checked")
    parser.add_argument(
        "--load",
        action="append",
        default=[],
        type=_parse_target,  # a malformed value is a usage error (exit 2), like any other bad argument
        metavar="KIND:NAME",
        help="also import and check this backend (repeatable)",
    )
    parser.add_argument("--no-load", action="store_true", help="import nothing; list metadata only")
    parser.add_argument("--format", choices=["text", "json"], default=None)


def _parse_target(raw: str) -> tuple[Kind, str]:
    kind, _sep, name = raw.partition(":")
    if name and kind in {k.value for k in Kind}:
        return Kind(kind), name
    kinds = ", ".join(k.value for k in Kind)
    raise argparse.ArgumentTypeError(f"expected KIND:NAME with KIND one of {kinds}, got {raw!r}")


def run(args: argparse.Namespace) -> int:
    from loom_core.cli.selection import selected_backends
    from loom_core.config import load_config
    from loom_core.plugins.host import PluginHost

    config = load_config(args.config)
    host = PluginHost.for_config(config, os.environ)
    targets = [] if args.no_load else selected_backends(config)
    targets += args.load
    missing: list[dict[str, str]] = []
    for kind, name in targets:
        try:
            host.backend(kind, name)
        except LoomError as exc:
            if exc.code is ErrorCode.PLUGIN_NOT_FOUND:
                missing.append(_row(kind.value, name, "-", "-", "missing", exc.message))
            # other failures are recorded by the host and shown per entry point below
    rows = []
    for info in host.installed():
        status, reason = host.status(info)
        rows.append(_row(info.kind.value, info.name, info.distribution, info.version, status, reason))
    rows += missing
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        _print_table(rows)
    return 1 if any(r["status"] in {"failed", "conflict", "missing"} for r in rows) else 0


def _row(kind: str, name: str, dist: str, version: str, status: str, reason: str) -> dict[str, str]:
    return {
        "kind": kind,
        "name": name,
        "distribution": dist,
        "version": version,
        "status": status,
        "reason": reason,
    }


def _print_table(rows: list[dict[str, str]]) -> None:
    columns = ["kind", "name", "distribution", "version", "status", "reason"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if rows else len(c) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
