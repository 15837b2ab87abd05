"""Conformance suite for cipher backends (authenticated encryption + key wrapping).

Fixture contract
----------------
A plugin's test class subclasses :class:`CipherSuite`, sets ``capabilities``
to exactly what its cipher declares, and provides one fixture, ``cipher``,
returning the backend (built through ``PluginHost().create("cipher", NAME)``
when possible, so the entry point is exercised too).

What it checks, and why each matters for encryption at rest:

* the output never contains the plaintext, and a fresh nonce is used for
  every encryption (10 000 encryptions of one plaintext are all distinct: a
  repeated nonce under one key breaks AES-GCM completely), also across
  processes: two fresh processes (the cipher built through the plugin host
  by ``backend_name``, default ``cipher.name``) never repeat each other's
  nonces, as a counter or a seeded generator restarting with every server
  start would;
* every single-byte change, truncation or extension of a ciphertext fails
  authentication (the tag is verified before anything is returned);
* associated data is required and binds the ciphertext: another ``aad``
  fails, so a row copied onto another record is refused;
* wrong key fails, wrong key size is refused, ``is_ciphertext`` tells
  sealed output from plaintext rows;
* wrap/unwrap round-trips and a wrong key-encryption key fails;
* keys never appear in ``repr``/``str``, exceptions or logs, in raw, hex or
  base64 form; the fingerprint is stable and does not contain the key.

Capability ``keyed``: ``key_context(key)`` returns an object with
``encrypt(plaintext, aad)`` and ``decrypt(ciphertext, aad)`` (bytes or
memoryview input) producing exactly what ``encrypt``/``decrypt`` with that key
produce and accept, with the same guarantees; encryption at rest uses it on
the per-row hot path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from loom_core.contracts.cipher import Cipher
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires

NONCE_SAMPLE = 10_000
CHILD_SAMPLE = 2_000  # encryptions per fresh process in the cross-process nonce test

# Builds the cipher in a fresh process and prints a digest of each of N encryptions of one
# plaintext under the key read from stdin (never argv: it would show in the process list).
_CHILD_ENCRYPT = """
import hashlib, sys
from loom_core.plugins.host import PluginHost
name, count, aad, plaintext = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4].encode()
key = bytes.fromhex(sys.stdin.read().strip())
cipher = PluginHost(environ={}).create("cipher", name)
for _ in range(count):
    print(hashlib.sha256(cipher.encrypt(key, plaintext, aad)).hexdigest())
