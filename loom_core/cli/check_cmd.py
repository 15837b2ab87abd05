"""``loom check FILE``: list every problem of a workflow (code, path, line) at once."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="workflow YAML file")
    parser.add_argument("--config", help="config.toml (plugins.disabled decides which providers exist)")
    parser.add_argument("--format", choices=["text", "json"], default=None, help="text lines or a JSON list")


def run(args: argparse.Namespace) -> int:
    from loom_core.config import load_config
    from loom_core.errors import LoomError
    from loom_core.plugins.host import PluginHost
    from loom_core.secrets.providers import ProviderPool
    from loom_core.workflow.check import Problem, check_document
    from loom_core.workflow.loader import load_file

    config = load_config(args.config, os.environ)
    host = PluginHost.for_config(config, os.environ)
    pool = ProviderPool(host, os.environ)
    try:
        try:
            problems = check_document(load_file(args.file), pool)
        except LoomError as exc:
            if exc.code.value != "WORKFLOW_YAML_INVALID":
                raise
            problems = [Problem(exc.code, (), int(exc.details.get("line", 1)), exc.message)]
    finally:
        pool.close()
    if args.format == "json":
        print(json.dumps([p.to_dict() for p in problems], indent=2))
    elif problems:
        for problem in problems:
            print(problem.render(args.file))
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
    else:
        print(f"{args.file}: OK")
    return 1 if problems else 0
