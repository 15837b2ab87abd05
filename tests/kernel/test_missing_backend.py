"""A backend nothing provides is PLUGIN_NOT_FOUND naming what is installed and what to install."""

from __future__ import annotations

import pytest

from loom_core.contracts import Kind
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.discovery import not_installed_message
from loom_core.plugins.host import PluginHost


def test_an_unknown_backend_lists_the_installed_ones() -> None:
    with pytest.raises(LoomError) as info:
        PluginHost(environ={}).backend(Kind.STORAGE, "sqlitex")
    assert info.value.code is ErrorCode.PLUGIN_NOT_FOUND
    assert "storage backend 'sqlitex'" in info.value.message and "rocksdb" in info.value.message
    assert "install the distribution that provides it" in info.value.message


@pytest.mark.parametrize(
    ("kind", "name", "distribution"),
    [
        (Kind.STORAGE, "rocksdb", "loom-storage-rocksdb"),
        (Kind.INDEX, "tantivy", "loom-index-tantivy"),
        (Kind.LLM, "openai", "loom-llm-openai"),
        (Kind.SECRETS, "keepass", "loom-secrets-keepass"),
        (Kind.SECRETS, "op", "loom-secrets-op"),
    ],
)
def test_a_missing_first_party_backend_names_its_distribution(kind: Kind, name: str, distribution: str) -> None:
    """The defaults (rocksdb, tantivy) live in separate distributions; a kernel-only install said only
    "install its distribution" without saying which."""
    assert not_installed_message(kind, name).endswith(f"pip install {distribution}")
