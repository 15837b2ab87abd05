"""The ``openai`` LLM backend: embeddings and chat completions through the OpenAI HTTP API.

What it sends is the plaintext of every text it is given: memory content for embeddings and the
prompts built for consolidation and contradiction detection. OpenAI (or whatever ``base_url``
names) reads it; see the plugin's README.

Answers are checked before they are used, and anything that does not fit the API is
``LLM_BAD_RESPONSE``: never a zero vector, a vector of the wrong size, or text where JSON was
asked for. Texts without content (empty or whitespace) are not sent: OpenAI refuses empty input,
so they get one fixed unit vector (every component ``1/sqrt(dimension)``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from loom_core.contracts.llm import ChatMessage, Completion, Usage
from loom_core.errors import ErrorCode, LoomError
from loom_llm_openai import schema as schemas
from loom_llm_openai.options import Settings
from loom_llm_openai.pricing import Ledger
from loom_llm_openai.transport import Transport

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

NAME = "openai"
CAPABILITIES = frozenset({"embed", "chat", "json", "auth"})
#: characters per embeddings request (OpenAI caps a request at 300k tokens; CJK runs ~1 char/token)
MAX_BATCH_CHARS = 250_000


def _bad(message: str) -> LoomError:
    return LoomError(ErrorCode.LLM_BAD_RESPONSE, f"openai: {message}")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(f"usage.{what} is not a non-negative integer")
    return value


def _model(answer: Mapping[str, Any], asked: str) -> str:
    """The model that answered (a dated snapshot name, as billed), else the one asked for."""
    model = answer.get("model")
    return model if isinstance(model, str) and model else asked


def _head(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes at a character boundary: a memory longer than
    the model takes is embedded by its start rather than refused by the provider (a failed write)."""
    if len(text) * 4 <= limit:  # no character is longer than 4 bytes: nothing to cut
        return text
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")


