"""The ``op://`` provider: one ``op read`` per reference, token from the runtime environment.

Values are not cached: each resolve asks 1Password, so a rotated secret is
picked up by the next run and nothing lingers in this object. The token is
read from the backend context's environment when the provider is built and
handed to the child only through its environment. ``close`` kills any ``op``
still running (see :mod:`loom_secrets_op.cli`): a call given up on must not
leave a process holding the token.
"""

from __future__ import annotations

from collections.abc import Mapping

from loom_core.contracts.secrets import SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_secrets_op import cli, reference

CAPABILITIES = frozenset({"auth", "subprocess"})
DEFAULT_TIMEOUT = 30.0


class OpProvider:
    """Resolves ``op://vault/item[/section]/field`` with ``op read``."""

    scheme = reference.SCHEME
    capabilities = CAPABILITIES

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        op_path: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._environ = dict(environ)
        self._op_path = op_path
        self._timeout = timeout
        self._children = cli.Children()

    def __repr__(self) -> str:
        token = "set" if self._environ.get(cli.TOKEN_VAR, "").strip() else "unset"
        return f"OpProvider(op_path={self._op_path!r}, timeout={self._timeout:g}, token={token})"

    def validate(self, ref: SecretRef) -> None:
        reference.parse(ref)

    def resolve(self, ref: SecretRef) -> SecretValue:
        parsed = reference.parse(ref)
        command = cli.OpCommand(cli.find_op(self._op_path, self._environ), self._timeout)
        token = self._environ.get(cli.TOKEN_VAR, "").strip()
        if not token:
            raise LoomError(
                ErrorCode.SECRETS_AUTH_MISSING,
                f"{parsed.raw}: {cli.TOKEN_VAR} is not set; give the runner a 1Password "
                "service account token in that variable (never in workflow YAML)",
            )
        return SecretValue(cli.read(command, parsed, self._environ, token, self._children))

    def close(self) -> None:
        """Kill the ``op`` children still running (they hold the token) and start no more.

        Safe while a resolve waits on another thread (it then fails); idempotent.
        """
        self._children.close()
