"""The encodings under which a secret value leaks into output in practice.

A script rarely prints a secret only verbatim: it ends up base64-encoded in a
basic-auth header, JSON-escaped in a structured log, percent-encoded in a URL,
shell-quoted in a ``set -x`` trace, ``repr``-escaped in a Python traceback, or
with its line breaks rewritten. :func:`derived_forms` returns those byte
strings so the redactor can match them like the value itself.

Every derived form must be at least :data:`MIN_FORM_LENGTH` bytes long and
contain more than one distinct byte; shorter or single-byte forms (such as the
``AAAAAAAAAA`` a run of zero bytes base64-encodes to) occur in ordinary output
by chance and would destroy it without protecting anything.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote, quote_plus

#: Shortest derived form that is ever used for matching (bytes).
MIN_FORM_LENGTH = 8

#: A wrapped base64 fragment may keep up to this many characters minus one visible
#: on one side of a line break (see :func:`wrapped_base64_forms`).
WRAP_EDGE = 6
_WRAP_WIDTH_MAX = 76  # the widest common base64 line (``base64``, MIME); PEM uses 64

_URLSAFE = bytes.maketrans(b"+/", b"-_")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_PERCENT_HEX = re.compile(rb"%[0-9A-F]{2}")
# Bytes that ``printf %q`` and similar shell escapers leave alone (non-ASCII text included).
_SHELL_UNSAFE = re.compile(rb"([^A-Za-z0-9_@%+=:,./\x80-\xff-])")
_DOUBLE_QUOTE_UNSAFE = re.compile(r'([\\"$`])')


def base64_forms(value: bytes) -> set[bytes]:
    """Base64 of ``value`` inside any larger blob, standard and URL-safe alphabets.

    When ``value`` starts at byte offset 0, 1 or 2 (mod 3) of an encoded blob,
    the output characters whose six bits all come from ``value`` are the same
    whatever surrounds it; those stable inner substrings are returned for all
    three alignments, plus the complete encoding of ``value`` alone (padded and
    unpadded) so a standalone encoding is masked entirely.
    """
    fragments: set[bytes] = set()
    size = len(value)
    for align in (0, 1, 2):
        encoded = base64.b64encode(b"\0" * align + value)
        first = -(-8 * align // 6)  # first character made only of value bits
        stop = (8 * (align + size)) // 6  # one past the last such character
        fragments.add(encoded[first:stop])
    whole = base64.b64encode(value)
    forms = fragments | {whole, whole.rstrip(b"=")}
    for fragment in fragments:
        forms |= wrapped_base64_forms(fragment)
    forms.update({form.translate(_URLSAFE) for form in list(forms)})
    return forms


def wrapped_base64_forms(fragment: bytes) -> set[bytes]:
    """A base64 fragment cut by one line feed, as ``base64``, ``openssl base64`` and PEM wrap output.

    Those tools break lines every 76 or 64 characters, so a fragment of up to
    76 characters is cut at most once, at an unknown position ``j``. For
    ``WRAP_EDGE <= j <= len - WRAP_EDGE`` the fragment with ``\n`` at ``j``
    is a form; for a cut nearer an end, the longer side alone is (the shorter
    side, under ``WRAP_EDGE`` characters, stays visible). Longer fragments,
    which wrapping cuts several times, get no wrapped forms.
    """
    size = len(fragment)
    if size > _WRAP_WIDTH_MAX:
        return set()
    forms: set[bytes] = set()
    for cut in range(1, size):
        if cut < WRAP_EDGE:
            forms.add(fragment[cut:])
        elif cut > size - WRAP_EDGE:
            forms.add(fragment[:cut])
        else:
            forms.add(fragment[:cut] + b"\n" + fragment[cut:])
    return forms


def json_forms(text: str) -> set[bytes]:
    """``json.dumps`` output without the quotes: ASCII-escaped, raw UTF-8, and with ``\\/``."""
    forms: set[bytes] = set()
    for ensure_ascii in (True, False):
        body = json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]
        forms.add(_encode(body))
        forms.add(_encode(body.replace("/", "\\/")))
    return forms


def url_forms(value: bytes) -> set[bytes]:
    """Percent-encodings as ``quote`` and ``quote_plus`` print them, upper- and lower-case hex."""
    forms = {
        quote(value, safe="").encode("ascii"),
        quote(value).encode("ascii"),
        quote_plus(value).encode("ascii"),
        quote_plus(value, safe="/").encode("ascii"),
    }
    forms.update({_PERCENT_HEX.sub(lambda m: m.group(0).lower(), form) for form in list(forms)})
    return forms


def shell_forms(text: str, value: bytes) -> set[bytes]:
    """Shell-quoted spellings: ``shlex.quote``, bash's ``'\\''``, double quotes, backslashes."""
    quoted = shlex.quote(text)
    forms = {
        _encode(quoted),
        _encode(text.replace("'", "'\"'\"'")),  # shlex.quote body without the outer quotes
        _encode(text.replace("'", "'\\''")),  # bash ``set -x`` / printf style
        _encode(_DOUBLE_QUOTE_UNSAFE.sub(r"\\\1", text)),  # inside "..."
        _SHELL_UNSAFE.sub(rb"\\\1", value),  # every special byte backslash-escaped
    }
    return forms


def repr_forms(text: str, value: bytes) -> set[bytes]:
    """Python ``repr`` without its quotes, of the bytes and of the decoded text."""
    return {repr(value)[2:-1].encode("ascii"), _encode(repr(text)[1:-1])}


def line_break_variants(value: bytes) -> set[bytes]:
    """A multi-line value with its breaks rewritten as CRLF, ``\\n`` literals or spaces."""
    if not _LINE_BREAK.search(value):
        return set()
    lines = _LINE_BREAK.split(value)
    separators = (b"\n", b"\r\n", b"\\n", b"\\r\\n", b" ", b"")
    variants = {sep.join(lines) for sep in separators}
    # Converters that rewrite only bare LF (unix2dos, terminals, naive replace) leave CR alone.
    variants.update(value.replace(b"\n", sep) for sep in separators)
    variants.add(value.replace(b"\r\n", b"\n"))
    return variants


def derived_forms(value: bytes, *, min_length: int = MIN_FORM_LENGTH) -> set[bytes]:
    """Every encoded form of ``value`` that is safe to match, without ``value`` itself.

    The value and the value stripped of surrounding whitespace (as ``$(cat
    file)`` prints it) are encoded in every way above; the line-break variants
    of both are added as they are (encoding each of them too would multiply
    the patterns of a multi-line key by ten for little gain). Forms shorter
    than ``min_length`` (never less than :data:`MIN_FORM_LENGTH`) or made of
    one repeated byte are dropped.
    """
    forms: set[bytes] = set()
    for base in {value, value.strip()}:
        text = base.decode("utf-8", "surrogateescape")
        forms.add(base)
        forms |= base64_forms(base)
        forms |= json_forms(text)
        forms |= url_forms(base)
        forms |= shell_forms(text, base)
        forms |= repr_forms(text, base)
        forms |= line_break_variants(base)
    forms.discard(value)
    return set(usable_forms(forms, min_length=min_length))


def usable_forms(forms: Iterable[bytes], *, min_length: int = MIN_FORM_LENGTH) -> Iterable[bytes]:
    """Keep the forms long and specific enough to match without masking ordinary output."""
    floor = max(min_length, MIN_FORM_LENGTH)
    for form in forms:
        if len(form) >= floor and len(set(form)) > 1:
            yield form


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def value_problem(value: bytes, min_length: int) -> Literal["blank", "short"] | None:
    """Why redaction could not mask ``value`` safely, or ``None``: the one rule
    for blank and short values, whatever reports it."""
    stripped = value.strip()
    if not stripped:
        return "blank"
    if len(stripped) < min_length:
        return "short"
    return None
