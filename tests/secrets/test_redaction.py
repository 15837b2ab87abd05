"""Behaviour of the streaming redactor: tokens, chunking, overlaps, refusals, no leaks."""

from __future__ import annotations

import pickle
from collections.abc import Iterable

import pytest

from loom_core.contracts.secrets import SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.host import PluginHost
from loom_core.secrets import Redactor, StreamRedactor, forms_from_hook

pytestmark = pytest.mark.usefixtures("matcher_mode")

DB = b"pg-Secret-4711!"
API = b"tok_9f8e7d6c5b4a"


def assert_absent(secret: bytes | str, text: bytes | str, where: str) -> None:
    """Fail without printing the secret: only a boolean reaches the assertion."""
    if isinstance(secret, bytes) and isinstance(text, str):
        secret = secret.decode("utf-8", "surrogateescape")
    leaked = secret in text  # type: ignore[operator]
    assert not leaked, f"a secret leaked into {where}"


def run_stream(stream: StreamRedactor, chunks: Iterable[bytes]) -> bytes:
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()


@pytest.fixture(scope="module")
def redactor(matcher_mode: str) -> Redactor:
    return Redactor({"DATABASE_PASSWORD": DB, "API_TOKEN": API})


def test_exact_value_becomes_named_token(redactor: Redactor) -> None:
    """A value in output is replaced by [REDACTED:SECRET_<NAME>] and nothing else changes."""
    out = redactor.redact(b"connect password=" + DB + b" ok\n")
    assert out == b"connect password=[REDACTED:SECRET_DATABASE_PASSWORD] ok\n"
    assert redactor.token_for("API_TOKEN") == "[REDACTED:SECRET_API_TOKEN]"


def test_value_split_at_every_position_across_two_feeds(redactor: Redactor) -> None:
    """However a write boundary cuts the value, the stream still redacts it."""
    text = b"before " + DB + b" after"
    expected = redactor.redact(text)
    for cut in range(len(text) + 1):
        out = run_stream(redactor.stream(), [text[:cut], text[cut:]])
        assert out == expected, f"cut at {cut}"
        assert_absent(DB, out, "the stream output")


def test_value_printed_one_byte_at_a_time(redactor: Redactor) -> None:
    """A value written byte by byte is redacted like a whole write."""
    text = b"x=" + API + b"\ny=" + DB + DB + b"\n"
    out = run_stream(redactor.stream(), [text[i : i + 1] for i in range(len(text))])
    assert out == redactor.redact(text)
    assert out == (
        b"x=[REDACTED:SECRET_API_TOKEN]\n"
        b"y=[REDACTED:SECRET_DATABASE_PASSWORD][REDACTED:SECRET_DATABASE_PASSWORD]\n"
    )


def test_output_without_secrets_is_byte_identical(redactor: Redactor) -> None:
    """Text with no secret passes through unchanged, including binary bytes."""
    text = bytes(range(256)) * 40 + "naïve ünïcode\r\n".encode() + b"pg-Secret-471"
    stream = redactor.stream()
    pieces = [stream.feed(text[i : i + 333]) for i in range(0, len(text), 333)]
    assert b"".join(pieces) + stream.finish() == text
    assert redactor.redact(text) == text


def test_chunk_without_possible_match_is_returned_without_copy(redactor: Redactor) -> None:
    """The fast path hands back the very object it was given when nothing can match."""
    chunk = b"INFO worker started in 0.2s\n" * 100
    assert redactor.stream().feed(chunk) is chunk


def test_held_back_bytes_are_bounded_and_released_at_finish(redactor: Redactor) -> None:
    """A stream holds back less than the longest pattern, and finish() releases it all."""
    stream = redactor.stream()
    text = b"partial " + DB[:-1]
    emitted = stream.feed(text)
    assert 0 < stream.held < redactor.longest_pattern
    assert emitted + stream.finish() == text
    assert stream.held == 0
    # a line that ends in a newline is not held at all
    assert stream.feed(b"done\n") == b"done\n"


def test_bytearray_and_memoryview_chunks_are_accepted(redactor: Redactor) -> None:
    """Chunks from a readinto() loop (bytearray, memoryview) work like bytes."""
    stream = redactor.stream()
    text = b"x " + DB + b" y"
    out = stream.feed(bytearray(text[:5])) + stream.feed(memoryview(text)[5:]) + stream.finish()
    assert out == b"x [REDACTED:SECRET_DATABASE_PASSWORD] y"
    assert redactor.redact(memoryview(text)) == out


