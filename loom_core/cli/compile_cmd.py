"""``loom compile FILE [-o OUT]``: the Graph IR as JSON; references only, nothing resolved."""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="workflow YAML file")
    parser.add_argument("-o", "--output", help="write the IR here instead of stdout")
    parser.add_argument("--config", help="config.toml (plugins.disabled decides which providers exist)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from loom_core.config import load_config
    from loom_core.plugins.host import PluginHost
    from loom_core.secrets.providers import ProviderPool
    from loom_core.workflow.check import load_workflow
    from loom_core.workflow.graph import graph_ir

    config = load_config(args.config, os.environ)
    host = PluginHost.for_config(config, os.environ)
    pool = ProviderPool(host, os.environ)
    try:
        workflow = load_workflow(args.file, pool)
    finally:
        pool.close()
    text = json.dumps(graph_ir(workflow), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
