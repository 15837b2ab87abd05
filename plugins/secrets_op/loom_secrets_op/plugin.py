"""Entry point ``loom.secrets: op``: registers the 1Password provider with the plugin host."""

from __future__ import annotations

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import AuthPolicy
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry
from loom_secrets_op import cli
from loom_secrets_op.provider import CAPABILITIES, DEFAULT_TIMEOUT, OpProvider

OPTIONS = frozenset({"op_path", "timeout_seconds"})
TIMEOUT_VAR = "LOOM_OP_TIMEOUT_SECONDS"

#: Every variable the provider reads, and the one that is a credential. The kernel builds the
#: provider with these alone, so the list must hold all it needs: the token; where ``op`` is
#: (``LOOM_OP_PATH``, ``PATH``) and the timeout; and what ``op`` itself needs in its
#: allow-listed environment (``HOME``, config directory, proxies, CA bundle, locale).
AUTH_POLICY = AuthPolicy(
    credentials=frozenset({cli.TOKEN_VAR}),
    reads=frozenset({"PATH", "HOME", cli.OP_PATH_VAR, TIMEOUT_VAR, *cli.PASSTHROUGH}),
)


def factory(ctx: BackendContext) -> OpProvider:
    """Build from ``ctx.options`` (``op_path``, ``timeout_seconds``) and ``ctx.environ`` only.

    Runs build providers from the environment alone, so both settings also have
    variables: ``LOOM_OP_PATH`` (read when resolving) and ``LOOM_OP_TIMEOUT_SECONDS``.
    """
    unknown = sorted(set(ctx.options) - OPTIONS)
    if unknown:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"unknown option(s) {unknown} for the op secrets provider; accepted: {sorted(OPTIONS)}",
        )
    op_path = ctx.options.get("op_path")
    if op_path is not None and (not isinstance(op_path, str) or not op_path.strip()):
        raise LoomError(ErrorCode.CONFIG_INVALID, "option op_path must be a non-empty path string")
    timeout: object = ctx.options.get("timeout_seconds", DEFAULT_TIMEOUT)
    source = "option timeout_seconds"
    if "timeout_seconds" not in ctx.options and ctx.environ.get(TIMEOUT_VAR, "").strip():
        source = TIMEOUT_VAR
        try:
            timeout = float(ctx.environ[TIMEOUT_VAR])
        except ValueError:
            raise LoomError(ErrorCode.CONFIG_INVALID, f"{TIMEOUT_VAR} must be a number of seconds") from None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise LoomError(ErrorCode.CONFIG_INVALID, f"{source} must be a number of seconds in (0, 600]")
    return OpProvider(ctx.environ, op_path=op_path, timeout=float(timeout))


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_secrets(
        "op",
        factory,
        capabilities=CAPABILITIES,
        description="op://vault/item[/section]/field via the 1Password CLI and a service account token",
        auth_policy=AUTH_POLICY,
    )
