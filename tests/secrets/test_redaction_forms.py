"""Encoded forms that leak in practice are redacted; each encoding is produced here by the
real library call (base64, json, urllib.parse, shlex, repr), independently of the redactor."""

from __future__ import annotations

import base64
import json
import random
import re
import shlex
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from loom_core.secrets import Redactor
from loom_core.secrets.forms import MIN_FORM_LENGTH, WRAP_EDGE, derived_forms

pytestmark = pytest.mark.usefixtures("matcher_mode")

VALUES = {
    "ASCII_PUNCT": b"p@ss w0rd/with+plus&amp=eq?",
    "QUOTES": b"it's a \"quoted\" $HOME `tick` \\back",
    "UNICODE": "Grüße-秘密-пароль-€".encode(),
    "BINARY": bytes([0, 1, 2, 0xFF, 0xFE, 0x80, 0x7F, 0x22, 0x27, 0x5C, 0x0A, 0x41, 0x42, 0x43]),
    "MULTILINE": b"-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n0gY2nQ+PZ8uX\n-----END KEY-----",
}
TOKEN = {name: f"[REDACTED:SECRET_{name}]".encode() for name in VALUES}


@pytest.fixture(scope="module")
def redactor(matcher_mode: str) -> Redactor:
    return Redactor(VALUES)


def assert_redacted(redactor: Redactor, name: str, leaked: bytes, *, context: bytes = b"log: %s end") -> None:
    """``leaked`` (an encoding of ``name``'s value) disappears and the token appears."""
    text = context.replace(b"%s", leaked)
    out = redactor.redact(text)
    stream = redactor.stream()
    streamed = b"".join(stream.feed(text[i : i + 3]) for i in range(0, len(text), 3)) + stream.finish()
    still_there = leaked in out
    assert not still_there, f"{name}: an encoded form survived redaction"
    value_there = VALUES[name] in out
    assert not value_there, f"{name}: the value survived redaction"
    assert TOKEN[name] in out, f"{name}: no token where the encoded form was"
    assert streamed == out, f"{name}: streaming disagrees with whole-buffer redaction"


