"""The backend's options (from ``[llm]`` and ``[llm.options]``), checked before anything is sent.

Every problem is ``CONFIG_INVALID`` naming the option, so a bad configuration stops the server
at start instead of failing on the first memory written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loom_core.errors import ErrorCode, LoomError
from loom_llm_openai.pricing import Price, parse_prices

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: native vector size of OpenAI's embedding models; text-embedding-3 models can return fewer
NATIVE_DIMENSIONS: Mapping[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MIN_DIMENSION, MAX_DIMENSION = 8, 8192
#: OpenAI accepts at most 2048 inputs in one embeddings request
MAX_BATCH = 2048


@dataclass(frozen=True)
class Settings:
    """Checked options; the defaults are the ones used when ``[llm]`` does not pass a key."""

    model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    embedding_dimension: int = 1536
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 30.0
    api_key_env: str = "OPENAI_API_KEY"
    #: retries after the first attempt, for 408/409/429/5xx answers and connection failures
    max_retries: int = 4
    #: first exponential back-off wait (doubling, with jitter), in seconds
    backoff_seconds: float = 0.5
    #: longest single wait; a Retry-After asking for more is not waited for (LLM_RATE_LIMITED)
    max_backoff_seconds: float = 20.0
    #: texts per embeddings request
    embedding_batch_size: int = 256
    #: UTF-8 bytes of one text sent for embedding; longer texts are embedded by their start.
    #: OpenAI refuses an input over 8,192 tokens; 24,000 bytes stays under it for English prose
    #: (about 4 bytes a token) and for most other scripts
    max_input_bytes: int = 24_000
    #: an HTTP(S) proxy URL; the environment's proxy variables are not read
    proxy: str | None = None
    #: per-model prices overriding or extending the built-in table (USD per million tokens)
    prices: Mapping[str, Price] = field(default_factory=dict)

    @property
    def sends_dimensions(self) -> bool:
        """Whether the embedding model takes ``dimensions`` (only the text-embedding-3 family does)."""
        return self.embedding_model.startswith("text-embedding-3")


def _invalid(message: str) -> LoomError:
    return LoomError(ErrorCode.CONFIG_INVALID, f"openai LLM backend: {message}")


def _text(options: Mapping[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"option {key} must be a non-empty string")
    return value.strip()


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _invalid(f"option {key} must be a number from {low} to {high} (got {value!r})")
    return float(value)


def _integer(options: Mapping[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"option {key} must be an integer from {low} to {high} (got {value!r})")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_url(value: str, key: str) -> str:
    """An ``https`` URL (``http`` only to this machine, so the key never crosses a network in clear)."""
    import httpx

    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise _invalid(f"option {key} must be an http(s) URL")
    if url.userinfo or url.query or url.fragment:
        raise _invalid(f"option {key} must not carry credentials, a query or a fragment")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise _invalid(f"option {key} must use https (plain http is accepted only for localhost)")
    return value.rstrip("/")


def parse(options: Mapping[str, Any]) -> Settings:
    """:class:`Settings` from the backend's options; unknown keys are refused."""
    known = set(Settings.__dataclass_fields__)
    unknown = sorted(set(map(str, options)) - known)
    if unknown:
        raise _invalid(f"unknown option(s) {unknown}; accepted: {sorted(known)}")
    defaults = Settings()
    embedding_model = _text(options, "embedding_model", defaults.embedding_model)
    native = NATIVE_DIMENSIONS.get(embedding_model)
    dimension = _integer(options, "embedding_dimension", native or defaults.embedding_dimension,
                         MIN_DIMENSION, MAX_DIMENSION)
    if native is not None and dimension > native:
        raise _invalid(f"embedding_dimension {dimension} exceeds {embedding_model}'s {native}")
    if native is not None and not embedding_model.startswith("text-embedding-3") and dimension != native:
        raise _invalid(f"{embedding_model} always returns {native} dimensions; set embedding_dimension = {native}")
    proxy = options.get("proxy")
    settings = Settings(
        model=_text(options, "model", defaults.model),
        embedding_model=embedding_model,
        embedding_dimension=dimension,
        base_url=check_url(_text(options, "base_url", defaults.base_url), "base_url"),
        timeout_seconds=_number(options, "timeout_seconds", defaults.timeout_seconds, 0.001, 3600),
        api_key_env=_text(options, "api_key_env", defaults.api_key_env),
        max_retries=_integer(options, "max_retries", defaults.max_retries, 0, 10),
        backoff_seconds=_number(options, "backoff_seconds", defaults.backoff_seconds, 0, 60),
        max_backoff_seconds=_number(options, "max_backoff_seconds", defaults.max_backoff_seconds, 0, 600),
        embedding_batch_size=_integer(options, "embedding_batch_size", defaults.embedding_batch_size, 1, MAX_BATCH),
        max_input_bytes=_integer(options, "max_input_bytes", defaults.max_input_bytes, 1000, 1_000_000),
        proxy=None if proxy is None else _proxy(proxy),
        prices=_prices(options.get("prices", {})),
    )
    return settings


def _proxy(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid("option proxy must be a URL string")
    return value.strip()


def _prices(value: Any) -> dict[str, Price]:
    try:
        return parse_prices(value)
    except ValueError as exc:
        problem = str(exc)
    raise _invalid(f"option prices: {problem}")
