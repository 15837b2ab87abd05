"""Typed settings: every key of ``config.toml``, its type, default and bounds.

Models forbid unknown keys so a typo is an error, not a silently ignored
setting. Keys that hold secrets come in two shapes only: ``*_env`` (the NAME
of an environment variable) and ``*_ref`` (a secret reference such as
``env://NAME`` or ``keepass://ALIAS/Group/Entry``); a literal value there is
refused with ``CONFIG_SECRET_LITERAL``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from loom_core.contracts.secrets import is_provider_scheme, is_scheme
from loom_core.secrets.bounded import DEFAULT_RESOLVE_SECONDS

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class SecretLiteralError(ValueError):
    """A literal where only a secret reference belongs (mapped to CONFIG_SECRET_LITERAL)."""


def _env_name(value: str) -> str:
    # An empty name is refused too: looking it up finds nothing, which would
    # silently turn the key it names off (passthrough auth, encryption off).
    if not ENV_NAME.match(value):
        what = "an empty value" if not value else _describe(value)
        raise ValueError(f"must be the NAME of an environment variable (letters, digits, _), not {what}")
    return value


def _secret_ref(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    # the path may hold spaces (op://v/my item/f) but must not start with one
    if value and not (sep and is_scheme(scheme) and rest[:1].strip()):
        raise SecretLiteralError(
            "must be a secret reference like env://NAME, keepass://ALIAS/Group/Entry or "
            "op://vault/item/field; literal secret values are not accepted in the config file"
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _describe(value: str) -> str:
    """Say what a rejected value looks like without echoing it (it may be a secret)."""
    return f"a {len(value)}-character value"


EnvName = Annotated[str, AfterValidator(_env_name)]
SecretRefStr = Annotated[str, AfterValidator(_secret_ref)]


class Section(BaseModel):
    # inf and nan are never meaningful here (an infinite timeout or interval would silently mean "never")
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8420, ge=1, le=65535)
    data_dir: Path = Path("loom-data")
    auth_token_env: EnvName = "LOOMEM_AUTH_TOKEN"  # noqa: S105 - a variable name
    auth_token_ref: SecretRefStr = ""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    public_url: str = ""
    #: where ``POST /v1/admin/backups`` writes; empty: ``<data_dir>-backups`` beside the data directory
    backup_dir: str = ""
    #: proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (comma-separated addresses or
    #: networks); empty: none, so no client can choose the address its audit events record
    trusted_proxies: str = ""


class BackendSection(Section):
    options: dict[str, Any] = Field(default_factory=dict)


class StorageSettings(BackendSection):
    backend: str = "rocksdb"


class IndexSettings(BackendSection):
    backend: str = "tantivy"
    #: how long new chunks may wait to share one index commit (0: commit on every write);
    #: searches commit what waits first, and storage is durable either way
    commit_delay_ms: int = Field(default=100, ge=0, le=10_000)


class LLMSettings(BackendSection):
    backend: str = "hash"
    api_key_env: EnvName = "OPENAI_API_KEY"
    api_key_ref: SecretRefStr = ""
    model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    embedding_dimension: int = Field(default=384, ge=8, le=8192)
    base_url: str = "https://api.openai.com/v1"
    timeout_seconds: float = Field(default=30.0, gt=0)


class PIISettings(BackendSection):
    enabled: bool = False
    backend: str = "regex"
    # a blank term would match everywhere (the regex filter refuses it too: PII_CONFIG_INVALID)
    blocklist: list[Annotated[str, AfterValidator(_not_blank)]] = Field(default_factory=list)


class EncryptionSettings(Section):
    cipher: str = "aes256gcm"
    master_key_env: EnvName = "LOOMEM_AT_REST_MASTER_KEY"
    master_key_ref: SecretRefStr = ""
    expect_enabled: bool = False


class SearchSettings(Section):
    default_mode: Literal["hybrid", "bm25", "vector"] = "hybrid"
    default_k: int = Field(default=10, ge=1, le=1000)
    rrf_k: int = Field(default=60, ge=1)
    recency_weight: float = Field(default=0.1, ge=0.0, le=1.0)
    decay_half_life_days: float = Field(default=30.0, gt=0)
    #: helper threads for one search's halves (0: off, every search on the caller's thread)
    helper_threads: int = Field(default=1, ge=0, le=64)


class RetentionSettings(Section):
    sweep_interval_seconds: float = Field(default=60.0, gt=0)


class AlertSettings(Section):
    telegram_bot_token_env: EnvName = "TELEGRAM_BOT_TOKEN"  # noqa: S105 - a variable name
    telegram_chat_id_env: EnvName = "LOOMEM_TELEGRAM_CHAT_ID"
    #: the Bot API's address (another one only for a proxy or a test double)
    telegram_api_url: str = "https://api.telegram.org"
    #: LLM spend per UTC day that sends one alert when crossed (0: no alert)
    daily_cost_limit_usd: float = Field(default=0.0, ge=0.0)


class ConsolidationSettings(Section):
    """How raw (L0) memories are condensed into L1 memories and the entity graph by the LLM."""

    #: run the "dream" pass over every stream in the background every ``interval_seconds``
    enabled: bool = False
    interval_seconds: float = Field(default=3600.0, ge=10.0)
    #: raw chunks sent to the LLM in one call (each call also carries the related L1 memories)
    batch_size: int = Field(default=32, ge=1, le=200)
    #: existing L1 memories shown to the LLM so it can say which ones a new memory replaces
    related_k: int = Field(default=8, ge=0, le=50)
    #: characters of one raw chunk sent to the LLM; longer chunks are cut (the chunk itself is not)
    max_chunk_chars: int = Field(default=4000, ge=200, le=100_000)
    max_tokens: int = Field(default=2000, ge=100, le=32_000)


class PluginSettings(Section):
    disabled: list[str] = Field(default_factory=list)


def _provider_tables(value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for scheme in value:
        if not is_provider_scheme(scheme):
            raise ValueError(f"{scheme!r} is not a reference scheme (lower-case letters, digits and -)")
    return value


class SecretsSettings(Section):
    # 8 is also the shortest encoded form redaction matches: below it some encodings of a value
    # would go unmasked without a word, so lower settings are refused
    min_length: int = Field(default=8, ge=8, le=64)
    # larger values are refused: building the redactor for a value (its encoded forms) costs
    # ~3.5 s of CPU and ~550 MB per MiB, so a 10 MB value would stall the run
    max_length: int = Field(default=262_144, ge=1024, le=16_777_216)
    # how long a job's secrets may take to resolve before the run gives up on a provider that does not
    # answer (an unreachable vault); Ctrl-C stops the wait at once whatever this is
    resolve_timeout_seconds: float = Field(default=DEFAULT_RESOLVE_SECONDS, gt=0, le=86_400)
    #: ``[secrets.providers.<scheme>]``: the options each provider is built with
    #: (``BackendContext.options``); credentials never go here (they come from the environment).
    providers: Annotated[dict[str, dict[str, Any]], AfterValidator(_provider_tables)] = Field(default_factory=dict)


class LoomConfig(Section):
    """The whole configuration; ``LoomConfig()`` is the documented default."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    pii: PIISettings = Field(default_factory=PIISettings)
    encryption: EncryptionSettings = Field(default_factory=EncryptionSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    consolidation: ConsolidationSettings = Field(default_factory=ConsolidationSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    secrets: SecretsSettings = Field(default_factory=SecretsSettings)
