"""Replace resolved secret values, and the forms they leak in, by stable tokens.

Every output surface (console stream, receipt stdout/stderr, error fields,
provider messages) goes through a :class:`Redactor` built from the run's
resolved values. ``NAME``'s value becomes ``[REDACTED:SECRET_NAME]``.

Matching rule (deterministic whatever the chunking): every byte covered by an
occurrence of any pattern is removed. Overlapping occurrences form one run;
a run becomes a single token, named after the longest pattern that starts at
the run's first byte (leftmost-longest). Touching but non-overlapping
occurrences give one token each. A stream gives exactly the bytes
:meth:`Redactor.redact` gives for the whole buffer.

Nothing here logs, and no repr, message or exception carries a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any, NoReturn

from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.secrets.forms import derived_forms, usable_forms, value_problem
from loom_core.secrets.redaction_matcher import PatternMatcher

#: Default minimum length of a secret value (bytes, after stripping whitespace).
DEFAULT_MIN_LENGTH = 8

_WHOLE_BUFFER_SLICE = 1 << 20  # redact() works through larger buffers 1 MiB at a time
_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_TOKEN_PREFIX = "[REDACTED:SECRET_"  # noqa: S105 - a marker, not a password

ExtraForms = Callable[[bytes], Iterable[bytes]]


def token_for(name: str) -> str:
    """The token that replaces the value of secret ``name``; refuses invalid names."""
    _check_name(name)
    return f"{_TOKEN_PREFIX}{name}]"


class Redactor:
    """Redacts a fixed set of secret values and their encoded forms.

    Build one per run from the resolved values; it is immutable and may be
    shared by any number of concurrent :meth:`stream` states.
    """

    __slots__ = ("_matcher", "_min_length", "_names")

    def __init__(
        self,
        secrets: Mapping[str, bytes | SecretValue],
        *,
        extra_forms: ExtraForms | None = None,
        min_length: int = DEFAULT_MIN_LENGTH,
    ) -> None:
        """Validate every value and compile all patterns.

        Raises ``SECRETS_REF_INVALID`` for a name not matching ``[A-Z][A-Z0-9_]*``
        and ``SECRETS_VALUE_UNSAFE`` for a value that is not bytes, blank,
        shorter than ``min_length`` once stripped of surrounding whitespace,
        or contained in a redaction token. Messages name the secret, never
        the value.
        """
        if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 1:
            raise LoomError(
                ErrorCode.CONFIG_INVALID,
                f"secrets.min_length must be a positive integer, got {min_length!r}",
            )
        self._min_length = min_length
        for name in secrets:
            _check_name(name)  # before sorting: a non-str key must fail with a code, not a TypeError
        self._names = tuple(sorted(secrets))
        values = {name: _checked_value(name, secrets[name], min_length) for name in self._names}
        tokens = {name: token_for(name).encode("ascii") for name in self._names}
        for name, value in values.items():
            if any(value in token for token in tokens.values()):
                raise LoomError(
                    ErrorCode.SECRETS_VALUE_UNSAFE,
                    f"secret {name}: its value occurs inside a redaction token, so redacted "
                    "output would still show it; use a different value",
                    details={"secret": name},
                )
        patterns: dict[bytes, bytes] = {}
        # Exact values claim their bytes first; among equals the smallest name wins.
        for name in self._names:
            patterns.setdefault(values[name], tokens[name])
        token_bytes = bytes(set(b"".join(tokens.values())))
        for name in self._names:
            for form in sorted(_forms(name, values[name], extra_forms, min_length)):
                # Only a form made of token bytes alone can occur inside a token.
                if form.translate(None, token_bytes) or not any(form in t for t in tokens.values()):
                    patterns.setdefault(form, tokens[name])
        self._matcher = PatternMatcher(patterns)

    @property
    def names(self) -> tuple[str, ...]:
        """The secret names this redactor masks, sorted."""
        return self._names

    @property
    def min_length(self) -> int:
        """The minimum value length (bytes, surrounding whitespace not counted) enforced."""
        return self._min_length

    @property
    def pattern_count(self) -> int:
        """How many distinct byte patterns (values and forms) are matched."""
        return len(self._matcher)

    @property
    def longest_pattern(self) -> int:
        """Length of the longest pattern; a stream holds back fewer bytes than this."""
        return self._matcher.longest

    def token_for(self, name: str) -> str:
        """``[REDACTED:SECRET_<name>]``."""
        return token_for(name)

    def redact(self, data: bytes | bytearray | memoryview) -> bytes:
        """Redact a complete buffer (large ones in slices, to bound temporary memory)."""
        data = data if isinstance(data, bytes) else bytes(data)
        if len(data) <= _WHOLE_BUFFER_SLICE:
            return _redact_chunk(self._matcher, data, 0, final=True)[0]
        stream = self.stream()
        view = memoryview(data)
        parts = [
            stream.feed(view[i : i + _WHOLE_BUFFER_SLICE].tobytes())
            for i in range(0, len(data), _WHOLE_BUFFER_SLICE)
        ]
        parts.append(stream.finish())
        return b"".join(parts)

    def redact_text(self, text: str) -> str:
        """Redact a ``str``; undecodable bytes survive through ``surrogateescape``.

        A lone surrogate that ``surrogateescape`` cannot encode (e.g. from
        JSON ``"\\ud800"``) is carried with ``surrogatepass`` instead of
        raising: error messages go through here and must not fail.
        """
        try:
            raw = text.encode("utf-8", "surrogateescape")
            errors = "surrogateescape"
        except UnicodeEncodeError:
            raw, errors = text.encode("utf-8", "surrogatepass"), "surrogatepass"
        return self.redact(raw).decode("utf-8", errors)

    def stream(self) -> StreamRedactor:
        """A new, independent streaming state over this redactor's patterns."""
        return StreamRedactor(self._matcher)

    def __repr__(self) -> str:
        return f"Redactor(names={list(self._names)!r}, patterns={len(self._matcher)})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("Redactor holds secret values and cannot be pickled")


