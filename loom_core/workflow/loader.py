"""Read a workflow YAML file into plain data plus the line of every node.

PyYAML's composer gives nodes with marks; constructing from those nodes keeps
a map from JSON path to line, so every problem ``loom check`` reports can name
its line. Duplicate mapping keys (which PyYAML silently overwrites) are
recorded so they can be reported instead of hiding a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loom_core.errors import ErrorCode, LoomError

JsonPath = tuple[str | int, ...]


@dataclass
class LoadedDocument:
    """The parsed document, the 1-based line of each path, and duplicate keys."""

    path: Path
    data: Any
    lines: dict[JsonPath, int] = field(default_factory=dict)
    duplicates: list[tuple[JsonPath, int]] = field(default_factory=list)

    def line_of(self, path: JsonPath) -> int:
        """Line of ``path``, or of its nearest ancestor that has one."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)


def format_path(path: JsonPath) -> str:
    """``("jobs", "a", "script", 0)`` -> ``$.jobs.a.script[0]``."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.replace("_", "").replace("-", "").isalnum():
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


def _index(node: yaml.Node, path: JsonPath, doc: LoadedDocument) -> None:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            child = (*path, key)
            if key in seen:
                doc.duplicates.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            doc.lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), doc)


def parse_text(text: str, path: Path) -> LoadedDocument:
    """Parse ``text``; malformed YAML raises ``WORKFLOW_YAML_INVALID`` with its line."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise LoomError(
            ErrorCode.WORKFLOW_YAML_INVALID,
            f"{path}:{line}: not valid YAML: {exc.problem or exc.context}",
            details={"line": line},
        ) from None
    except yaml.YAMLError as exc:
        raise LoomError(ErrorCode.WORKFLOW_YAML_INVALID, f"{path}: not valid YAML: {exc}") from None
    doc = LoadedDocument(path=path, data=data)
    if node is not None:
        _index(node, (), doc)
    return doc


def load_file(path: Path | str) -> LoadedDocument:
    """Read and parse a workflow file; a missing file is ``WORKFLOW_NOT_FOUND``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoomError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow file {str(p)!r} does not exist") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise LoomError(
            ErrorCode.WORKFLOW_NOT_FOUND, f"workflow file {str(p)!r} cannot be read: {type(exc).__name__}"
        ) from None
    return parse_text(text, p)