def test_finish_resets_the_stream(redactor: Redactor) -> None:
    """After finish() the same stream starts from a clean state."""
    stream = redactor.stream()
    assert run_stream(stream, [DB[:5]]) == DB[:5]
    assert run_stream(stream, [DB[5:]]) == DB[5:]
    assert run_stream(stream, [DB]) == b"[REDACTED:SECRET_DATABASE_PASSWORD]"


def test_streams_are_independent(redactor: Redactor) -> None:
    """Two streams of one redactor never share held-back bytes."""
    first, second = redactor.stream(), redactor.stream()
    a = first.feed(b"a " + DB[:6])
    b = second.feed(b"b " + API[:6])
    a += first.feed(DB[6:]) + first.finish()
    b += second.feed(b" plain") + second.finish()
    assert a == b"a [REDACTED:SECRET_DATABASE_PASSWORD]"
    assert b == b"b " + API[:6] + b" plain"


def test_streams_of_one_redactor_work_in_parallel_threads(redactor: Redactor) -> None:
    """stdout and stderr readers in two threads can share one redactor, each with its own stream."""
    from concurrent.futures import ThreadPoolExecutor

    text = (b"line " + DB + b" and " + API + b"\n") * 2000
    expected = redactor.redact(text)

    def pump(size: int) -> bytes:
        stream = redactor.stream()
        return run_stream(stream, [text[i : i + size] for i in range(0, len(text), size)])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(pump, [7, 64, 1000, 4096]))
    assert all(result == expected for result in results)


def test_overlapping_values_are_removed_entirely_as_one_token() -> None:
    """Overlapping occurrences form one run, masked whole, named after the leftmost-longest."""
    r = Redactor({"ALPHA": b"abcdefgh12", "BETA": b"gh12345678"})
    out = r.redact(b"<abcdefgh12345678>")
    assert out == b"<[REDACTED:SECRET_ALPHA]>"
    for chunks in ([b"<abcdefgh1", b"2345678>"], [bytes([c]) for c in b"<abcdefgh12345678>"]):
        assert run_stream(r.stream(), chunks) == out


def test_value_inside_another_prefers_the_longest() -> None:
    """A value contained in a longer one: the longer one wins where both start together."""
    r = Redactor({"INNER": b"password123", "OUTER": b"xpassword123y", "SAME_START": b"password123456"})
    assert r.redact(b"xpassword123y") == b"[REDACTED:SECRET_OUTER]"
    assert r.redact(b"password123") == b"[REDACTED:SECRET_INNER]"
    assert r.redact(b"password1234567") == b"[REDACTED:SECRET_SAME_START]7"


def test_adjacent_values_give_one_token_each() -> None:
    """Touching but non-overlapping occurrences are two runs, two tokens."""
    r = Redactor({"ONE": b"11111111a", "TWO": b"b22222222"})
    assert r.redact(b"11111111ab22222222") == b"[REDACTED:SECRET_ONE][REDACTED:SECRET_TWO]"


def test_same_value_under_two_names_is_deterministic() -> None:
    """When two names share a value, the alphabetically first name is used."""
    r = Redactor({"ZED": b"shared-value-1", "ABLE": b"shared-value-1"})
    assert r.redact(b"shared-value-1") == b"[REDACTED:SECRET_ABLE]"


@pytest.mark.parametrize(
    ("value", "min_length"),
    [(b"Zq7!x", 8), (b"", 8), (b"        \n\t", 8), (b"  Zq7  \n\n\n\n", 8), (b"twelve-Zq7!x", 16)],
)
def test_short_or_blank_values_are_refused_naming_only_the_secret(value: bytes, min_length: int) -> None:
    """Values below the minimum (after stripping) or blank fail with SECRETS_VALUE_UNSAFE."""
    with pytest.raises(LoomError) as info:
        Redactor({"TOO_SHORT": value}, min_length=min_length)
    assert info.value.code is ErrorCode.SECRETS_VALUE_UNSAFE
    assert "TOO_SHORT" in str(info.value)
    if value.strip():
        assert_absent(value.strip(), str(info.value), "the error message")
        assert_absent(value.strip(), repr(info.value), "the error repr")


