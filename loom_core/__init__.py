"""Loom: a small plugin kernel for agent memory (Loomem) and workflow secrets.

Importing this package is cheap on purpose: heavy dependencies load only in
the modules that need them, so ``loom --help`` starts fast.
"""

__version__ = "0.1.0"
