"""Configuration is typed, refuses what it cannot honour, and never holds secrets."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from loom_core.config import LoomConfig, load_config, validate_config
from loom_core.contracts.secrets import SecretRef
from loom_core.errors import ErrorCode, LoomError

ROOT = Path(__file__).resolve().parents[2]


def refused(raw: dict[str, Any], env: dict[str, str] | None = None) -> LoomError:
    with pytest.raises(LoomError) as info:
        validate_config(raw, env or {})
    return info.value


def test_defaults_are_the_documented_ones() -> None:
    """No file means the seed's defaults: LOOMEM_AUTH_TOKEN, 127.0.0.1, rocksdb, tantivy, hash."""
    config = load_config(None, {})
    assert config.server.auth_token_env == "LOOMEM_AUTH_TOKEN"
    assert config.server.host == "127.0.0.1"
    assert (config.storage.backend, config.index.backend, config.llm.backend) == (
        "rocksdb",
        "tantivy",
        "hash",
    )
    assert config.encryption.master_key_env == "LOOMEM_AT_REST_MASTER_KEY"
    assert config.encryption.expect_enabled is False


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"server": {"prot": 1}}, "server.prot"),
        ({"nonsense": {}}, "nonsense"),
        ({"server": {"port": "eighty"}}, "server.port"),
        ({"server": {"port": 70000}}, "server.port"),
        ({"search": {"default_mode": "magic"}}, "search.default_mode"),
        ({"pii": {"blocklist": [""]}}, "pii.blocklist.0"),
        ({"llm": {"api_key_env": "not a name"}}, "llm.api_key_env"),
        # an empty name would find no variable and silently turn the key off
        ({"server": {"auth_token_env": ""}}, "server.auth_token_env"),
        # below 8 some encoded forms of a value would not be masked
        ({"secrets": {"min_length": 6}}, "secrets.min_length"),
        ({"encryption": {"master_key_env": ""}}, "encryption.master_key_env"),
    ],
)
def test_bad_keys_and_values_are_refused_naming_the_key(raw: dict[str, Any], key: str) -> None:
    """Unknown keys, wrong types and impossible values are CONFIG_INVALID naming the key."""
    err = refused(raw)
    assert err.code is ErrorCode.CONFIG_INVALID
    assert err.message.startswith(key + ":")


