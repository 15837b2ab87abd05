"""``loom encryption status|backfill|rotate``: encryption at rest on a stopped server's data.

These commands open the data directory themselves, so the server must be
stopped (a running server holds the directory: ``STORAGE_LOCKED``). While it
runs, use ``GET /v1/encryption/status`` and the backfill endpoints instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["status", "backfill", "rotate"], help="what to do")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config.toml (default: built-in defaults)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR", help="data directory (default: server.data_dir)")
    parser.add_argument(
        "--new-key-env",
        metavar="NAME",
        help="rotate: the environment variable holding the NEW master key (32 bytes, base64); "
        "the current key comes from the configured variable (LOOMEM_AT_REST_MASTER_KEY)",
    )
    parser.add_argument("--restart", action="store_true", help="backfill: start a new pass from the beginning")
    parser.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    parser.add_argument("--format", choices=["text", "json"], default=None)


class ProgressBar:
    """``label [#####-----]  50.0%  1200/2400 rows``: redrawn in place on a terminal; elsewhere
    (a CI log, a file) one plain line per tenth of the work, so logs get no carriage returns."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty()) if callable(isatty) else False
        self._last = 0.0
        self._last_tenth = -1
        self._drawn = False

    def update(self, done: int, total: int | None, unit: str, *, force: bool = False) -> None:
        if not self.enabled:
            return
        fraction = min(1.0, done / total) if total else (1.0 if force else 0.0)
        if self.terminal:  # redraws are throttled; log lines are already one per tenth
            now = time.monotonic()
            if not force and now - self._last < 0.1:
                return
            self._last = now
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        of = f"/{total}" if total is not None else ""
        line = f"{self.label} [{bar}] {fraction * 100:5.1f}%  {done}{of} {unit}"
        if self.terminal:
            self.stream.write("\r" + line)
            self._drawn = True
        else:
            tenth = int(fraction * 10)
            if tenth <= self._last_tenth:
                return
            self._last_tenth = tenth
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _emit(args: argparse.Namespace, body: dict[str, Any], lines: list[str]) -> None:
    if args.format == "json":
        print(json.dumps(body, indent=2, sort_keys=True, default=str))
    else:
        print("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    from loom_core.cli.datadir import data_dir_of, existing_data_dir, load_cli_config

    config, host = load_cli_config(args.config)
    if args.action == "status":
        return _status(args, config, host, existing_data_dir(config, args.data_dir))
    from loom_core.cli.audit_log import audited_command

    rotating = args.action == "rotate"
    action = "admin.encryption.rotate" if rotating else "admin.backfill.encrypt_at_rest"
    with audited_command(action, str(data_dir_of(config, args.data_dir)), config=config, host=host):
        data_dir = existing_data_dir(config, args.data_dir)
        return _rotate(args, config, host, data_dir) if rotating else _backfill(args, config, host, data_dir)


def _status(args: argparse.Namespace, config: Any, host: Any, data_dir: Path) -> int:
    from loom_core.crypto import build_row_codec
    from loom_core.crypto.offline import describe, open_key_storage

    storage = open_key_storage(config, host, data_dir)
    try:
        # refuses a wrong or missing key; writes nothing (status never finishes a rotation)
        codec = build_row_codec(config, host, storage, host.environ, read_only=True)
        info = describe(storage, codec)
    finally:
        storage.close()
    lines = [
        f"encryption at rest: {'ACTIVE' if info['enabled'] else 'off'}",
        f"cipher:             {info['cipher'] or '-'}",
        f"master key:         {info['fingerprint'] or '-'} (fingerprint, safe to record beside backups)",
        f"streams with keys:  {info['streams_with_keys']}   destroyed keys: {info['destroyed_keys']}",
        f"rotation pending:   {info['rotation_pending'] or 'no'}",
        "keys compaction:    "
        + ("pending (finished by the next start or rotate)" if info.get("keys_compaction_pending") else "done"),
        f"backfill:           {info['backfill'].get('state')} "
        f"({info['backfill'].get('encrypted', 0)} rows encrypted of {info['backfill'].get('scanned', 0)} scanned)",
    ]
    _emit(args, info, lines)
    return 0


def _rotate(args: argparse.Namespace, config: Any, host: Any, data_dir: Path) -> int:
    from loom_core.crypto import build_cipher, encryption_settings
    from loom_core.crypto.masterkey import load_master_key, parse_master_key
    from loom_core.crypto.offline import open_key_storage
    from loom_core.crypto.rotation import rotate
    from loom_core.errors import ErrorCode, LoomError

    if not args.new_key_env:
        raise LoomError(ErrorCode.USAGE_ERROR, "rotate needs --new-key-env NAME (the variable holding the new key)")
    settings = encryption_settings(config)
    old = load_master_key(settings, host.environ, host, config.secrets.resolve_timeout_seconds)
    if old is None:
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISSING,
            f"rotate needs the current master key in {settings.master_key_env}",
        )
    raw_new = host.environ.get(args.new_key_env)
    if raw_new is None:
        raise LoomError(
            ErrorCode.ENCRYPTION_KEY_MISSING, f"environment variable {args.new_key_env} (the new key) is not set"
        )
    new = parse_master_key(raw_new, f"environment variable {args.new_key_env}")
    cipher = build_cipher(config, host)
    bar = ProgressBar("re-wrapping data keys", enabled=not args.no_progress and args.format != "json")
    storage = open_key_storage(config, host, data_dir)
    try:
        result = rotate(storage, cipher, old, new, progress=lambda d, t: bar.update(d, t, "keys"))
        bar.update(result.rewrapped + result.reused, result.rewrapped + result.reused, "keys", force=True)
    finally:
        bar.close()
        storage.close()
    body = {
        "old_fingerprint": result.old_fingerprint,
        "new_fingerprint": result.new_fingerprint,
        "rewrapped": result.rewrapped,
        "resumed": result.reused,
        "already_done": result.already_done,
    }
    lines = [
        "rotation already complete: nothing to do" if result.already_done else
        f"re-wrapped {result.rewrapped + result.reused} data keys ({result.reused} from an interrupted run)",
        f"old master key: {result.old_fingerprint}",
        f"new master key: {result.new_fingerprint}",
        (f"now store the value of {args.new_key_env} behind encryption.master_key_ref ({settings.master_key_ref}) "
         "before starting the server," if settings.master_key_ref else
         f"now set {settings.master_key_env} to the value of {args.new_key_env} before starting the server,"),
        "and keep the new key backed up separately from the data",
    ]
    _emit(args, body, lines)
    return 0


def _backfill(args: argparse.Namespace, config: Any, host: Any, data_dir: Path) -> int:
    from loom_core.crypto import backfill
    from loom_core.crypto.engine_glue import engine_codec, engine_lock, engine_storage, open_engine, sealed_families

    engine = open_engine(config, host, data_dir, host.environ)
    bar = ProgressBar("encrypting rows", enabled=not args.no_progress and args.format != "json")
    try:
        result = backfill.run(
            engine_storage(engine),
            engine_codec(engine),
            sealed_families(engine),
            lock=engine_lock(engine),
            restart=args.restart,
            progress=lambda view: bar.update(int(view["scanned"]), view.get("total"), "rows"),
        )
        bar.update(int(result["scanned"]), result.get("total"), "rows", force=True)
    finally:
        bar.close()
        engine.close()
    lines = [
        f"backfill {result['state']}: {result['encrypted']} rows encrypted, {result['scanned']} scanned",
    ]
    _emit(args, result, lines)
    return 0
