"""The one door memory content goes through on its way to a chat model.

The seed promises that, with ``[pii] enabled``, phone numbers, e-mail addresses, national ids and
blocklisted terms are replaced before *every* LLM call made for consolidation, extraction and the
dream pass. Putting the filter here, around the backend, instead of in each caller makes that
promise structural: a caller holding a :class:`ChatGate` has no way to reach the model with
unfiltered text. Embeddings are not filtered (the seed's known limitation: the provider sees
plaintext at ingest); they go straight from the engine to the backend.

A filter that fails stops the call (fail closed): text is never sent because filtering broke.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loom_core.contracts import BackendContext
from loom_core.contracts.llm import ChatMessage, Completion, Usage
from loom_core.errors import ErrorCode, LoomError
from loom_core.errors import raised_at as _raised_at

#: Hears the backend's running usage after every call (the cost alert listens here).
UsageListener = Callable[[Usage], None]


@dataclass
class GateStats:
    """What went through the gate since start: calls and PII replacements per kind (counts only)."""

    calls: int = 0
    redactions: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "pii_redactions": dict(sorted(self.redactions.items()))}


class ChatGate:
    """Chat completions with the PII filter applied to every message first."""

    def __init__(self, llm: Any, pii: Any | None, *, listeners: Sequence[UsageListener] = ()) -> None:
        if "chat" not in getattr(llm, "capabilities", ()):
            raise LoomError(
                ErrorCode.LLM_CAPABILITY_MISSING,
                f"the LLM backend {getattr(llm, 'name', '?')!r} offers no chat, which consolidation needs; "
                'set [llm] backend to one that does (e.g. "openai")',
            )
        self.llm = llm
        self.pii = pii
        self._listeners = list(listeners)
        self._lock = threading.Lock()
        self.stats = GateStats()

    @property
    def filtering(self) -> bool:
        return self.pii is not None

    def filter_text(self, text: str) -> str:
        """``text`` as the model may see it: PII replaced by its token when filtering is on."""
        if self.pii is None:
            return text
        try:
            result = self.pii.redact(text)
        except Exception as exc:  # fail closed: no filter, no call
            raise LoomError(
                ErrorCode.PII_FILTER_FAILED,
                f"the PII filter failed ({type(exc).__name__}{_raised_at(exc)}); the LLM call was not made",
            ) from None
        with self._lock:
            self.stats.redactions.update({k: v for k, v in result.counts.items() if v})
        return str(result.text)

    def filter_data(self, data: Any) -> Any:
        """``data`` with every string value filtered (keys are the caller's own field names).

        Structured text must be filtered before it is serialised: in JSON a line break is the two
        characters ``\\n``, and the letter that leaves in front of a phone number or an id hides it
        from a filter that wants no word character before a match.
        """
        if isinstance(data, str):
            return self.filter_text(data)
        if isinstance(data, Mapping):
            return {k: self.filter_data(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.filter_data(v) for v in data]
        return data

    def complete_data(
        self,
        instructions: str,
        data: Any,
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Ask the model about ``data``: fixed ``instructions`` as the system message and the
        filtered ``data`` as JSON in the user message."""
        body = json.dumps(self.filter_data(data), ensure_ascii=False, indent=1)
        messages = [ChatMessage("system", self.filter_text(instructions)), ChatMessage("user", body)]
        return self._call(messages, json_schema=json_schema, max_tokens=max_tokens)

    def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        json_schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """Filter every message, then ask the model; usage listeners hear the new totals.
        Text holding serialised data belongs in :meth:`complete_data` instead."""
        safe = [ChatMessage(m.role, self.filter_text(m.content)) for m in messages]
        return self._call(safe, json_schema=json_schema, max_tokens=max_tokens)

    def _call(
        self,
        safe: Sequence[ChatMessage],
        *,
        json_schema: Mapping[str, Any] | None,
        max_tokens: int | None,
    ) -> Completion:
        try:
            completion: Completion = self.llm.complete(safe, json_schema=json_schema, max_tokens=max_tokens)
            return completion
        finally:
            with self._lock:
                self.stats.calls += 1
            self._tell_listeners()

    def _tell_listeners(self) -> None:
        if not self._listeners:
            return
        try:
            usage = self.llm.usage()
        except Exception as exc:
            logging.getLogger("loom.alerts").warning("could not read LLM usage: %s", type(exc).__name__)
            return
        for listener in self._listeners:
            try:
                listener(usage)
            except Exception as exc:  # an alert failing must not turn a paid, good answer into an error
                logging.getLogger("loom.alerts").warning(
                    "usage listener failed: %s%s", type(exc).__name__, _raised_at(exc))


def build_pii_filter(config: Any, host: Any) -> Any | None:
    """The configured PII filter when ``[pii] enabled``, else None; ``pii.blocklist`` joins its options.

    An unknown backend or bad options refuse start-up (PLUGIN_NOT_FOUND / PII_CONFIG_INVALID):
    an operator who turned filtering on must not get an unfiltered server.
    """
    if not config.pii.enabled:
        return None
    options = dict(config.pii.options)
    if config.pii.blocklist:
        options["blocklist"] = [*options.get("blocklist", []), *config.pii.blocklist]
    return host.create("pii", config.pii.backend, BackendContext(options=options))
