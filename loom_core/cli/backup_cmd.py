"""``loom backup create DEST`` / ``loom backup restore SRC --data-dir DIR``.

A backup is a storage checkpoint plus a manifest; the full-text index is not
copied but rebuilt from storage when the restored directory is first opened
(restore does that at once, so a restored directory is ready to serve).
``create`` opens the data directory itself, so the server must be stopped; a
running server is backed up through ``POST /v1/admin/backups`` instead.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = sub.add_parser("create", help="write a backup of the data directory into the new directory DEST")
    create.add_argument("dest", type=Path, metavar="DEST")
    create.add_argument("--config", type=Path, metavar="FILE", help="config.toml (default: built-in defaults)")
    create.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (default: server.data_dir)")
    restore = sub.add_parser("restore", help="restore backup SRC into the empty or new directory --data-dir")
    restore.add_argument("src", type=Path, metavar="SRC")
    restore.add_argument("--data-dir", type=Path, metavar="DIR", required=True, help="where to restore")
    restore.add_argument("--config", type=Path, metavar="FILE", help="config.toml (default: built-in defaults)")


def run(args: argparse.Namespace) -> int:
    from loom_core.cli.audit_log import audited_command
    from loom_core.cli.datadir import load_cli_config, open_memory
    from loom_core.errors import ErrorCode, LoomError
    from loom_core.memory.backup import restore_files, undo_restore

    config, host = load_cli_config(args.config)
    audit = {"config": config, "host": host}
    if args.action == "create":
        with audited_command("admin.backup.create", str(args.dest), **audit) as facts:
            try:
                engine = open_memory(config, host, args.data_dir)
            except LoomError as exc:
                if exc.code is not ErrorCode.STORAGE_LOCKED:
                    raise
                raise LoomError(
                    exc.code,
                    f"{exc.message}; to back up a running server without stopping it, call "
                    "POST /v1/admin/backups (LoomemClient.create_backup), which writes into server.backup_dir",
                    details=exc.details,
                ) from exc
            with engine:
                engine.checkpoint(args.dest)
                facts["streams"] = streams = len(engine.list_streams())
        print(f"backup written to {args.dest} ({streams} stream(s)); the index is rebuilt on restore")
        return 0
    with audited_command("admin.backup.restore", str(args.data_dir), **audit) as facts:
        existed = Path(args.data_dir).exists()
        manifest = restore_files(args.src, args.data_dir, config.storage.backend)
        try:
            engine = open_memory(config, host, args.data_dir, create=True)
        except LoomError as exc:
            undo_restore(Path(args.data_dir), existed)  # a retry (with the right key) must find it empty
            raise LoomError(
                ErrorCode.BACKUP_FAILED,
                f"{args.data_dir}: the files of {args.src} could not be opened, so they were removed "
                f"again: error[{exc.code.value}] {exc.message}",
                details={"path": str(args.data_dir)},
            ) from exc
        with engine:
            facts["indexed"] = count = engine.check_consistency()["index"]
    print(f"restored {args.src} into {args.data_dir}: {manifest.get('chunks', '?')} chunk(s), index rebuilt ({count})")
    return 0
