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
import unicodedata
from collections.abc import Iterable
from typing import Literal
from urllib.parse import quote, quote_plus

#: Shortest derived form that is ever used for matching (bytes).
MIN_FORM_LENGTH = 8
#: Shortest line of a multi-line value that is masked on its own (bytes, indentation stripped).
LINE_FORM_MIN = 16

#: A wrapped base64 fragment may keep up to this many characters minus one visible
#: on one side of a line break (see :func:`wrapped_base64_forms`).
WRAP_EDGE = 6
#: Line widths of the tools that wrap base64: ``openssl base64`` and PEM (64); ``base64``, MIME (76).
WRAP_WIDTHS = (64, 76)
_WRAP_WIDTH_MAX = max(WRAP_WIDTHS)
#: Line width of ``xxd -p`` (30 bytes as 60 hex digits per line).
HEX_WRAP_WIDTH = 60

_URLSAFE = bytes.maketrans(b"+/", b"-_")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_PERCENT_HEX = re.compile(rb"%[0-9A-F]{2}")
# Bytes that ``printf %q`` and similar shell escapers leave alone (non-ASCII text included).
_SHELL_UNSAFE = re.compile(rb"([^A-Za-z0-9_@%+=:,./\x80-\xff-])")
# bash 5.2's ``printf %q``: also escapes ``,``; ``#`` and ``~`` only where a word starts
_BASH52_UNSAFE = re.compile(rb"([^A-Za-z0-9_@%+=:./#~\x80-\xff-])")
_DOUBLE_QUOTE_UNSAFE = re.compile(r'([\\"$`])')
# bash's ``$'...'`` quoting (``printf %q``, ``${v@Q}``, ``declare -p``, ``set -x`` in the C locale)
_ANSI_C_ESCAPES = {0x07: b"\\a", 0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0B: b"\\v", 0x0C: b"\\f",
                   0x0D: b"\\r", 0x1B: b"\\E", 0x27: b"\\'", 0x5C: b"\\\\"}
_BLANKS = re.compile(rb"[ \t\n]+")  # what an unquoted ``echo $v`` collapses (bash's default IFS)
_LOWER_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")


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
    forms |= standalone_wrapped_base64_forms(whole, stable=(8 * size) // 6)
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


def standalone_wrapped_base64_forms(whole: bytes, *, stable: int) -> set[bytes]:
    """The encoding of a value that starts the input, wrapped into several lines.

    ``base64 "$FILE"``, ``openssl base64 -in "$FILE"`` and ``echo "$V" | base64``
    start the value at column 0, so where their line breaks fall is known
    whatever its length: the complete encoding ``whole`` (the value alone) and
    its first ``stable`` characters (the value followed by more bytes, such as
    ``echo``'s newline), broken every 64 or 76 characters with LF or CRLF.
    Values that start elsewhere in a longer wrapped blob are covered by
    :func:`wrapped_base64_forms` up to 57 bytes only.
    """
    forms: set[bytes] = set()
    for text in (whole, whole.rstrip(b"="), whole[:stable]):
        for width in WRAP_WIDTHS:
            if len(text) <= width:
                continue
            lines = [text[i : i + width] for i in range(0, len(text), width)]
            forms.update(separator.join(lines) for separator in (b"\n", b"\r\n"))
    return forms


def hex_forms(value: bytes) -> set[bytes]:
    """Hex of ``value`` in lower and upper case (``xxd -p`` of a short value, ``bytes.hex()``,
    ``od``-free dumps), and as ``xxd -p`` wraps it when the value starts its input. Hex is byte
    aligned, so the unwrapped form matches wherever the value sits in a longer dump."""
    forms: set[bytes] = set()
    for digits in (value.hex().encode(), value.hex().upper().encode()):
        forms.add(digits)
        if len(digits) > HEX_WRAP_WIDTH:
            lines = [digits[i : i + HEX_WRAP_WIDTH] for i in range(0, len(digits), HEX_WRAP_WIDTH)]
            forms.add(b"\n".join(lines))
    return forms


def json_forms(text: str) -> set[bytes]:
    """JSON string bodies without the quotes: ``json.dumps`` ASCII-escaped, raw UTF-8 and with
    ``\\/``; upper-case ``\\uXXXX`` hex; Go's ``encoding/json`` (``<``, ``>``, ``&``, U+2028 and
    U+2029 escaped); .NET's default encoder (non-ASCII and HTML-sensitive characters escaped)."""
    forms: set[bytes] = set()
    for ensure_ascii in (True, False):
        body = json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]
        forms.add(_encode(body))
        forms.add(_encode(body.replace("/", "\\/")))
        forms.add(_encode(_LOWER_UNICODE_ESCAPE.sub(lambda m: "\\u" + m.group(0)[2:].upper(), body)))
    raw = json.dumps(text, ensure_ascii=False)[1:-1]
    go = raw.translate({0x3C: "\\u003c", 0x3E: "\\u003e", 0x26: "\\u0026", 0x2028: "\\u2028", 0x2029: "\\u2029"})
    forms.add(_encode(go))
    forms.add(_encode(_dotnet_json(text)))
    return forms


def _dotnet_json(text: str) -> str:
    """A JSON string body as .NET's ``JavaScriptEncoder.Default`` writes it."""
    out: list[str] = []
    for char in text:
        code = ord(char)
        if char in "\\\n\r\t\b\f":
            out.append(json.dumps(char)[1:-1])
        elif 0x20 <= code < 0x7F and char not in "\"&'+<>`":
            out.append(char)
        elif code > 0xFFFF:
            high, low = divmod(code - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + high:04X}\\u{0xDC00 + low:04X}")
        else:
            out.append(f"\\u{code:04X}")
    return "".join(out)


