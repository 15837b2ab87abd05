"""The storage kit's thread check fails a backend bound to the thread that opened it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from loom_core.contracts import BackendContext
from loom_core.plugins.host import PluginHost
from loom_core.testing.storage import KEYSPACES, StorageSuite


class ThreadBound:
    """The real RocksDB storage, refusing every call from a thread other than its opener
    (as SQLite's ``check_same_thread`` does)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._opener = threading.get_ident()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self._opener:
                raise RuntimeError("objects created in a thread can only be used in that same thread")
            return attr(*args, **kwargs)
        return call


def _open(path: Path) -> Any:
    return PluginHost(environ={}).create("storage", "rocksdb", BackendContext(data_dir=path, keyspaces=KEYSPACES))


def test_a_storage_bound_to_its_opening_thread_fails_the_check(tmp_path: Path) -> None:
    store = ThreadBound(_open(tmp_path / "db"))
    try:
        with pytest.raises(AssertionError, match=r"thread \d raised RuntimeError: objects created in a thread"):
            StorageSuite().test_used_from_threads_other_than_the_opener(store)  # type: ignore[arg-type]
    finally:
        store.close()


def test_the_real_storage_passes_it(tmp_path: Path) -> None:
    store = _open(tmp_path / "db")
    try:
        StorageSuite().test_used_from_threads_other_than_the_opener(store)
    finally:
        store.close()
