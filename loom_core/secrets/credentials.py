"""Which environment variables a secrets provider may read, and which hold providers' credentials.

Every secrets backend declares an :class:`~loom_core.contracts.secrets.AuthPolicy`
when it registers. This module is the one place that evaluates those policies
over an environment:

* :func:`allowed_environ` is what a provider is built with (explicit
  allowlisting: a variable its policy does not name, it does not see);
* :func:`protected_names` / :func:`protected_prefixes` are the credentials and
  settings of every registered backend, plus :data:`BASELINE` (the first-party
  providers' variables, protected even when their plugin is disabled or not
  loaded). Jobs never inherit them (``workflow.inject.scrubbed_environ``),
  workflow variables may not be named after them (``loom check``), and
  ``env://`` may not read them: a workflow that could reference the runner's
  vault token could hand it to any job, which defeats keeping it out of jobs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loom_core.contracts import Kind
from loom_core.contracts.secrets import AuthPolicy

#: Variables that are vault credentials themselves (1Password's service-account and Connect tokens).
CREDENTIAL_VARIABLES = ("OP_SERVICE_ACCOUNT_TOKEN", "OP_CONNECT_TOKEN")
#: Prefixes of provider settings (a KeePass alias's path and credential indirections).
CREDENTIAL_PREFIXES = ("LOOM_KEEPASS_DB_",)
#: Settings whose value is the *name* of the variable holding a credential.
INDIRECTION_SUFFIXES = ("_PASSWORD_ENV", "_KEYFILE_ENV")

#: The first-party providers' credentials and settings, protected whatever is registered.
BASELINE = AuthPolicy(
    credentials=frozenset(CREDENTIAL_VARIABLES),
    setting_prefixes=CREDENTIAL_PREFIXES,
    indirection_suffixes=INDIRECTION_SUFFIXES,
)

Policies = Iterable[AuthPolicy]


def registered_policies(host: Any) -> tuple[AuthPolicy, ...]:
    """:data:`BASELINE` and the policy of every secrets backend registered with ``host`` so far.

    ``host`` is a :class:`~loom_core.plugins.host.PluginHost` (anything without a registry
    gives the baseline alone). Backends are registered when their plugin loads: an
    in-process plugin at once, an installed one when a reference of its scheme is used.
    """
    policies = [BASELINE]
    registry = getattr(host, "registry", None)
    specs = getattr(registry, "specs", None)
    if callable(specs):
        for spec in specs():
            policy = getattr(spec, "auth_policy", None)
            if getattr(spec, "kind", None) is Kind.SECRETS and isinstance(policy, AuthPolicy):
                policies.append(policy)
    return tuple(policies)


def indirection_targets(policies: Policies, environ: Mapping[str, str]) -> set[str]:
    """The variables the indirection settings of ``environ`` name as holding a credential,
    stripped as the providers read them (``"KPW "`` names KPW)."""
    targets: set[str] = set()
    for policy in policies:
        if not policy.indirection_suffixes:
            continue
        for key, value in environ.items():
            if key.startswith(policy.setting_prefixes) and key.endswith(policy.indirection_suffixes):
                name = value.strip()
                if name:
                    targets.add(name)
    return targets


def allowed_environ(policy: AuthPolicy, environ: Mapping[str, str]) -> dict[str, str]:
    """The part of ``environ`` a provider with ``policy`` is built with.

    Everything for ``reads_any``; otherwise its credentials, the variables it reads, its
    settings (by prefix) and the variables its indirections name. The empty policy: nothing.
    """
    if policy.reads_any:
        return dict(environ)
    named = policy.credentials | policy.reads | indirection_targets((policy,), environ)
    prefixes = policy.setting_prefixes
    return {
        key: value
        for key, value in environ.items()
        if key in named or (prefixes and key.startswith(prefixes))
    }


def protected_prefixes(policies: Policies) -> tuple[str, ...]:
    """Prefixes of every protected settings variable."""
    return tuple(sorted({prefix for policy in policies for prefix in policy.setting_prefixes}))


def protected_names(policies: Policies, environ: Mapping[str, str]) -> frozenset[str]:
    """Every credential variable of ``policies``: the exact names (set or not), the settings
    ``environ`` holds under their prefixes, and the variables the indirections name."""
    chosen = tuple(policies)
    prefixes = protected_prefixes(chosen)
    names = {name for policy in chosen for name in policy.credentials}
    if prefixes:
        names.update(key for key in environ if key.startswith(prefixes))
    return frozenset(names | indirection_targets(chosen, environ))


def is_credential_name(name: str, policies: Policies = (BASELINE,)) -> bool:
    """Whether ``name`` is a provider credential or setting, whatever the environment holds."""
    chosen = tuple(policies)
    return any(name in policy.credentials for policy in chosen) or name.startswith(protected_prefixes(chosen))
