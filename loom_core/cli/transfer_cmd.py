"""``loom export --stream S [-o FILE]`` and ``loom import FILE``: one stream as JSON Lines.

The format (header, chunks with their whole history, entities, relations and
optionally embeddings) is described in ``docs/memory.md``; it lets memory move
between data directories and storage/index backends. Both open the data
directory themselves, so the server must be stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One module serves both commands; the parser's prog (``loom export`` or
    ``loom import``) says which."""
    importing = parser.prog.split()[-1] == "import"
    parser.set_defaults(command_name="import" if importing else "export")
    if importing:
        parser.add_argument("file", type=Path, metavar="FILE", help="the JSONL export to read")
        parser.add_argument("--stream", help="import under this stream name instead of the exported one")
    else:
        parser.add_argument("--stream", required=True, help="the stream to export")
        parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (new file) instead of stdout")
        parser.add_argument("--no-embeddings", action="store_true", help="leave vectors out; import re-embeds")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config.toml (default: built-in defaults)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (default: server.data_dir)")


def _failed(path: Path, why: str) -> Exception:
    from loom_core.errors import ErrorCode, LoomError

    return LoomError(ErrorCode.BACKUP_FAILED, f"{path}: {why}", details={"path": str(path)})


def run(args: argparse.Namespace) -> int:
    from loom_core.cli.audit_log import audited_command
    from loom_core.cli.datadir import load_cli_config, open_memory

    config, host = load_cli_config(args.config)
    audit = {"config": config, "host": host}
    if args.command_name == "import":
        with audited_command("admin.import", args.stream or str(args.file), **audit) as facts:
            try:
                fp = args.file.open(encoding="utf-8")
            except OSError as exc:
                raise _failed(args.file, f"cannot read the import file: {exc.strerror or exc}") from exc
            # an import may start a new installation (e.g. on another storage backend)
            with fp, open_memory(config, host, args.data_dir, create=True) as engine:
                counts = engine.import_stream(fp, stream=args.stream)
            facts.update(counts)
        print(
            f"imported {counts['chunks']} chunk(s), {counts['entities']} entit(ies), "
            f"{counts['relations']} relation(s) from {args.file}",
            file=sys.stderr,
        )
        return 0
    with audited_command("admin.export", args.stream, **audit) as facts:
        with open_memory(config, host, args.data_dir) as engine:
            if args.output is None:
                try:
                    counts = engine.export_stream(args.stream, sys.stdout, embeddings=not args.no_embeddings)
                    sys.stdout.flush()
                except BrokenPipeError:
                    from loom_core.cli.pipes import silence_stdout

                    silence_stdout()
                    raise _failed(
                        Path("stdout"), "the output was closed before the export was complete (broken pipe)"
                    ) from None
            else:
                try:
                    # 0600 whatever the umask: an export is the stream's content in plaintext,
                    # even from an encrypted store (backups are closed the same way)
                    out = os.fdopen(os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
                                    encoding="utf-8")
                except OSError as exc:
                    raise _failed(args.output, f"cannot create the export file: {exc.strerror or exc}") from exc
                try:
                    with out:
                        counts = engine.export_stream(args.stream, out, embeddings=not args.no_embeddings)
                except BaseException:
                    args.output.unlink(missing_ok=True)  # no partial file to be taken for an export
                    raise
        facts.update(counts)
    print(
        f"exported {counts['chunks']} chunk(s), {counts['entities']} entit(ies), "
        f"{counts['relations']} relation(s) of stream {args.stream!r}",
        file=sys.stderr,
    )
    return 0
