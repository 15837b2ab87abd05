"""The ``dir`` secrets provider: one file per secret, like ``/run/secrets`` in containers.

``dir://NAME`` resolves to the exact bytes of ``<root>/NAME``. The root comes
from the backend options (``root = "/run/secrets"``). Names are single path
components, so a reference can never leave the root; symlinks pointing
outside it are refused. Every failure is a coded ``LoomError`` naming the
reference, never the file's contents.
"""

from __future__ import annotations

import re
from pathlib import Path

from loom_core.contracts import BackendContext
from loom_core.contracts.secrets import AuthPolicy, SecretRef, SecretValue
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry

SCHEME = "dir"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class DirSecretsProvider:
    """Reads secrets from files directly inside ``root``; never writes anything."""

    scheme = SCHEME
    capabilities: frozenset[str] = frozenset({"binary"})  # values are raw bytes

    def __init__(self, root: Path) -> None:
        self._root = root

    def __repr__(self) -> str:
        return f"DirSecretsProvider(root={str(self._root)!r})"

    def validate(self, ref: SecretRef) -> None:
        """Syntax only: right scheme, one safe path component, no #field. Touches no file."""
        if ref.scheme != SCHEME:
            raise LoomError(ErrorCode.SECRETS_REF_INVALID, f"{ref.raw!r}: the dir provider serves only dir://NAME")
        if ref.fragment is not None or not _NAME.fullmatch(ref.path):
            raise LoomError(
                ErrorCode.SECRETS_REF_INVALID,
                f"{ref.raw!r}: expected dir://NAME with NAME made of letters, digits, '_', '.', '-' "
                "(no '/', no leading '.', no #field)",
            )

    def resolve(self, ref: SecretRef) -> SecretValue:
        """The file's exact bytes, or SECRETS_NOT_FOUND / _ACCESS_DENIED / _VALUE_UNSAFE."""
        self.validate(ref)
        path = self._root / ref.path
        try:
            if path.resolve().parent != self._root.resolve():
                raise LoomError(ErrorCode.SECRETS_ACCESS_DENIED, f"{ref.raw}: the file links outside the root")
            data = path.read_bytes()
        except FileNotFoundError:
            raise LoomError(
                ErrorCode.SECRETS_NOT_FOUND, f"{ref.raw}: no file {ref.path!r} in the secrets directory"
            ) from None
        except PermissionError:
            raise LoomError(ErrorCode.SECRETS_ACCESS_DENIED, f"{ref.raw}: the file is not readable") from None
        except IsADirectoryError:
            raise LoomError(ErrorCode.SECRETS_NOT_FOUND, f"{ref.raw}: {ref.path!r} is a directory") from None
        if not data:
            raise LoomError(ErrorCode.SECRETS_VALUE_UNSAFE, f"{ref.raw}: the file is empty")
        return SecretValue(data)

    def close(self) -> None:
        """Nothing to release: files are opened and closed per resolve."""


def create(ctx: BackendContext) -> DirSecretsProvider:
    """Factory: requires option ``root``, an existing directory."""
    unknown = sorted(set(ctx.options) - {"root"})
    if unknown:
        raise LoomError(ErrorCode.CONFIG_INVALID, f"dir provider: unknown option(s) {unknown}; only 'root'")
    root = ctx.options.get("root")
    if not root:
        raise LoomError(
            ErrorCode.SECRETS_PROVIDER_UNAVAILABLE,
            "dir provider: option 'root' (the secrets directory) is not set",
        )
    path = Path(str(root))
    if not path.is_dir():
        raise LoomError(ErrorCode.SECRETS_PROVIDER_UNAVAILABLE, f"dir provider: {path} is not a directory")
    return DirSecretsProvider(path)


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_secrets(
        SCHEME,
        create,
        capabilities=DirSecretsProvider.capabilities,
        description="dir://NAME: one file per secret",
        auth_policy=AuthPolicy(),  # reads no environment variable: its only setting is the `root` option
    )
