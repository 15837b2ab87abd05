"""The ``regex`` PII filter: phones, emails, national IDs and a blocklist.

Detected, with the token each becomes:

* ``[EMAIL]``: ``local@domain.tld`` addresses.
* ``[PHONE]``: international numbers (``+`` and country code, 7-15 digits,
  spaces / dots / dashes / ``(0)`` between groups: ``+44 20 7946 0958``,
  ``+1-202-555-0143``, ``+49 30 901820``), North American local numbers
  (``(202) 555-0143``, ``202-555-0143``, ``202.555.0143``) and trunk-prefix
  local numbers with separators (``020 7946 0958``, ``030 901820``).
* ``[ID]``: US SSN (``123-45-6789``, impossible areas/groups excluded), UK
  National Insurance numbers (``QQ 12 34 56 C``, invalid prefixes excluded),
  French INSEE/NIR numbers (15 digits, spaces allowed, mod-97 key checked)
  and German Steuer-IDs (11 digits, ISO 7064 check digit and digit-repeat
  rule checked).
* ``[REDACTED]``: configured blocklist terms, case-insensitive, whole words
  (a term never matches inside a longer word).

Checksums, separators and "not glued to other digits/letters" rules keep
dates, ISO timestamps, versions, prices, IP addresses and ids untouched.
Options: ``blocklist`` (list of non-empty strings) and ``detect`` (subset of
``phone``, ``email``, ``id``, ``blocklist``; default all). Anything else is
``PII_CONFIG_INVALID``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loom_core.contracts import BackendContext
from loom_core.contracts.pii import PII_TOKENS, PIIResult
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry

KINDS = ("email", "id", "phone", "blocklist")  # also the priority order on overlap
CAPABILITIES = frozenset(KINDS)
OPTIONS = frozenset({"blocklist", "detect"})

# Not glued to a word, a dot-number or a plus/dash chain on either side. The left check
# is a lookbehind placed *after* a pattern's first character (``_left(first)``), so
# the regex engine can jump straight to candidate characters instead of testing a
# lookbehind at every position (about twice as fast on ordinary text).
_GLUE = r"[\w+\-./@]"
_RIGHT = r"(?![\w@]|[.\-/]\w)"


def _left(first: str) -> str:
    """``first`` (one character or class), not preceded by a word or number character."""
    return f"{first}(?<!{_GLUE}{first})"


_EMAIL = re.compile(r"(?<![\w.+\-])[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![\w\-])")
_TOKEN = re.compile(r"\[(?:PHONE|EMAIL|ID|REDACTED)\]")

_PHONE_INTL = re.compile(_left(r"\+") + r"\d{1,3}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}(?![ .\-]?\d)" + _RIGHT)
_PHONE_NANP = re.compile(
    r"(?:" + _left(r"\(") + r"\d{3}\) ?\d{3}[\-. ]\d{4}|" + _left(r"\d") + r"\d{2}([\-.])\d{3}\1\d{4})" + _RIGHT
)
_PHONE_TRUNK = re.compile(_left("0") + r"[1-9]\d{0,3}(?:[ \-]\d{2,6}){1,3}(?![ \-]?\d)" + _RIGHT)

_SSN = re.compile("(" + _left(r"\d") + r"\d{2})-(\d{2})-(\d{4})" + _RIGHT)
_NINO = re.compile(r"([A-CEGHJ-PR-TW-Z](?<!\w[A-CEGHJ-PR-TW-Z])[A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D](?!\w)")
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"})
_INSEE = re.compile(
    _left("[12]") + r" ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + _RIGHT
)
_STEUER_ID = re.compile(_left("[1-9]") + r"\d{10}" + _RIGHT)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


def _phone_intl_ok(match: re.Match[str]) -> bool:
    return 7 <= len(_digits(match.group())) <= 15


def _phone_trunk_ok(match: re.Match[str]) -> bool:
    return 9 <= len(_digits(match.group())) <= 11


def _ssn_ok(match: re.Match[str]) -> bool:
    area, group, serial = match.group(1), match.group(2), match.group(3)
    return area not in {"000", "666"} and not area.startswith("9") and group != "00" and serial != "0000"


def _nino_ok(match: re.Match[str]) -> bool:
    return match.group(1) not in _NINO_BAD_PREFIX


def _insee_ok(match: re.Match[str]) -> bool:
    compact = match.group().replace(" ", "")
    body, key = compact[:13], compact[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    return body.isdigit() and 97 - int(body) % 97 == int(key)


def _steuer_id_ok(match: re.Match[str]) -> bool:
    digits = [int(d) for d in match.group()]
    counts = [digits[:10].count(d) for d in set(digits[:10])]
    if sorted(c for c in counts if c > 1) not in ([2], [3]):
        return False
    product = 10
    for d in digits[:10]:
        total = (d + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == digits[10]


Validator = Callable[[re.Match[str]], bool]
#: (kind, pattern, validator, a character every match contains: a cheap gate before scanning)
_DETECTORS: tuple[tuple[str, re.Pattern[str], Validator | None, str], ...] = (
    ("email", _EMAIL, None, "@"),
    ("id", _SSN, _ssn_ok, "-"),
    ("id", _NINO, _nino_ok, ""),
    ("id", _INSEE, _insee_ok, ""),
    ("id", _STEUER_ID, _steuer_id_ok, ""),
    ("phone", _PHONE_INTL, _phone_intl_ok, "+"),
    ("phone", _PHONE_NANP, None, ""),
    ("phone", _PHONE_TRUNK, _phone_trunk_ok, "0"),
)
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True, order=True)
class _Span:
    start: int
    end: int
    kind: str


def _compile_blocklist(terms: Sequence[str]) -> re.Pattern[str] | None:
    if not terms:
        return None
    ordered = sorted({t.strip() for t in terms}, key=len, reverse=True)
    alternatives = "|".join(r"\s+".join(re.escape(word) for word in term.split()) for term in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class RegexPIIFilter:
    """Regex detectors with checksums; see the module docstring for what is found."""

    capabilities: frozenset[str] = CAPABILITIES

    def __init__(self, *, blocklist: Sequence[str] = (), detect: Iterable[str] = KINDS) -> None:
        self._detect = frozenset(detect)
        self.capabilities = self._detect  # what this instance actually redacts
        self._blocklist = _compile_blocklist(blocklist)
        self._term_count = len(blocklist)

    def __repr__(self) -> str:
        # Blocklist terms are sensitive too: show only how many there are.
        return f"RegexPIIFilter(detect={sorted(self._detect)}, blocklist_terms={self._term_count})"

    def redact(self, text: str) -> PIIResult:
        """Replace every detected span by its token; overlaps go to the earlier kind in KINDS."""
        protected = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        spans: list[_Span] = []
        has_digit = _DIGIT.search(text) is not None  # every detector but e-mail needs a digit
        for kind, pattern, valid, gate in _DETECTORS:
            if kind in self._detect and (has_digit or kind == "email") and gate in text:
                spans.extend(
                    _Span(m.start(), m.end(), kind)
                    for m in pattern.finditer(text)
                    if valid is None or valid(m)
                )
        if self._blocklist is not None and "blocklist" in self._detect:
            spans.extend(_Span(m.start(), m.end(), "blocklist") for m in self._blocklist.finditer(text))
        return _apply(text, spans, protected)


def _apply(text: str, spans: list[_Span], protected: list[tuple[int, int]]) -> PIIResult:
    priority = {kind: n for n, kind in enumerate(KINDS)}
    taken: list[tuple[int, int]] = list(protected)
    chosen: list[_Span] = []
    for span in sorted(spans, key=lambda s: (priority[s.kind], -(s.end - s.start), s.start)):
        if any(span.start < end and start < span.end for start, end in taken):
            continue
        taken.append((span.start, span.end))
        chosen.append(span)
    counts: dict[str, int] = {}
    pieces: list[str] = []
    cursor = 0
    for span in sorted(chosen):
        pieces.append(text[cursor : span.start])
        pieces.append(PII_TOKENS[span.kind])
        counts[span.kind] = counts.get(span.kind, 0) + 1
        cursor = span.end
    pieces.append(text[cursor:])
    return PIIResult(text="".join(pieces), counts=counts)


def _invalid(message: str) -> LoomError:
    return LoomError(ErrorCode.PII_CONFIG_INVALID, message)


def parse_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``options``; raises ``PII_CONFIG_INVALID`` naming the bad key."""
    unknown = sorted(set(map(str, options)) - OPTIONS)
    if unknown:
        raise _invalid(f"pii.options has unknown key(s) {unknown}; the regex filter accepts {sorted(OPTIONS)}")
    blocklist = options.get("blocklist", [])
    if isinstance(blocklist, str) or not isinstance(blocklist, Sequence):
        raise _invalid("pii.blocklist must be a list of strings, e.g. blocklist = [\"Project Falcon\"]")
    for n, term in enumerate(blocklist):
        if not isinstance(term, str) or not term.strip():
            raise _invalid(f"pii.blocklist[{n}] must be a non-empty string; remove or fill it")
        if _TOKEN.search(term):
            raise _invalid(f"pii.blocklist[{n}] clashes with a redaction token; choose another term")
    detect = options.get("detect", list(KINDS))
    if isinstance(detect, str) or not isinstance(detect, Sequence) or not detect:
        raise _invalid(f"pii.options.detect must be a non-empty list drawn from {list(KINDS)}")
    bad = sorted(str(d) for d in detect if d not in KINDS)
    if bad:
        raise _invalid(f"pii.options.detect has unknown kind(s) {bad}; use {list(KINDS)}")
    return {"blocklist": list(blocklist), "detect": list(detect)}


def create(ctx: BackendContext) -> RegexPIIFilter:
    """Factory: options ``blocklist`` and ``detect`` (see the module docstring)."""
    return RegexPIIFilter(**parse_options(ctx.options))


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_pii(
        "regex",
        create,
        capabilities=CAPABILITIES,
        description="phones, emails, national IDs (US SSN, UK NINO, FR INSEE, DE Steuer-ID), blocklist",
    )
