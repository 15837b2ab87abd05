"""The built-in ``hash`` embedder passes the LLM suite, plus its own guarantees."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from loom_core.contracts import BackendContext
from loom_core.contracts.llm import LLM
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.testing.llm import LLMSuite


def build(auth: str = "valid", **options: Any) -> LLM:
    backend: LLM = PluginHost(environ={}).create("llm", "hash", BackendContext(options=options))
    return backend


class TestHashEmbedder(LLMSuite):
    capabilities = frozenset({"embed"})

    @pytest.fixture
    def llm(self) -> Any:
        return build


def test_dimension_option() -> None:
    """Proves `dimension` sets the vector size and 384 is the default."""
    assert build().embed(["x"]).shape == (1, 384)
    assert build(dimension=64).embed(["x", "y"]).shape == (2, 64)


@pytest.mark.parametrize("options", [{"dimension": 0}, {"dimension": "384"}, {"dimension": True}, {"model": "x"}])
def test_bad_options_refused(options: dict[str, Any]) -> None:
    """Proves impossible dimensions and unknown options are CONFIG_INVALID."""
    with pytest.raises(LoomError) as info:
        build(**options)
    assert info.value.code is ErrorCode.CONFIG_INVALID


def test_shared_words_bring_texts_closer() -> None:
    """Proves texts sharing words and word order score higher than unrelated ones."""
    a, b, c, d = build().embed(
        ["the cat sat on the mat", "the cat sat on a mat", "quarterly revenue grew", "mat on the sat cat the"]
    )
    assert float(a @ b) > 0.6 > float(a @ c)
    assert float(a @ d) < 0.95  # same words, other order: bigrams tell them apart


def test_vectors_stable_across_processes() -> None:
    """Proves vectors do not depend on PYTHONHASHSEED (they are written to disk and compared later)."""
    code = (
        "from loom_core.builtins.embed_hash import HashEmbedder;"
        "import sys; sys.stdout.write(HashEmbedder(16).embed(['stable across runs']).tobytes().hex())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1
    assert bytes.fromhex(runs.pop()) == build(dimension=16).embed(["stable across runs"]).tobytes()


def test_large_batch_matches_small_batches() -> None:
    """Proves the vectorised path gives each row exactly what embedding it alone gives."""
    texts = [f"chunk {i} about topic {i % 7}" for i in range(500)]
    backend = build()
    whole = backend.embed(texts)
    assert np.array_equal(whole[123], backend.embed([texts[123]])[0])
    assert np.array_equal(whole[-1], backend.embed([texts[-1]])[0])


def test_import_is_light() -> None:
    """Proves importing the plugin module does not import numpy (it loads on first embed)."""
    code = "import sys, loom_core.builtins.embed_hash; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
