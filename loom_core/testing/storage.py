"""Conformance suite for storage backends.

Fixture contract
----------------
A plugin's test class subclasses :class:`StorageSuite`, sets
``capabilities`` to what its backend declares and ``backend_name`` to the
name it registers (its ``loom.storage`` entry point), and provides one
fixture, ``make_storage``: a callable ``(path: Path, keyspaces:
Sequence[str]) -> Storage`` that opens (creating if needed) the backend in
the directory ``path`` with exactly those keyspaces, as production would
(through ``PluginHost().create("storage", NAME, ctx)`` when possible).

The suite closes every storage it opens. Tests that need another process
(capabilities ``durable`` and ``multiprocess_lock``) build the backend there
through the plugin host with ``backend_name`` and default options.

Capabilities: ``checkpoint``, ``compact`` (deleted values are physically
gone from every file afterwards), ``durable`` (``write(durable=True)``
survives the process being killed; surviving power loss, which the contract
also promises, cannot be tested here), ``multiprocess_lock``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar

import pytest

from loom_core.contracts.storage import STORAGE_CAPABILITIES, Storage, WriteBatch
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires
from loom_core.testing.leaks import changed_paths, scan_files, snapshot_tree

MakeStorage = Callable[[Path, Sequence[str]], Storage]

KEYSPACES: tuple[str, ...] = ("alpha", "beta", "gamma")

#: Keys that trip backends which treat keys as text or C strings.
AWKWARD_KEYS: dict[str, bytes] = {
    "empty": b"",
    "nul": b"\x00",
    "ff": b"\xff",
    "nul-ff": b"\x00\xff",
    "ff-nul": b"\xff\x00",
    "ff-ff": b"\xff\xff",
    "embedded-nul": b"chunk:\x00:id",
    "not-utf8": b"\xc3\x28\xa0\xa1",
    "high-bit": bytes(range(128, 256)),
    "all-bytes": bytes(range(256)),
    "long": b"k" * 4096,
}

AWKWARD_VALUES: dict[str, bytes] = {
    "empty": b"",
    "nul": b"\x00",
    "all-bytes": bytes(range(256)) * 3,
    "not-utf8": b"\xff\xfe\xfd",
    "large": os.urandom(1 << 20),
}

#: The alphabet of the model-checked range test: boundary bytes only.
_ALPHABET = (b"\x00", b"\x01", b"\x7f", b"\x80", b"\xfe", b"\xff")


def _model_keys() -> list[bytes]:
    keys = [b""]
    layer = [b""]
    for _ in range(3):
        layer = [k + c for k in layer for c in _ALPHABET]
        keys.extend(layer)
    return keys


def _expected(keys: Sequence[bytes], prefix: bytes, start: bytes | None, end: bytes | None) -> list[bytes]:
    return sorted(
        k
        for k in keys
        if k.startswith(prefix) and (start is None or k >= start) and (end is None or k < end)
    )


def _code_of(call: Callable[[], Any]) -> ErrorCode | str:
    """The LoomError code ``call`` raised, or a description of what happened instead."""
    try:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    except LoomError as exc:
        return exc.code
    except Exception as exc:
        return f"{type(exc).__name__} (not a LoomError)"
    return "no error"


_CHILD_OPEN = """
import json, sys
from pathlib import Path
from loom_core.contracts import BackendContext
from loom_core.errors import LoomError
from loom_core.plugins.host import PluginHost
name, path, keyspaces = sys.argv[1], sys.argv[2], tuple(json.loads(sys.argv[3]))
try:
    store = PluginHost().create("storage", name, BackendContext(data_dir=Path(path), keyspaces=keyspaces))
except LoomError as exc:
    print(json.dumps({"code": str(exc.code), "message": exc.message}))
else:
    store.close()
    print(json.dumps({"code": None, "message": ""}))
"""

_CHILD_WRITER = """
import json, sys
from pathlib import Path
from loom_core.contracts import BackendContext
from loom_core.contracts.storage import WriteBatch
from loom_core.plugins.host import PluginHost
name, path, keyspaces = sys.argv[1], sys.argv[2], tuple(json.loads(sys.argv[3]))
store = PluginHost().create("storage", name, BackendContext(data_dir=Path(path), keyspaces=keyspaces))
i = 0
while True:
    batch = WriteBatch()
    key = b"%08d" % i
    batch.put(keyspaces[0], key, b"left-" + key * 64)
    batch.put(keyspaces[1], key, b"right-" + key * 64)
    store.write(batch, durable=(i % 2 == 0))
    if i % 2 == 0:
        print(i, flush=True)
    i += 1