"""
AAD = b"stream:kit|key:chunk:L0:01J0KIT"
PLAINTEXT = b'{"content": "the conformance kit plaintext 5e1d9c", "metadata": {"k": "v"}}'


def _expect(code: ErrorCode, call: Callable[[], Any], what: str) -> LoomError:
    """``call`` must raise a LoomError with ``code`` (never return, never raise anything else)."""
    try:
        result = call()
    except LoomError as exc:
        assert exc.code == code, f"{what}: raised {exc.code} but {code} is required"
        return exc
    except Exception as exc:
        pytest.fail(
            f"{what}: raised {type(exc).__name__} instead of LoomError({code}); wrap backend errors",
            pytrace=False,
        )
    pytest.fail(f"{what}: returned {type(result).__name__} instead of raising {code} (fail closed)", pytrace=False)


class CipherSuite(ConformanceSuite):
    """Guarantees of :class:`loom_core.contracts.cipher.Cipher` (fixture: ``cipher``)."""

    #: The name the cipher registers (its entry point name), when it differs from ``cipher.name``;
    #: the cross-process nonce test builds the cipher by it in fresh processes.
    backend_name: ClassVar[str | None] = None

    # -- shape --------------------------------------------------------------

    @core
    def test_cipher_satisfies_contract(self, cipher: Cipher) -> None:
        """Proves the backend has the protocol's attributes and declares the suite's capabilities.

        Fix: give the cipher ``name``, ``key_size``, a non-empty ``magic``,
        ``capabilities`` equal to the test class's, and every method.
        """
        assert isinstance(cipher, Cipher), "cipher lacks an attribute or method of the Cipher protocol"
        assert isinstance(cipher.name, str) and cipher.name, "name must be a non-empty string"
        assert isinstance(cipher.key_size, int) and cipher.key_size >= 16, "key_size must be >= 16 bytes"
        assert isinstance(cipher.magic, bytes) and len(cipher.magic) >= 2, "magic must be >= 2 bytes"
        assert frozenset(cipher.capabilities) == type(self).capabilities, (
            f"cipher declares {sorted(cipher.capabilities)} but the test class says "
            f"{sorted(type(self).capabilities)}"
        )

    @core
    def test_generate_key_is_random_and_sized(self, cipher: Cipher) -> None:
        """Proves generate_key returns key_size fresh random bytes each call.

        Fix: use ``os.urandom(key_size)`` (or the library's key generator).
        """
        keys = {cipher.generate_key() for _ in range(64)}
        assert all(isinstance(k, bytes) and len(k) == cipher.key_size for k in keys), "wrong key size"
        assert len(keys) == 64, "generate_key returned the same key twice"

    # -- confidentiality ------------------------------------------------------

    @core
    def test_round_trip(self, cipher: Cipher) -> None:
        """Proves decrypt(encrypt(x)) == x for empty, small, binary and 1 MiB plaintexts.

        Fix: decrypt must undo encrypt exactly for the same key and aad.
        """
        key = cipher.generate_key()
        for plaintext in (b"", b"x", PLAINTEXT, bytes(range(256)), os.urandom(1 << 20)):
            sealed = cipher.encrypt(key, plaintext, AAD)
            assert cipher.decrypt(key, sealed, AAD) == plaintext, f"round trip failed for {len(plaintext)} bytes"

    @core
    def test_output_never_contains_plaintext(self, cipher: Cipher) -> None:
        """Proves the ciphertext holds no run of the plaintext (text, repetitive, JSON).

        Fix: encrypt the whole value; never store any part of it in clear.
        """
        key = cipher.generate_key()
        samples = [PLAINTEXT, b"A" * 4096, json.dumps({"marker": "kit-marker-" + "7" * 40}).encode()]
        for plaintext in samples:
            sealed = cipher.encrypt(key, plaintext, AAD)
            windows = {plaintext[i : i + 12] for i in range(0, max(1, len(plaintext) - 12), 7)}
            leaked = [w for w in windows if len(w) == 12 and w in sealed]
            assert not leaked, f"{len(leaked)} 12-byte windows of the plaintext appear in the ciphertext"

    @core
    def test_fresh_nonce_every_encryption(self, cipher: Cipher) -> None:
        """Proves 10 000 encryptions of one plaintext under one key are all distinct.

        Fix: draw a fresh random nonce (96 bits for AES-GCM) for every call;
        never a counter reset per process or a nonce derived from the data.
        """
        key = cipher.generate_key()
        outputs = {cipher.encrypt(key, b"same plaintext every time", AAD) for _ in range(NONCE_SAMPLE)}
        assert len(outputs) == NONCE_SAMPLE, f"{NONCE_SAMPLE - len(outputs)} repeated ciphertexts (nonce reuse)"

    @core
    def test_fresh_nonces_across_processes(self, cipher: Cipher) -> None:
        """Proves two fresh processes encrypting one plaintext under one key never repeat a ciphertext.

        Fix: take every nonce from the operating system's random source
        (``os.urandom``); a counter or a generator seeded at start-up restarts
        with each process, so every server restart would reuse nonces under
        the same stream keys. Set ``backend_name`` if the entry point name
        differs from ``cipher.name``.
        """
        name = type(self).backend_name or cipher.name
        key = cipher.generate_key()
        plaintext = "same plaintext in every process"
        children = []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", _CHILD_ENCRYPT, name, str(CHILD_SAMPLE), AAD.decode(), plaintext],
                input=key.hex(), capture_output=True, text=True, timeout=300, check=False,
            )
            assert done.returncode == 0, (
                f"could not build cipher {name!r} through the plugin host in a new process (exit "
                f"{done.returncode}); install the backend's distribution, or set backend_name to the "
                f"name it registers. Last line of its stderr: {done.stderr.strip().splitlines()[-1:]}"
            )
            children.append(set(done.stdout.split()))
        here = {hashlib.sha256(cipher.encrypt(key, plaintext.encode(), AAD)).hexdigest() for _ in range(CHILD_SAMPLE)}
        assert all(len(c) == CHILD_SAMPLE for c in children), "a process repeated its own ciphertexts"
        shared = (children[0] & children[1]) | ((children[0] | children[1]) & here)
        assert not shared, (
            f"{len(shared)} ciphertexts repeated between processes: nonces restart with the process "
            "(a counter or a seeded generator)"
        )

    @core
    def test_output_carries_magic(self, cipher: Cipher) -> None:
        """Proves every output starts with ``magic`` and is_ciphertext recognises it, and only it.

        Fix: prefix the output with ``magic``; is_ciphertext checks that prefix
        (and any fixed header) and length, never decrypts.
        """
        key = cipher.generate_key()
        sealed = cipher.encrypt(key, PLAINTEXT, AAD)
        assert sealed.startswith(cipher.magic), "output does not start with the cipher's magic"
        assert cipher.is_ciphertext(sealed) is True, "is_ciphertext does not recognise own output"
        for plain in (b"", PLAINTEXT, b"{}", b"\x00" * 64, cipher.magic):
            assert cipher.is_ciphertext(plain) is False, f"is_ciphertext claims a {len(plain)}-byte plaintext"

    # -- integrity -----------------------------------------------------------

    @core
    def test_every_single_byte_flip_fails(self, cipher: Cipher) -> None:
        """Proves flipping any one byte of the output (header, nonce, body, tag) fails.

        Fix: verify the authentication tag over nonce, ciphertext and aad
        before returning anything; check magic and version too.
        """
        key = cipher.generate_key()
        sealed = cipher.encrypt(key, PLAINTEXT, AAD)
        for i in range(len(sealed)):
            for mask in (0x01, 0x80):
                tampered = sealed[:i] + bytes([sealed[i] ^ mask]) + sealed[i + 1 :]
                _expect(
                    ErrorCode.CIPHER_DECRYPT_FAILED,
                    lambda t=tampered: cipher.decrypt(key, t, AAD),  # type: ignore[misc]
                    f"byte {i} flipped with {mask:#x}",
                )

    @core
    def test_truncated_or_extended_output_fails(self, cipher: Cipher) -> None:
        """Proves every truncation and any appended byte fails with CIPHER_DECRYPT_FAILED.

        Fix: check the minimum length and authenticate the whole value.
        """
        key = cipher.generate_key()
        sealed = cipher.encrypt(key, b"short", AAD)
        for n in range(len(sealed)):
            _expect(
                ErrorCode.CIPHER_DECRYPT_FAILED,
                lambda n=n: cipher.decrypt(key, sealed[:n], AAD),  # type: ignore[misc]
                f"truncated to {n} bytes",
            )
        _expect(ErrorCode.CIPHER_DECRYPT_FAILED, lambda: cipher.decrypt(key, sealed + b"\x00", AAD), "extended")

    @core
    def test_aad_binds_ciphertext(self, cipher: Cipher) -> None:
        """Proves a ciphertext opens only with the exact aad it was sealed with.

        Fix: pass aad to the AEAD as associated data (not just stored beside).
        """
        key = cipher.generate_key()
        sealed = cipher.encrypt(key, PLAINTEXT, AAD)
        others = [AAD + b"x", AAD[:-1], b"stream:other|key:chunk:L0:01J0KIT", AAD.upper(), b"\x00" + AAD]
        for other in others:
            _expect(ErrorCode.CIPHER_DECRYPT_FAILED, lambda o=other: cipher.decrypt(key, sealed, o), "other aad")  # type: ignore[misc]

    @core
    def test_aad_is_required(self, cipher: Cipher) -> None:
        """Proves empty aad is refused for encrypt, decrypt, wrap and unwrap.

        Fix: raise ``CIPHER_AAD_REQUIRED`` when aad is empty, before any work.
        """
        key = cipher.generate_key()
        sealed = cipher.encrypt(key, PLAINTEXT, AAD)
        wrapped = cipher.wrap_key(key, cipher.generate_key(), AAD)
        code = ErrorCode.CIPHER_AAD_REQUIRED
        _expect(code, lambda: cipher.encrypt(key, PLAINTEXT, b""), "encrypt with empty aad")
        _expect(code, lambda: cipher.decrypt(key, sealed, b""), "decrypt with empty aad")
        _expect(code, lambda: cipher.wrap_key(key, cipher.generate_key(), b""), "wrap with empty aad")
        _expect(code, lambda: cipher.unwrap_key(key, wrapped, b""), "unwrap with empty aad")

    @core
    def test_wrong_key_fails(self, cipher: Cipher) -> None:
        """Proves a different key of the right size fails authentication.

        Fix: never fall back to returning unauthenticated bytes.
        """
        sealed = cipher.encrypt(cipher.generate_key(), PLAINTEXT, AAD)
        other_key = cipher.generate_key()
        _expect(ErrorCode.CIPHER_DECRYPT_FAILED, lambda: cipher.decrypt(other_key, sealed, AAD), "wrong key")

    @core
    def test_wrong_key_size_refused(self, cipher: Cipher) -> None:
        """Proves keys of any other size are refused everywhere with CIPHER_KEY_INVALID.

        Fix: check ``len(key) == key_size`` in every method that takes a key.
        """
        good = cipher.generate_key()
        sealed = cipher.encrypt(good, PLAINTEXT, AAD)
        wrapped = cipher.wrap_key(good, cipher.generate_key(), AAD)
        code = ErrorCode.CIPHER_KEY_INVALID
        for size in sorted({0, 1, 16, cipher.key_size - 1, cipher.key_size + 1, 64} - {cipher.key_size}):
            bad = os.urandom(size)
            _expect(code, lambda b=bad: cipher.encrypt(b, PLAINTEXT, AAD), f"encrypt, {size}-byte key")  # type: ignore[misc]
            _expect(code, lambda b=bad: cipher.decrypt(b, sealed, AAD), f"decrypt, {size}-byte key")  # type: ignore[misc]
            _expect(code, lambda b=bad: cipher.wrap_key(b, good, AAD), f"wrap, {size}-byte kek")  # type: ignore[misc]
            _expect(code, lambda b=bad: cipher.wrap_key(good, b, AAD), f"wrap, {size}-byte key")  # type: ignore[misc]
            _expect(code, lambda b=bad: cipher.unwrap_key(b, wrapped, AAD), f"unwrap, {size}-byte kek")  # type: ignore[misc]

    # -- key wrapping ----------------------------------------------------------

    @core
    def test_wrap_round_trip_and_wrong_kek(self, cipher: Cipher) -> None:
        """Proves unwrap(wrap(k)) == k, the wrapped form hides k, and a wrong kek or aad fails.

        Fix: wrap with an AEAD under the kek with the aad; unwrap must
        authenticate before returning the key.
        """
        kek, dek = cipher.generate_key(), cipher.generate_key()
        wrapped = cipher.wrap_key(kek, dek, AAD)
        assert (dek in wrapped) is False, "the wrapped form contains the key in clear"
        assert cipher.unwrap_key(kek, wrapped, AAD) == dek, "unwrap did not return the wrapped key"
        assert cipher.wrap_key(kek, dek, AAD) != wrapped, "wrapping is deterministic (nonce reuse)"
        code = ErrorCode.CIPHER_DECRYPT_FAILED
        _expect(code, lambda: cipher.unwrap_key(cipher.generate_key(), wrapped, AAD), "unwrap with wrong kek")
        _expect(code, lambda: cipher.unwrap_key(kek, wrapped, AAD + b"!"), "unwrap with other aad")
        tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
        _expect(code, lambda: cipher.unwrap_key(kek, tampered, AAD), "unwrap of a tampered key")

    # -- fingerprints and secrecy of keys ----------------------------------------

    @core
    def test_fingerprint_is_stable_one_way_digest(self, cipher: Cipher) -> None:
        """Proves the fingerprint is stable, differs between keys and contains no form of the key.

        Fix: derive it one way (e.g. HMAC of a fixed label under the key),
        truncated, hex; never a plain encoding or prefix of the key.
        """
        key, other = cipher.generate_key(), cipher.generate_key()
        fp = cipher.fingerprint(key)
        assert isinstance(fp, str) and 8 <= len(fp) <= 128, "fingerprint must be a short string"
        assert cipher.fingerprint(key) == fp, "fingerprint is not stable"
        assert cipher.fingerprint(other) != fp, "two keys share a fingerprint"
        forms = [key.hex(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode()]
        for form in forms:
            assert (form[:16] in fp) is False and (fp[:16] in form) is False, "fingerprint reveals the key"

    @core
    def test_keys_never_leak(self, cipher: Cipher, secret_leak_check: Any) -> None:
        """Proves keys appear in no repr, str, exception or log line (raw, hex or base64).

        Fix: never format keys into messages; messages may name sizes only.
        """
        key = cipher.generate_key()
        short_key = key[:-1]
        sealed = cipher.encrypt(key, PLAINTEXT, AAD)
        errors: list[BaseException] = []
        calls: list[Callable[[], Any]] = [
            lambda: cipher.decrypt(cipher.generate_key(), sealed, AAD),
            lambda: cipher.decrypt(key, sealed[:-1] + b"\x00", AAD),
            lambda: cipher.decrypt(key, sealed, b"other"),
            lambda: cipher.encrypt(short_key, PLAINTEXT, AAD),
            lambda: cipher.wrap_key(key, short_key, AAD),
            lambda: cipher.unwrap_key(cipher.generate_key(), cipher.wrap_key(key, key, AAD), AAD),
            lambda: cipher.encrypt(key, PLAINTEXT, b""),
        ]
        for call in calls:
            try:
                call()
            except Exception as exc:
                errors.append(exc)
        assert len(errors) == len(calls), "a failing call returned instead of raising"
        for value, what in (
            (key, "key (raw)"),
            (short_key, "short key (raw)"),
            (key.hex(), "key (hex)"),
            (base64.b64encode(key).decode(), "key (base64)"),
        ):
            secret_leak_check.assert_absent(value, what=what, exceptions=errors, objects=[cipher])

    # -- capability ``keyed`` ------------------------------------------------------

    @core
    @requires("keyed")
    def test_key_context_interoperates(self, cipher: Cipher) -> None:
        """Proves a key context's output opens with decrypt and vice versa, also from a memoryview,
        with fresh nonces, and that it rejects wrong aad, tampering and empty aad like the cipher.

        Fix: share the output format and checks between ``key_context`` and the cipher methods.
        """
        key = cipher.generate_key()
        ctx = cipher.key_context(key)  # type: ignore[attr-defined]
        sealed = ctx.encrypt(PLAINTEXT, AAD)
        assert cipher.decrypt(key, sealed, AAD) == PLAINTEXT, "cipher cannot open the context's output"
        assert ctx.decrypt(cipher.encrypt(key, PLAINTEXT, AAD), AAD) == PLAINTEXT
        assert ctx.decrypt(memoryview(b"xx" + sealed)[2:], AAD) == PLAINTEXT, "memoryview input refused"
        assert len({ctx.encrypt(PLAINTEXT, AAD) for _ in range(1000)}) == 1000, "context reuses nonces"
        code = ErrorCode.CIPHER_DECRYPT_FAILED
        _expect(code, lambda: ctx.decrypt(sealed, AAD + b"x"), "context: other aad")
        _expect(code, lambda: ctx.decrypt(sealed[:-1] + bytes([sealed[-1] ^ 1]), AAD), "context: tampered tag")
        _expect(code, lambda: ctx.decrypt(memoryview(sealed)[:10], AAD), "context: truncated memoryview")
        _expect(code, lambda: cipher.key_context(cipher.generate_key()).decrypt(sealed, AAD),  # type: ignore[attr-defined]
                "context: wrong key")
        _expect(ErrorCode.CIPHER_AAD_REQUIRED, lambda: ctx.encrypt(PLAINTEXT, b""), "context: empty aad")
        _expect(ErrorCode.CIPHER_KEY_INVALID, lambda: cipher.key_context(key[:-1]), "context: short key")  # type: ignore[attr-defined]
        assert (key in repr(ctx).encode() or key.hex() in repr(ctx)) is False, "key in the context's repr"
