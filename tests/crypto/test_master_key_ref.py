"""encryption.master_key_ref resolves only through the providers the configuration allows."""

from __future__ import annotations

import base64

import pytest

from loom_core.config import LoomConfig
from loom_core.crypto.masterkey import load_master_key
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.host import PluginHost

KEY = base64.b64encode(bytes(range(32))).decode()


def settings() -> object:
    return LoomConfig.model_validate({"encryption": {"master_key_ref": "env://MK_FOR_TEST"}}).encryption


def test_reference_resolves_through_the_host() -> None:
    """A master-key reference gives the key behind it."""
    env = {"MK_FOR_TEST": KEY}
    key = load_master_key(settings(), env, PluginHost(environ=env))
    assert key is not None


def test_a_disabled_provider_is_not_used_for_the_master_key() -> None:
    """With the env provider disabled in the configuration, the reference fails closed."""
    env = {"MK_FOR_TEST": KEY}
    with pytest.raises(LoomError) as info:
        load_master_key(settings(), env, PluginHost(disabled=["secrets:env"], environ=env))
    assert info.value.code is ErrorCode.SECRETS_PROVIDER_UNAVAILABLE
    assert "encryption.master_key_ref" in info.value.message


def test_a_reference_and_the_variable_together_are_refused() -> None:
    """encryption.master_key_ref plus a set LOOMEM_AT_REST_MASTER_KEY is CONFIG_INVALID naming both
    (one of two keys would otherwise be ignored), and neither key is echoed."""
    env = {"MK_FOR_TEST": KEY, "LOOMEM_AT_REST_MASTER_KEY": KEY}
    with pytest.raises(LoomError) as info:
        load_master_key(settings(), env, PluginHost(environ=env))
    assert info.value.code is ErrorCode.CONFIG_INVALID
    assert "encryption.master_key_ref" in info.value.message
    assert "LOOMEM_AT_REST_MASTER_KEY" in info.value.message
    assert KEY not in str(info.value)
