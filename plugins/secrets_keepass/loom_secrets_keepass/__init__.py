"""Loom secrets provider for ``keepass://`` references (KDBX 3.1 and 4, via pykeepass)."""

from loom_secrets_keepass.provider import KeepassProvider

__all__ = ["KeepassProvider"]
