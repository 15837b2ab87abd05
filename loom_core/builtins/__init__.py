"""Backends shipped inside ``loom_core``, registered through the same entry points as plugins.

Each module is one plugin: ``aes256gcm`` (cipher), ``pii_regex`` (PII
filter ``regex``), ``secrets_env`` (secrets provider ``env``) and
``embed_hash`` (LLM ``hash``). Importing this package imports none of them.
"""
