"""The six backend kinds and what every backend of a kind must guarantee.

Each module holds one contract as a ``typing.Protocol`` whose docstrings are
the specification the conformance kit (:mod:`loom_core.testing`) checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Kind(StrEnum):
    """A backend kind; its entry-point namespace is ``loom.<value>``."""

    STORAGE = "storage"
    CIPHER = "cipher"
    INDEX = "index"
    LLM = "llm"
    PII = "pii"
    SECRETS = "secrets"

    @property
    def namespace(self) -> str:
        """The stevedore / entry-point group that lists backends of this kind."""
        return f"loom.{self.value}"


@dataclass(frozen=True)
class BackendContext:
    """Everything a backend factory receives; backends read nothing else.

    Passing the environment explicitly (instead of reading ``os.environ``)
    lets tests prove fail-closed behaviour without touching the process.
    ``data_dir`` is the only directory a backend may write to.
    """

    options: Mapping[str, Any] = field(default_factory=dict)
    # the environment holds keys and tokens: its values never go into a repr
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)
    data_dir: Path | None = None
    keyspaces: tuple[str, ...] = ()
    #: Names of the variables that are secrets providers' credentials or settings: those the
    #: ``AuthPolicy`` of every registered secrets backend (and the first-party baseline) makes
    #: credentials, evaluated over the run's environment. A provider that reads arbitrary
    #: variables (``env://``) refuses these; jobs never inherit them. Names only, no values.
    protected: frozenset[str] = frozenset()
    #: Prefixes of protected settings variables (``LOOM_KEEPASS_DB_``), so a name is refused
    #: whether or not the environment sets it.
    protected_prefixes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"BackendContext(options={sorted(self.options)!r} (keys only), "
            f"environ=<{len(self.environ)} variables>, data_dir={self.data_dir!r}, keyspaces={self.keyspaces!r}, "
            f"protected=<{len(self.protected)} names, {len(self.protected_prefixes)} prefixes>)"
        )

    def is_protected(self, name: str) -> bool:
        """Whether ``name`` is a secrets provider's credential or setting (see :attr:`protected`)."""
        return name in self.protected or name.startswith(self.protected_prefixes)


__all__ = ["BackendContext", "Kind"]
