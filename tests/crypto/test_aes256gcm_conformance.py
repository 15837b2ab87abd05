"""The built-in aes256gcm cipher passes the cipher conformance kit."""

from __future__ import annotations

import pytest

from loom_core.contracts.cipher import Cipher
from loom_core.plugins.host import PluginHost
from loom_core.testing.cipher import CipherSuite


class TestAes256Gcm(CipherSuite):
    capabilities = frozenset({"aead", "wrap", "keyed"})

    @pytest.fixture
    def cipher(self) -> Cipher:
        """The backend as production builds it: through the ``loom.cipher`` entry point."""
        built: Cipher = PluginHost(environ={}).create("cipher", "aes256gcm")
        return built
