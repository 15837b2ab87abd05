"""Per-model list prices and the running usage totals built from the API's ``usage`` fields.

Prices are OpenAI's published list prices in USD per million tokens (standard tier, uncached
input) when this table was written; they change, so the ``prices`` option can override or
extend them. A model missing from both costs 0 and is logged once: the totals then undercount,
they never guess. Cached-input and batch discounts are not modelled, so for such traffic the
cost is an upper bound.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loom_core.contracts.llm import Usage

log = logging.getLogger("loom_llm_openai")


@dataclass(frozen=True)
class Price:
    """USD per million tokens: prompt (input) and completion (output)."""

    input: float
    output: float = 0.0


#: Built-in list prices (USD per 1M tokens); embeddings bill input tokens only.
PRICES: Mapping[str, Price] = {
    "text-embedding-3-small": Price(0.02),
    "text-embedding-3-large": Price(0.13),
    "text-embedding-ada-002": Price(0.10),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o3": Price(2.00, 8.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "gpt-3.5-turbo": Price(0.50, 1.50),
}
#: A dated snapshot name (``gpt-4o-mini-2024-07-18``) is priced as its model.
_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def parse_prices(value: Any) -> dict[str, Price]:
    """``{"model": {"input": 0.15, "output": 0.6}}`` to :class:`Price` objects; ValueError if malformed."""
    if not isinstance(value, Mapping):
        raise ValueError("must be a table of model = {input = USD, output = USD} per million tokens")
    prices: dict[str, Price] = {}
    for model, entry in value.items():
        if not isinstance(entry, Mapping) or not set(entry) <= {"input", "output"} or "input" not in entry:
            raise ValueError(f"{model!s}: give input (and optionally output) in USD per million tokens")
        numbers = [entry["input"], entry.get("output", 0.0)]
        if any(isinstance(n, bool) or not isinstance(n, int | float) or n < 0 for n in numbers):
            raise ValueError(f"{model!s}: prices must be non-negative numbers")
        prices[str(model)] = Price(float(numbers[0]), float(numbers[1]))
    return prices


class Ledger:
    """Thread-safe running totals; :meth:`snapshot` gives a :class:`Usage` copy."""

    def __init__(self, overrides: Mapping[str, Price] | None = None) -> None:
        self._prices = {**PRICES, **(overrides or {})}
        self._lock = threading.Lock()
        self._usage = Usage()
        self._unpriced: set[str] = set()

    def price(self, model: str) -> Price | None:
        """The price of ``model`` or of the model a dated snapshot name belongs to; None if unknown."""
        return self._prices.get(model) or self._prices.get(_SNAPSHOT.sub("", model))

    def add(self, model: str, *, prompt: int = 0, completion: int = 0, embedding: int = 0) -> float:
        """Count one answered call's tokens; returns its cost in USD."""
        price = self.price(model)
        cost = 0.0
        if price is not None:
            cost = ((prompt + embedding) * price.input + completion * price.output) / 1_000_000
        with self._lock:
            usage = self._usage
            usage.prompt_tokens += prompt
            usage.completion_tokens += completion
            usage.embedding_tokens += embedding
            usage.cost_usd += cost
            usage.by_model[model] = usage.by_model.get(model, 0.0) + cost
            first_unpriced = price is None and model not in self._unpriced
            if first_unpriced:
                self._unpriced.add(model)
        if first_unpriced:
            log.warning("openai: no price known for model %r; its cost is counted as 0 (set llm.options.prices)",
                        model)
        return cost

    def count_request(self) -> None:
        with self._lock:
            self._usage.requests += 1

    def snapshot(self) -> Usage:
        with self._lock:
            u = self._usage
            return Usage(u.prompt_tokens, u.completion_tokens, u.embedding_tokens, u.requests, u.cost_usd,
                         dict(u.by_model))
