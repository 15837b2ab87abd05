"""Read a workflow YAML file into plain data plus the line of every node.

PyYAML's composer gives nodes with marks; constructing from those nodes keeps
a map from JSON path to line, so every problem ``loom check`` reports can name
its line. Duplicate mapping keys (which PyYAML silently overwrites) are
recorded so they can be reported instead of hiding a value, and so is the
source text of every scalar YAML did not read as a string (``1.10`` becomes
the number 1.1, ``0755`` the number 493), so a changed variable can be named.

Mapping keys are kept as written: YAML 1.1 reads an unquoted ``ON`` key as
the boolean true and ``1`` as an integer, and a workflow's keys are names, so
the data holds the text ``"ON"`` and the retyped key is recorded instead
(:attr:`LoadedDocument.retyped_keys`). The rest of the check then sees every
other problem of the same document in the same pass, and two keys YAML reads
as one value (``ON`` and ``on``) no longer merge silently.

Nodes are indexed before construction: the constructor rewrites a mapping
with a merge key (``<<: *anchor``) in place, which made an override look like
a duplicate.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
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
#: Earlier copies of duplicate keys checked on their own (each is one more parse and check).
MAX_EARLIER_COPIES = 16
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
#: what YAML 1.1 makes of an unquoted scalar, by resolved tag, for messages
YAML_KINDS = {
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:null": "null (no value)",
    "tag:yaml.org,2002:timestamp": "a date",
}


@dataclass(frozen=True)
class Duplicate:
    """A key written more than once in one mapping; YAML keeps only the last copy."""

    path: JsonPath
    #: the line of every copy, in file order
    lines: tuple[int, ...]


@dataclass(frozen=True)
class RetypedKey:
    """A key YAML 1.1 does not read as text (``ON``, ``1``, ``~``), kept in the data as written."""

    path: JsonPath
    line: int
    #: what YAML reads it as, e.g. "a boolean" (see :data:`YAML_KINDS`)
    kind: str


@dataclass(frozen=True)
class _Dropped:
    """An earlier copy of a duplicate key: where it is, to parse the file again keeping it."""

    path: JsonPath
    line: int
    mapping_offset: int
    key_offset: int


@dataclass
class LoadedDocument:
    """The parsed document, the 1-based line of each path, and duplicate keys."""

    path: Path
    data: Any
    lines: dict[JsonPath, int] = field(default_factory=dict)
    duplicates: list[Duplicate] = field(default_factory=list)
    #: source text of scalars YAML did not read as strings, by path
    scalars: dict[JsonPath, str] = field(default_factory=dict)
    retyped_keys: list[RetypedKey] = field(default_factory=list)
    text: str = ""
    dropped: list[_Dropped] = field(default_factory=list)

    def line_of(self, path: JsonPath) -> int:
        """Line of ``path``, or of its nearest ancestor that has one."""
        probe = tuple(path)
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return self.lines.get((), 1)

    def earlier_copies(self) -> Iterator[tuple[JsonPath, int, LoadedDocument]]:
        """Each earlier copy of a duplicate key as ``(path, line, document keeping that copy)``.

        YAML keeps the last copy, so the problems of the others would never be seen; checking the
        same file with one earlier copy kept instead lets ``loom check`` report them too.
        """
        for dropped in self.dropped[:MAX_EARLIER_COPIES]:
            try:
                variant = _parse(self.text, self.path, keep=(dropped.mapping_offset, dropped.key_offset))
            except LoomError:
                continue
            yield dropped.path, dropped.line, variant


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


def _key_text(key_node: yaml.Node) -> str:
    return key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)


def _is_merge(key_node: yaml.Node) -> bool:
    return isinstance(key_node, yaml.ScalarNode) and key_node.tag == _MERGE_TAG


def _index(root: yaml.Node, path: JsonPath, doc: LoadedDocument) -> None:
    """Record lines, duplicate keys and retyped scalars; refuse absurd depth or size.

    Only the copy of a duplicated key that YAML keeps is recorded (the others are checked on their
    own, see :meth:`LoadedDocument.earlier_copies`), but every node counts towards the limits.
    """
    stack: list[tuple[yaml.Node, JsonPath, bool]] = [(root, path, True)]
    visits = 0
    while stack:
        node, where, record = stack.pop()
        visits += 1
        if visits > MAX_NODES:
            raise _invalid(doc.path, node, f"the document expands to more than {MAX_NODES} nodes (aliases?)")
        if len(where) > MAX_DEPTH:
            raise _invalid(doc.path, node, f"the document nests deeper than {MAX_DEPTH} levels")
        if record:
            doc.lines.setdefault(where, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            copies: dict[str, list[int]] = {}
            for key_node, _value in node.value:
                if not _is_merge(key_node):
                    copies.setdefault(_key_text(key_node), []).append(key_node.start_mark.line + 1)
            last: dict[str, int] = {}
            for i, (key_node, _value) in enumerate(node.value):
                last[_key_text(key_node)] = i
            for i, (key_node, value_node) in enumerate(node.value):
                key = _key_text(key_node)
                child = (*where, key)
                kept = _is_merge(key_node) or last[key] == i
                line = key_node.start_mark.line + 1
                if record and kept:
                    doc.lines[child] = line
                    if len(copies.get(key, ())) > 1:
                        doc.duplicates.append(Duplicate(child, tuple(copies[key])))
                    if isinstance(key_node, yaml.ScalarNode) and key_node.tag not in (_STR_TAG, _MERGE_TAG):
                        kind = YAML_KINDS.get(key_node.tag, f"a value of type {key_node.tag.rsplit(':', 1)[-1]}")
                        doc.retyped_keys.append(RetypedKey(child, line, kind))
                elif record:
                    doc.dropped.append(_Dropped(child, line, node.start_mark.index, key_node.start_mark.index))
                stack.append((value_node, child, record and kept))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((item, (*where, i), record) for i, item in enumerate(node.value)))
        elif record and isinstance(node, yaml.ScalarNode) and node.tag != _STR_TAG:
            doc.scalars[where] = str(node.value)


def _invalid(path: Path, node: yaml.Node, why: str) -> LoomError:
    line = node.start_mark.line + 1
    return LoomError(ErrorCode.WORKFLOW_YAML_INVALID, f"{path}:{line}: {why}", details={"line": line})


class _KeysAsWritten(yaml.SafeLoader):
    """The safe loader, except that a scalar mapping key is its text as written (see the module doc)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        if not isinstance(node, yaml.MappingNode):
            return super().construct_mapping(node, deep=deep)
        self.flatten_mapping(node)
        mapping: dict[Hashable, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else self.construct_object(key_node, deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _find_mapping(root: yaml.Node, offset: int) -> yaml.MappingNode | None:
    """The mapping node that starts at character ``offset``."""
    stack: list[yaml.Node] = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            if node.start_mark.index == offset:
                return node
            stack.extend(n for pair in node.value for n in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return None


def _keep_copy(root: yaml.Node, keep: tuple[int, int]) -> None:
    """In the mapping at ``keep[0]``, drop every other copy of the key that starts at ``keep[1]``."""
    mapping = _find_mapping(root, keep[0])
    if mapping is None:
        return
    wanted = [_key_text(k) for k, _ in mapping.value if k.start_mark.index == keep[1]]
    if wanted:
        mapping.value = [
            (k, v) for k, v in mapping.value if _key_text(k) != wanted[0] or k.start_mark.index == keep[1]
        ]


_HINTS = {
    "quoted scalar": "is its closing quote missing?",
    "flow sequence": "is its closing ']' missing?",
    "flow mapping": "is its closing '}' missing?",
}


def _syntax_error(path: Path, text: str, exc: yaml.MarkedYAMLError) -> LoomError:
    """The error with its line; when YAML ran to the end of the file looking for the end of a
    construct (an unclosed quote or bracket), the line is where that construct started, since the
    end of the file says nothing about where to look."""
    problem, context = exc.problem_mark, exc.context_mark
    problem_line = problem.line + 1 if problem is not None else None
    context_line = context.line + 1 if context is not None else None
    said = exc.problem or exc.context or "unknown error"
    at_end = problem is None or problem.index >= len(text) or "end of stream" in said or "<stream end>" in said
    line = (context_line if at_end else problem_line) or problem_line or context_line or 1
    message = f"not valid YAML: {said}"
    if context is not None and exc.context and exc.problem and context_line != problem_line:
        message += f" at line {problem_line}, {exc.context} that starts at line {context_line}"
        message += f", column {context.column + 1}"
        hint = next((h for what, h in _HINTS.items() if what in exc.context), None)
        if hint:
            message += f": {hint}"
    details: dict[str, Any] = {"line": line}
    if problem_line is not None:
        details["problem_line"] = problem_line
    if context_line is not None:
        details["context_line"] = context_line
    return LoomError(ErrorCode.WORKFLOW_YAML_INVALID, f"{path}:{line}: {message}", details=details)


def _parse(text: str, path: Path, keep: tuple[int, int] | None = None) -> LoadedDocument:
    doc = LoadedDocument(path=path, data=None, text=text)
    try:
        loader = _KeysAsWritten(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                if keep is not None:
                    _keep_copy(node, keep)
                _index(node, (), doc)
                doc.data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(path, text, exc) from None
    except yaml.YAMLError as exc:
        raise LoomError(ErrorCode.WORKFLOW_YAML_INVALID, f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise LoomError(
            ErrorCode.WORKFLOW_YAML_INVALID, f"{path}: the document nests deeper than {MAX_DEPTH} levels"
        ) from None
    return doc


def parse_text(text: str, path: Path) -> LoadedDocument:
    """Parse ``text``; malformed YAML raises ``WORKFLOW_YAML_INVALID`` with its line."""
    return _parse(text, path)


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
