"""Where an alias's database and unlock credentials come from: the environment only.

``LOOM_KEEPASS_DB_<ALIAS>_PATH`` names the ``.kdbx`` file. Credentials are
never values in configuration: ``..._PASSWORD_ENV`` and ``..._KEYFILE_ENV``
name *other* variables that hold the master password and the keyfile path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from loom_core.errors import ErrorCode, LoomError
from loom_core.flags import looks_like_variable_name
from loom_secrets_keepass.reference import KeepassRef

PREFIX = "LOOM_KEEPASS_DB_"


@dataclass(frozen=True)
class Unlock:
    """What opens one database. ``repr`` never shows the password."""

    path: Path
    password: str | None = field(default=None, repr=False)
    keyfile: Path | None = None




def _shown(name: str) -> str:
    """``name`` for an error message, unless it is not spelled like a variable name (upper-case
    letters, digits, ``_``): then it may be the password or keyfile path itself, typed where its
    variable's name belongs (a password such as ``master_pw_horse`` is a valid name too)."""
    if looks_like_variable_name(name):
        return name
    return "a value that is not a variable name (not shown: it may be the secret itself)"


def variable(alias_key: str, suffix: str) -> str:
    return f"{PREFIX}{alias_key}_{suffix}"


def unlock_for(ref: KeepassRef, environ: Mapping[str, str]) -> Unlock:
    """Read the alias's settings; raises UNAVAILABLE or AUTH_MISSING, never opens anything."""
    key = ref.alias_key
    path_var = variable(key, "PATH")
    db_path = environ.get(path_var, "").strip()
    if not db_path:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            f"{ref.raw}: keepass alias {ref.alias!r} is not configured; set {path_var} "
            "to the path of its .kdbx file",
        )
    password_var_name = variable(key, "PASSWORD_ENV")
    keyfile_var_name = variable(key, "KEYFILE_ENV")
    password_var = environ.get(password_var_name, "").strip()
    keyfile_var = environ.get(keyfile_var_name, "").strip()
    if not password_var and not keyfile_var:
        raise LoomError(
            ErrorCode.SECRETS_AUTH_MISSING,
            f"{ref.raw}: no credentials configured for keepass alias {ref.alias!r}; set "
            f"{password_var_name} and/or {keyfile_var_name} to the NAME of a variable holding "
            "the master password / the keyfile path",
        )
    password: str | None = None
    if password_var:
        password = environ.get(password_var)
        if not password:
            raise LoomError(
                ErrorCode.SECRETS_AUTH_MISSING,
                f"{ref.raw}: {password_var_name} names {_shown(password_var)}, which is unset or empty",
            )
    keyfile: Path | None = None
    if keyfile_var:
        keyfile_text = environ.get(keyfile_var, "").strip()
        if not keyfile_text:
            raise LoomError(
                ErrorCode.SECRETS_AUTH_MISSING,
                f"{ref.raw}: {keyfile_var_name} names {_shown(keyfile_var)}, which is unset or empty",
            )
        keyfile = Path(keyfile_text).expanduser()
        if not keyfile.is_file():
            raise LoomError(
                ErrorCode.SECRETS_AUTH_MISSING,
                f"{ref.raw}: the keyfile {str(keyfile)!r} named by {keyfile_var} does not exist",
            )
    return Unlock(path=Path(db_path).expanduser(), password=password, keyfile=keyfile)
