"""Entry point for ``loom``: dispatch to lazily imported sub-command modules.

Start-up cost matters (``loom --help`` is benchmarked), so this module imports
only the standard library; each sub-command module is imported when named.
A sub-command module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

#: name -> (module, one-line help). Listing these imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("loom_core.cli.plugins_cmd", "list installed plugins and their status"),
    "config": ("loom_core.cli.config_cmd", "validate a config.toml (`loom config check FILE`)"),
    "check": ("loom_core.cli.check_cmd", "check a workflow: every problem with code, path and line"),
    "compile": ("loom_core.cli.compile_cmd", "compile a workflow to its Graph IR (JSON, references only)"),
    "run": ("loom_core.cli.run_cmd", "run a workflow's jobs with secrets injected; write a receipt"),
    "serve": ("loom_core.cli.serve_cmd", "run the Loomem memory server (HTTP API on 127.0.0.1:8420)"),
    "encryption": ("loom_core.cli.encryption_cmd", "encryption at rest: status, backfill, master-key rotate"),
    "backup": ("loom_core.cli.backup_cmd", "back up a memory data directory (`create DEST`) or restore one"),
    "export": ("loom_core.cli.transfer_cmd", "export one memory stream as JSON Lines (`--stream S -o FILE`)"),
    "import": ("loom_core.cli.transfer_cmd", "import a stream exported by `loom export`"),
}


def _version() -> str:
    from loom_core import __version__

    return __version__


def _top_parser() -> argparse.ArgumentParser:
    width = max(len(n) for n in COMMANDS)
    listing = "\n".join(f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="loom",
        description="Loom: the Loomem memory server and Loom secrets for workflow runs.",
        epilog=f"commands:\n{listing}\n\nRun `loom COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"loom {_version()}")
    parser.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="how errors (and listings that support it) are printed",
    )
    parser.add_argument("command", nargs="?", metavar="COMMAND", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def report_error(exc: Any, fmt: str) -> None:
    """Print a LoomError as ``error[CODE]: message`` or as JSON, on stderr."""
    if fmt == "json":
        print(json.dumps({"error": exc.to_dict()}), file=sys.stderr)
    else:
        print(f"error[{exc.code.value}]: {exc.message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _top_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 0
    if ns.command not in COMMANDS:
        parser.print_usage(sys.stderr)
        print(
            f"error[USAGE_ERROR]: unknown command {ns.command!r}; choose from {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module_name, text = COMMANDS[ns.command]
    module = importlib.import_module(module_name)
    sub = argparse.ArgumentParser(prog=f"loom {ns.command}", description=text)
    module.add_arguments(sub)
    args = sub.parse_args(ns.args)
    args.format = getattr(args, "format", None) or ns.format
    # `loom serve` switches to JSON errors when its logs are JSON (env here, config in serve_cmd), so a
    # refusal to start lands in the same pipeline as the server's JSON log lines
    args.format_chosen = any(a == "--format" or a.startswith("--format=") for a in argv)
    if ns.command == "serve" and not args.format_chosen and _json_logs():
        args.format = "json"

    from loom_core.errors import LoomError  # cheap, stdlib-only module

    try:
        return int(module.run(args))
    except LoomError as exc:
        report_error(exc, args.format)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        from loom_core.cli.pipes import silence_stdout

        silence_stdout()  # whatever read the output (`| head`) closed it
        print(f"loom {ns.command}: the output was closed before it was complete", file=sys.stderr)
        return 1
    except Exception as exc:
        if _debugging():
            raise
        report_error(_unexpected(ns.command, exc), args.format)
        return 1


DEBUG_ENV = "LOOM_DEBUG"


def _debugging() -> bool:
    from loom_core.flags import is_truthy

    return is_truthy(os.environ.get(DEBUG_ENV))


def _json_logs() -> bool:
    return os.environ.get("LOOMEM_LOG_FORMAT", "").strip().lower() == "json"


def _unexpected(command: str, exc: Exception) -> Any:
    """An uncoded failure as INTERNAL_ERROR naming its type and place, never its message.

    The message and a traceback may quote whatever the failing code held (a
    backend's error can carry a value), so they are shown only with LOOM_DEBUG.
    """
    from loom_core.errors import ErrorCode, LoomError, raised_at

    return LoomError(
        ErrorCode.INTERNAL_ERROR,
        f"loom {command} failed unexpectedly: {type(exc).__name__}{raised_at(exc)}; run again with {DEBUG_ENV}=1 "
        "to see the traceback, and report it",
        details={"exception": type(exc).__name__},
    )


def serve_main() -> int:
    """``loomem-server``: the same as ``loom serve``."""
    return main(["serve", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