class StreamRedactor:
    """Redacts one byte stream fed in arbitrary chunks.

    :meth:`feed` returns what is safe to emit now and holds back only a tail
    that could still grow into a match (fewer than ``longest_pattern`` bytes);
    :meth:`finish` releases it. After :meth:`finish` the state is fresh again.
    """

    __slots__ = ("_held", "_matcher", "_skip")

    def __init__(self, matcher: PatternMatcher) -> None:
        self._matcher = matcher
        self._held = b""
        self._skip = 0  # leading bytes of ``_held`` already covered by an emitted token

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Add ``chunk`` and return the redacted bytes that can no longer change."""
        if not chunk:
            return b""
        if not isinstance(chunk, bytes):
            chunk = bytes(chunk)  # bytearray / memoryview from a readinto loop
        data = self._held + chunk if self._held else chunk
        out, self._held, self._skip = _redact_chunk(self._matcher, data, self._skip, final=False)
        return out

    def finish(self) -> bytes:
        """Release everything held back, redacted, and reset the state."""
        data, skip = self._held, self._skip
        self._held, self._skip = b"", 0
        if not data:
            return b""
        return _redact_chunk(self._matcher, data, skip, final=True)[0]

    @property
    def held(self) -> int:
        """How many bytes are currently held back (not their content)."""
        return len(self._held)

    def __repr__(self) -> str:
        return f"StreamRedactor(held={len(self._held)} bytes)"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("StreamRedactor may hold secret bytes and cannot be pickled")


def _redact_chunk(matcher: PatternMatcher, data: bytes, skip: int, *, final: bool) -> tuple[bytes, bytes, int]:
    """Redact ``data`` up to where it is decidable; return (output, held tail, covered bytes of tail).

    ``skip`` leading bytes of ``data`` are already covered by a token emitted
    earlier. Positions before ``limit`` cannot start an occurrence that runs
    past the end of ``data``, so every decision there is final.
    """
    size = len(data)
    limit = size if final else matcher.pending_start(data)
    matches = matcher.find(data)
    if not matches and not skip:
        if limit == size:
            return data, b"", 0
        return data[:limit], data[limit:], 0
    out: list[bytes] = []
    covered = skip  # everything before ``covered`` is emitted (raw or as a token)
    for start, neg_length, token in matches:
        if start >= limit:
            break
        end = start - neg_length
        if start < covered:  # overlaps the current run: extend it, no new token
            covered = max(covered, end)
            continue
        out.append(data[covered:start])
        out.append(token)
        covered = end
    if covered < limit:
        out.append(data[covered:limit])
        return b"".join(out), data[limit:], 0
    return b"".join(out), data[limit:], covered - limit


def forms_from_hook(hook: Any) -> ExtraForms:
    """Adapt pluggy's relay (``host.hook``) to ``extra_forms``: merge every plugin's forms."""

    def extra_forms(value: bytes) -> Iterable[bytes]:
        return list(chain.from_iterable(hook.loom_redaction_forms(value=value)))

    return extra_forms


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise LoomError(
            ErrorCode.SECRETS_REF_INVALID,
            f"secret name {name!r} is invalid: use upper-case letters, digits and "
            "underscores, starting with a letter (e.g. DATABASE_PASSWORD)",
        )


def _checked_value(name: str, value: object, min_length: int) -> bytes:
    _check_name(name)
    if isinstance(value, SecretValue):
        value = value.reveal()
    if not isinstance(value, bytes | bytearray):
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"secret {name}: the resolved value must be bytes, got {type(value).__name__}",
            details={"secret": name},
        )
    raw = bytes(value)
    problem = value_problem(raw, min_length)
    if problem == "blank":
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"secret {name}: the value is blank; redaction cannot mask it, store a real value",
            details={"secret": name},
        )
    if problem == "short":
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"secret {name}: the value is shorter than the minimum of {min_length} bytes "
            "(surrounding whitespace not counted); store a longer value",
            details={"secret": name, "min_length": min_length},
        )
    return raw


def _forms(name: str, value: bytes, extra_forms: ExtraForms | None, min_length: int) -> set[bytes]:
    forms = derived_forms(value, min_length=min_length)
    if extra_forms is None:
        return forms
    try:
        extra = [form for form in extra_forms(value)]
    except Exception as exc:
        # The original exception may quote the value: report only its type.
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"secret {name}: a loom_redaction_forms hook failed ({type(exc).__name__}); "
            "fix or disable that plugin",
            details={"secret": name},
        ) from None
    if not all(isinstance(form, bytes | bytearray) for form in extra):
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"secret {name}: a loom_redaction_forms hook returned something other than bytes",
            details={"secret": name},
        )
    extra = [bytes(form) for form in extra]
    forms.update(usable_forms(extra, min_length=min_length))
    forms.discard(value)
    return forms
