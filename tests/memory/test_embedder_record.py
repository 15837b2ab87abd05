"""The data directory records which embedder made its vectors; another one is refused, and import
embeds again when the exporting embedder differs, even at the same dimension."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loom_core.config import LoomConfig
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.engine import MemoryEngine
from loom_core.memory.models import ChunkInput
from loom_core.plugins.host import PluginHost

standin = pytest.importorskip("loom_llm_openai.standin", reason="needs the llm_openai plugin installed")
KEY = "sk-test-embedder-record-0123456789"


@pytest.fixture
def api() -> Iterator[Any]:
    with standin.OpenAIStandIn(api_key=KEY) as server:
        yield server


def _openai(api: Any, model: str = "text-embedding-3-small") -> LoomConfig:
    return LoomConfig.model_validate({"llm": {"backend": "openai", "base_url": api.base_url,
                                              "embedding_model": model, "embedding_dimension": 384}})


def _open(config: LoomConfig, data: Path) -> MemoryEngine:
    return MemoryEngine.open(config, PluginHost(environ={"OPENAI_API_KEY": KEY}), data)


def test_another_embedder_at_the_same_dimension_is_refused(api: Any, tmp_path: Path) -> None:
    """A hash-embedded directory opened with openai at 384 dimensions started silently, and vector
    search compared vectors of two unrelated spaces."""
    with _open(LoomConfig(), tmp_path / "d") as engine:
        engine.add_chunk("s", ChunkInput("a note"))
    with pytest.raises(LoomError) as caught:
        _open(_openai(api), tmp_path / "d")
    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert "'hash:hash'" in caught.value.message and "'openai:text-embedding-3-small'" in caught.value.message
    with _open(LoomConfig(), tmp_path / "d") as engine:  # the embedder it was made with still opens it
        assert engine.embedder == "hash:hash"


def test_import_embeds_again_when_only_the_embedding_model_changed(api: Any, tmp_path: Path) -> None:
    exported = io.StringIO()
    with _open(_openai(api), tmp_path / "small") as engine:
        engine.add_chunk("s", ChunkInput("a note about herons"))
        engine.export_stream("s", exported)
    with _open(_openai(api, "text-embedding-3-large"), tmp_path / "large") as engine:
        api.clear_requests()
        engine.import_stream(io.StringIO(exported.getvalue()))
        embedded = [r for r in api.requests if r.path.endswith("/embeddings")]
        assert [r.body["model"] for r in embedded] == ["text-embedding-3-large"]
