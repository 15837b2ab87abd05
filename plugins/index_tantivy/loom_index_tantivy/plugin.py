"""Entry point module: registers the ``tantivy`` index backend."""

from __future__ import annotations

from typing import Any

from loom_core.contracts import BackendContext
from loom_core.hookspecs import hookimpl
from loom_index_tantivy.index import CAPABILITIES, TantivyIndex


def create(ctx: BackendContext) -> TantivyIndex:
    """Open (creating if needed) the index in ``ctx.data_dir``; holds its writer lock."""
    return TantivyIndex.open(ctx)


@hookimpl
def loom_register_backends(registry: Any) -> None:
    registry.add_index(
        "tantivy",
        create,
        capabilities=CAPABILITIES,
        description="Tantivy BM25 over chunk text with stream, level, time and superseded filters",
    )
