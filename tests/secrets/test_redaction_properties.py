"""Property-based tests: random secrets, random text with secrets and their encodings embedded,
random chunking. No secret (nor any encoding of it) survives; clean text is untouched; a
stream always equals whole-buffer redaction."""

from __future__ import annotations

import base64
import json
import shlex
from functools import lru_cache
from itertools import pairwise
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from loom_core.errors import LoomError
from loom_core.secrets import Redactor
from loom_core.secrets.forms import MIN_FORM_LENGTH, derived_forms

pytestmark = pytest.mark.usefixtures("matcher_mode")

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ALPHABETS = [
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    b"ab\n\r\"'\\ $`{}%+/=&?",  # quotes, newlines, shell and URL specials
    bytes(range(256)),  # anything, non-ASCII and NUL included
    "äöü€秘密пароль-xyz".encode(),
    b"01",  # tiny alphabet: heavy self-overlap
]


@st.composite
def secret_values(draw: st.DrawFn, max_size: int = 40) -> bytes:
    alphabet = draw(st.sampled_from(ALPHABETS))
    size = draw(st.integers(min_value=8, max_value=max_size))
    return bytes(draw(st.lists(st.sampled_from(alphabet), min_size=size, max_size=size)))


secret_maps = st.dictionaries(
    keys=st.from_regex(r"[A-Z][A-Z0-9_]{0,12}", fullmatch=True),
    values=secret_values(),
    min_size=1,
    max_size=4,
)


def build(secrets: dict[str, bytes]) -> Redactor:
    try:
        return Redactor(secrets)
    except LoomError:
        assume(False)  # refused values (blank once stripped, inside a token) are tested elsewhere
        raise


def encodings(value: bytes) -> list[bytes]:
    """How scripts print a value, computed with the real library calls."""
    text = value.decode("utf-8", "surrogateescape")
    raw = [
        value,
        base64.b64encode(value),
        base64.urlsafe_b64encode(value).rstrip(b"="),
        json.dumps(text)[1:-1].encode("utf-8", "surrogateescape"),
        quote(value, safe="").encode(),
        quote_plus(value).encode(),
        shlex.quote(text).encode("utf-8", "surrogateescape"),
        repr(value)[2:-1].encode(),
        json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogateescape"),
        text.replace("'", "'\\''").encode("utf-8", "surrogateescape"),  # bash set -x
        "".join("\\" + c if c in '\\"$`' else c for c in text).encode("utf-8", "surrogateescape"),
        value.replace(b"\n", b"\r\n"),
        value.replace(b"\n", b"\\n"),
        value.replace(b"\n", b" "),
    ]
    return [form for form in raw if len(form) >= MIN_FORM_LENGTH and len(set(form)) > 1]


def pieces_for(secrets: dict[str, bytes]) -> st.SearchStrategy[bytes]:
    embedded = [form for value in secrets.values() for form in encodings(value)]
    encoders = [base64.b64encode, base64.urlsafe_b64encode, base64.encodebytes]  # encodebytes wraps at 76
    aligned = st.tuples(
        st.sampled_from(list(secrets.values())), st.binary(max_size=80), st.sampled_from(encoders)
    ).map(lambda t: t[2](t[1] + t[0] + b"xyz"))
    filler = st.binary(max_size=30) | st.text(max_size=30).map(str.encode)
    return st.one_of(filler, st.sampled_from(embedded), aligned)


def cuts(data: st.DataObject, size: int) -> list[int]:
    if data.draw(st.booleans(), label="one byte at a time"):
        return list(range(size + 1))
    inner = data.draw(st.lists(st.integers(0, size), max_size=12), label="cut points")
    return sorted({0, size, *inner})


def stream_through(redactor: Redactor, text: bytes, points: list[int]) -> bytes:
    stream = redactor.stream()
    out = []
    for lo, hi in pairwise(points):
        out.append(stream.feed(text[lo:hi]))
        assert stream.held < max(redactor.longest_pattern, 1)
    out.append(stream.finish())
    return b"".join(out)


@SETTINGS
@given(secrets=secret_maps, data=st.data())
def test_no_secret_or_encoding_survives_any_chunking(secrets: dict[str, bytes], data: st.DataObject) -> None:
    """Whatever the text and chunking, no value nor encoding of it is left in the output,
    and streaming gives exactly the whole-buffer result."""
    redactor = build(secrets)
    text = b"".join(data.draw(st.lists(pieces_for(secrets), max_size=12), label="pieces"))
    whole = redactor.redact(text)
    streamed = stream_through(redactor, text, cuts(data, len(text)))
    same = streamed == whole
    assert same, "stream and whole-buffer redaction differ"
    for value in secrets.values():
        for form in encodings(value):
            leaked = form in whole
            assert not leaked, "a secret or one of its encodings survived redaction"


@SETTINGS
@given(secrets=secret_maps, data=st.data())
def test_text_without_secrets_is_byte_identical(secrets: dict[str, bytes], data: st.DataObject) -> None:
    """Text containing no value and no encoding of one comes out byte for byte, in any chunking."""
    redactor = build(secrets)
    text = data.draw(st.binary(max_size=400) | st.text(max_size=200).map(str.encode), label="text")
    assume(not _contains_any(text, secrets))
    unchanged = stream_through(redactor, text, cuts(data, len(text))) == text
    assert unchanged, "clean text was altered"
    assert redactor.redact(text) == text


def _contains_any(text: bytes, secrets: dict[str, bytes]) -> bool:
    return any(v in text or any(f in text for f in _forms(v)) for v in secrets.values())


@lru_cache(maxsize=256)
def _forms(value: bytes) -> frozenset[bytes]:
    return frozenset(derived_forms(value))


@SETTINGS
@given(value=secret_values(), before=st.binary(max_size=40), after=st.binary(max_size=40), data=st.data())
def test_single_secret_in_noise_any_chunking(
    value: bytes, before: bytes, after: bytes, data: st.DataObject
) -> None:
    """One value between arbitrary bytes: masked in every chunking, the noise around it kept."""
    redactor = build({"ONLY": value})
    text = before + value + after
    out = stream_through(redactor, text, cuts(data, len(text)))
    assert out == redactor.redact(text)
    leaked = value in out
    assert not leaked, "the value survived redaction"
    assert b"[REDACTED:SECRET_ONLY]" in out


@SETTINGS
@given(
    value=secret_values(max_size=160),
    other=secret_values(),
    noise=st.binary(min_size=0, max_size=400),
    data=st.data(),
)
def test_long_secret_next_to_short_one(value: bytes, other: bytes, noise: bytes, data: st.DataObject) -> None:
    """A long value (long patterns, long hold-back) and a short one, interleaved with noise,
    in random chunks: both masked everywhere, stream equal to whole buffer."""
    redactor = build({"LONG": value, "SHORT": other})
    text = noise[:100] + value + noise[100:300] + other + value + noise[300:] + base64.b64encode(b"!" + value)
    out = stream_through(redactor, text, cuts(data, len(text)))
    assert out == redactor.redact(text)
    for secret in (value, other):
        leaked = secret in out
        assert not leaked, "a value survived redaction"