def test_min_length_parameter_allows_shorter_values_when_lowered() -> None:
    """``min_length`` is honoured both ways: 6 accepts a 6-byte value, the default refuses it."""
    assert Redactor({"PIN": b"135790"}, min_length=6).redact(b"pin 135790") == b"pin [REDACTED:SECRET_PIN]"
    with pytest.raises(LoomError):
        Redactor({"PIN": b"135790"})
    with pytest.raises(LoomError) as info:
        Redactor({}, min_length=0)
    assert info.value.code is ErrorCode.CONFIG_INVALID


@pytest.mark.parametrize("name", ["lower", "1STARTS_WITH_DIGIT", "HAS-DASH", "", "_LEAD", "SPACE NAME"])
def test_invalid_names_are_refused(name: str) -> None:
    """Names must match [A-Z][A-Z0-9_]* because they become part of the token."""
    with pytest.raises(LoomError) as info:
        Redactor({name: b"long-enough-value"})
    assert info.value.code is ErrorCode.SECRETS_REF_INVALID
    assert_absent("long-enough-value", str(info.value), "the error message")


def test_non_string_name_is_refused_with_a_code() -> None:
    """A mapping with a non-str key fails with SECRETS_REF_INVALID, not a TypeError."""
    with pytest.raises(LoomError) as info:
        Redactor({"GOOD_NAME": b"long-enough-value", 7: b"another-long-value"})  # type: ignore[dict-item]
    assert info.value.code is ErrorCode.SECRETS_REF_INVALID


def test_value_inside_a_token_is_refused() -> None:
    """A value that every token would print (e.g. 'REDACTED') cannot be masked and is refused."""
    with pytest.raises(LoomError) as info:
        Redactor({"WEIRD": b"REDACTED:SECRET_"})
    assert info.value.code is ErrorCode.SECRETS_VALUE_UNSAFE


def test_non_bytes_value_is_refused() -> None:
    """A str value is a programming error; it is refused rather than guessed at."""
    with pytest.raises(LoomError) as info:
        Redactor({"TEXT": "a string value"})  # type: ignore[dict-item]
    assert info.value.code is ErrorCode.SECRETS_VALUE_UNSAFE


def test_secret_value_objects_are_accepted() -> None:
    """Resolved SecretValue wrappers can be passed directly."""
    r = Redactor({"WRAPPED": SecretValue(b"wrapped-secret-9")})
    assert r.redact(b"v=wrapped-secret-9") == b"v=[REDACTED:SECRET_WRAPPED]"


def test_repr_str_and_pickle_never_show_values(redactor: Redactor) -> None:
    """repr/str name secrets and counts only; pickling (which would copy values) is refused."""
    stream = redactor.stream()
    stream.feed(b"x " + DB[:7])
    for text in (repr(redactor), str(redactor), repr(stream), str(stream)):
        for value in (DB, API, DB[:7]):
            assert_absent(value, text, "a repr")
    assert "DATABASE_PASSWORD" in repr(redactor)
    with pytest.raises(TypeError):
        pickle.dumps(redactor)
    with pytest.raises(TypeError):
        pickle.dumps(stream)


def test_redact_text_handles_unicode_and_surrogateescape() -> None:
    """The str convenience works with non-ASCII values and undecodable bytes."""
    r = Redactor({"UNI": "pässwörd-ß€".encode()})
    assert r.redact_text("a pässwörd-ß€ b") == "a [REDACTED:SECRET_UNI] b"
    odd = b"\xff\xfe raw ".decode("utf-8", "surrogateescape")
    assert r.redact_text(odd) == odd
    lone = "json said \ud800 then pässwörd-ß€"
    assert r.redact_text(lone) == "json said \ud800 then [REDACTED:SECRET_UNI]"


def test_extra_forms_callable_adds_patterns_and_drops_unsafe_ones() -> None:
    """Forms from extra_forms are redacted; too-short or one-byte forms are ignored."""
    seen: list[int] = []

    def extra(value: bytes) -> list[bytes]:
        seen.append(len(value))
        return [value[::-1], b"tiny", b"zzzzzzzzzzzz"]

    r = Redactor({"REV": b"forward-value"}, extra_forms=extra)
    assert seen == [len(b"forward-value")]
    assert r.redact(b"eulav-drawrof") == b"[REDACTED:SECRET_REV]"
    assert r.redact(b"tiny zzzzzzzzzzzz") == b"tiny zzzzzzzzzzzz"


