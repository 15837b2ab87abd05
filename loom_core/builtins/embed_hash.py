"""The ``hash`` LLM backend: deterministic feature-hashing embeddings, no model, no network.

Each text is lower-cased and split into word tokens; every unigram (weight
1) and adjacent-word bigram (weight 0.5) is hashed to a bucket in
``dimension`` dims with a hashed sign, and each row is L2-normalised. Texts
sharing words therefore land close together, which is enough for tests and
as the last-resort default; it knows nothing about meaning. Work is
vectorised with numpy: only *distinct* tokens are hashed in Python
(``zlib.crc32``), bigram hashes are combined from unigram hashes in numpy,
and buckets are summed with one ``bincount``.

Options: ``dimension`` (int, 8-8192, default 384). Chat is not offered:
``complete`` raises ``LLM_CAPABILITY_MISSING``. numpy is imported on first
``embed``, so loading the plugin stays cheap.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loom_core.contracts import BackendContext
from loom_core.contracts.llm import ChatMessage, Completion, Usage
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

NAME = "hash"
CAPABILITIES = frozenset({"embed"})
DEFAULT_DIMENSION = 384
MIN_DIMENSION, MAX_DIMENSION = 8, 8192
BIGRAM_WEIGHT = 0.5
_WORD = re.compile(r"\w+")
#: Stand-in token for a text with no words, so its row is still a unit vector.
_EMPTY = "\x00empty"


class HashEmbedder:
    """Embeddings only; deterministic across processes and machines."""

    name = NAME
    capabilities: frozenset[str] = CAPABILITIES

    def __init__(self, dimension: int = DEFAULT_DIMENSION) -> None:
        self.embedding_dimension = dimension
        self._usage = Usage()
        self._hashes: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"HashEmbedder(dimension={self.embedding_dimension})"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        dim = self.embedding_dimension
        tokens: list[str] = []
        lengths: list[int] = []
        for text in texts:
            words = _WORD.findall(text.lower()) or [_EMPTY]
            tokens.extend(words)
            lengths.append(len(words))
        self._usage.requests += 1
        self._usage.embedding_tokens += len(tokens)
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)

        cache = self._hashes
        for token in set(tokens).difference(cache):
            cache[token] = zlib.crc32(token.encode("utf-8", "surrogatepass"))
        hashes = np.fromiter((cache[t] for t in tokens), dtype=np.uint64, count=len(tokens))
        if len(cache) > 1_000_000:  # bound memory for long-lived servers
            cache.clear()
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)

        same_doc = doc[1:] == doc[:-1]
        bigrams = _mix(hashes[:-1][same_doc] * np.uint64(0x9E3779B1) + hashes[1:][same_doc] + np.uint64(1))
        features = np.concatenate([_mix(hashes), bigrams])
        owners = np.concatenate([doc, doc[1:][same_doc]])
        weights = np.concatenate(
            [np.ones(len(hashes), dtype=np.float64), np.full(len(bigrams), BIGRAM_WEIGHT, dtype=np.float64)]
        )
        buckets = (features % np.uint64(dim)).astype(np.int64)
        signs = np.where((features >> np.uint64(40)) & np.uint64(1), 1.0, -1.0)
        flat = np.bincount(owners * dim + buckets, weights=weights * signs, minlength=len(texts) * dim)
        matrix = flat.reshape(len(texts), dim)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        # A row cancels to zero only if signed features sum to nothing; use its first feature then.
        zero = norms[:, 0] == 0
        if zero.any():
            first = np.searchsorted(doc, np.flatnonzero(zero))
            matrix[zero, buckets[first]] = 1.0
            norms[zero] = 1.0
        result: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32)
        return result

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        raise LoomError(
            ErrorCode.LLM_CAPABILITY_MISSING,
            "the hash backend only embeds; select an LLM backend with chat (llm.backend) for completions",
        )

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self._usage.prompt_tokens,
            completion_tokens=self._usage.completion_tokens,
            embedding_tokens=self._usage.embedding_tokens,
            requests=self._usage.requests,
            cost_usd=0.0,
            by_model=dict(self._usage.by_model),
        )

    def close(self) -> None:
        self._hashes.clear()


def _mix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser: spreads crc32 bits over 64 bits (wrapping uint64 arithmetic)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = values + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return mixed


def create(ctx: BackendContext) -> HashEmbedder:
    """Factory; refuses unknown options and impossible dimensions with ``CONFIG_INVALID``."""
    unknown = sorted(set(map(str, ctx.options)) - {"dimension"})
    if unknown:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"llm.options has unknown key(s) {unknown}; the hash backend accepts only 'dimension'",
        )
    dimension = ctx.options.get("dimension", DEFAULT_DIMENSION)
    if isinstance(dimension, bool) or not isinstance(dimension, int) or not (
        MIN_DIMENSION <= dimension <= MAX_DIMENSION
    ):
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"llm.options.dimension must be an integer from {MIN_DIMENSION} to {MAX_DIMENSION} (got {dimension!r})",
        )
    return HashEmbedder(dimension)


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_llm(
        NAME,
        create,
        capabilities=CAPABILITIES,
        description="deterministic feature-hashing embeddings (word unigrams + bigrams); no chat",
    )