def url_forms(value: bytes) -> set[bytes]:
    """Percent-encodings as ``quote`` and ``quote_plus`` print them, as JavaScript's
    ``encodeURIComponent`` and ``encodeURI`` (and jq's ``@uri``) print them, upper- and lower-case hex."""
    forms = {
        quote(value, safe="").encode("ascii"),
        quote(value).encode("ascii"),
        quote_plus(value).encode("ascii"),
        quote_plus(value, safe="/").encode("ascii"),
        quote(value, safe="!*'()").encode("ascii"),
        quote(value, safe="!*'();,/?:@&=+$#").encode("ascii"),
    }
    forms.update({_PERCENT_HEX.sub(lambda m: m.group(0).lower(), form) for form in list(forms)})
    return forms


def shell_forms(text: str, value: bytes) -> set[bytes]:
    """Shell-quoted spellings: ``shlex.quote``, bash's ``'\\''``, double quotes, backslashes
    (``printf %q`` of bash 5.2 and of older shells), and bash's ``$'...'`` quoting."""
    quoted = shlex.quote(text)
    bash52 = _BASH52_UNSAFE.sub(rb"\\\1", value)
    forms = {
        _encode(quoted),
        _encode(text.replace("'", "'\"'\"'")),  # shlex.quote body without the outer quotes
        _encode(text.replace("'", "'\\''")),  # bash ``set -x`` / printf style
        _encode(_DOUBLE_QUOTE_UNSAFE.sub(r"\\\1", text)),  # inside "..."
        _SHELL_UNSAFE.sub(rb"\\\1", value),  # every special byte backslash-escaped
        bash52,  # the value in the middle of a word
        re.sub(rb"^([#~])", rb"\\\1", bash52),  # ... or starting one
        ansi_c_quoted(value, utf8=True),
        ansi_c_quoted(value, utf8=True, raw_unicode=True),
        ansi_c_quoted(value, utf8=False),
    }
    return forms


def ansi_c_quoted(value: bytes, *, utf8: bool, raw_unicode: bool = False) -> bytes:
    """The body of bash's ``$'...'`` quoting of ``value``, which bash picks for any string with
    a control character (and, in the C locale, any non-ASCII byte): ``\\n``-style escapes,
    ``\\E`` for ESC, ``\\'`` and ``\\\\``, and three octal digits for every other byte it
    cannot print. ``utf8``: as in a UTF-8 locale, where printable non-ASCII characters stay.
    Python and the C library disagree on which of those are printable (format and private-use
    characters such as U+200B, U+FEFF, U+E000): ``raw_unicode`` gives the spelling in which every
    valid non-ASCII character stays, the other one octal-escapes those Python cannot print."""
    out = bytearray()
    text = value.decode("utf-8", "surrogateescape") if utf8 else value.decode("latin-1")
    for char in text:
        code = ord(char)
        if code < 0x80 or not utf8 or 0xDC80 <= code <= 0xDCFF:
            byte = code - 0xDC00 if 0xDC80 <= code <= 0xDCFF else code
            if byte in _ANSI_C_ESCAPES:
                out += _ANSI_C_ESCAPES[byte]
            elif 0x20 <= byte < 0x7F:
                out.append(byte)
            else:
                out += b"\\%03o" % byte
        elif raw_unicode or char.isprintable() or unicodedata.category(char) == "Zs":
            out += char.encode("utf-8")
        else:
            out += b"".join(b"\\%03o" % b for b in char.encode("utf-8"))
    return bytes(out)


def repr_forms(text: str, value: bytes) -> set[bytes]:
    """Python ``repr`` without its quotes, of the bytes and of the decoded text, and ``ascii()``
    of the text (non-ASCII characters as ``\\xe9``, ``\\u79d8``, ``\\U0001f600``)."""
    return {repr(value)[2:-1].encode("ascii"), _encode(repr(text)[1:-1]), _encode(ascii(text)[1:-1])}


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


def line_forms(value: bytes) -> set[bytes]:
    """Each line of a multi-line value, without its indentation, when it is :data:`LINE_FORM_MIN`
    bytes or longer: ``sed 's/^/    /'``, ``grep -n``, ``awk`` and YAML templating print a key file
    line by line with something before each line, so the value never appears in one piece.

    Shorter lines (``{``, ``}``, ``"type": "x",``) are structure shared with ordinary output."""
    lines = _LINE_BREAK.split(value)
    if len(lines) < 2:
        return set()
    return {line.strip() for line in lines if len(line.strip()) >= LINE_FORM_MIN}


def collapsed_blanks(value: bytes) -> set[bytes]:
    """The value as an unquoted ``echo $v`` prints it: every run of blanks (tabs, repeated spaces,
    line breaks, indentation) turned into one space, leading and trailing ones dropped."""
    return {_BLANKS.sub(b" ", value.strip()), b" ".join(value.split())}


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
        forms |= hex_forms(base)
        forms |= json_forms(text)
        forms |= url_forms(base)
        forms |= shell_forms(text, base)
        forms |= repr_forms(text, base)
        forms |= line_break_variants(base)
        forms |= collapsed_blanks(base)
        forms |= line_forms(base)
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
