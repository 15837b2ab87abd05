"""Loom secrets provider for ``op://`` references, resolved with the 1Password CLI."""

from loom_secrets_op.provider import OpProvider

__all__ = ["OpProvider"]
