"""The ``keepass://`` provider: one KDF per alias per provider, then cheap lookups.

Opening a KDBX file runs its key-derivation function (Argon2 or AES-KDF,
typically most of a second), so each alias is opened at most once for the
provider's lifetime — a run — and the decrypted database is kept until
:meth:`KeepassProvider.close`. A failed open is remembered too, so a run
with fifty references to a locked database fails fifty times quickly and
identically instead of paying the KDF fifty times.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from pykeepass import PyKeePass

from loom_core.contracts.secrets import SecretRef, SecretValue
from loom_core.errors import LoomError
from loom_secrets_keepass import database, reference, settings

#: ``auth``: needs unlock credentials; ``binary``: attachments return arbitrary bytes;
#: ``open-once``: one KDF per alias per provider.
CAPABILITIES = frozenset({"auth", "binary", "attachments", "custom-fields", "keyfile", "open-once"})


@dataclass
class _Slot:
    """One alias's open database (or the reason it could not be opened)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    kp: PyKeePass | None = None
    failure: LoomError | None = None


class KeepassProvider:
    """Resolves ``keepass://ALIAS/Group/Entry#field`` from databases named in ``environ``."""

    scheme = reference.SCHEME
    capabilities = CAPABILITIES

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()
        self.opens = 0  # how many databases this provider decrypted (tests and bench read it)

    def __repr__(self) -> str:
        return f"KeepassProvider(open_aliases={sorted(k for k, s in self._slots.items() if s.kp)})"

    def validate(self, ref: SecretRef) -> None:
        reference.parse(ref)

    def resolve(self, ref: SecretRef) -> SecretValue:
        parsed = reference.parse(ref)
        slot = self._slot(parsed.alias_key)
        with slot.lock:
            kp = self._open(slot, parsed)
            entry = database.find_entry(kp, parsed)
            return SecretValue(database.read_field(kp, entry, parsed))

    def close(self) -> None:
        """Forget every open database; a later resolve opens them again."""
        with self._lock:
            slots, self._slots = self._slots, {}
        for slot in slots.values():
            with slot.lock:
                slot.kp = None
                slot.failure = None

    # -- internals ---------------------------------------------------------
    def _slot(self, key: str) -> _Slot:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = self._slots[key] = _Slot()
            return slot

    def _open(self, slot: _Slot, ref: reference.KeepassRef) -> PyKeePass:
        """Called with ``slot.lock`` held, so concurrent first uses open once."""
        if slot.kp is not None:
            return slot.kp
        if slot.failure is not None:  # one open per alias and run, failed ones too: say which ref asked
            raise LoomError(
                slot.failure.code,
                f"{ref.raw}: not resolved, because the database of alias {ref.alias!r} could not be opened "
                f"earlier in this run: {slot.failure.message}",
                details=slot.failure.details,
            )
        try:
            unlock = settings.unlock_for(ref, self._environ)
            with self._lock:
                self.opens += 1
            slot.kp = database.open_database(ref, unlock)
        except LoomError as exc:
            slot.failure = exc
            raise
        return slot.kp
