"""Build real KeePass databases for tests and benchmarks.

pykeepass writes a database in the version it was read in, and its blank
template is KDBX 4, so a KDBX 3.1 file (AES-KDF, as older KeePass and
KeePassX write them) is assembled here from pykeepass's own KDBX structure
definitions. ``fast_kdf`` lowers the key-derivation cost (Argon2 memory and
iterations, AES-KDF rounds) so a test suite can open many databases; the
files stay genuine KDBX with the same algorithms, only cheaper parameters.
"""

from __future__ import annotations

import functools
import hashlib
import os
import secrets as _random
from pathlib import Path
from typing import Any

from construct import Container  # type: ignore[import-untyped]
from lxml import etree  # type: ignore[import-untyped]
from pykeepass import PyKeePass
from pykeepass.kdbx_parsing import KDBX
from pykeepass.pykeepass import BLANK_DATABASE_LOCATION, BLANK_DATABASE_PASSWORD

_SIG1 = b"\x03\xd9\xa2\x9a"
_SIG2 = b"\x67\xfb\x4b\xb5"
FAST_AES_ROUNDS = 2_000
DEFAULT_AES_ROUNDS = 600_000
FAST_ARGON2 = {"I": 2, "M": 1024 * 1024, "P": 1}


def write_keyfile(path: Path) -> Path:
    """A KeePass 2.0 XML keyfile (the format KeePass and KeePassXC generate)."""
    key = _random.token_bytes(32)
    digest = hashlib.sha256(key).digest()[:4].hex().upper()
    hexkey = key.hex().upper()
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<KeyFile>\n\t<Meta>\n\t\t<Version>2.0</Version>\n'
        f'\t</Meta>\n\t<Key>\n\t\t<Data Hash="{digest}">{hexkey}</Data>\n\t</Key>\n</KeyFile>\n'
    )
    return path


@functools.cache
def _blank_key() -> bytes:
    """pykeepass's blank template costs a full Argon2 to open; derive its key once per process."""
    key: bytes = PyKeePass(BLANK_DATABASE_LOCATION, BLANK_DATABASE_PASSWORD).transformed_key
    return key


def _blank() -> PyKeePass:
    return PyKeePass(BLANK_DATABASE_LOCATION, transformed_key=_blank_key())


def _create_kdbx4(path: Path, password: str | None, keyfile: Path | None, fast_kdf: bool) -> PyKeePass:
    kp = _blank()
    if fast_kdf:
        params = kp.kdbx.header.value.dynamic_header.kdf_parameters.data.dict
        for key, value in FAST_ARGON2.items():
            params[key].value = value
    kp.filename = str(path)
    kp.password = password
    kp.keyfile = str(keyfile) if keyfile else None
    kp.save()
    return PyKeePass(str(path), password=password, keyfile=str(keyfile) if keyfile else None)


def _item(name: str, data: Any) -> Container:
    return Container(id=name, data=data)


def _create_kdbx3(path: Path, password: str | None, keyfile: Path | None, fast_kdf: bool) -> PyKeePass:
    blank = _blank()
    tree = blank.tree
    # KDBX 3.1 stores times as ISO-8601 text; the KDBX 4 template has base64 ticks.
    for times in tree.iter("Times"):
        for element in times:
            if element.tag.endswith("Time") and element.text:
                element.text = blank._decode_time(element.text).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = tree.find("Meta")
    if meta is not None and meta.find("Binaries") is None:
        # KDBX 3.1 keeps attachments in Meta/Binaries (KDBX 4 moved them to the inner header).
        meta.append(etree.Element("Binaries"))
    dynamic = Container(
        cipher_id=_item("cipher_id", "aes256"),
        compression_flags=_item("compression_flags", Container(compression=True)),
        master_seed=_item("master_seed", os.urandom(32)),
        transform_seed=_item("transform_seed", os.urandom(32)),
        transform_rounds=_item("transform_rounds", FAST_AES_ROUNDS if fast_kdf else DEFAULT_AES_ROUNDS),
        encryption_iv=_item("encryption_iv", os.urandom(16)),
        protected_stream_key=_item("protected_stream_key", os.urandom(32)),
        stream_start_bytes=_item("stream_start_bytes", os.urandom(32)),
        protected_stream_id=_item("protected_stream_id", "salsa20"),
        end=_item("end", b"\r\n\r\n"),
    )
    header = Container(
        sig1=_SIG1, sig2=_SIG2, sig_check=None, minor_version=1, major_version=3, dynamic_header=dynamic
    )
    kdbx = Container(
        header=Container(value=header),
        body=Container(payload=Container(cred_check=None, xml=tree)),
    )
    KDBX.build_file(
        kdbx,
        str(path),
        password=password,
        keyfile=str(keyfile) if keyfile else None,
        transformed_key=None,
        decrypt=True,
    )
    return PyKeePass(str(path), password=password, keyfile=str(keyfile) if keyfile else None)


def create_database(
    path: Path,
    *,
    version: int = 4,
    password: str | None = None,
    keyfile: Path | None = None,
    fast_kdf: bool = True,
) -> PyKeePass:
    """A new empty KDBX ``version`` (3 or 4) database at ``path``, opened; call ``save()`` after edits."""
    if password is None and keyfile is None:
        raise ValueError("a database needs a password, a keyfile or both")
    if version == 4:
        return _create_kdbx4(path, password, keyfile, fast_kdf)
    if version == 3:
        return _create_kdbx3(path, password, keyfile, fast_kdf)
    raise ValueError(f"unsupported KDBX version {version}")


def ensure_group(kp: PyKeePass, names: tuple[str, ...] | list[str]) -> Any:
    """The group at ``names`` below the root, creating missing levels."""
    group = kp.root_group
    for name in names:
        found = [g for g in group.subgroups if g.name == name]
        group = found[0] if found else kp.add_group(group, name)
    return group


def add_entry(
    kp: PyKeePass,
    groups: tuple[str, ...] | list[str],
    title: str,
    *,
    username: str = "",
    password: str = "",
    url: str | None = None,
    notes: str | None = None,
    custom: dict[str, str] | None = None,
    attachments: dict[str, bytes] | None = None,
) -> Any:
    """Add an entry (duplicates allowed, as KeePass allows them); returns the pykeepass Entry."""
    group = ensure_group(kp, groups)
    entry = kp.add_entry(group, title, username, password, url=url, notes=notes, force_creation=True)
    for key, value in (custom or {}).items():
        # appended directly: pykeepass's setter splices the key into XPath and rejects quotes
        string = etree.SubElement(entry._element, "String")
        etree.SubElement(string, "Key").text = key
        etree.SubElement(string, "Value").text = value
    for filename, data in (attachments or {}).items():
        entry.add_attachment(kp.add_binary(data), filename)
    return entry
