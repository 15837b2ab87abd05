"""Entry point ``loom.secrets: keepass``: registers the provider with the plugin host."""

from __future__ import annotations

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import AuthPolicy
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry
from loom_secrets_keepass.provider import CAPABILITIES, KeepassProvider
from loom_secrets_keepass.settings import PREFIX

#: The provider reads its aliases' settings (``LOOM_KEEPASS_DB_<ALIAS>_PATH``, ``_PASSWORD_ENV``,
#: ``_KEYFILE_ENV``) and the variables those two indirections name (master password, keyfile
#: path); nothing else. All of them are protected: jobs and ``env://`` never get them.
AUTH_POLICY = AuthPolicy(setting_prefixes=(PREFIX,), indirection_suffixes=("_PASSWORD_ENV", "_KEYFILE_ENV"))


def factory(ctx: BackendContext) -> KeepassProvider:
    """Build a provider reading only ``ctx.environ`` (aliases and credential indirections).

    It takes no options: databases and credentials are runtime environment, so
    an option here is a mistake worth reporting rather than ignoring.
    """
    if ctx.options:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"the keepass secrets provider takes no options (got {sorted(ctx.options)}); "
            "configure databases with LOOM_KEEPASS_DB_<ALIAS>_PATH / _PASSWORD_ENV / _KEYFILE_ENV",
        )
    return KeepassProvider(ctx.environ)


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_secrets(
        "keepass",
        factory,
        capabilities=CAPABILITIES,
        description="keepass://ALIAS/Group/Entry#field from KDBX 3.1/4 databases (pykeepass)",
        auth_policy=AUTH_POLICY,
    )
