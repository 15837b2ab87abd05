"""List installed plugins from entry-point metadata without importing them."""

from __future__ import annotations

import importlib.metadata as md
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loom_core.contracts import Kind

DISABLE_ENV = "LOOM_DISABLE_PLUGINS"


@dataclass(frozen=True)
class PluginInfo:
    """An installed entry point: enough to list it, nothing imported."""

    kind: Kind
    name: str
    target: str  # "module:attr" the entry point points at
    distribution: str
    version: str

    @property
    def qualified(self) -> str:
        return f"{self.kind.value}:{self.name}"


def installed(kind: Kind) -> list[PluginInfo]:
    """Every entry point in ``loom.<kind>``, one row per distribution."""
    rows: list[PluginInfo] = []
    for ep in md.entry_points(group=kind.namespace):
        dist = ep.dist
        rows.append(
            PluginInfo(
                kind=kind,
                name=ep.name,
                target=ep.value,
                distribution=dist.name if dist is not None else "?",
                version=dist.version if dist is not None else "?",
            )
        )
    # One distribution may be seen twice through duplicate sys.path entries.
    unique = {(r.name, r.distribution, r.target): r for r in rows}
    return sorted(unique.values(), key=lambda r: (r.name, r.distribution))


#: Backends this project ships as separate distributions (the defaults among them), so a missing
#: one can be named with the distribution that provides it.
FIRST_PARTY: Mapping[tuple[Kind, str], str] = {
    (Kind.STORAGE, "rocksdb"): "loom-storage-rocksdb",
    (Kind.INDEX, "tantivy"): "loom-index-tantivy",
    (Kind.LLM, "openai"): "loom-llm-openai",
    (Kind.SECRETS, "keepass"): "loom-secrets-keepass",
    (Kind.SECRETS, "op"): "loom-secrets-op",
}


def not_installed_message(kind: Kind, name: str) -> str:
    """Why ``kind:name`` cannot be built: nothing provides it; what is installed; what to install."""
    known = ", ".join(sorted({i.name for i in installed(kind)})) or "none"
    distribution = FIRST_PARTY.get((kind, name))
    fix = f"pip install {distribution}" if distribution else "install the distribution that provides it"
    misplaced = misplaced_groups(name)
    if misplaced:
        fix = (f"an entry point named {name!r} is installed in group(s) {misplaced}, which Loom does not read: "
               f"declare it in {kind.namespace!r}")
    return f"no installed plugin provides {kind.value} backend {name!r} (installed: {known}); {fix}"


def misplaced_groups(name: str) -> list[str]:
    """Entry-point groups that look like Loom's (``loom...``) but are not, holding an entry ``name``:
    a plugin declared under a misspelt group (``loom.secret``) is installed yet never found."""
    ours = {kind.namespace for kind in Kind}
    return sorted({
        ep.group for ep in md.entry_points(name=name)
        if ep.group.lower().startswith("loom") and ep.group not in ours
    })


def parse_disabled(values: Iterable[str]) -> frozenset[str]:
    """Normalise ``kind:name`` / ``name`` entries; blanks are ignored."""
    out: set[str] = set()
    for raw in values:
        for item in raw.split(","):
            item = item.strip()
            if item:
                out.add(item)
    return frozenset(out)


def disabled_from(environ: Mapping[str, str], configured: Iterable[str] = ()) -> frozenset[str]:
    """Merge the ``LOOM_DISABLE_PLUGINS`` variable with ``plugins.disabled``."""
    return parse_disabled([environ.get(DISABLE_ENV, ""), *configured])


def is_disabled(kind: Kind, name: str, disabled: frozenset[str]) -> bool:
    return f"{kind.value}:{name}" in disabled or name in disabled
