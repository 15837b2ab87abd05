"""End to end with a real KeePass database: keepass:// through `loom run`, fail closed, no leaks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pykeepass
import pytest

from loom_core.errors import ErrorCode, LoomError

from .conftest import run_inprocess

MASTER = "workflow-test-master-passphrase"
VALUE = "kp-postgres-password-31ce"


@pytest.fixture(scope="module")
def kdbx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A KDBX 4 database with ci/db/postgres and two entries sharing one path."""
    path = tmp_path_factory.mktemp("kp") / "main.kdbx"
    kp = pykeepass.create_database(str(path), password=MASTER)
    ci = kp.add_group(kp.root_group, "ci")
    db = kp.add_group(ci, "db")
    kp.add_entry(db, "postgres", "pg-admin", VALUE)
    kp.add_entry(ci, "twin", "a", "first-twin-value-1", force_creation=True)
    kp.add_entry(ci, "twin", "b", "second-twin-value-2", force_creation=True)
    kp.save()
    return path


def _env(kdbx: Path) -> dict[str, str]:
    return {
        "LOOM_KEEPASS_DB_MAIN_PATH": str(kdbx),
        "LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV": "KP_MASTER",
        "KP_MASTER": MASTER,
    }


@pytest.mark.parametrize("padding", ["", " ", "\t "], ids=["plain", "trailing-space", "padded"])
def test_keepass_secret_injected_redacted_and_credentials_not_inherited(
    tmp_path: Path, write_workflow: Callable[..., Path], kdbx: Path, padding: str
) -> None:
    """The entry's password reaches the job as a file; the master password and alias map do not,
    also when the ``*_PASSWORD_ENV`` setting carries stray whitespace around the name (the
    provider reads ``"KP_MASTER "`` as KP_MASTER; the job used to inherit KP_MASTER then)."""
    path = write_workflow(
        """\
        jobs:
          migrate:
            secrets:
              DATABASE_PASSWORD: {ref: "keepass://main/ci/db/postgres#password"}
            script:
              - 'sha256sum < "$DATABASE_PASSWORD" | cut -d" " -f1 > file.sha'
              - 'env > env.txt'
              - 'echo "pw=$(cat "$DATABASE_PASSWORD")"'
        """
    )
    environ = _env(kdbx)
    environ["LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV"] = padding + "KP_MASTER" + padding[::-1]
    result: Any
    result, out, err = run_inprocess(path, environ)
    assert result.exit_code == 0, err
    assert (tmp_path / "file.sha").read_text().strip() == hashlib.sha256(VALUE.encode()).hexdigest()
    assert out == b"pw=[REDACTED:SECRET_DATABASE_PASSWORD]\n"
    env_dump = (tmp_path / "env.txt").read_text()
    assert (MASTER in env_dump) is False, "master password inherited by the job"
    assert "LOOM_KEEPASS_DB_MAIN_PATH" not in env_dump
    receipt = (tmp_path / "receipt.json").read_bytes()
    assert (VALUE.encode() in receipt) is False and (MASTER.encode() in receipt) is False


def test_ambiguous_entry_fails_before_the_job(
    tmp_path: Path, write_workflow: Callable[..., Path], kdbx: Path
) -> None:
    """Two entries with the same path: SECRETS_AMBIGUOUS, and the job never ran."""
    path = write_workflow(
        'jobs:\n  a: {secrets: {T: {ref: "keepass://main/ci/twin"}}, script: ["touch a.marker"]}\n'
    )
    result: Any
    result, _, _ = run_inprocess(path, _env(kdbx))
    assert result.error.code == ErrorCode.SECRETS_AMBIGUOUS
    assert "keepass://main/ci/twin" in result.error.message
    assert not (tmp_path / "a.marker").exists()


