"""Load the backends configuration selects, and nothing else.

Discovery reads entry-point metadata (no imports); loading one selected
backend goes through stevedore's ``NamedExtensionManager`` restricted to that
name, and the loaded object is registered with pluggy, whose
``loom_register_backends`` hook fills the :class:`BackendRegistry`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from loom_core import hookspecs
from loom_core.contracts import BackendContext, Kind
from loom_core.errors import ErrorCode, LoomError
from loom_core.plugins.discovery import PluginInfo, disabled_from, installed, is_disabled, not_installed_message
from loom_core.plugins.registry import BackendRegistry, BackendSpec

#: The hook every backend plugin implements to register its backends.
HOOK_NAME = "loom_register_backends"


class PluginHost:
    """One pluggy manager plus the registry of backends loaded into it."""

    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
        secrets_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.environ: Mapping[str, str] = dict(os.environ if environ is None else environ)
        #: ``secrets.providers`` of the configuration: each scheme's provider options
        self.secrets_options: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (secrets_options or {}).items()}
        self.disabled = disabled_from(self.environ, disabled)
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.registry = BackendRegistry()
        self._failures: dict[str, LoomError] = {}

    @classmethod
    def for_config(cls, config: Any, environ: Mapping[str, str] | None = None) -> PluginHost:
        """The host a configuration asks for: its disabled plugins and its secrets providers' options."""
        return cls(disabled=config.plugins.disabled, environ=environ, secrets_options=config.secrets.providers)

    @property
    def hook(self) -> Any:
        """pluggy's hook relay: ``host.hook.loom_audit_event(event=...)``."""
        return self.pm.hook

    # -- listing ----------------------------------------------------------
    def installed(self, kind: Kind | None = None) -> list[PluginInfo]:
        kinds = [kind] if kind is not None else list(Kind)
        return [info for k in kinds for info in installed(k)]

    def status(self, info: PluginInfo) -> tuple[str, str]:
        """``(status, reason)``: loaded, failed, disabled, conflict or available."""
        if is_disabled(info.kind, info.name, self.disabled):
            return "disabled", f"disabled by {info.qualified!r} in plugins.disabled or LOOM_DISABLE_PLUGINS"
        failure = self._failures.get(info.qualified)
        if failure is not None:
            return "failed", failure.message
        if self.registry.get(info.kind, info.name) is not None:
            return "loaded", ""
        rivals = [i for i in installed(info.kind) if i.name == info.name]
        if len({i.distribution for i in rivals}) > 1:
            return "conflict", "name claimed by " + ", ".join(sorted(i.distribution for i in rivals))
        return "available", "not selected, not imported"

    # -- loading ----------------------------------------------------------
    def register_plugin(self, plugin: object, name: str) -> None:
        """Register an in-process plugin object (tests, embedding apps)."""
        if self.pm.is_registered(plugin):
            return  # one object serving several entry points registers once
        self.registry.current_plugin = name
        try:
            self.pm.register(plugin, name=name)
            impl = getattr(plugin, HOOK_NAME, None)
            if impl is not None:
                impl(registry=self.registry)
        finally:
            self.registry.current_plugin = ""

    def backend(self, kind: Kind | str, name: str) -> BackendSpec:
        """The spec for ``kind:name``, importing its plugin on first use."""
        kind = Kind(kind)
        spec = self.registry.get(kind, name)
        if spec is not None:
            return spec
        if is_disabled(kind, name, self.disabled):
            raise LoomError(
                ErrorCode.PLUGIN_DISABLED,
                f"{kind.value} backend {name!r} is selected but disabled "
                f"(plugins.disabled or LOOM_DISABLE_PLUGINS)",
            )
        candidates = [i for i in installed(kind) if i.name == name]
        if not candidates:
            raise LoomError(ErrorCode.PLUGIN_NOT_FOUND, not_installed_message(kind, name))
        if len({c.distribution for c in candidates}) > 1:
            raise LoomError(
                ErrorCode.PLUGIN_CONFLICT,
                f"{kind.value} backend {name!r} is claimed by several distributions: "
                + ", ".join(f"{c.distribution} {c.version}" for c in candidates)
                + "; uninstall or disable all but one",
            )
        plugin = self._load(candidates[0])
        spec = self.registry.get(kind, name)
        if spec is None:
            err = LoomError(
                ErrorCode.PLUGIN_INVALID,
                f"entry point {kind.namespace}:{name} ({candidates[0].distribution} "
                f"{candidates[0].version}) loaded but registered no {kind.value} backend named {name!r}; "
                + self._registration_hint(plugin, candidates[0].qualified),
            )
            self._failures[candidates[0].qualified] = err
            raise err
        return spec

    def _registration_hint(self, plugin: object, qualified: str) -> str:
        """What the plugin did register, or why its hook never ran (a misspelt hook name)."""
        registered = [f"{s.kind.value} {s.name!r}" for s in self.registry.specs() if s.plugin == qualified]
        if registered:
            return "it registered " + ", ".join(registered) + ": make the entry point's name the backend's name"
        if callable(getattr(plugin, HOOK_NAME, None)):
            return f"its {HOOK_NAME} hook ran but called no registry.add_* for that name"
        near = difflib.get_close_matches(HOOK_NAME, [a for a in dir(plugin) if a.startswith("loom_")], n=1)
        misspelt = f" (it has {near[0]!r})" if near else ""
        return f"it defines no {HOOK_NAME} hook{misspelt}: implement {HOOK_NAME}(registry) with @hookimpl"

    def create(self, kind: Kind | str, name: str, context: BackendContext | None = None) -> Any:
        """Build backend ``kind:name`` with ``context`` (environment defaults to the host's)."""
        spec = self.backend(kind, name)
        ctx = context if context is not None else BackendContext(environ=self.environ)
        return spec.factory(ctx)

    def _load(self, info: PluginInfo) -> object:
        """Import the entry point and register its plugin object; returns that object."""
        from stevedore import NamedExtensionManager  # imported only when loading

        errors: list[BaseException] = []

        def on_failure(_mgr: object, _ep: object, exc: BaseException) -> None:
            errors.append(exc)

        manager: NamedExtensionManager[Any] = NamedExtensionManager(
            info.kind.namespace,
            names=[info.name],
            on_load_failure_callback=on_failure,
            on_missing_entrypoints_callback=lambda names: None,
        )
        if errors or info.name not in manager.names():
            cause = errors[0] if errors else None
            reason = f"{type(cause).__name__}: {cause}" if cause else "entry point did not load"
            err = LoomError(
                ErrorCode.PLUGIN_LOAD_FAILED,
                f"entry point {info.kind.namespace}:{info.name} -> {info.target} from "
                f"{info.distribution} {info.version} failed to load: {reason}",
                details={"entry_point": info.qualified, "distribution": info.distribution, "version": info.version},
            )
            self._failures[info.qualified] = err
            raise err from cause
        plugin = manager[info.name].plugin
        try:
            self.register_plugin(plugin, name=info.qualified)
        except LoomError as exc:
            self._failures[info.qualified] = exc
            raise
        except Exception as exc:
            err = LoomError(
                ErrorCode.PLUGIN_LOAD_FAILED,
                f"entry point {info.kind.namespace}:{info.name} from {info.distribution} "
                f"{info.version} failed in loom_register_backends: {type(exc).__name__}: {exc}",
            )
            self._failures[info.qualified] = err
            raise err from exc
        return plugin
