"""LLM contract: embeddings with a declared dimension, optional chat/JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy is only needed by callers that embed
    import numpy as np
    import numpy.typing as npt

#: ``embed`` is mandatory; ``chat`` (and JSON completion) is optional.
LLM_CAPABILITIES = frozenset({"embed", "chat", "json"})


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Completion:
    text: str
    data: Any = None  # parsed JSON when a JSON completion was asked for
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Usage:
    """Running token and cost totals since the backend was created."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    requests: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class LLM(Protocol):
    """Guarantees every backend gives:

    * :meth:`embed` returns a float32 array of shape ``(len(texts),
      embedding_dimension)`` with unit L2 norm rows, deterministic for a given
      model; an empty input gives shape ``(0, dimension)``.
    * :meth:`complete` on a backend without ``chat`` raises
      ``LLM_CAPABILITY_MISSING``; with ``json_schema`` it returns parsed data
      in :attr:`Completion.data` or raises ``LLM_BAD_RESPONSE``.
    * Missing or rejected credentials raise ``LLM_AUTH_MISSING`` /
      ``LLM_AUTH_INVALID``, never a fallback model or zero vectors.
    * :meth:`usage` accounts every call.
    * API keys never appear in ``repr``, exceptions or logs.

    A backend whose vectors depend on a model setting also exposes ``embedding_model`` (a str):
    the memory server records ``<backend>:<embedding_model or name>`` with the data and refuses
    to open it with another embedder, since vectors of two models cannot be compared.
    """

    name: str
    capabilities: frozenset[str]
    embedding_dimension: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion: ...

    def usage(self) -> Usage: ...

    def close(self) -> None: ...
