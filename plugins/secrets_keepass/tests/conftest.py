"""Real KeePass databases, created once per test session in a temporary directory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from loom_secrets_keepass.provider import KeepassProvider
from loom_secrets_keepass.testing import add_entry, create_database, write_keyfile

from loom_core.contracts.secrets import SecretRef, SecretValue
from loom_core.errors import LoomError

MASTER = "correct horse battery staple 7"
SECRET = "pg-Secret-value-0001"
NOTES = "line one of the notes\r\nline two: 'quoted' \"double\"\nline three"
UNICODE = "pässwörd-ünïcode-✓-value"
CUSTOM = "custom-token-value-42"
ATTACHMENT = b"\x00\x01binary attachment bytes\xff\n"


@dataclass(frozen=True)
class Db:
    """One database on disk and the environment that unlocks it as ``alias``."""

    alias: str
    path: Path
    environ: dict[str, str]

    def provider(self, **extra: str) -> KeepassProvider:
        return KeepassProvider({**self.environ, **extra})


def alias_environ(alias: str, path: Path, password: str | None, keyfile: Path | None) -> dict[str, str]:
    key = alias.upper().replace("-", "_")
    env = {f"LOOM_KEEPASS_DB_{key}_PATH": str(path)}
    if password is not None:
        env[f"LOOM_KEEPASS_DB_{key}_PASSWORD_ENV"] = f"KP_{key}_MASTER"
        env[f"KP_{key}_MASTER"] = password
    if keyfile is not None:
        env[f"LOOM_KEEPASS_DB_{key}_KEYFILE_ENV"] = f"KP_{key}_KEYFILE"
        env[f"KP_{key}_KEYFILE"] = str(keyfile)
    return env


@pytest.fixture(scope="session")
def kp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keepass")


@pytest.fixture(scope="session")
def keyfile(kp_dir: Path) -> Path:
    return write_keyfile(kp_dir / "unlock.keyx")


@pytest.fixture(scope="session")
def main_db(kp_dir: Path) -> Db:
    """A KDBX 4 (Argon2) database, password only, holding every case the tests read."""
    path = kp_dir / "main.kdbx"
    kp = create_database(path, version=4, password=MASTER)
    add_entry(
        kp,
        ("ci", "db"),
        "postgres",
        username="pg-admin",
        password=SECRET,
        url="https://db.internal:5432",
        notes=NOTES,
        custom={"api token": CUSTOM, "empty-prop": "", "quote\"key": "quoted-key-value"},
        attachments={"client.pem": ATTACHMENT, "empty.bin": b""},
    )
    add_entry(kp, (), "root-entry", password="root-level-secret")
    add_entry(kp, ("ci",), "unicode", password=UNICODE)
    add_entry(kp, ("ci",), "trailing", password="value-ends-in-newline\n", custom={"crlf": "a-b-c\r\n"})
    add_entry(kp, ("ci",), "no-password", username="someone", password="")
    add_entry(kp, ("team/a", "x#y"), "svc/1#2", password="escaped-names-secret")
    add_entry(kp, ("ci",), "twin", password="first-twin-secret")
    add_entry(kp, ("ci",), "twin", password="second-twin-secret")
    # two groups with one name, one entry each: the path matches two entries
    ci = next(g for g in kp.root_group.subgroups if g.name == "ci")
    for n in (1, 2):
        group = kp.add_group(ci, "shared")
        kp.add_entry(group, "deploy", "u", f"shared-deploy-secret-{n}", force_creation=True)
    # an entry whose history holds an old title must not match that old title
    hist = add_entry(kp, ("ci",), "renamed-old", password="history-secret")
    hist.save_history()
    hist.title = "renamed-new"
    kp.save()
    return Db("main", path, alias_environ("main", path, MASTER, None))


def _variant(kp_dir: Path, keyfile: Path, version: int, creds: str) -> Db:
    password = MASTER if creds in ("password", "both") else None
    kf = keyfile if creds in ("keyfile", "both") else None
    alias = f"v{version}-{creds}"
    path = kp_dir / f"{alias}.kdbx"
    kp = create_database(path, version=version, password=password, keyfile=kf)
    add_entry(kp, ("ci",), "api", username="bot", password=f"{alias}-secret-value", custom={"k": "custom-v"})
    add_entry(kp, ("ci",), "cert", attachments={"c.der": ATTACHMENT})
    kp.save()
    return Db(alias, path, alias_environ(alias, path, password, kf))


@pytest.fixture(scope="session")
def variants(kp_dir: Path, keyfile: Path) -> dict[tuple[int, str], Db]:
    """KDBX 3.1 (AES-KDF) and KDBX 4 (Argon2) with password, keyfile, and both."""
    return {
        (version, creds): _variant(kp_dir, keyfile, version, creds)
        for version in (3, 4)
        for creds in ("password", "keyfile", "both")
    }


@pytest.fixture(scope="session")
def provider(main_db: Db) -> Iterator[KeepassProvider]:
    """One provider for the read-only tests: opens main.kdbx once for the session."""
    p = main_db.provider()
    yield p
    p.close()


@pytest.fixture
def resolve(provider: KeepassProvider) -> Callable[[str], SecretValue]:
    return lambda raw: provider.resolve(SecretRef.parse(raw))


def _failure(p: KeepassProvider, raw: str) -> LoomError:
    with pytest.raises(LoomError) as info:
        p.resolve(SecretRef.parse(raw))
    return info.value


@pytest.fixture(scope="session")
def failure() -> Callable[[KeepassProvider, str], LoomError]:
    """``failure(provider, ref)``: the LoomError resolving ``ref`` raises (fails if it resolves)."""
    return _failure


@pytest.fixture(scope="session")
def values() -> SimpleNamespace:
    """The stored values, for comparisons and leak checks."""
    return SimpleNamespace(
        master=MASTER, secret=SECRET, notes=NOTES, unicode=UNICODE, custom=CUSTOM, attachment=ATTACHMENT
    )
