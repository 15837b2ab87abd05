"""``loom run FILE [--job NAME] [--receipt PATH]``: run jobs with secrets, write a receipt."""

from __future__ import annotations

import argparse
import os


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="workflow YAML file")
    parser.add_argument("--job", help="run only this job and the jobs it needs (transitively)")
    parser.add_argument(
        "--receipt",
        help="receipt file (default .loom/runs/<run-id>.json), replaced atomically through symlinks; "
        "a character device or FIFO (/dev/null, /dev/stdout) gets the final receipt written to it",
    )
    parser.add_argument(
        "--config",
        help="config.toml ([secrets] limits and timeout, [secrets.providers.<scheme>] options, plugins.disabled)",
    )
    parser.add_argument("--docker", default="docker", help="docker executable for jobs with `image`")
    parser.add_argument("--format", choices=["text", "json"], default=None)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loom_core.config import load_config
    from loom_core.workflow.process import tune_allocator
    from loom_core.workflow.runner import RunOptions, jobs_failed, run_workflow

    tune_allocator()

    config = load_config(args.config, os.environ)
    result = run_workflow(
        RunOptions(
            workflow=Path(args.file),
            job=args.job,
            receipt=Path(args.receipt) if args.receipt else None,
            config=config,
            docker=args.docker,
        )
    )
    if result.error is not None and result.receipt.status != "interrupted":
        raise result.error
    if result.receipt.status == "interrupted":  # a signal stopped the run: exit 128 + signal, as shells do
        return result.exit_code
    if result.exit_code == 1:  # jobs failed: the same error as the receipt's `error`
        raise jobs_failed(result.receipt)
    return result.exit_code