def text_of(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("urlsafe", [False, True])
def test_base64_in_every_alignment_padded_or_not(redactor: Redactor, name: str, urlsafe: bool) -> None:
    """base64 of a blob holding the value at byte offset 0, 1 or 2 (mod 3) keeps no decodable value."""
    rng = random.Random(name)
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    value = VALUES[name]
    for before in range(6):
        for after in range(4):
            blob = rng.randbytes(before) + value + rng.randbytes(after)
            for encoded in (encode(blob), encode(blob).rstrip(b"=")):
                out = redactor.redact(b"Authorization: Basic " + encoded + b"\n")
                assert TOKEN[name] in out, f"{name}: alignment {before % 3} not redacted"
                kept = len(out) - len(b"Authorization: Basic \n") - len(TOKEN[name])
                # Only characters that also depend on the surrounding bytes may remain.
                assert kept <= -(-4 * (before + after) // 3) + 4, f"{name}: too much base64 kept"


@pytest.mark.parametrize("name", list(VALUES))
def test_standalone_base64_is_removed_completely(redactor: Redactor, name: str) -> None:
    """``echo -n $SECRET | base64`` output is replaced whole, padding included."""
    for encoded in (base64.b64encode(VALUES[name]), base64.urlsafe_b64encode(VALUES[name])):
        out = redactor.redact(b"x " + encoded + b" y")
        assert out == b"x " + TOKEN[name] + b" y"


@pytest.mark.parametrize("name", list(VALUES))
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_json_escaped(redactor: Redactor, name: str, ensure_ascii: bool) -> None:
    """The value as json.dumps prints it inside a JSON document is redacted."""
    doc = json.dumps({"password": text_of(VALUES[name])}, ensure_ascii=ensure_ascii)
    assert_redacted(redactor, name, doc.encode("utf-8", "surrogateescape"), context=b"%s\n")


@pytest.mark.parametrize("name", list(VALUES))
def test_url_encoded(redactor: Redactor, name: str) -> None:
    """quote, quote(safe=''), quote_plus and lower-case percent hex forms are redacted."""
    value = VALUES[name]
    lower_hex = re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(value, safe=""))
    for leaked in (quote(value), quote(value, safe=""), quote_plus(value), lower_hex):
        assert_redacted(redactor, name, leaked.encode(), context=b"GET /login?pw=%s HTTP/1.1")


@pytest.mark.parametrize("name", list(VALUES))
def test_shell_escaped(redactor: Redactor, name: str) -> None:
    """shlex.quote, bash's '\\'' style, double quotes and backslash escapes are redacted."""
    text = text_of(VALUES[name])
    forms = [
        shlex.quote(text),
        "'" + text.replace("'", "'\\''") + "'",
        '"' + "".join("\\" + c if c in '\\"$`' else c for c in text) + '"',
        # printf %q style: ASCII specials escaped, non-ASCII text left alone
        "".join(c if not c.isascii() or c.isalnum() or c in "_@%+=:,./-" else "\\" + c for c in text),
    ]
    for leaked in forms:
        assert_redacted(redactor, name, leaked.encode("utf-8", "surrogateescape"), context=b"+ curl -u %s x")


@pytest.mark.parametrize("name", list(VALUES))
def test_repr_escaped(redactor: Redactor, name: str) -> None:
    """repr() of the bytes and of the decoded str, as a traceback prints them, is redacted."""
    for leaked in (repr(VALUES[name]), repr(text_of(VALUES[name])), ascii(text_of(VALUES[name]))):
        assert_redacted(redactor, name, leaked.encode("utf-8", "surrogateescape"), context=b"args=(%s,)")


@pytest.mark.parametrize("separator", [b"\r\n", b"\\n", b" ", b"\\r\\n", b""])
def test_multiline_value_with_rewritten_line_breaks(redactor: Redactor, separator: bytes) -> None:
    """Line breaks that became CRLF, a literal \\n, spaces or nothing do not defeat redaction."""
    leaked = separator.join(VALUES["MULTILINE"].split(b"\n"))
    assert_redacted(redactor, "MULTILINE", leaked)


def test_trailing_newline_stripped_value_is_redacted() -> None:
    """A value stored with a trailing newline is also masked when printed without it."""
    r = Redactor({"NOTES": b"some-notes-value\n"})
    assert r.redact(b"got some-notes-value!") == b"got [REDACTED:SECRET_NOTES]!"


def test_forms_too_short_or_generic_are_not_used() -> None:
    """Fragments below the threshold and one-byte forms (e.g. base64 of zero bytes) never match."""
    zeros = Redactor({"ZEROS": b"\0" * 12})
    blob = b"data AAAAAAAAAAAAAAAAAAAA //////// end"
    assert zeros.redact(blob) == blob
    forms = derived_forms(b"abcdef", min_length=4)
    assert all(len(f) >= MIN_FORM_LENGTH and len(set(f)) > 1 for f in forms)
    short = Redactor({"SHORT": b"abcdef"}, min_length=6)
    # "YWJjZGVm" is all of base64("abcdef") (8 chars, kept); its 6-char alignment fragments are not.
    assert short.redact(b"YWJjZGVm") == b"[REDACTED:SECRET_SHORT]"
    assert short.redact(b"xxYWJjZGV") == b"xxYWJjZGV"


def stable_fragment(value: bytes, align: int) -> bytes:
    """Oracle: the base64 characters made only of ``value``'s bits at byte offset ``align`` (mod 3)."""
    encoded = base64.b64encode(b"\0" * align + value)
    return encoded[-(-8 * align // 6) : (8 * (align + len(value))) // 6]


@pytest.mark.parametrize("name", [n for n in VALUES if n != "MULTILINE"])
@pytest.mark.parametrize("width", [76, 64])
def test_line_wrapped_base64_keeps_less_than_wrap_edge(redactor: Redactor, name: str, width: int) -> None:
    """base64 wrapped every 76 (`base64`, MIME) or 64 (PEM, openssl) characters, with the value
    at every column: at most WRAP_EDGE - 1 characters of its stable encoding stay visible."""
    rng = random.Random(f"{name}-{width}")
    value = VALUES[name]
    for before in range(0, 3 * width // 4 + 3):
        blob = rng.randbytes(before) + value + rng.randbytes(20)
        flat = base64.b64encode(blob)
        wrapped = b"\n".join(flat[i : i + width] for i in range(0, len(flat), width)) + b"\n"
        out = redactor.redact(wrapped)
        assert TOKEN[name] in out, f"{name}: wrapped base64 at offset {before} not redacted"
        fragment = stable_fragment(value, before % 3)
        visible = out.replace(b"\n", b"")
        kept = [i for i in range(len(fragment) - WRAP_EDGE + 1) if fragment[i : i + WRAP_EDGE] in visible]
        assert not kept, f"{name}: {WRAP_EDGE}+ characters of the encoding survive at offset {before}"


# -- what real shells and other languages' encoders print -------------------------------------------

BASH_VALUES = {
    "QUOTE_NEWLINE": b"it's-a-secret\nsecond-line-x",
    "TAB_QUOTE": b"tab\there-it's-secret-x",
    "CONTROL": b"bell\x07esc\x1bdel\x7fsoh\x01-secret",
    "NON_ASCII": "pässwörd-Ünïcode-2024".encode(),
    "NOT_UTF8": b"latin1-\xe9t\xe9-secret",
    "SEPARATOR": "line\u2028separator-secret".encode(),
    "HASH_COMMA": b"#Tr0ub4dor,abc~def",
    "MID_HASH": b"Tr0ub4dor#3 horse~x,y",
    # printable for the C library, not for Python: bash prints them raw in a UTF-8 locale
    "FORMAT_CHARS": "it's\there\u200bsecret-\ufeff\ue000-value".encode(),
}
BASH_PRINTERS = {
    "printf %q": 'printf "%q\\n" "$v"',
    "${v@Q}": 'echo "${v@Q}"',
    "declare -p": "declare -p v",
    "set -x": 'set -x; : "$v"',
    "printf %q mid-word": 'printf "%q\\n" "login=$v"',
}


def _bash(program: str, value: bytes, locale: str) -> bytes:
    """Run ``program`` in a real bash with ``$v`` holding ``value``; its stdout and stderr."""
    import subprocess

    done = subprocess.run(
        ["bash", "-c", 'v="$(cat; printf x)"; v="${v%x}"; ' + program],
        input=value,
        capture_output=True,
        env={"LC_ALL": locale, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
@pytest.mark.parametrize("printer", list(BASH_PRINTERS))
def test_what_bash_prints_of_a_value_is_redacted(printer: str, locale: str) -> None:
    """bash's own quoting (``$'...'`` with octal and ``\\E`` escapes, ``printf %q`` of ``#``,
    ``,`` and ``~``) of values with quotes, control bytes, non-ASCII and non-UTF-8 bytes."""
    redactor = Redactor(BASH_VALUES)
    for name, value in BASH_VALUES.items():
        printed = _bash(BASH_PRINTERS[printer], value, locale)
        out = redactor.redact(printed)
        assert f"[REDACTED:SECRET_{name}]".encode() in out, f"{name}: {printer} in {locale} was not redacted"
        # what is left must not spell the value in any way bash reads back
        quoted = re.findall(rb"\$'((?:[^'\\]|\\.)*)'", out)
        for body in quoted:
            assert b"secret" not in body and b"2024" not in body, f"{name}: part of the value survived"


@pytest.mark.parametrize("value", [b"tab\tsecret-value-two", b"two  spaces-secret-three", b"  padded\t\tx-secret "])
def test_an_unquoted_echo_of_a_value_with_blank_runs_is_redacted(value: bytes) -> None:
    """``echo $V`` also collapses tabs and repeated spaces of a one-line value."""
    redactor = Redactor({"PW": value})
    printed = _bash("echo $v", value, "C.UTF-8")
    assert printed != value + b"\n"  # the collapsed form really differs from the value
    assert redactor.redact(b"log: " + printed) == b"log: [REDACTED:SECRET_PW]\n"


def test_an_unquoted_echo_of_an_indented_multi_line_value_is_redacted() -> None:
    """``echo $KEY`` joins the lines of a JSON key file with single spaces, indentation dropped."""
    key = b'{\n  "type": "service_account",\n\n  "project_id": "demo-proj-123",\n\t"key_id": "0123abcd"\n}\n'
    redactor = Redactor({"SA_KEY": key})
    printed = _bash("echo $v", key, "C.UTF-8")
    assert b"demo-proj-123" in printed  # the collapsed form really differs from the value
    out = redactor.redact(b"log: " + printed)
    assert b"demo-proj-123" not in out and b"[REDACTED:SECRET_SA_KEY]" in out


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        # encodeURIComponent (and jq's @uri) leave !*'() alone
        (b"p@ssw0rd!2024", b"p%40ssw0rd!2024"),
        (b"S3cret(key)&more", b"S3cret(key)%26more"),
        # encodeURI leaves the reserved characters too
        (b"user:pa ss@host/x", b"user:pa%20ss@host/x"),
    ],
)
def test_url_encodings_of_other_languages_are_redacted(value: bytes, printed: bytes) -> None:
    redactor = Redactor({"PW": value})
    assert redactor.redact(b"GET /?p=" + printed + b" 200") == b"GET /?p=[REDACTED:SECRET_PW] 200"


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ("a<b>&c-secret", b"a\\u003cb\\u003e\\u0026c-secret"),  # Go's encoding/json
        ("caf\u00e9-secret+1", b"caf\\u00E9-secret\\u002B1"),  # .NET's default encoder
        ("caf\u00e9-secret-2", b"caf\\u00E9-secret-2"),  # upper-case hex escapes
    ],
)
def test_json_encodings_of_other_languages_are_redacted(value: str, printed: bytes) -> None:
    redactor = Redactor({"PW": value.encode()})
    assert redactor.redact(b'{"p":"' + printed + b'"}') == b'{"p":"[REDACTED:SECRET_PW]"}'


LONG_VALUES = {
    "PEM_KEY": b"-----BEGIN PRIVATE KEY-----\n"
    + b"\n".join(base64.b64encode(random.Random(7).randbytes(48)) for _ in range(26))
    + b"\n-----END PRIVATE KEY-----\n",
    "JWT": b"eyJhbGciOiJSUzI1NiJ9." + base64.urlsafe_b64encode(random.Random(8).randbytes(150)).rstrip(b"="),
    "SIXTY_BYTES": b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX",
}
WRAPPING_TOOLS = {
    "base64 FILE": 'base64 "$f"',
    "cat FILE | base64": 'cat "$f" | base64',
    "echo $V | base64": 'echo "$(cat "$f")" | base64',
    "openssl base64": 'openssl base64 -in "$f"',
    "openssl enc -a": 'openssl enc -base64 < "$f"',
    "MIME CRLF": 'base64 "$f" | sed "s/\\$/\\r/"',
}


def _print_file(program: str, value: bytes, path: Path) -> bytes:
    """What a real bash ``program`` prints of a secret file ``$f`` holding ``value``."""
    import subprocess

    path.write_bytes(value)
    env = {"f": str(path), "PATH": "/usr/bin:/bin"}
    return subprocess.run(["bash", "-c", program], env=env, capture_output=True, check=True).stdout


@pytest.mark.parametrize("tool", list(WRAPPING_TOOLS))
def test_a_long_value_wrapped_by_a_real_base64_tool_is_redacted(tool: str, tmp_path: Path) -> None:
    """Values longer than one base64 line (a PEM key, a JWT), encoded from the start of the input by
    ``base64`` (76 columns) or ``openssl`` (64), keep no line of their encoding visible."""
    redactor = Redactor(LONG_VALUES)
    for name, value in LONG_VALUES.items():
        printed = _print_file(WRAPPING_TOOLS[tool], value, tmp_path / name)
        assert printed.count(b"\n") > 1, f"{tool}: the tool did not wrap the encoding"
        out = redactor.redact(b"log: " + printed)
        assert f"[REDACTED:SECRET_{name}]".encode() in out, f"{name}: {tool} output was not redacted"
        fragment = stable_fragment(value.strip() if "echo" in tool else value, 0)
        visible = out.replace(b"\r", b"").replace(b"\n", b"")
        kept = [i for i in range(0, len(fragment) - 8) if fragment[i : i + 8] in visible]
        assert not kept, f"{name}: {tool} left {len(kept)} pieces of the encoding visible"


LINE_PRINTERS = {
    "sed indent": "sed 's/^/    /' \"$f\"",
    "grep -n": 'grep -n . "$f"',
    "awk prefix": "awk '{print \"line: \" $0}' \"$f\"",
    "while read": 'while IFS= read -r l; do echo "key> $l"; done < "$f"',
}


@pytest.mark.parametrize("printer", list(LINE_PRINTERS))
def test_a_multi_line_value_printed_line_by_line_with_a_prefix_is_redacted(printer: str, tmp_path: Path) -> None:
    """A key file indented into YAML or numbered by grep never appears in one piece: each line of
    16 bytes or more is masked on its own, shorter structural lines stay."""
    value = LONG_VALUES["PEM_KEY"]
    printed = _print_file(LINE_PRINTERS[printer], value, tmp_path / "key.pem")
    out = Redactor({"PEM_KEY": value}).redact(printed)
    for line in value.splitlines():
        assert line not in out, f"{printer}: a line of the key survived"
    assert out.count(b"[REDACTED:SECRET_PEM_KEY]") == len(value.splitlines())
    short = Redactor({"JSON": b'{\n  "k": "v",\n  "token": "tok-0123456789abcdef"\n}\n'})
    assert short.redact(b'{\n  "k": "v",\n}\n') == b'{\n  "k": "v",\n}\n'  # short lines are left alone


HEX_PRINTERS = {
    "xxd -p": 'xxd -p "$f"',
    "xxd -p -c 256": 'xxd -p -c 256 "$f"',
    "echo | xxd -p": 'echo "$(cat "$f")" | xxd -p',
    "python hex": "python3 -c 'import sys; print(open(sys.argv[1], \"rb\").read().hex())' \"$f\"",
    "upper hex": "xxd -p -u \"$f\"",
}


@pytest.mark.parametrize("printer", list(HEX_PRINTERS))
def test_a_value_printed_as_hex_is_redacted(printer: str, tmp_path: Path) -> None:
    """Hex dumps were a documented gap: ``xxd -p`` (wrapped at 60 digits), upper case, and the
    contiguous hex languages print. Short and long values, from the start of the input."""
    values = {"SHORT": b"hunter2-hunter2", "SIXTY_BYTES": LONG_VALUES["SIXTY_BYTES"], "JWT": LONG_VALUES["JWT"]}
    redactor = Redactor(values)
    for name, value in values.items():
        printed = _print_file(HEX_PRINTERS[printer], value, tmp_path / name)
        out = redactor.redact(b"dump: " + printed)
        assert f"[REDACTED:SECRET_{name}]".encode() in out, f"{name}: {printer} output was not redacted"
        digits = value.hex()[:40].encode()
        assert digits[:24] not in out.lower(), f"{name}: {printer} left hex of the value visible"