def test_missing_credentials_fail_closed(tmp_path: Path, write_workflow: Callable[..., Path], kdbx: Path) -> None:
    """Without the password indirection the run fails with a SECRETS_* code before the job."""
    path = write_workflow(
        'jobs:\n  a: {secrets: {P: {ref: "keepass://main/ci/db/postgres"}}, script: ["touch a.marker"]}\n'
    )
    result: Any
    result, _, _ = run_inprocess(path, {"LOOM_KEEPASS_DB_MAIN_PATH": str(kdbx)})
    assert result.error.code.value.startswith("SECRETS_")
    assert not (tmp_path / "a.marker").exists()


def test_one_run_opens_each_keepass_database_once(
    tmp_path: Path, write_workflow: Callable[..., Path], kdbx: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three references in two jobs to one alias decrypt the database once per `loom run` (each
    open costs a full KDF); the next run opens it again (nothing is cached between runs)."""
    import loom_secrets_keepass.database as database

    opened: list[str] = []
    real = database.PyKeePass

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(str(args[0] if args else kwargs.get("filename")))
        return real(*args, **kwargs)

    monkeypatch.setattr(database, "PyKeePass", counting)
    path = write_workflow(
        """\
        jobs:
          first:
            secrets:
              PW: {ref: "keepass://main/ci/db/postgres#password"}
              USER: {ref: "keepass://main/ci/db/postgres#username", file: false}
            script: ['test -s "$PW"']
          second:
            needs: [first]
            secrets:
              AGAIN: {ref: "keepass://main/ci/db/postgres"}
            script: ['test -s "$AGAIN"']
        """
    )
    result: Any
    result, _, err = run_inprocess(path, _env(kdbx))
    assert result.exit_code == 0, err
    assert opened == [str(kdbx)]
    result, _, err = run_inprocess(path, _env(kdbx))
    assert result.exit_code == 0, err
    assert opened == [str(kdbx), str(kdbx)]


def test_a_password_typed_where_its_variable_name_belongs_is_not_echoed(
    tmp_path: Path, write_workflow: Callable[..., Path], kdbx: Path
) -> None:
    """``LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV=<the password itself>``: SECRETS_AUTH_MISSING, and the
    message says the setting holds no variable name without quoting what it holds."""
    path = write_workflow(
        """\
        jobs:
          a:
            secrets: {PW: {ref: "keepass://main/ci/db/postgres"}}
            script: ['true']
        """
    )
    environ = _env(kdbx)
    environ["LOOM_KEEPASS_DB_MAIN_PASSWORD_ENV"] = "Typed pass-phrase 9!"
    result: Any
    result, out, err = run_inprocess(path, environ)
    assert result.error is not None and result.error.code is ErrorCode.SECRETS_AUTH_MISSING
    assert "not a variable name" in result.error.message
    receipt = (tmp_path / "receipt.json").read_bytes()
    assert b"Typed pass-phrase" not in out + err + receipt + result.error.message.encode()


@pytest.mark.parametrize("name", ["OP_SERVICE_ACCOUNT_TOKEN", "LOOM_KEEPASS_DB_MAIN_PATH", "KP_MASTER"])
def test_env_references_cannot_read_the_providers_own_credentials(
    tmp_path: Path, write_workflow: Callable[..., Path], kdbx: Path, name: str
) -> None:
    """``env://OP_SERVICE_ACCOUNT_TOKEN``, an alias setting, or the variable an alias names as
    holding its master password: SECRETS_ACCESS_DENIED before any job runs. Jobs never inherit
    these; reading them through a reference handed them to any job that asked."""
    path = write_workflow(
        f"""\
        jobs:
          a:
            secrets: {{LOOT: {{ref: "env://{name}"}}}}
            script: ['touch ran.marker']
        """
    )
    environ = _env(kdbx) | {"OP_SERVICE_ACCOUNT_TOKEN": "ops_made-up-token-for-test"}
    try:  # fixed names are refused by the check before the run; indirect ones at resolution
        result: Any
        result, _, _ = run_inprocess(path, environ)
        error = result.error
    except LoomError as exc:
        error = exc
    assert error is not None and error.code is ErrorCode.SECRETS_ACCESS_DENIED
    assert not (tmp_path / "ran.marker").exists()