class OpenAILLM:
    """Embeddings (``embed``), chat and JSON completions (``complete``), with usage and cost totals."""

    name = NAME
    capabilities: frozenset[str] = CAPABILITIES

    def __init__(self, settings: Settings, api_key: str, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.embedding_dimension = settings.embedding_dimension
        #: names the vector space; the memory server refuses a data directory embedded by another
        self.embedding_model = settings.embedding_model
        self._ledger = Ledger(settings.prices)
        self._transport = Transport(settings, api_key, on_request=self._ledger.count_request, sleep=sleep)

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"OpenAILLM(model={s.model!r}, embedding_model={s.embedding_model!r}, "
            f"dimension={s.embedding_dimension}, base_url={s.base_url!r}, api_key_env={s.api_key_env!r})"
        )

    # -- embeddings ---------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-length float32 rows, one per text, in order; batched by count and size."""
        import numpy as np

        dim = self.embedding_dimension
        out = np.empty((len(texts), dim), dtype=np.float32)
        blank = [i for i, text in enumerate(texts) if not text.strip()]
        out[blank] = np.float32(1 / math.sqrt(dim))
        wanted = [i for i, text in enumerate(texts) if text.strip()]
        texts = [_head(text, self.settings.max_input_bytes) for text in texts]
        for batch in self._batches(wanted, texts):
            out[batch] = self._embed_batch([texts[i] for i in batch])
        return out

    def _batches(self, wanted: list[int], texts: Sequence[str]) -> Iterator[list[int]]:
        batch: list[int] = []
        size = 0
        for i in wanted:
            if batch and (len(batch) >= self.settings.embedding_batch_size or size + len(texts[i]) > MAX_BATCH_CHARS):
                yield batch
                batch, size = [], 0
            batch.append(i)
            size += len(texts[i])
        if batch:
            yield batch

    def _embed_batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        s = self.settings
        body: dict[str, Any] = {"model": s.embedding_model, "input": texts, "encoding_format": "float"}
        if s.sends_dimensions:
            body["dimensions"] = s.embedding_dimension
        answer = self._transport.post("embeddings", body)
        rows = answer.get("data")
        if not isinstance(rows, list) or len(rows) != len(texts):
            raise _bad(f"the embeddings answer holds {len(rows) if isinstance(rows, list) else 'no'} rows "
                       f"for {len(texts)} texts")
        usage = answer.get("usage")
        tokens = _count(usage.get("prompt_tokens", 0), "prompt_tokens") if isinstance(usage, dict) else 0
        model = _model(answer, s.embedding_model)
        self._ledger.add(model, embedding=tokens)  # billed even if the vectors turn out unusable
        vectors: list[Any] = [None] * len(texts)
        seen: set[int] = set()
        for row in rows:
            index = row.get("index") if isinstance(row, dict) else None
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(texts) or index in seen:
                raise _bad("the embeddings answer has a missing, repeated or out-of-range index")
            seen.add(index)
            vectors[index] = row.get("embedding")
        matrix = self._matrix(vectors)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not bool(np.isfinite(matrix).all()) or bool((norms == 0).any()):
            raise _bad("the embeddings answer holds a zero, NaN or infinite vector")
        result: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32)
        return result

    def _matrix(self, vectors: list[Any]) -> npt.NDArray[np.float64]:
        import numpy as np

        dim = self.embedding_dimension
        for vector in vectors:
            if not isinstance(vector, list) or len(vector) != dim:
                got = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise _bad(f"an embedding has {got} values, expected {dim} (llm.embedding_dimension); "
                           "check the embedding model and dimension settings")
            if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
                raise _bad("an embedding holds values that are not numbers")
        return np.asarray(vectors, dtype=np.float64)

    # -- chat --------------------------------------------------------------------------

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """One chat completion; with ``json_schema`` the reply is parsed and validated into ``data``."""
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        }
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
        if json_schema is not None:
            body["response_format"] = schemas.response_format(json_schema)
        answer = self._transport.post("chat/completions", body)
        usage = answer.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        prompt = _count(usage.get("prompt_tokens", 0), "prompt_tokens")
        completion = _count(usage.get("completion_tokens", 0), "completion_tokens")
        model = _model(answer, self.settings.model)
        # booked before the reply is judged: a refused or filtered reply is billed all the same
        self._ledger.add(model, prompt=prompt, completion=completion)
        text, finish = self._reply(answer)
        if json_schema is None:
            return Completion(text=text, prompt_tokens=prompt, completion_tokens=completion)
        if finish == "length":
            raise _bad("the JSON reply was cut off at the token limit (raise max_tokens)")
        return Completion(text=text, data=self._parse(text, json_schema), prompt_tokens=prompt,
                          completion_tokens=completion)

    def _reply(self, answer: Mapping[str, Any]) -> tuple[str, str]:
        """The first choice's content and finish reason; refusals and filtered replies are errors."""
        choices = answer.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(choice, dict) or not isinstance(message, dict):
            raise _bad("the chat answer has no choices[0].message")
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else ""
        if message.get("refusal"):
            raise _bad("the model refused to answer")
        if finish == "content_filter":
            raise _bad("the reply was withheld by the provider's content filter")
        content = message.get("content")
        if not isinstance(content, str) or (not content and finish == "length"):
            raise _bad("the chat answer has no text content" + (" (the token limit was used up)"
                                                               if finish == "length" else ""))
        return content, finish

    def _parse(self, text: str, json_schema: Mapping[str, Any]) -> Any:
        failed = False
        try:
            data = json.loads(text)
        except ValueError:
            failed = True
        if failed:
            raise _bad("the reply asked for as JSON is not valid JSON")
        schemas.validate(data, json_schema)
        return data

    # -- accounting and life cycle -------------------------------------------------------

    def usage(self) -> Usage:
        """Totals since creation: tokens from the API's ``usage`` fields, HTTP requests sent, cost."""
        return self._ledger.snapshot()

    def close(self) -> None:
        self._transport.close()