@pytest.mark.parametrize(
    "raw",
    [
        {"server": {"auth_token": "hunter2-very-secret"}},
        {"llm": {"api_key": "sk-live-abcdef0123456789"}},
        {"encryption": {"master_key": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI="}},
        {"llm": {"api_key_ref": "sk-live-abcdef0123456789"}},
        {"server": {"auth_token_ref": "hunter2-very-secret"}},
    ],
)
def test_literal_secrets_are_refused_without_echoing_them(raw: dict[str, Any]) -> None:
    """A literal where a secret belongs is CONFIG_SECRET_LITERAL, and the value is not echoed."""
    err = refused(raw)
    assert err.code is ErrorCode.CONFIG_SECRET_LITERAL
    literal = next(iter(next(iter(raw.values())).values()))
    assert (literal in err.message) is False, "the rejected literal leaked into the message"
    assert (literal in repr(err)) is False


def test_secret_references_and_env_names_are_accepted() -> None:
    """References and env-var names are the two accepted shapes for secrets."""
    config = validate_config(
        {
            "server": {"auth_token_ref": "keepass://main/loom/api#password"},
            "llm": {"api_key_env": "MY_OPENAI_KEY", "api_key_ref": "op://ops/openai/credential"},
        },
        {},
    )
    assert config.server.auth_token_ref == "keepass://main/loom/api#password"
    assert config.llm.api_key_env == "MY_OPENAI_KEY"


@pytest.mark.parametrize(
    "ref", ["op://prod/my item/my field", "keepass://main/My Group/postgres", "KEEPASS://main/ci/pg"]
)
def test_references_with_spaces_or_an_upper_case_scheme_are_references(ref: str) -> None:
    """Item and group names may hold spaces, and schemes are case-insensitive, as in workflows;
    the configuration refused these as literal secrets."""
    assert validate_config({"server": {"auth_token_ref": ref}}, {}).server.auth_token_ref == ref


def test_seed_environment_overrides() -> None:
    """LOOMEM_LOG_FORMAT and LOOMEM_AT_REST_EXPECT_ENABLED override the file."""
    config = validate_config(
        {"server": {"log_format": "text"}},
        {"LOOMEM_LOG_FORMAT": "JSON", "LOOMEM_AT_REST_EXPECT_ENABLED": "1"},
    )
    assert config.server.log_format == "json"
    assert config.encryption.expect_enabled is True
    assert refused({}, {"LOOMEM_AT_REST_EXPECT_ENABLED": "perhaps"}).code is ErrorCode.CONFIG_INVALID
    assert refused({}, {"LOOMEM_LOG_FORMAT": "xml"}).message.startswith("server.log_format:")


@pytest.mark.parametrize("off", ["0", "false", "no", "off", ""])
def test_the_expect_enabled_flag_cannot_switch_off_the_files_requirement(off: str) -> None:
    """A server whose file says encryption is expected must not start in plaintext because the
    environment happens to carry LOOMEM_AT_REST_EXPECT_ENABLED=0."""
    config = validate_config({"encryption": {"expect_enabled": True}}, {"LOOMEM_AT_REST_EXPECT_ENABLED": off})
    assert config.encryption.expect_enabled is True
    assert validate_config({}, {"LOOMEM_AT_REST_EXPECT_ENABLED": off}).encryption.expect_enabled is False


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    """A missing file is CONFIG_NOT_FOUND; broken TOML is CONFIG_INVALID naming the file."""
    with pytest.raises(LoomError) as missing:
        load_config(tmp_path / "nope.toml", {})
    assert missing.value.code is ErrorCode.CONFIG_NOT_FOUND
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\nport = 1\n")
    with pytest.raises(LoomError) as broken:
        load_config(bad, {})
    assert broken.value.code is ErrorCode.CONFIG_INVALID and "bad.toml" in broken.value.message


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out |= _keys(annotation, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def _flatten(raw: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in raw.items():
        if isinstance(value, dict) and key not in ("options", "providers"):  # free-form tables
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_example_config_covers_every_key_and_is_valid() -> None:
    """config.example.toml documents every key with its default; keep it in step with the model."""
    raw = tomllib.loads((ROOT / "config.example.toml").read_text())
    assert _flatten(raw) == _keys(LoomConfig)
    assert validate_config(raw, {}) == LoomConfig()


@pytest.mark.parametrize("table", ["a+b", "vault.v2", "OP", "my vault"])
def test_provider_tables_need_a_name_references_can_carry(table: str) -> None:
    """References take schemes of letters, digits and ``-``, matched in lower case: a
    ``[secrets.providers.<scheme>]`` table under any other name would never be used, so it is refused."""
    err = refused({"secrets": {"providers": {table: {}}}})
    assert err.code is ErrorCode.CONFIG_INVALID and "secrets.providers" in err.message


def test_provider_tables_accept_every_scheme_references_accept() -> None:
    """The same names a reference may use are accepted for tables (``-`` and digits included)."""
    config = validate_config({"secrets": {"providers": {"my-vault2": {"root": "/srv"}}}}, {})
    assert SecretRef.parse("my-vault2://item").scheme in config.secrets.providers


@pytest.mark.parametrize("value", ["a+b://item", "x.y://item", "-://item", "env:// NAME"])
def test_config_references_follow_the_reference_syntax(value: str) -> None:
    """A value shaped like no reference the providers could parse is refused at load, not at
    resolve time."""
    assert refused({"server": {"auth_token_ref": value}}).code is ErrorCode.CONFIG_SECRET_LITERAL


@pytest.mark.parametrize("term", ["", " ", "\t"])
def test_a_blank_pii_blocklist_term_is_refused(term: str) -> None:
    """A blank term would match everywhere; `loom config check` accepted " " (only "" was refused)."""
    err = refused({"pii": {"blocklist": ["ok-term", term]}})
    assert err.code is ErrorCode.CONFIG_INVALID and err.message.startswith("pii.blocklist.1:")


@pytest.mark.parametrize("name", ["LOOMEM_AUTH_TOKEN\n", "TOKEN\r\n"])
def test_an_environment_variable_name_with_a_line_break_is_refused(name: str) -> None:
    """``$`` in the name pattern matched before a final newline, so "TOKEN\\n" passed and then named
    no variable at all: authentication silently off."""
    assert refused({"server": {"auth_token_env": name}}).code is ErrorCode.CONFIG_INVALID