"""


def _range_difference(got: list[bytes], want: list[bytes]) -> str:
    """Say how an iteration differs from the model: extra or missing keys, or only their order."""
    extra, missing = set(got) - set(want), set(want) - set(got)
    if not extra and not missing and len(got) == len(want):
        first = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        return (
            f"the right {len(got)} keys in the wrong order "
            f"(position {first}: got {got[first]!r}, want {want[first]!r})"
        )
    return (
        f"got {len(got)} keys, want {len(want)} ({len(extra)} extra, e.g. {sorted(extra)[:2]}; "
        f"{len(missing)} missing, e.g. {sorted(missing)[:2]})"
    )


class StorageSuite(ConformanceSuite):
    """Guarantees of :class:`loom_core.contracts.storage.Storage`.

    See the module docstring for the ``make_storage`` fixture contract.
    """

    #: The name the backend registers (its entry point name); used by the
    #: tests that open the backend in another process.
    backend_name: ClassVar[str | None] = None

    # -- fixtures -------------------------------------------------------------

    @pytest.fixture
    def open_storage(self, make_storage: MakeStorage) -> Iterator[MakeStorage]:
        """``make_storage`` that closes everything it opened at teardown."""
        opened: list[Storage] = []

        def open_(path: Path, keyspaces: Sequence[str] = KEYSPACES) -> Storage:
            store = make_storage(path, keyspaces)
            opened.append(store)
            return store

        yield open_
        for store in opened:
            with suppress(Exception):
                store.close()

    @pytest.fixture
    def store(self, open_storage: MakeStorage, tmp_path: Path) -> Storage:
        """A fresh storage with the suite's three keyspaces in ``tmp_path / "db"``."""
        return open_storage(tmp_path / "db", KEYSPACES)

    def _child(self, script: str, path: Path, keyspaces: Sequence[str]) -> list[str]:
        name = type(self).backend_name
        assert name, (
            f"{type(self).__qualname__}.backend_name is not set; set it to the name the backend "
            "registers so this test can open it in another process"
        )
        return [sys.executable, "-c", script, name, str(path), json.dumps(list(keyspaces))]

    # -- shape ----------------------------------------------------------------

    @core
    def test_storage_satisfies_contract(self, store: Storage) -> None:
        """Proves the backend has every protocol method, declares the suite's capabilities and
        reports the keyspaces it was opened with.

        Fix: implement every method of ``Storage``; set ``capabilities`` (a frozenset drawn from
        ``STORAGE_CAPABILITIES``) equal to the test class's ``capabilities``; ``keyspaces()``
        returns the names given at open.
        """
        assert isinstance(store, Storage), "backend lacks methods of the Storage protocol"
        declared = frozenset(store.capabilities)
        assert declared == type(self).capabilities, (
            f"backend declares {sorted(declared)} but the test class says {sorted(type(self).capabilities)}"
        )
        assert declared <= STORAGE_CAPABILITIES, f"unknown capabilities {sorted(declared - STORAGE_CAPABILITIES)}"
        assert sorted(store.keyspaces()) == sorted(KEYSPACES)

    # -- values -----------------------------------------------------------------

    @core
    def test_round_trip_arbitrary_bytes(self, store: Storage) -> None:
        """Proves keys and values are arbitrary bytes: empty, NUL, 0xff, non-UTF-8, 1 MiB values.

        Fix: never decode keys or values as text, never strip or terminate at NUL bytes, and
        keep ``b""`` distinct from an absent key.
        """
        for label, key in AWKWARD_KEYS.items():
            store.put("alpha", key, b"value-of-" + label.encode())
        for label, value in AWKWARD_VALUES.items():
            store.put("beta", label.encode(), value)
        for label, key in AWKWARD_KEYS.items():
            assert store.get("alpha", key) == b"value-of-" + label.encode(), f"key {label!r} did not round-trip"
        for label, value in AWKWARD_VALUES.items():
            got = store.get("beta", label.encode())
            assert got is not None, f"value {label!r} came back as None (absent)"
            assert got == value, f"value {label!r} did not round-trip (got {len(got)} bytes, want {len(value)})"
            assert isinstance(got, bytes), f"value {label!r} came back as {type(got).__name__}, not bytes"

    @core
    def test_absent_key_is_none_and_put_replaces(self, store: Storage) -> None:
        """Proves ``get`` of an absent key returns None and a second ``put`` replaces the value.

        Fix: return ``None`` only for absent keys (not for ``b""``); overwrite on ``put``.
        """
        assert store.get("alpha", b"never-written") is None
        store.put("alpha", b"k", b"first")
        store.put("alpha", b"k", b"second")
        assert store.get("alpha", b"k") == b"second"
        assert [k for k, _ in store.iterate("alpha")] == [b"k"], "a replaced key must not appear twice"

    @core
    def test_delete_semantics(self, store: Storage) -> None:
        """Proves ``delete`` removes the key (get, iterate), leaves other keys and keyspaces alone,
        and deleting an absent key is not an error.

        Fix: make ``delete`` remove exactly one key in one keyspace; ignore absent keys.
        """
        store.put("alpha", b"a", b"1")
        store.put("alpha", b"b", b"2")
        store.put("beta", b"a", b"3")
        store.delete("alpha", b"a")
        store.delete("alpha", b"never-written")
        assert store.get("alpha", b"a") is None
        assert store.get("alpha", b"b") == b"2"
        assert store.get("beta", b"a") == b"3", "delete in one keyspace removed the key from another"
        assert [k for k, _ in store.iterate("alpha")] == [b"b"]

    @core
    def test_keyspaces_are_isolated(self, store: Storage) -> None:
        """Proves the same key in different keyspaces holds different values and iteration of one
        keyspace never yields another's keys.

        Fix: map each keyspace to its own column family / table / key prefix.
        """
        for ks in KEYSPACES:
            store.put(ks, b"shared", ks.encode())
            store.put(ks, b"only-" + ks.encode(), b"x")
        for ks in KEYSPACES:
            assert store.get(ks, b"shared") == ks.encode(), (
                f"get({ks!r}, b'shared') returned another keyspace's value: keyspaces must not share keys"
            )
            listed = [k for k, _ in store.iterate(ks)]
            assert listed == [b"only-" + ks.encode(), b"shared"], (
                f"iterate({ks!r}) listed {listed}: it must see only the keys written to {ks!r}"
            )

    # -- iteration ----------------------------------------------------------------

    @core
    def test_iteration_is_unsigned_byte_order(self, store: Storage) -> None:
        """Proves iteration is in unsigned byte-lexicographic order, ascending and descending,
        with the values belonging to their keys.

        Fix: use a bytewise comparator (not signed chars, not text collation); for ``desc``
        walk backwards from the last key.
        """
        keys = [os.urandom(n % 7) for n in range(200)] + list(AWKWARD_KEYS.values())
        for key in keys:
            store.put("gamma", key, b"v:" + key)
        want = sorted(set(keys))
        got = list(store.iterate("gamma"))
        assert [k for k, _ in got] == want, "ascending iteration is not in unsigned byte order"
        assert all(v == b"v:" + k for k, v in got), "iteration paired a key with another key's value"
        assert [k for k, _ in store.iterate("gamma", order="desc")] == want[::-1], (
            "descending iteration is not the ascending order reversed"
        )

    @core
    def test_used_from_threads_other_than_the_opener(self, store: Storage) -> None:
        """Proves four threads that did not open the storage can write, read and iterate at once,
        each seeing its own writes and the whole result being exact.

        The memory server opens the storage once and serves requests from a thread pool. Fix:
        do not bind connections or handles to the opening thread (e.g. SQLite's
        ``check_same_thread``); guard shared state with a lock.
        """
        problems: list[str] = []

        def work(worker: int) -> None:
            try:
                for i in range(50):
                    batch = WriteBatch()
                    batch.put("alpha", b"t%d-%03d" % (worker, i), b"v%d-%d" % (worker, i))
                    batch.put("beta", b"t%d-%03d" % (worker, i), b"w%d" % worker)
                    store.write(batch)
                    if store.get("alpha", b"t%d-%03d" % (worker, i)) != b"v%d-%d" % (worker, i):
                        problems.append(f"thread {worker} did not read back its write {i}")
                        return
                    list(store.iterate("beta", prefix=b"t%d-" % worker))
            except Exception as exc:  # reported, not raised: the thread must not die silently
                problems.append(f"thread {worker} raised {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=work, args=(n,), daemon=True) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not problems, f"storage used from other threads: {problems[0]}"
        assert len(list(store.iterate("alpha"))) == 200, "concurrent writes from four threads were lost"

    @core
    def test_prefix_and_range_bounds(self, store: Storage) -> None:
        """Proves ``prefix``, ``start`` (inclusive) and ``end`` (exclusive) select exactly the right
        keys in both orders, including prefixes ending in 0xff and bounds outside the prefix
        (checked against a model over 259 boundary keys).

        Fix: the upper bound of a prefix is the prefix with trailing 0xff bytes stripped and the
        last byte incremented (none if all 0xff); combine it with ``end`` by taking the smaller,
        and ``prefix`` with ``start`` by taking the larger; an empty range yields nothing.
        """
        keys = _model_keys()
        batch = WriteBatch()
        for key in keys:
            batch.put("alpha", key, key)
        store.write(batch)
        prefixes = [b"", b"\x00", b"\x7f", b"\xff", b"\xff\xff", b"\x80\x00", b"\xfe\xff", b"\x01\x01\x01"]
        bounds: list[bytes | None] = [None, b"", b"\x00", b"\x01\x80", b"\x7f\xff", b"\xff", b"\xff\xff\x00"]
        failures: list[str] = []
        for prefix in prefixes:
            for start in bounds:
                for end in bounds:
                    want = _expected(keys, prefix, start, end)
                    for order in ("asc", "desc"):
                        got = [k for k, _ in store.iterate("alpha", prefix=prefix, start=start, end=end,
                                                           order=order)]
                        expected = want if order == "asc" else want[::-1]
                        if got != expected:
                            failures.append(
                                f"prefix={prefix!r} start={start!r} end={end!r} order={order}: "
                                + _range_difference(got, expected)
                            )
        assert not failures, f"{len(failures)} wrong ranges, e.g.:\n  " + "\n  ".join(failures[:10])

    # -- batches --------------------------------------------------------------------

    @core
    def test_batch_spans_keyspaces_in_order(self, store: Storage) -> None:
        """Proves a batch applies puts and deletes across keyspaces, in order (put-then-delete of
        one key leaves it absent, delete-then-put leaves it present), and an empty batch is fine.

        Fix: build one native atomic batch from every op, in the given order.
        """
        store.put("beta", b"old", b"x")
        batch = WriteBatch()
        batch.put("alpha", b"a", b"1")
        batch.put("beta", b"b", b"2")
        batch.delete("beta", b"old")
        batch.put("gamma", b"gone", b"3")
        batch.delete("gamma", b"gone")
        batch.delete("gamma", b"back")
        batch.put("gamma", b"back", b"4")
        store.write(batch)
        store.write(WriteBatch())
        store.write(WriteBatch(), durable=True)
        assert store.get("alpha", b"a") == b"1"
        assert store.get("beta", b"b") == b"2"
        assert store.get("beta", b"old") is None
        assert store.get("gamma", b"gone") is None, "put-then-delete in one batch left the key"
        assert store.get("gamma", b"back") == b"4", "delete-then-put in one batch lost the key"

    @core
    def test_failing_batch_applies_nothing(self, store: Storage) -> None:
        """Proves a batch with an op on an unknown keyspace (or a non-bytes value) raises and
        applies none of its other ops.

        Fix: validate every op (keyspace known, types) before applying any; apply through one
        native atomic write.
        """
        store.put("alpha", b"keep", b"before")
        bad_keyspace = WriteBatch()
        bad_keyspace.put("alpha", b"new", b"1")
        bad_keyspace.delete("alpha", b"keep")
        bad_keyspace.put("no-such-keyspace", b"k", b"v")
        with pytest.raises(LoomError) as info:
            store.write(bad_keyspace)
        assert info.value.code is ErrorCode.STORAGE_UNKNOWN_KEYSPACE
        bad_value = WriteBatch()
        bad_value.put("beta", b"new", b"1")
        bad_value.put("beta", b"text", "not bytes")  # type: ignore[arg-type]
        with pytest.raises((LoomError, TypeError, ValueError)):
            store.write(bad_value)
        assert store.get("alpha", b"new") is None, "a failed batch applied an earlier op"
        assert store.get("alpha", b"keep") == b"before", "a failed batch applied a delete"
        assert store.get("beta", b"new") is None, "a batch with a bad value applied an earlier op"

    # -- errors -------------------------------------------------------------------

    @core
    def test_unknown_keyspace_is_refused(self, store: Storage) -> None:
        """Proves every operation on a keyspace not given at open raises STORAGE_UNKNOWN_KEYSPACE
        (naming it) instead of creating it or returning nothing.

        Fix: check the keyspace against the opened set in every method.
        """
        calls: dict[str, Callable[[], Any]] = {
            "get": lambda: store.get("delta", b"k"),
            "put": lambda: store.put("delta", b"k", b"v"),
            "delete": lambda: store.delete("delta", b"k"),
            "iterate": lambda: store.iterate("delta"),
        }
        if "compact" in type(self).capabilities:
            calls["compact"] = lambda: store.compact("delta")
        wrong = {name: code for name, call in calls.items()
                 if (code := _code_of(call)) is not ErrorCode.STORAGE_UNKNOWN_KEYSPACE}
        assert not wrong, f"operations on an unknown keyspace did not raise STORAGE_UNKNOWN_KEYSPACE: {wrong}"
        with pytest.raises(LoomError) as info:
            store.get("delta", b"k")
        assert "delta" in info.value.message, "the error must name the unknown keyspace"
        assert "delta" not in store.keyspaces()

    @core
    def test_use_after_close_is_refused(self, store: Storage, tmp_path: Path) -> None:
        """Proves every operation after ``close`` raises STORAGE_CLOSED (an iterator opened before
        ``close`` too), and ``close`` is idempotent.

        Fix: keep a closed flag checked by every method (and by open iterators), and make a
        second ``close`` return quietly.
        """
        store.put("alpha", b"a", b"1")
        store.put("alpha", b"b", b"2")
        pending = store.iterate("alpha")
        next(pending)
        store.close()
        store.close()
        calls: dict[str, Callable[[], Any]] = {
            "get": lambda: store.get("alpha", b"a"),
            "put": lambda: store.put("alpha", b"k", b"v"),
            "delete": lambda: store.delete("alpha", b"a"),
            "write": lambda: store.write(WriteBatch([])),
            "iterate": lambda: store.iterate("alpha"),
            "flush": store.flush,
            "keyspaces": store.keyspaces,
            "iterator opened before close": lambda: list(pending),
        }
        if "compact" in type(self).capabilities:
            calls["compact"] = store.compact
        if "checkpoint" in type(self).capabilities:
            calls["checkpoint"] = lambda: store.checkpoint(tmp_path / "never-created")
        wrong = {name: code for name, call in calls.items()
                 if (code := _code_of(call)) is not ErrorCode.STORAGE_CLOSED}
        assert not wrong, f"operations after close did not raise STORAGE_CLOSED: {wrong}"

    # -- persistence ----------------------------------------------------------------

    @core
    def test_data_survives_close_and_reopen(self, open_storage: MakeStorage, tmp_path: Path) -> None:
        """Proves plain puts, batches and durable batches are all there after close and reopen,
        deletes stay deleted, and flush works.

        Fix: ``close`` must flush (or the WAL must be replayed at open); reopen must find
        existing keyspaces instead of recreating them empty.
        """
        path = tmp_path / "db"
        first = open_storage(path, KEYSPACES)
        first.put("alpha", b"plain", b"1")
        first.put("alpha", b"deleted", b"x")
        batch = WriteBatch()
        batch.put("beta", b"batched", b"2")
        batch.delete("alpha", b"deleted")
        first.write(batch)
        durable = WriteBatch()
        durable.put("gamma", b"durable", b"3")
        first.write(durable, durable=True)
        first.flush()
        first.put("gamma", b"after-flush", b"4")
        first.close()
        second = open_storage(path, KEYSPACES)
        assert second.get("alpha", b"plain") == b"1"
        assert second.get("beta", b"batched") == b"2"
        assert second.get("gamma", b"durable") == b"3"
        assert second.get("gamma", b"after-flush") == b"4", "a write after flush was lost at close"
        assert second.get("alpha", b"deleted") is None
        second.close()
        subset = open_storage(path, ["beta"])
        assert list(subset.keyspaces()) == ["beta"]
        assert subset.get("beta", b"batched") == b"2", "reopening with fewer keyspaces lost data"
        with pytest.raises(LoomError) as info:
            subset.get("alpha", b"plain")
        assert info.value.code is ErrorCode.STORAGE_UNKNOWN_KEYSPACE

    @core
    def test_nothing_written_outside_the_directory(
        self, open_storage: MakeStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Proves a full workload (writes, batches, iteration, flush, compact, checkpoint, close,
        reopen) creates or changes files only inside the directory given (and a checkpoint's
        destination), with the working directory set to an empty sibling.

        Fix: put every file (WAL, logs, lock, temporary files) under the given directory; never
        use the working directory or a fixed path.
        """
        data = tmp_path / "data" / "db"
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        before = snapshot_tree(tmp_path)
        store = open_storage(data, KEYSPACES)
        for i in range(200):
            store.put("alpha", b"k%03d" % i, os.urandom(64))
        batch = WriteBatch()
        batch.put("beta", b"b", b"1")
        batch.delete("alpha", b"k000")
        store.write(batch, durable=True)
        list(store.iterate("alpha", prefix=b"k1"))
        store.flush()
        allowed = [data]
        if "compact" in type(self).capabilities:
            store.compact()
        if "checkpoint" in type(self).capabilities:
            store.checkpoint(tmp_path / "data" / "copy")
            allowed.append(tmp_path / "data" / "copy")
        store.close()
        open_storage(data, KEYSPACES).close()
        outside = changed_paths(before, snapshot_tree(tmp_path), allowed=allowed)
        assert not outside, "files written outside the storage directory:\n  " + "\n  ".join(map(str, outside))

    # -- optional: checkpoint ------------------------------------------------------------

    @core
    @requires("checkpoint")
    def test_checkpoint_is_a_consistent_openable_copy(
        self, open_storage: MakeStorage, tmp_path: Path
    ) -> None:
        """Proves ``checkpoint`` writes a copy that opens with the same backend and holds exactly
        the data at checkpoint time; later writes to either side do not leak into the other.

        Fix: use the engine's native checkpoint (hard links + manifest), flushing or copying the
        WAL so unflushed writes are included.
        """
        store = open_storage(tmp_path / "db", KEYSPACES)
        store.put("alpha", b"before", b"1")
        store.put("beta", b"unflushed", b"2")
        dest = tmp_path / "backups" / "cp1"
        store.checkpoint(dest)
        store.put("alpha", b"after", b"3")
        store.delete("alpha", b"before")
        copy = open_storage(dest, KEYSPACES)
        assert copy.get("alpha", b"before") == b"1"
        assert copy.get("beta", b"unflushed") == b"2", "checkpoint lost writes not yet flushed"
        assert copy.get("alpha", b"after") is None, "a write after the checkpoint appeared in it"
        copy.put("gamma", b"only-in-copy", b"4")
        assert store.get("gamma", b"only-in-copy") is None, "writing to the copy changed the original"
        assert store.get("alpha", b"after") == b"3"

    @core
    @requires("checkpoint")
    def test_checkpoint_refuses_a_non_empty_destination(self, store: Storage, tmp_path: Path) -> None:
        """Proves a checkpoint into an existing non-empty directory raises a STORAGE_* LoomError
        and leaves the files there untouched.

        Fix: check the destination before writing; never merge into or overwrite a directory.
        """
        dest = tmp_path / "occupied"
        dest.mkdir()
        (dest / "keep.txt").write_bytes(b"precious")
        store.put("alpha", b"k", b"v")
        with pytest.raises(LoomError) as info:
            store.checkpoint(dest)
        assert info.value.code.value.startswith("STORAGE_")
        assert sorted(p.name for p in dest.iterdir()) == ["keep.txt"]
        assert (dest / "keep.txt").read_bytes() == b"precious"

    # -- optional: compaction ------------------------------------------------------------

    @core
    @requires("compact")
    def test_compaction_physically_drops_deleted_values(
        self, open_storage: MakeStorage, tmp_path: Path
    ) -> None:
        """Proves that after delete + flush + compact (+ close), a deleted value is absent from
        every file under the directory, read as raw bytes, while a kept value is still present.
        Encryption-key destruction and re-wrapping rely on this.

        Fix: compact every level including the bottommost one (force it), flush memtables and
        let obsolete WAL and SST files be removed; disable value compression for the check only
        if it hides the kept value (it should not for 64 random hex bytes).
        """
        path = tmp_path / "db"
        store = open_storage(path, KEYSPACES)
        deleted = b"DELETED-" + os.urandom(24).hex().encode()
        kept = b"KEPT-" + os.urandom(24).hex().encode()
        store.put("alpha", b"doomed", deleted)
        store.put("beta", b"doomed-too", deleted)
        store.put("gamma", b"kept", kept)
        store.flush()
        store.delete("alpha", b"doomed")
        store.delete("beta", b"doomed-too")
        store.flush()
        store.compact()
        store.close()  # scan only after close: reading a lock file can release POSIX locks
        leaks = scan_files(path, {"deleted value": deleted})
        assert not leaks, "deleted value still on disk after compaction:\n  " + "\n  ".join(map(str, leaks))
        assert scan_files(path, {"kept value": kept}), (
            "the kept value is not found in any file: the check reads the wrong directory, "
            "or values are transformed so the scan proves nothing"
        )

    @core
    @requires("compact")
    def test_compact_one_keyspace(self, store: Storage) -> None:
        """Proves ``compact(keyspace)`` works on one keyspace and leaves all data readable.

        Fix: accept a keyspace name and compact only that family.
        """
        for i in range(100):
            store.put("alpha", b"%03d" % i, b"v")
            store.put("beta", b"%03d" % i, b"w")
        for i in range(50):
            store.delete("alpha", b"%03d" % i)
        store.compact("alpha")
        assert len(list(store.iterate("alpha"))) == 50
        assert len(list(store.iterate("beta"))) == 100

    # -- optional: processes --------------------------------------------------------------

    @core
    @requires("multiprocess_lock")
    def test_second_process_gets_storage_locked(self, store: Storage, tmp_path: Path) -> None:
        """Proves another process opening the same directory gets STORAGE_LOCKED with a message
        naming the directory, and can open it once this process closed it.

        Fix: translate the engine's lock error into ``LoomError(STORAGE_LOCKED, ...)`` naming the
        directory; release the lock in ``close``.
        """
        path = tmp_path / "db"
        store.put("alpha", b"k", b"v")
        argv = self._child(_CHILD_OPEN, path, KEYSPACES)
        locked = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert locked.returncode == 0, f"child crashed instead of raising a LoomError:\n{locked.stderr[-2000:]}"
        report = json.loads(locked.stdout.strip().splitlines()[-1])
        assert report["code"] == ErrorCode.STORAGE_LOCKED, f"second process got {report}"
        assert str(path) in report["message"], "the STORAGE_LOCKED message must name the directory"
        store.close()
        freed = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert freed.returncode == 0, freed.stderr[-2000:]
        assert json.loads(freed.stdout.strip().splitlines()[-1])["code"] is None, "close did not release the lock"

    @core
    @requires("durable")
    def test_killed_writer_keeps_durable_atomic_batches(
        self, open_storage: MakeStorage, tmp_path: Path
    ) -> None:
        """Proves that when a process writing two-keyspace batches is killed (SIGKILL), every
        batch acknowledged with ``durable=True`` is present after reopening, and every batch is
        either wholly present or wholly absent.

        Fix: use one native atomic write per batch and sync the WAL when ``durable`` is true;
        replay the WAL at open.
        """
        path = tmp_path / "db"
        argv = self._child(_CHILD_WRITER, path, KEYSPACES)
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        acknowledged = -1
        deadline = time.monotonic() + 120
        try:
            assert child.stdout is not None
            for line in child.stdout:
                acknowledged = int(line)
                if acknowledged >= 200 or time.monotonic() > deadline:
                    break
        finally:
            child.send_signal(signal.SIGKILL)
            _out, err = child.communicate(timeout=60)
        assert acknowledged >= 0, f"the writer process acknowledged nothing:\n{err[-2000:]}"
        store = open_storage(path, KEYSPACES)
        left = {k for k, _ in store.iterate("alpha")}
        right = {k for k, _ in store.iterate("beta")}
        assert left == right, f"{len(left ^ right)} batches were applied to only one keyspace"
        missing = [i for i in range(0, acknowledged + 1, 2) if b"%08d" % i not in left]
        assert not missing, f"{len(missing)} acknowledged durable batches lost, first {missing[:5]}"


__all__ = ["AWKWARD_KEYS", "AWKWARD_VALUES", "KEYSPACES", "MakeStorage", "StorageSuite"]
