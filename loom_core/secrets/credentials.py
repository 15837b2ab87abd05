"""Which environment variables hold secrets providers' own credentials.

Jobs never inherit them (``workflow.inject.scrubbed_environ``), workflow
variables may not be named after them (``loom check``), and ``env://`` may not
read them: a workflow that could reference the runner's vault token could
hand it to any job, which defeats keeping it out of jobs.
"""

from __future__ import annotations

from collections.abc import Mapping

#: Variables that are vault credentials themselves.
CREDENTIAL_VARIABLES = ("OP_SERVICE_ACCOUNT_TOKEN", "OP_CONNECT_TOKEN")
#: Prefixes of provider settings (a KeePass alias's path and credential indirections).
CREDENTIAL_PREFIXES = ("LOOM_KEEPASS_DB_",)
#: Settings whose value is the *name* of the variable holding a credential.
_INDIRECTIONS = ("_PASSWORD_ENV", "_KEYFILE_ENV")


def is_credential_name(name: str) -> bool:
    """Whether ``name`` is a provider credential or setting, whatever the environment holds."""
    return name in CREDENTIAL_VARIABLES or name.startswith(CREDENTIAL_PREFIXES)


def indirect_credentials(environ: Mapping[str, str]) -> set[str]:
    """The variables a KeePass alias names as holding its master password or keyfile path,
    stripped as the provider reads them (``"KPW "`` names KPW)."""
    return {
        environ[key].strip()
        for key in environ
        if key.startswith(CREDENTIAL_PREFIXES) and key.endswith(_INDIRECTIONS) and environ[key].strip()
    }


def credential_names(environ: Mapping[str, str]) -> set[str]:
    """Every variable of ``environ`` that is a provider credential or setting, indirect ones included."""
    return {name for name in environ if is_credential_name(name)} | indirect_credentials(environ)
