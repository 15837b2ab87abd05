"""Secrets providers by scheme, built through the plugin host: one per scheme per run.

The scheme of a reference names the ``secrets`` backend that serves it; there
is no fallback to another provider. Plugin-level failures (not installed,
disabled, failed to load) become ``SECRETS_PROVIDER_UNAVAILABLE`` so every
resolution failure carries a ``SECRETS_*`` code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from loom_core.contracts import BackendContext, Kind
from loom_core.contracts.secrets import AuthPolicy, SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError, raised_at
from loom_core.secrets import credentials
from loom_core.secrets.bounded import DEFAULT_RESOLVE_SECONDS, CallTimedOut, call_bounded

CLOSE_GRACE_SECONDS = 5.0  # closing providers after a call that was given up on
Scrub = Callable[[str], str]


class SecretsHost(Protocol):
    """What resolution needs of a :class:`~loom_core.plugins.host.PluginHost`."""

    def backend(self, kind: Kind | str, name: str) -> Any: ...

    def create(self, kind: Kind | str, name: str, context: BackendContext | None = None) -> Any: ...


def _identity(text: str) -> str:
    return text


def policy_of(spec: object) -> AuthPolicy:
    """The :class:`AuthPolicy` a secrets backend registered with (the empty one if none)."""
    policy = getattr(spec, "auth_policy", None)
    return policy if isinstance(policy, AuthPolicy) else AuthPolicy()


def provider_context(
    spec: object,
    environ: Mapping[str, str],
    policies: tuple[AuthPolicy, ...],
    options: Mapping[str, Any] | None = None,
) -> BackendContext:
    """The context a secrets backend is built with: ``environ`` cut down to what its policy
    allows (explicit allowlisting), and the names ``policies`` protect."""
    return BackendContext(
        environ=credentials.allowed_environ(policy_of(spec), environ),
        options=dict(options or {}),
        protected=credentials.protected_names(policies, environ),
        protected_prefixes=credentials.protected_prefixes(policies),
    )


class ProviderPool:
    """Builds each scheme's provider on first use and closes them all at the end."""

    def __init__(
        self, host: SecretsHost, environ: Mapping[str, str], options: Mapping[str, Mapping[str, Any]] | None = None
    ) -> None:
        self.host = host
        self.environ = dict(environ)
        # per scheme, from [secrets.providers.<scheme>]; the host carries the configuration's
        self.options = dict(options if options is not None else getattr(host, "secrets_options", None) or {})
        self._providers: dict[str, Any] = {}
        self._failed: dict[str, LoomError] = {}
        self._unloadable: dict[str, LoomError] = {}  # schemes whose plugin failed to load in load()
        self._closed = False

    def available(self, scheme: str) -> None:
        """Raise ``SECRETS_PROVIDER_UNAVAILABLE`` unless a provider for ``scheme`` loads."""
        if scheme in self._providers:
            return
        if scheme in self._unloadable:  # the first attempt's reason: a retry reports a different one
            raise self._unloadable[scheme]
        try:
            self.host.backend(Kind.SECRETS, scheme)
        except LoomError as exc:
            if exc.code.value.startswith("SECRETS_"):
                raise
            raise LoomError(
                ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
                f"no usable secrets provider for scheme {scheme!r} ({exc.code.value}: {exc.message}); "
                f"install and enable the plugin that provides secrets backend {scheme!r}",
                details={"scheme": scheme, "cause": exc.code.value},
            ) from None

    def load(self, schemes: Iterable[str]) -> None:
        """Load the plugin of every scheme that has one (failures are left for :meth:`get`).

        Call before building providers when the schemes are known (a workflow's references):
        each loaded backend's policy then protects its credentials from every provider built
        after, ``env://`` included, whichever reference comes first.
        """
        for scheme in schemes:
            try:
                self.available(scheme)
            except LoomError as exc:  # a plugin failing to register is not loaded twice
                self._unloadable[scheme] = exc
            except Exception:  # noqa: S112 - reported when the scheme is used
                continue

    def policies(self) -> tuple[AuthPolicy, ...]:
        """The baseline and the policy of every secrets backend registered so far."""
        return credentials.registered_policies(self.host)

    def protected(self) -> frozenset[str]:
        """Variables of the run's environment that are credentials or settings of a secrets
        provider (registered or first-party): no job inherits them."""
        return credentials.protected_names(self.policies(), self.environ)

    def get(self, scheme: str) -> Any:
        """The provider for ``scheme``, built once per run with what its policy allows of the
        run's environment."""
        if self._closed:
            raise LoomError(
                ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
                f"secrets provider {scheme!r} was asked for after the providers were closed",
                details={"scheme": scheme},
            )
        if scheme in self._providers:
            return self._providers[scheme]
        if scheme in self._failed:
            raise self._failed[scheme]
        self.available(scheme)
        try:
            spec = self.host.backend(Kind.SECRETS, scheme)
            context = provider_context(spec, self.environ, self.policies(), self.options.get(scheme))
            provider = self.host.create(Kind.SECRETS, scheme, context)
        except LoomError as exc:
            if not exc.code.value.startswith("SECRETS_"):
                exc = LoomError(
                    ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
                    f"secrets provider {scheme!r} could not start ({exc.code.value}: {exc.message})",
                    details={"scheme": scheme, "cause": exc.code.value},
                )
            self._failed[scheme] = exc
            raise exc from None
        except Exception as exc:
            err = LoomError(
                ErrorCode.SECRETS_PROVIDER_FAILED,
                f"secrets provider {scheme!r} failed to start: {type(exc).__name__}{raised_at(exc)}"
                + (" (a provider sees only the environment variables its AuthPolicy declares: a variable it "
                   "reads but did not declare is missing)" if isinstance(exc, KeyError) else ""),
                details={"scheme": scheme},
            )
            self._failed[scheme] = err
            raise err from None
        served = getattr(provider, "scheme", None)
        if served != scheme:  # it would validate and resolve references of another scheme
            with contextlib.suppress(Exception):
                provider.close()
            err = LoomError(
                ErrorCode.SECRETS_PROVIDER_FAILED,
                f"secrets backend {scheme!r} built a provider that serves {served!r}, not {scheme!r}; "
                "fix the plugin (its conformance run names the mismatch)",
                details={"scheme": scheme},
            )
            self._failed[scheme] = err
            raise err
        self._providers[scheme] = provider
        return provider

    def close(self, scrub: Scrub = _identity, *, grace: float | None = None) -> list[str]:
        """Close every provider; returns scrubbed messages for those that failed to close.

        After a call that was given up on, pass ``grace``: a provider still busy with it may
        never let ``close`` through, so the wait ends after ``grace`` seconds, with a message.
        Once closed, the pool builds no provider again (an abandoned call may still ask).
        """
        self._closed = True
        if grace is not None:
            try:
                return call_bounded(lambda: self._close_all(scrub), timeout=grace)
            except CallTimedOut:
                return [f"the secrets providers did not close within {grace:g} s "
                        "(one is still busy with a request that was given up on)"]
        return self._close_all(scrub)

    def _close_all(self, scrub: Scrub) -> list[str]:
        messages: list[str] = []
        for scheme, provider in reversed(list(self._providers.items())):
            try:
                provider.close()
            except Exception as exc:
                # Closing comes after the values are gone, so nothing could mask one quoted here: no
                # provider text is shown, only the error's code (a coded error) or its type.
                detail = exc.code.value if isinstance(exc, LoomError) else type(exc).__name__
                messages.append(scrub(f"secrets provider {scheme!r} failed to close: {detail}"))
        self._providers.clear()
        return messages


