"""aes256gcm nonce source: fresh across threads and across fork."""

from __future__ import annotations

import os
import threading

from loom_core.builtins.aes256gcm import HEADER_SIZE, NONCE_SIZE, Aes256Gcm

AAD = b"nonce-test"


def _nonce_of(sealed: bytes) -> bytes:
    return sealed[HEADER_SIZE - NONCE_SIZE : HEADER_SIZE]


def test_nonces_unique_across_threads() -> None:
    """Proves 8 threads encrypting at once never receive the same nonce (buffered nonces are shared safely)."""
    cipher, key = Aes256Gcm(), os.urandom(32)
    results: list[list[bytes]] = [[] for _ in range(8)]

    def work(slot: list[bytes]) -> None:
        slot.extend(_nonce_of(cipher.encrypt(key, b"x", AAD)) for _ in range(3000))

    threads = [threading.Thread(target=work, args=(slot,)) for slot in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [n for slot in results for n in slot]
    assert len(set(every)) == len(every) == 24000, "a nonce was handed out twice"


def test_forked_child_does_not_reuse_parent_nonces() -> None:
    """Proves a child forked while the parent holds buffered nonces draws its own, so parent and
    child never seal with the same nonce under a shared key."""
    cipher, key = Aes256Gcm(), os.urandom(32)
    cipher.encrypt(key, b"warm", AAD)  # the parent now holds a block of buffered nonces
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            data = b"".join(_nonce_of(cipher.encrypt(key, b"c", AAD)) for _ in range(200))
            os.write(write_end, data)
        finally:
            os._exit(0)
    os.close(write_end)
    child = b""
    while chunk := os.read(read_end, 65536):
        child += chunk
    os.close(read_end)
    os.waitpid(pid, 0)
    parent = {_nonce_of(cipher.encrypt(key, b"p", AAD)) for _ in range(200)}
    child_nonces = {child[i : i + NONCE_SIZE] for i in range(0, len(child), NONCE_SIZE)}
    assert len(child_nonces) == 200
    assert not (parent & child_nonces), "parent and child used the same nonce"