def test_failing_extra_forms_reports_without_the_value() -> None:
    """A hook that raises (possibly quoting the value) yields a clean SECRETS_PROVIDER_FAILED."""

    def broken(value: bytes) -> list[bytes]:
        raise ValueError(f"cannot encode {value!r}")

    with pytest.raises(LoomError) as info:
        Redactor({"HOOKED": b"hook-secret-value"}, extra_forms=broken)
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_FAILED
    assert_absent(b"hook-secret-value", str(info.value), "the error message")
    assert info.value.__suppress_context__ is True


class _Rot13Forms:
    @hookimpl
    def loom_redaction_forms(self, value: bytes) -> list[bytes]:
        import codecs

        return [codecs.encode(value.decode(), "rot13").encode()]


def test_forms_from_real_pluggy_hook_relay() -> None:
    """forms_from_hook merges every plugin's loom_redaction_forms results."""
    host = PluginHost(environ={})
    host.register_plugin(_Rot13Forms(), "rot13-forms")
    r = Redactor({"ROT": b"plain-secret"}, extra_forms=forms_from_hook(host.hook))
    assert r.redact(b"cynva-frperg") == b"[REDACTED:SECRET_ROT]"


def test_large_buffer_with_values_across_internal_slice_boundaries(redactor: Redactor) -> None:
    """redact() of a multi-MiB buffer masks values straddling its internal 1 MiB slices."""
    mib = 1 << 20
    filler = b"log line without anything secret in it, just words and numbers 12345\n"
    body = bytearray(filler * (3 * mib // len(filler) + 1))
    for at in (mib - 5, 2 * mib - 1, 2 * mib + 7):
        body[at : at + len(DB)] = DB
    text = bytes(body)
    expected = text.replace(DB, b"[REDACTED:SECRET_DATABASE_PASSWORD]")
    assert redactor.redact(text) == expected


def test_empty_redactor_passes_everything_through() -> None:
    """With no secrets the redactor is the identity, streaming included."""
    r = Redactor({})
    assert r.redact(b"anything at all") == b"anything at all"
    assert run_stream(r.stream(), [b"a", b"", b"bc"]) == b"abc"


def test_each_run_of_this_module_uses_the_matcher_it_names(matcher_mode: str, redactor: Redactor) -> None:
    """Guards the two-mode fixture: a buffer past the small-buffer cut-off goes through the numpy
    prefilter exactly when the mode says so."""
    redactor.redact(b"x" * 4096)
    assert (redactor._matcher._prefilter is not None) == (matcher_mode == "numpy prefilter")


def test_values_longer_than_the_trie_depth_build_free_and_match_in_a_fresh_process() -> None:
    """A binary value of 248 KB (its JSON form is 1.5 MB) crashed the process with a segmentation
    fault when the automaton was freed, which ends `loom run` without cleaning up. Run in a
    subprocess so a crash shows as an exit status instead of taking the test run down."""
    import subprocess
    import sys

    program = (
        "from loom_core.secrets import Redactor\n"
        "import json, gc\n"
        "value = bytes(range(1, 32)) * 8000\n"
        "r = Redactor({'B': value})\n"
        "assert r.redact(b'a ' + value + b' z') == b'a [REDACTED:SECRET_B] z'\n"
        "assert r.redact(json.dumps(value.decode()).encode()) == b'\"[REDACTED:SECRET_B]\"'\n"
        "del r\n"
        "gc.collect()\n"
        "print('done')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]


@pytest.mark.parametrize("size", [4096, 1_000_003])
def test_a_value_longer_than_the_trie_depth_is_masked_across_chunks(size: int) -> None:
    """Patterns over TRIE_DEPTH enter the automaton by their head and are confirmed whole; fed
    in chunks of every size around the head, the whole value is still masked, and a value only
    partly printed is let through (it is not that value) without being held back for ever."""
    import random

    from loom_core.secrets.redaction_matcher import TRIE_DEPTH

    rng = random.Random(3)
    value = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(TRIE_DEPTH + 5000))
    redactor = Redactor({"LONG": value})
    text = b"before " + value + b" after"
    out = run_stream(redactor.stream(), [text[i : i + size] for i in range(0, len(text), size)])
    assert out == b"before [REDACTED:SECRET_LONG] after"
    partial = b"x" + value[: TRIE_DEPTH + 100] + b"y" * 10
    stream = redactor.stream()
    head = b"".join(stream.feed(partial[i : i + size]) for i in range(0, len(partial), size))
    assert head + stream.finish() == partial
