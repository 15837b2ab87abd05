"""Read a workflow YAML file into plain data plus the line of every node.

PyYAML's composer gives nodes with marks; constructing from those nodes keeps
a map from JSON path to line, so every problem ``loom check`` reports can name
its line. Duplicate mapping keys (which PyYAML silently overwrites) are
recorded so they can be reported instead of hiding a value, and so is the
source text of every scalar YAML did not read as a string (``1.10`` becomes
the number 1.1, ``0755`` the number 493), so a changed variable can be named.

Nodes are indexed before construction: the constructor rewrites a mapping
with a merge key (``<<: *anchor``) in place, which made an override look like
a duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loom_core.errors import ErrorCode, LoomError

JsonPath = tuple[str | int, ...]

#: Deeper documents are refused before the schema sees them (a workflow needs about six levels).
MAX_DEPTH = 64
#: Node visits allowed while indexing: aliases can make a small file expand enormously.
MAX_NODES = 200_000
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass
class LoadedDocument:
    """The parsed document, the 1-based line of each path, and duplicate keys."""

    path: Path
    data: Any
    lines: dict[JsonPath, int] = field(default_factory=dict)
    duplicates: list[tuple[JsonPath, int]] = field(default_factory=list)
    #: source text of scalars YAML did not read as strings, by path
    scalars: dict[JsonPath, str] = field(default_factory=dict)

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


def _index(root: yaml.Node, path: JsonPath, doc: LoadedDocument) -> None:
    """Record lines, duplicate keys and retyped scalars; refuse absurd depth or size."""
    stack: list[tuple[yaml.Node, JsonPath]] = [(root, path)]
    visits = 0
    while stack:
        node, where = stack.pop()
        visits += 1
        if visits > MAX_NODES:
            raise _invalid(doc.path, node, f"the document expands to more than {MAX_NODES} nodes (aliases?)")
        if len(where) > MAX_DEPTH:
            raise _invalid(doc.path, node, f"the document nests deeper than {MAX_DEPTH} levels")
        doc.lines.setdefault(where, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                child = (*where, key)
                if key in seen:
                    doc.duplicates.append((child, key_node.start_mark.line + 1))
                seen.add(key)
                doc.lines[child] = key_node.start_mark.line + 1
                stack.append((value_node, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((item, (*where, i)) for i, item in enumerate(node.value)))
        elif isinstance(node, yaml.ScalarNode) and node.tag != _STR_TAG:
            doc.scalars[where] = str(node.value)


def _invalid(path: Path, node: yaml.Node, why: str) -> LoomError:
    line = node.start_mark.line + 1
    return LoomError(ErrorCode.WORKFLOW_YAML_INVALID, f"{path}:{line}: {why}", details={"line": line})


def parse_text(text: str, path: Path) -> LoadedDocument:
    """Parse ``text``; malformed YAML raises ``WORKFLOW_YAML_INVALID`` with its line."""
    doc = LoadedDocument(path=path, data=None)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _index(node, (), doc)
                doc.data = loader.construct_document(node)
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
    except RecursionError:
        raise LoomError(
            ErrorCode.WORKFLOW_YAML_INVALID, f"{path}: the document nests deeper than {MAX_DEPTH} levels"
        ) from None
    return doc


def load_file(path: Path | str) -> LoadedDocument:
    """Read and parse a workflow file; a missing file is ``WORKFLOW_NOT_FOUND``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LoomError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow file {str(p)!r} does not exist") from None
    except UnicodeDecodeError as exc:
        raise LoomError(
            ErrorCode.WORKFLOW_YAML_INVALID,
            f"workflow file {str(p)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8",
        ) from None
    except (IsADirectoryError, PermissionError) as exc:
        raise LoomError(
            ErrorCode.WORKFLOW_NOT_FOUND, f"workflow file {str(p)!r} cannot be read: {type(exc).__name__}"
        ) from None
    return parse_text(text, p)
