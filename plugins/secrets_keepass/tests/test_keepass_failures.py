"""keepass:// fails closed: every misconfiguration and lookup miss has its own stable code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from loom_secrets_keepass.provider import KeepassProvider

from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

Failure = Callable[[KeepassProvider, str], LoomError]
REF = "keepass://main/ci/db/postgres"


def _no_leak(err: LoomError, values: SimpleNamespace) -> None:
    text = f"{err} {err.message} {err!r}"
    for label in ("master", "secret", "custom", "unicode"):
        assert (getattr(values, label) in text) is False, f"{label} value leaked into an error message"


@pytest.mark.parametrize(
    ("ref", "code"),
    [
        ("keepass://main/nope/postgres", ErrorCode.SECRETS_NOT_FOUND),
        ("keepass://main/ci/db/nope", ErrorCode.SECRETS_NOT_FOUND),
        ("keepass://main/ci/postgres", ErrorCode.SECRETS_NOT_FOUND),
        ("keepass://main/ci/renamed-old", ErrorCode.SECRETS_NOT_FOUND),
        ("keepass://main/ci/db/postgres#nope", ErrorCode.SECRETS_FIELD_NOT_FOUND),
        ("keepass://main/ci/db/postgres#attachment:nope.pem", ErrorCode.SECRETS_FIELD_NOT_FOUND),
        ("keepass://main/ci/twin", ErrorCode.SECRETS_AMBIGUOUS),
        ("keepass://main/ci/shared/deploy", ErrorCode.SECRETS_AMBIGUOUS),
        ("keepass://main/ci/no-password", ErrorCode.SECRETS_VALUE_UNSAFE),
        ("keepass://main/ci/db/postgres#empty-prop", ErrorCode.SECRETS_VALUE_UNSAFE),
        ("keepass://main/ci/db/postgres#attachment:empty.bin", ErrorCode.SECRETS_VALUE_UNSAFE),
    ],
)
def test_lookup_failures_have_distinct_codes(
    provider: KeepassProvider, failure: Failure, values: SimpleNamespace, ref: str, code: ErrorCode
) -> None:
    """Unknown group/entry, unknown field, duplicate path, empty value: each its own code, naming the ref."""
    err = failure(provider, ref)
    assert err.code == code
    assert ref in err.message
    _no_leak(err, values)


def test_history_title_does_not_shadow_the_current_one(provider: KeepassProvider) -> None:
    """An entry's history (old title) is not searched; the current title resolves once."""
    assert provider.resolve(SecretRef.parse("keepass://main/ci/renamed-new")).reveal() == b"history-secret"


def test_unknown_alias_is_unavailable(main_db: Any, failure: Failure) -> None:
    """An alias without LOOM_KEEPASS_DB_<ALIAS>_PATH is SECRETS_PROVIDER_UNAVAILABLE, naming the variable."""
    err = failure(main_db.provider(), "keepass://other/ci/x")
    assert err.code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert "LOOM_KEEPASS_DB_OTHER_PATH" in err.message


def test_no_credential_indirection_is_auth_missing(main_db: Any, failure: Failure) -> None:
    """A PATH without PASSWORD_ENV/KEYFILE_ENV is SECRETS_AUTH_MISSING; no implicit empty password."""
    p = KeepassProvider({"LOOM_KEEPASS_DB_MAIN_PATH": str(main_db.path)})
    err = failure(p, REF)
    assert err.code == ErrorCode.SECRETS_AUTH_MISSING
    assert "LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV" in err.message
    assert p.opens == 0


@pytest.mark.parametrize("value", [None, ""])
def test_named_password_variable_unset_is_auth_missing(
    main_db: Any, failure: Failure, value: str | None
) -> None:
    """PASSWORD_ENV naming an unset or empty variable is SECRETS_AUTH_MISSING, naming that variable."""
    env = dict(main_db.environ)
    if value is None:
        del env["KP_MAIN_MASTER"]
    else:
        env["KP_MAIN_MASTER"] = value
    err = failure(KeepassProvider(env), REF)
    assert err.code == ErrorCode.SECRETS_AUTH_MISSING
    assert "KP_MAIN_MASTER" in err.message


@pytest.mark.parametrize("setting", ["PASSWORD_ENV", "KEYFILE_ENV"])
def test_a_password_typed_where_its_variable_name_belongs_is_not_echoed(
    main_db: Any, failure: Failure, setting: str
) -> None:
    """The setting holds the password itself, which happens to be a valid variable name: the
    message must not repeat it (only conventionally spelled names are shown)."""
    env = dict(main_db.environ)
    env[f"LOOM_KEEPASS_DB_MAIN_{setting}"] = "master_pw_correct_horse"
    err = failure(KeepassProvider(env), REF)
    assert err.code == ErrorCode.SECRETS_AUTH_MISSING
    assert "master_pw_correct_horse" not in err.message and f"LOOM_KEEPASS_DB_MAIN_{setting}" in err.message


def test_keyfile_variable_unset_or_missing_file_is_auth_missing(
    variants: dict[tuple[int, str], Any], failure: Failure, tmp_path: Path
) -> None:
    """KEYFILE_ENV naming an unset variable, or a keyfile path that does not exist: SECRETS_AUTH_MISSING."""
    db = variants[(4, "keyfile")]
    env = dict(db.environ)
    del env["KP_V4_KEYFILE_KEYFILE"]
    assert failure(KeepassProvider(env), "keepass://v4-keyfile/ci/api").code == ErrorCode.SECRETS_AUTH_MISSING
    env["KP_V4_KEYFILE_KEYFILE"] = str(tmp_path / "absent.keyx")
    err = failure(KeepassProvider(env), "keepass://v4-keyfile/ci/api")
    assert err.code == ErrorCode.SECRETS_AUTH_MISSING
    assert "absent.keyx" in err.message


