"""Encryption at rest: master key, per-stream data keys, row sealing, rotation, backfill.

:func:`build_row_codec` is the one call the server needs: it reads the master
key from the configuration and environment, proves it is the key the data
directory was written with, and returns the codec the memory engine seals its
rows with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loom_core.crypto.masterguard import open_keyring, refuse_plaintext_start
from loom_core.crypto.masterkey import DEFAULT_MASTER_KEY_ENV, MasterKey, load_master_key
from loom_core.crypto.rowcodec import EncryptingRowCodec, PlaintextRowCodec
from loom_core.errors import ErrorCode, LoomError

Codec = EncryptingRowCodec | PlaintextRowCodec


def encryption_settings(config: Any) -> Any:
    """The ``[encryption]`` section of ``config`` (a ``LoomConfig``), or defaults."""
    section = getattr(config, "encryption", None)
    if section is None:
        from loom_core.config import LoomConfig

        section = LoomConfig().encryption
    return section


def build_cipher(config: Any, host: Any) -> Any:
    """The cipher backend ``encryption.cipher`` selects (default ``aes256gcm``)."""
    from loom_core.contracts import BackendContext

    settings = encryption_settings(config)
    return host.create("cipher", str(settings.cipher), BackendContext(environ=host.environ))


def build_row_codec(
    config: Any,
    host: Any,
    storage: Any,
    environ: Mapping[str, str] | None = None,
    *,
    read_only: bool = False,
) -> Codec:
    """The row codec for ``storage``: an open storage backend holding ``keys`` and
    ``meta``, or the data directory (a path) the memory engine will open.

    Given a path, the storage under ``<path>/storage`` is opened just long
    enough to check the key and unwrap every data key, then closed; the
    caller binds the engine's storage once it is open::

        codec = build_row_codec(config, host, data_dir, environ)
        engine = MemoryEngine.open(config, host, data_dir, codec=codec)
        codec.bind(engine.storage)

    Checks:

    * master key set: checks it against the data directory
      (``ENCRYPTION_KEY_MISMATCH`` naming the expected fingerprint) and returns
      an :class:`EncryptingRowCodec`;
    * malformed key: ``ENCRYPTION_KEY_INVALID``;
    * no key but ``expect_enabled``: ``ENCRYPTION_KEY_MISSING``;
    * no key over data written encrypted: ``ENCRYPTION_KEY_MISSING`` too;
    * otherwise a :class:`PlaintextRowCodec`.

    ``read_only`` makes the same checks without writing (see ``open_keyring``).
    """
    env: Mapping[str, str] = environ if environ is not None else getattr(host, "environ", {})
    settings = encryption_settings(config)
    master = load_master_key(settings, env, host, config.secrets.resolve_timeout_seconds)
    cipher = build_cipher(config, host) if master is not None else None
    if isinstance(storage, str | Path):
        from loom_core.crypto.offline import open_key_storage

        opened = open_key_storage(config, host, Path(storage))
        try:
            codec = _codec_for(opened, settings, cipher, master, read_only)
            if isinstance(codec, EncryptingRowCodec):
                codec.keyring.preload()
                codec.keyring.unbind()
            return codec
        finally:
            opened.close()
    return _codec_for(storage, settings, cipher, master, read_only)


def _codec_for(storage: Any, settings: Any, cipher: Any, master: MasterKey | None, read_only: bool = False) -> Codec:
    env_name = str(settings.master_key_env or DEFAULT_MASTER_KEY_ENV)
    if master is None:
        refuse_plaintext_start(storage, env_name)
        return PlaintextRowCodec(env_name)
    _require_compaction(storage)
    return EncryptingRowCodec(open_keyring(storage, cipher, master, read_only=read_only))


def _require_compaction(storage: Any) -> None:
    """Refuse encryption over a storage that cannot compact.

    Crypto-shredding removes a destroyed key from the files by compacting the
    ``keys`` keyspace, and rotation and backfill drop replaced bytes the same
    way; without compaction they would claim what they cannot do.
    """
    if "compact" not in frozenset(getattr(storage, "capabilities", ())):
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            "encryption at rest needs a storage backend with the 'compact' capability (deleting a stream "
            "destroys its key by compacting it out of the files; rotation and backfill drop replaced bytes "
            f"the same way), and the configured one ({type(storage).__name__}) does not declare it: select "
            "a storage backend that does (rocksdb), or leave LOOMEM_AT_REST_MASTER_KEY unset",
            details={"key": "storage.backend", "capability": "compact"},
        )


__all__ = [
    "EncryptingRowCodec",
    "MasterKey",
    "PlaintextRowCodec",
    "build_cipher",
    "build_row_codec",
    "load_master_key",
]
