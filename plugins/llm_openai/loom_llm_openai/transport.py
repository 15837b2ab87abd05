"""One POST to the OpenAI API with bounded retries, and its failures mapped to Loom's codes.

Retries (tenacity) cover what may pass by itself: 408, 409, 429 and 5xx answers and connection
failures or timeouts. A 429 waits what ``Retry-After`` (or ``retry-after-ms``) asks, and is not
retried when that exceeds ``max_backoff_seconds``; other waits back off exponentially with
jitter. A 429 saying the quota is used up (``insufficient_quota``) is not retried at all.

The API key goes only into the ``Authorization`` header of the client (httpx masks it in the
headers' repr and logs no headers). Errors are raised outside ``except`` blocks, so no httpx
exception (which may hold the request) hangs in a ``__context__``; messages name the variable
holding the key, never the key, and never the request's content.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from loom_core.errors import ErrorCode, LoomError
from loom_llm_openai.options import Settings

log = logging.getLogger("loom_llm_openai")

#: statuses worth another try (OpenAI's own clients retry the same ones)
RETRYABLE = frozenset({408, 409, 429})
MAX_MESSAGE = 300


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: an HTTP answer (``status`` > 0) or a transport failure (0)."""

    status: int
    payload: Any = None
    retry_after: float | None = None
    problem: str = ""

    @property
    def error(self) -> Mapping[str, Any]:
        """The ``error`` object of an OpenAI error body, or an empty mapping."""
        error = self.payload.get("error") if isinstance(self.payload, dict) else None
        return error if isinstance(error, dict) else {}

    @property
    def retryable(self) -> bool:
        if self.status == 429:
            return self.error.get("code") != "insufficient_quota" and self.error.get("type") != "insufficient_quota"
        return self.status == 0 or self.status in RETRYABLE or self.status >= 500


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, then ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _clean(text: Any) -> str:
    """A provider message fit for an error: printable, one line, bounded."""
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return flat[:MAX_MESSAGE] + ("..." if len(flat) > MAX_MESSAGE else "")


class Transport:
    """An httpx client for ``base_url`` carrying the key; :meth:`post` returns the JSON answer."""

    def __init__(
        self,
        settings: Settings,
        api_key: str,
        *,
        on_request: Callable[[], None] = lambda: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import httpx

        self._settings = settings
        self._secret = api_key
        self._on_request = on_request
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=settings.base_url + "/",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "loom-llm-openai/0.1"},
            timeout=httpx.Timeout(settings.timeout_seconds),
            trust_env=False,  # proxies and CA settings come from options, not the process environment
            follow_redirects=False,  # a redirect must not carry the key to another host
            proxy=settings.proxy,
        )
        self._closed = False

    def __repr__(self) -> str:
        return f"Transport(base_url={self._settings.base_url!r})"

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` (``embeddings``, ``chat/completions``); the answer's JSON object."""
        from tenacity import (
            RetryCallState,
            Retrying,
            retry_if_result,
            stop_after_attempt,
            wait_exponential,
            wait_random,
        )

        if self._closed:
            raise LoomError(ErrorCode.LLM_UNAVAILABLE, "the openai LLM backend is closed")
        s = self._settings
        backoff = wait_exponential(multiplier=s.backoff_seconds, max=s.max_backoff_seconds) + wait_random(
            0, s.backoff_seconds
        )

        def wait(state: RetryCallState) -> float:
            outcome: Outcome = state.outcome.result() if state.outcome else Outcome(0)
            if outcome.retry_after is not None:
                return outcome.retry_after
            return min(s.max_backoff_seconds, float(backoff(state)))

        def should_retry(outcome: Outcome) -> bool:
            too_long = outcome.retry_after is not None and outcome.retry_after > s.max_backoff_seconds
            return outcome.retryable and not too_long

        def before_sleep(state: RetryCallState) -> None:
            outcome: Outcome = state.outcome.result() if state.outcome else Outcome(0)
            what = f"HTTP {outcome.status}" if outcome.status else outcome.problem
            delay = state.next_action.sleep if state.next_action else 0.0
            log.warning("openai: %s answered %s; retry %d of %d in %.2fs", path, what, state.attempt_number,
                        s.max_retries, delay)

        retrying = Retrying(
            retry=retry_if_result(should_retry),
            stop=stop_after_attempt(s.max_retries + 1),
            wait=wait,
            sleep=self._sleep,
            before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else Outcome(0),
        )
        outcome: Outcome = retrying(self._attempt, path, body)
        attempts = retrying.statistics.get("attempt_number", 1)
        return self._result(path, outcome, attempts)

    def _attempt(self, path: str, body: Mapping[str, Any]) -> Outcome:
        import httpx

        self._on_request()
        problem = ""
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException:
            problem = f"no answer within {self._settings.timeout_seconds:g}s"
        except httpx.HTTPError as exc:
            problem = f"a connection failure ({type(exc).__name__})"
        if problem:
            return Outcome(0, problem=problem)
        payload: Any
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return Outcome(response.status_code, payload, retry_after(response.headers))

    def _result(self, path: str, outcome: Outcome, attempts: int) -> dict[str, Any]:
        status, env = outcome.status, self._settings.api_key_env
        where = f"openai {path}"
        tries = f"after {attempts} attempt{'s' if attempts != 1 else ''}"
        if status == 200:
            if not isinstance(outcome.payload, dict):
                raise LoomError(ErrorCode.LLM_BAD_RESPONSE, f"{where} answered 200 with a body that is no JSON object")
            return outcome.payload
        error = outcome.error
        kind = ", ".join(_clean(error[k]) for k in ("type", "code") if isinstance(error.get(k), str))
        label = f"HTTP {status}" + (f" ({kind})" if kind else "")
        if status == 0:
            raise LoomError(ErrorCode.LLM_UNAVAILABLE, f"{where}: {outcome.problem} {tries}")
        if status in (401, 403):
            raise LoomError(
                ErrorCode.LLM_AUTH_INVALID,
                f"{where}: the provider rejected the API key in ${env} ({label}); check or rotate it",
                details={"status": status, "api_key_env": env},
            )
        if status == 429:
            if not outcome.retryable:
                reason = "the account's quota is used up"
            elif outcome.retry_after is not None and outcome.retry_after > self._settings.max_backoff_seconds:
                reason = (f"the provider asked to wait {outcome.retry_after:g}s, more than max_backoff_seconds "
                          f"({self._settings.max_backoff_seconds:g}s)")
            else:
                reason = f"still rate limited {tries}"
            raise LoomError(ErrorCode.LLM_RATE_LIMITED, f"{where}: {label}: {reason}",
                            details={"status": status, "retry_after": outcome.retry_after})
        if outcome.retryable:
            raise LoomError(ErrorCode.LLM_UNAVAILABLE, f"{where} answered {label} {tries}", details={"status": status})
        message = error.get("message")
        text = _clean(message.replace(self._secret, "[API KEY]")) if isinstance(message, str) else "no message"
        raise LoomError(ErrorCode.LLM_BAD_RESPONSE, f"{where} refused the request ({label}): {text}",
                        details={"status": status, "param": _clean(error.get("param") or "") or None})