def resolve_reference(
    raw: str, host: SecretsHost, environ: Mapping[str, str], *, setting: str, timeout: float = DEFAULT_RESOLVE_SECONDS
) -> SecretValue:
    """Resolve one reference held by a server setting (``setting`` names it in errors).

    The same fail-closed path as a workflow run: the scheme picks the
    provider, a missing or disabled provider is ``SECRETS_PROVIDER_UNAVAILABLE``,
    a provider that does not answer within ``timeout`` seconds
    (``secrets.resolve_timeout_seconds``) or fails with anything but a coded
    error is ``SECRETS_PROVIDER_FAILED``, and a blank value is refused rather
    than treated as "not configured".
    """
    try:
        ref = SecretRef.parse(raw)
    except LoomError as exc:
        raise LoomError(exc.code, f"{setting}: {exc.message}") from None
    pool = ProviderPool(host, environ)
    abandoned = False
    try:
        value = call_bounded(lambda: pool.get(ref.scheme).resolve(ref), timeout=timeout)
    except LoomError as exc:
        raise LoomError(exc.code, f"{setting}: {exc.message}", details=exc.details) from None
    except CallTimedOut:
        abandoned = True
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"{setting} = {ref.raw!r} was not resolved within {timeout:g} s (secrets.resolve_timeout_seconds): "
            "its provider is not answering; check that the vault is reachable",
        ) from None
    except Exception as exc:  # a foreign exception's text is not trusted to be value-free
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_FAILED,
            f"{setting} = {ref.raw!r}: the provider raised {type(exc).__name__}{raised_at(exc)}",
        ) from None
    finally:
        pool.close(grace=CLOSE_GRACE_SECONDS if abandoned else None)
    if not isinstance(value, SecretValue) or not value.reveal().strip():
        raise LoomError(
            ErrorCode.SECRETS_VALUE_UNSAFE,
            f"{setting} = {ref.raw!r} resolved to an empty value; store the secret there",
        )
    return value


def resolve_key_setting(
    ref: str,
    *,
    ref_setting: str,
    env_name: str,
    env_setting: str,
    what: str,
    environ: Mapping[str, str],
    host: SecretsHost | None,
    timeout: float = DEFAULT_RESOLVE_SECONDS,
) -> SecretValue:
    """Resolve a server key configured as a secret reference (``ref_setting``) instead of the
    environment variable ``env_setting`` names (the API key, the LLM key, the master key).

    The reference and a set variable together are ``CONFIG_INVALID``: two keys, one of them
    silently ignored by a precedence rule. A reference to that very variable is one key.
    """
    if environ.get(env_name) is not None and ref != f"env://{env_name}":
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"the {what} is configured twice: {ref_setting} is set and so is the environment "
            f"variable {env_name} ({env_setting}); unset one of them",
        )
    if host is None:
        raise LoomError(ErrorCode.SECRETS_PROVIDER_UNAVAILABLE, f"{ref_setting} needs a plugin host to resolve it")
    return resolve_reference(ref, host, environ, setting=ref_setting, timeout=timeout)
