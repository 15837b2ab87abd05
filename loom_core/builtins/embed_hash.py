"""The ``hash`` LLM backend: deterministic feature-hashing embeddings, no model, no network.

Each text is lower-cased and split into word tokens (each Chinese, Japanese or
Korean character is a token of its own); every unigram (weight
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
#: Chinese, Japanese and Korean letters (Hangul Jamo, kana, bopomofo, compatibility Jamo,
#: ideographs and their extensions, syllables): scripts written without spaces between words, so
#: each character is a token of its own (as in the tantivy index), not one whole sentence.
_CJK = "\u1100-\u11ff\u3040-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
_WORD = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
#: Stand-in token for a text with no words, so its row is still a unit vector.
_EMPTY = "\x00empty"
#: Joins texts for one-pass tokenising; a non-word character, so never part of a token.
_SEPARATOR = "\x1f"
_SEPARATOR_HASH = 1 << 40  # outside crc32's range: cannot collide with a word's hash
_WORD_OR_SEPARATOR = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+|\x1f")
#: Joins texts; the spaces (non-word) keep the separator a token of its own for ``str.split``.
_SPACED_SEPARATOR = f" {_SEPARATOR} "
#: ASCII fast path: word bytes (what ``\w`` matches in ASCII) stay, the separator becomes NUL,
#: every other byte (NUL included) a space; ``split`` then yields exactly the regex's tokens.
_ASCII_MARK = "\x00"
_ASCII_TOKENS = bytes(
    b if chr(b).isalnum() or b == 0x5F else (0 if b == 0x1F else 0x20) for b in range(128)
) + bytes(128)


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

        dim, count = self.embedding_dimension, len(texts)
        self._usage.requests += 1
        if not count:
            return np.zeros((0, dim), dtype=np.float32)
        hashes, doc = self._token_hashes(list(texts))
        self._usage.embedding_tokens += len(hashes)
        # Texts without a single word get one stand-in token so their row is a unit vector.
        empty = np.flatnonzero(np.bincount(doc, minlength=count) == 0)
        if len(empty):
            hashes = np.concatenate([hashes, np.full(len(empty), self._hash(_EMPTY), dtype=np.uint64)])
            doc = np.concatenate([doc, empty])

        same_doc = doc[1:] == doc[:-1]
        bigrams = _mix(hashes[:-1][same_doc] * np.uint64(0x9E3779B1) + hashes[1:][same_doc] + np.uint64(1))
        features = np.concatenate([_mix(hashes), bigrams])
        owners = np.concatenate([doc, doc[1:][same_doc]])
        weights = np.concatenate(
            [np.ones(len(hashes), dtype=np.float64), np.full(len(bigrams), BIGRAM_WEIGHT, dtype=np.float64)]
        )
        buckets = (features % np.uint64(dim)).view(np.int64)  # < dim, so the bits are the same
        signs = np.where((features >> np.uint64(40)) & np.uint64(1), 1.0, -1.0)
        flat = np.bincount(owners * dim + buckets, weights=weights * signs, minlength=count * dim)
        matrix = flat.reshape(count, dim)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        # A row cancels to zero only if its signed features sum to nothing; use its first unigram then.
        zero = np.flatnonzero(norms[:, 0] == 0)
        if len(zero):
            docs, first = np.unique(doc, return_index=True)
            rows = first[np.searchsorted(docs, zero)]
            matrix[zero, buckets[rows]] = 1.0
            norms[zero] = 1.0
        result: npt.NDArray[np.float32] = np.empty((count, dim), dtype=np.float32)
        np.divide(matrix, norms, out=result, casting="unsafe")
        return result

    def _hash(self, token: str) -> int:
        return zlib.crc32(token.encode("utf-8", "surrogatepass"))

    def _token_hashes(self, texts: list[str]) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
        """Word-token hashes of all texts in order, and the index of the text each came from.

        The texts are joined with a separator and tokenised in one regex
        call; only tokens never seen before are hashed in Python.
        """
        import numpy as np

        if any(_SEPARATOR in text for text in texts):  # cannot join safely: tokenise one by one
            per_text = [_WORD.findall(text.lower()) for text in texts]
            tokens = [tok for words in per_text for tok in [*words, _SEPARATOR]]
        else:
            joined = _SPACED_SEPARATOR.join(texts).lower()
            if joined.isascii():  # a byte table instead of the regex: 3x faster on ingest batches
                tokens = joined.encode("ascii").translate(_ASCII_TOKENS).decode("ascii").split()
                tokens.append(_ASCII_MARK)
            else:
                tokens = _WORD_OR_SEPARATOR.findall(joined)
                tokens.append(_SEPARATOR)
        cache = self._hashes
        if len(cache) > 1_000_000:  # bound memory for long-lived servers
            cache.clear()
        for token in set(tokens).difference(cache):
            cache[token] = self._hash(token)
        cache[_SEPARATOR] = cache[_ASCII_MARK] = _SEPARATOR_HASH
        hashes = np.fromiter(map(cache.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
        is_separator = hashes == np.uint64(_SEPARATOR_HASH)
        doc = np.cumsum(is_separator) - is_separator  # separators close the text they follow
        keep = ~is_separator
        return hashes[keep], doc[keep]

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
