"""Server settings that hold a secret reference resolve through one fail-closed path."""

from __future__ import annotations

import pytest

from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost
from loom_core.secrets.providers import resolve_reference
from tests.provider_stubs import host_with_provider


def code_of(raw: str, environ: dict[str, str]) -> ErrorCode:
    with pytest.raises(LoomError) as info:
        resolve_reference(raw, PluginHost(environ=environ), environ, setting="server.auth_token_ref")
    assert "server.auth_token_ref" in info.value.message
    return info.value.code


def test_resolves_an_env_reference() -> None:
    """env://NAME gives the variable's exact bytes."""
    env = {"API_KEY_FOR_TEST": "a-long-random-api-key"}
    value = resolve_reference("env://API_KEY_FOR_TEST", PluginHost(environ=env), env, setting="x")
    assert value.reveal() == b"a-long-random-api-key"


def test_unknown_scheme_is_provider_unavailable_not_a_plugin_error() -> None:
    """A scheme nobody provides is SECRETS_PROVIDER_UNAVAILABLE, as in workflow runs."""
    assert code_of("vault9://x/y", {}) is ErrorCode.SECRETS_PROVIDER_UNAVAILABLE


def test_disabled_provider_is_unavailable() -> None:
    """A disabled provider is never used as if it were absent-and-optional."""
    env = {"LOOM_DISABLE_PLUGINS": "secrets:env", "K": "a-long-random-api-key"}
    assert code_of("env://K", env) is ErrorCode.SECRETS_PROVIDER_UNAVAILABLE


def test_missing_and_blank_values_fail_closed() -> None:
    """An unset variable is SECRETS_NOT_FOUND; a blank one is refused, never an empty key."""
    assert code_of("env://NOT_SET_ANYWHERE", {}) is ErrorCode.SECRETS_NOT_FOUND
    assert code_of("env://BLANK", {"BLANK": "     "}) is ErrorCode.SECRETS_VALUE_UNSAFE


def test_malformed_reference_names_the_setting() -> None:
    """A malformed reference is SECRETS_REF_INVALID and the message names the setting."""
    assert code_of("not a reference", {}) is ErrorCode.SECRETS_REF_INVALID


def test_llm_api_key_reference_reaches_the_llm_backend_and_fails_closed(tmp_path: object) -> None:
    """llm.api_key_ref is resolved through the providers and handed to the LLM backend under the
    variable llm.api_key_env names (in its context only); an unresolvable reference stops the engine
    from opening with a SECRETS_* code naming the setting; a reference plus the variable is refused."""
    from pathlib import Path

    from loom_core.config import LoomConfig
    from loom_core.memory.engine import MemoryEngine, llm_context

    config = LoomConfig.model_validate({"llm": {"api_key_ref": "env://VAULTED_LLM_KEY"}})
    env = {"VAULTED_LLM_KEY": "sk-test-" + "q" * 24}
    context = llm_context(config, env, PluginHost(environ=env))
    assert context.environ["OPENAI_API_KEY"] == env["VAULTED_LLM_KEY"]
    assert env["VAULTED_LLM_KEY"] not in repr(context)
    with pytest.raises(LoomError) as missing:
        MemoryEngine.open(config, PluginHost(environ={}), Path(str(tmp_path)) / "d", environ={})
    assert missing.value.code.value.startswith("SECRETS_") and "llm.api_key_ref" in missing.value.message
    both = {**env, "OPENAI_API_KEY": "sk-other-" + "r" * 20}
    with pytest.raises(LoomError) as twice:
        llm_context(config, both, PluginHost(environ=both))
    assert twice.value.code is ErrorCode.CONFIG_INVALID and "llm.api_key_ref" in twice.value.message


def test_a_provider_that_does_not_answer_is_given_up_on() -> None:
    """A server key given as a reference to an unreachable vault held `loom serve` at start-up for
    ever; it fails with SECRETS_PROVIDER_FAILED after ``secrets.resolve_timeout_seconds``."""
    import threading

    release = threading.Event()
    try:
        with pytest.raises(LoomError) as info:
            resolve_reference("stuck://key", host_with_provider("stuck", resolve=lambda ref: release.wait(60)), {},
                              setting="server.auth_token_ref", timeout=0.2)
        assert info.value.code is ErrorCode.SECRETS_PROVIDER_FAILED
        assert "was not resolved within 0.2 s" in info.value.message
    finally:
        release.set()


def test_a_provider_raising_an_uncoded_exception_is_provider_failed_without_its_text() -> None:
    def crash(ref: object) -> object:
        raise RuntimeError("text quoting key-material-61f0")

    with pytest.raises(LoomError) as info:
        resolve_reference("crashy://key", host_with_provider("crashy", resolve=crash), {}, setting="llm.api_key_ref")
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_FAILED and "RuntimeError" in info.value.message
    assert "key-material-61f0" not in info.value.message


def test_a_closed_pool_builds_no_provider() -> None:
    """A call given up on may still ask the pool for another scheme's provider after the run closed
    them all: that provider would never be closed. The pool refuses."""
    from loom_core.secrets.providers import ProviderPool

    pool = ProviderPool(PluginHost(environ={}), {})
    pool.close()
    with pytest.raises(LoomError) as info:
        pool.get("env")
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_UNAVAILABLE and "after the providers were closed" in (
        info.value.message
    )
