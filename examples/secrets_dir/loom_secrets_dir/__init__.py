"""Example secrets provider for Loom: ``dir://NAME`` is the file ``NAME`` in one directory."""