def test_missing_database_file_is_unavailable(main_db: Any, failure: Failure, tmp_path: Path) -> None:
    """A PATH pointing at no file is SECRETS_PROVIDER_UNAVAILABLE."""
    p = main_db.provider(LOOM_KEEPASS_DB_MAIN_PATH=str(tmp_path / "gone.kdbx"))
    err = failure(p, REF)
    assert err.code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert "gone.kdbx" in err.message


def test_wrong_password_is_auth_invalid(main_db: Any, failure: Failure, values: SimpleNamespace) -> None:
    """A wrong master password is SECRETS_AUTH_INVALID; the message holds neither password."""
    wrong = "Wrong-Master-Password-99"
    err = failure(main_db.provider(KP_MAIN_MASTER=wrong), REF)
    assert err.code == ErrorCode.SECRETS_AUTH_INVALID
    assert (wrong in str(err)) is False, "the tried password leaked into the error"
    _no_leak(err, values)


def test_wrong_keyfile_is_auth_invalid(
    variants: dict[tuple[int, str], Any], failure: Failure, tmp_path: Path
) -> None:
    """The right password with a wrong keyfile (KDBX 3.1) is SECRETS_AUTH_INVALID."""
    from loom_secrets_keepass.testing import write_keyfile

    db = variants[(3, "both")]
    other = write_keyfile(tmp_path / "other.keyx")
    err = failure(db.provider(KP_V3_BOTH_KEYFILE=str(other)), "keepass://v3-both/ci/api")
    assert err.code == ErrorCode.SECRETS_AUTH_INVALID


def test_password_given_for_a_keyfile_database_is_auth_invalid(
    variants: dict[tuple[int, str], Any], failure: Failure
) -> None:
    """Unlocking a keyfile+password database with the password alone is SECRETS_AUTH_INVALID."""
    db = variants[(4, "both")]
    env = {k: v for k, v in db.environ.items() if "KEYFILE" not in k}
    assert failure(KeepassProvider(env), "keepass://v4-both/ci/api").code == ErrorCode.SECRETS_AUTH_INVALID


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-keepass", "empty"])
def test_corrupt_file_is_provider_failed(
    main_db: Any, failure: Failure, values: SimpleNamespace, tmp_path: Path, damage: str
) -> None:
    """A truncated, bit-flipped, foreign or empty file is SECRETS_PROVIDER_FAILED, not a crash."""
    data = main_db.path.read_bytes()
    bad = tmp_path / "bad.kdbx"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        body = bytearray(data)
        body[-40] ^= 0xFF
        bad.write_bytes(bytes(body))
    elif damage == "not-keepass":
        bad.write_bytes(b"PK\x03\x04 this is a zip, not a KeePass file" * 10)
    else:
        bad.write_bytes(b"")
    err = failure(main_db.provider(LOOM_KEEPASS_DB_MAIN_PATH=str(bad)), REF)
    assert err.code == ErrorCode.SECRETS_PROVIDER_FAILED
    assert err.__cause__ is None and err.__suppress_context__
    _no_leak(err, values)


def test_database_path_that_is_a_directory_is_unavailable(
    main_db: Any, failure: Failure, tmp_path: Path
) -> None:
    """A PATH naming a directory instead of a .kdbx file is SECRETS_PROVIDER_UNAVAILABLE."""
    err = failure(main_db.provider(LOOM_KEEPASS_DB_MAIN_PATH=str(tmp_path)), REF)
    assert err.code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE


@pytest.mark.parametrize(
    "raw",
    [
        "keepass://main",
        "keepass://main/",
        "keepass://main//entry",
        "keepass://ma%69n/entry",
        "keepass://-main/entry",
        "keepass://main/ci/entry#",
        "keepass://main/ci/entry#attachment:",
        "keepass://main/ci/%zz",
        "keepass://main/ci/%ff%fe",
        "keepass://main/ci/a%0Ab",
        "env://main/ci/entry",
    ],
)
def test_invalid_references_are_rejected_without_any_configuration(raw: str) -> None:
    """Bad syntax is SECRETS_REF_INVALID from validate() and resolve(), before any env var is read."""
    p = KeepassProvider({})
    for call in (p.validate, p.resolve):
        with pytest.raises(LoomError) as info:
            call(SecretRef.parse(raw))
        assert info.value.code == ErrorCode.SECRETS_REF_INVALID
    assert p.opens == 0


def test_only_ctx_environ_is_read(main_db: Any, failure: Failure, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings in the process environment are ignored: the provider reads only the context's environ."""
    for key, value in main_db.environ.items():
        monkeypatch.setenv(key, value)
    assert failure(KeepassProvider({}), REF).code == ErrorCode.SECRETS_PROVIDER_UNAVAILABLE


def test_repr_and_errors_never_show_credentials(main_db: Any, values: SimpleNamespace) -> None:
    """The provider's repr, a resolved value's repr and str show no password or value."""
    p = main_db.provider()
    try:
        value = p.resolve(SecretRef.parse(REF))
        shown = f"{p!r} {value!r} {value}"
        assert (values.master in shown) is False, "master password in a repr"
        assert (values.secret in shown) is False, "secret value in a repr"
    finally:
        p.close()
