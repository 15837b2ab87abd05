"""Each alias is decrypted at most once per provider (one KDF per run), safely across threads."""

from __future__ import annotations

import threading
from typing import Any

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

REFS = [
    "keepass://main/ci/db/postgres",
    "keepass://main/ci/db/postgres#username",
    "keepass://main/ci/db/postgres#notes",
    "keepass://main/root-entry",
    "keepass://main/ci/unicode",
]


def test_many_references_open_the_database_once(main_db: Any) -> None:
    """Twenty-five resolves against one alias decrypt the file exactly once."""
    p = main_db.provider()
    try:
        for _ in range(5):
            for raw in REFS:
                p.resolve(SecretRef.parse(raw))
        assert p.opens == 1
    finally:
        p.close()


def test_two_aliases_open_once_each(main_db: Any, variants: dict[tuple[int, str], Any]) -> None:
    """Aliases are cached independently: two databases, two opens, however many lookups."""
    other = variants[(3, "password")]
    p = main_db.provider(**other.environ)
    try:
        for _ in range(3):
            p.resolve(SecretRef.parse("keepass://main/root-entry"))
            p.resolve(SecretRef.parse("keepass://v3-password/ci/api"))
        assert p.opens == 2
    finally:
        p.close()


def test_concurrent_first_use_opens_once(main_db: Any) -> None:
    """Eight threads resolving at once share one open and all get the right bytes."""
    p = main_db.provider()
    results: list[bytes] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        try:
            barrier.wait()
            results.append(p.resolve(SecretRef.parse("keepass://main/root-entry")).reveal())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert results == [b"root-level-secret"] * 8
        assert p.opens == 1
    finally:
        p.close()


def test_a_failed_open_is_not_retried_within_the_run(main_db: Any) -> None:
    """A wrong password fails every later reference with the same code, without another KDF, and
    each error names the reference that asked (the first failure's text follows as the reason)."""
    p = main_db.provider(KP_MAIN_MASTER="not-the-master-password")
    errors = []
    for raw in REFS:
        try:
            p.resolve(SecretRef.parse(raw))
        except LoomError as exc:
            errors.append(exc)
    assert [e.code for e in errors] == [ErrorCode.SECRETS_AUTH_INVALID] * len(REFS)
    assert p.opens == 1
    for raw, error in zip(REFS, errors):
        assert error.message.startswith(raw), (raw, error.message)


def test_close_forgets_the_open_database(main_db: Any) -> None:
    """close() drops the decrypted database; the next resolve opens the file again."""
    p = main_db.provider()
    p.resolve(SecretRef.parse("keepass://main/root-entry"))
    p.close()
    assert repr(p) == "KeepassProvider(open_aliases=[])"
    p.resolve(SecretRef.parse("keepass://main/root-entry"))
    assert p.opens == 2
    p.close()
    p.close()  # idempotent
