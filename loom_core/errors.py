"""The one error type Loom raises, and the catalogue of its stable codes.

Every failure a user can act on is a :class:`LoomError` with a code from
:class:`ErrorCode`. Codes are part of the public contract: scripts match on
them, so a code is never renamed or reused. Messages name what is wrong and
how to fix it, and never contain secret material: callers pass references,
names and paths, never values.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Stable error codes. ``docs/errors.md`` is generated from :data:`CATALOGUE`."""

    # -- general -----------------------------------------------------------
    USAGE_ERROR = "USAGE_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # -- configuration -----------------------------------------------------
    CONFIG_NOT_FOUND = "CONFIG_NOT_FOUND"
    CONFIG_INVALID = "CONFIG_INVALID"
    CONFIG_SECRET_LITERAL = "CONFIG_SECRET_LITERAL"  # noqa: S105 - an error code
    # -- plugins -----------------------------------------------------------
    PLUGIN_NOT_FOUND = "PLUGIN_NOT_FOUND"
    PLUGIN_LOAD_FAILED = "PLUGIN_LOAD_FAILED"
    PLUGIN_CONFLICT = "PLUGIN_CONFLICT"
    PLUGIN_DISABLED = "PLUGIN_DISABLED"
    PLUGIN_INVALID = "PLUGIN_INVALID"
    # -- storage -----------------------------------------------------------
    STORAGE_LOCKED = "STORAGE_LOCKED"
    STORAGE_UNKNOWN_KEYSPACE = "STORAGE_UNKNOWN_KEYSPACE"
    STORAGE_CLOSED = "STORAGE_CLOSED"
    STORAGE_IO = "STORAGE_IO"
    # -- cipher / encryption at rest ----------------------------------------
    CIPHER_KEY_INVALID = "CIPHER_KEY_INVALID"
    CIPHER_AAD_REQUIRED = "CIPHER_AAD_REQUIRED"
    CIPHER_DECRYPT_FAILED = "CIPHER_DECRYPT_FAILED"
    ENCRYPTION_KEY_INVALID = "ENCRYPTION_KEY_INVALID"
    ENCRYPTION_KEY_MISSING = "ENCRYPTION_KEY_MISSING"
    ENCRYPTION_KEY_MISMATCH = "ENCRYPTION_KEY_MISMATCH"
    ENCRYPTION_KEY_DESTROYED = "ENCRYPTION_KEY_DESTROYED"
    # -- index -------------------------------------------------------------
    INDEX_LOCKED = "INDEX_LOCKED"
    INDEX_QUERY_INVALID = "INDEX_QUERY_INVALID"
    INDEX_IO = "INDEX_IO"
    INDEX_CLOSED = "INDEX_CLOSED"
    # -- LLM ---------------------------------------------------------------
    LLM_AUTH_MISSING = "LLM_AUTH_MISSING"
    LLM_AUTH_INVALID = "LLM_AUTH_INVALID"
    LLM_UNAVAILABLE = "LLM_UNAVAILABLE"
    LLM_RATE_LIMITED = "LLM_RATE_LIMITED"
    LLM_BAD_RESPONSE = "LLM_BAD_RESPONSE"
    LLM_CAPABILITY_MISSING = "LLM_CAPABILITY_MISSING"
    # -- PII ---------------------------------------------------------------
    PII_CONFIG_INVALID = "PII_CONFIG_INVALID"
    PII_FILTER_FAILED = "PII_FILTER_FAILED"
    # -- secrets -----------------------------------------------------------
    SECRETS_REF_INVALID = "SECRETS_REF_INVALID"
    SECRETS_PROVIDER_UNAVAILABLE = "SECRETS_PROVIDER_UNAVAILABLE"
    SECRETS_AUTH_MISSING = "SECRETS_AUTH_MISSING"
    SECRETS_AUTH_INVALID = "SECRETS_AUTH_INVALID"
    SECRETS_ACCESS_DENIED = "SECRETS_ACCESS_DENIED"
    SECRETS_NOT_FOUND = "SECRETS_NOT_FOUND"
    SECRETS_FIELD_NOT_FOUND = "SECRETS_FIELD_NOT_FOUND"
    SECRETS_AMBIGUOUS = "SECRETS_AMBIGUOUS"
    SECRETS_VALUE_UNSAFE = "SECRETS_VALUE_UNSAFE"
    SECRETS_PROVIDER_FAILED = "SECRETS_PROVIDER_FAILED"
    SECRETS_UNSAFE_DEBUG_TRACE = "SECRETS_UNSAFE_DEBUG_TRACE"
    # -- workflows ---------------------------------------------------------
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"
    WORKFLOW_YAML_INVALID = "WORKFLOW_YAML_INVALID"
    WORKFLOW_SCHEMA_INVALID = "WORKFLOW_SCHEMA_INVALID"
    WORKFLOW_CYCLE = "WORKFLOW_CYCLE"
    WORKFLOW_JOB_FAILED = "WORKFLOW_JOB_FAILED"
    WORKFLOW_DOCKER_UNAVAILABLE = "WORKFLOW_DOCKER_UNAVAILABLE"
    WORKFLOW_RECEIPT_UNWRITABLE = "WORKFLOW_RECEIPT_UNWRITABLE"
    # -- memory server -----------------------------------------------------
    AUTH_REQUIRED = "AUTH_REQUIRED"
    AUTH_INVALID = "AUTH_INVALID"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    BACKUP_FAILED = "BACKUP_FAILED"
    SERVER_UNAVAILABLE = "SERVER_UNAVAILABLE"
    SERVER_BIND_FAILED = "SERVER_BIND_FAILED"
    OAUTH_UNAVAILABLE = "OAUTH_UNAVAILABLE"


_CATALOGUE_ROWS: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.USAGE_ERROR: (
        "The command line was not understood.",
        "Run `loom --help` or `loom COMMAND --help` for the accepted arguments.",
    ),
    ErrorCode.INTERNAL_ERROR: (
        "An unexpected failure inside Loom; the message names the operation.",
        "Report it with the operation name; the message never contains secret values.",
    ),
    ErrorCode.CONFIG_NOT_FOUND: (
        "The configuration file named on the command line does not exist.",
        "Check the path, or omit `--config` to use the defaults.",
    ),
    ErrorCode.CONFIG_INVALID: (
        "A configuration key is unknown, has the wrong type or an impossible value.",
        "Fix the key the message names; `config.example.toml` documents every key.",
    ),
    ErrorCode.CONFIG_SECRET_LITERAL: (
        "A configuration key that holds a secret contains a literal value.",
        "Put the value in an environment variable and name it (`*_env` keys) "
        "or use a secret reference such as `env://NAME`.",
    ),
    ErrorCode.PLUGIN_NOT_FOUND: (
        "No installed plugin provides the backend the configuration selects.",
        "Install the plugin's distribution, or select an installed backend (`loom plugins`).",
    ),
    ErrorCode.PLUGIN_LOAD_FAILED: (
        "A selected plugin failed to import or to register its backend.",
        "The message names the entry point, distribution, version and the original "
        "exception; reinstall or fix that distribution.",
    ),
    ErrorCode.PLUGIN_CONFLICT: (
        "Two installed distributions claim the same backend name for one kind.",
        "Uninstall one of them, or disable one with `LOOM_DISABLE_PLUGINS`.",
    ),
    ErrorCode.PLUGIN_DISABLED: (
        "The configuration selects a backend that is disabled.",
        "Remove it from `plugins.disabled` / `LOOM_DISABLE_PLUGINS`, or select another.",
    ),
    ErrorCode.PLUGIN_INVALID: (
        "A plugin registered something that does not satisfy its kind's contract.",
        "Fix the plugin; its conformance run names the broken guarantee.",
    ),
    ErrorCode.STORAGE_LOCKED: (
        "Another process holds the storage directory open.",
        "Stop the other process (one server per data directory), then retry.",
    ),
    ErrorCode.STORAGE_UNKNOWN_KEYSPACE: (
        "A keyspace (column family) was used that the storage was not opened with.",
        "Open the storage with every keyspace it needs.",
    ),
    ErrorCode.STORAGE_CLOSED: (
        "The storage was used after it was closed.",
        "Do not keep references to a closed storage.",
    ),
    ErrorCode.STORAGE_IO: (
        "The storage backend failed to read or write its files.",
        "Check disk space and permissions of the directory the message names.",
    ),
    ErrorCode.CIPHER_KEY_INVALID: (
        "A key has the wrong length or format for the cipher.",
        "Supply a key of the size the cipher declares (32 bytes for AES-256).",
    ),
    ErrorCode.CIPHER_AAD_REQUIRED: (
        "Encryption was asked for without associated data.",
        "Pass the record's identity (stream, id) as associated data.",
    ),
    ErrorCode.CIPHER_DECRYPT_FAILED: (
        "Ciphertext failed authentication: wrong key, tampered bytes, or a row moved "
        "to another record.",
        "Restore the record from a backup taken with the same master key.",
    ),
    ErrorCode.ENCRYPTION_KEY_INVALID: (
        "`LOOMEM_AT_REST_MASTER_KEY` is not 32 bytes of base64.",
        "Generate one with `python3 -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\"`.",
    ),
    ErrorCode.ENCRYPTION_KEY_MISSING: (
        "Encryption is expected (`LOOMEM_AT_REST_EXPECT_ENABLED=1`) or required by the "
        "data, but no master key is set.",
        "Set `LOOMEM_AT_REST_MASTER_KEY` to the key the data was written with.",
    ),
    ErrorCode.ENCRYPTION_KEY_MISMATCH: (
        "The master key does not match the one the data was written with.",
        "Set the master key whose fingerprint the message names.",
    ),
    ErrorCode.ENCRYPTION_KEY_DESTROYED: (
        "The stream's data key was destroyed (crypto-shredded); its rows are unreadable.",
        "Nothing to fix: the stream was deleted.",
    ),
    ErrorCode.INDEX_LOCKED: (
        "Another process holds the index writer.",
        "Stop the other process (one writer per index directory), then retry.",
    ),
    ErrorCode.INDEX_QUERY_INVALID: (
        "The search query could not be parsed.",
        "Simplify the query; quotes and operators must be balanced.",
    ),
    ErrorCode.INDEX_IO: (
        "The index failed to read or write its files.",
        "Check the index directory; `loom` can rebuild the index from storage.",
    ),
    ErrorCode.INDEX_CLOSED: (
        "The index was used after it was closed.",
        "Do not keep references to a closed index.",
    ),
    ErrorCode.LLM_AUTH_MISSING: (
        "The LLM backend needs an API key and none is set.",
        "Set the environment variable named by `llm.api_key_env`.",
    ),
    ErrorCode.LLM_AUTH_INVALID: (
        "The LLM provider rejected the API key.",
        "Check or rotate the key in the variable named by `llm.api_key_env`.",
    ),
    ErrorCode.LLM_UNAVAILABLE: (
        "The LLM provider could not be reached or kept failing after retries.",
        "Check connectivity and the provider's status, then retry.",
    ),
    ErrorCode.LLM_RATE_LIMITED: (
        "The LLM provider kept answering 429 after retries.",
        "Lower the request rate or raise the account's limits.",
    ),
    ErrorCode.LLM_BAD_RESPONSE: (
        "The LLM provider answered with something that does not fit its API.",
        "Check the configured model and base URL.",
    ),
    ErrorCode.LLM_CAPABILITY_MISSING: (
        "The selected LLM backend lacks a capability (e.g. chat on an embeddings-only backend).",
        "Select a backend that declares the capability.",
    ),
    ErrorCode.PII_CONFIG_INVALID: (
        "The PII filter's options are invalid (e.g. an unknown `detect` kind).",
        "Fix the `[pii]` key the message names.",
    ),
    ErrorCode.PII_FILTER_FAILED: (
        "The PII filter raised while filtering text bound for the LLM, so the call was not made.",
        "Fix or replace the `[pii]` backend the message names (the text itself is never quoted).",
    ),
    ErrorCode.SECRETS_REF_INVALID: (
        "A secret reference has bad syntax: no scheme, or not the form its scheme defines.",
        "Use `env://NAME`, `keepass://ALIAS/Group/Entry#field` or `op://vault/item/field`.",
    ),
    ErrorCode.SECRETS_PROVIDER_UNAVAILABLE: (
        "No provider is installed or enabled for the reference's scheme (an unknown scheme), "
        "or it cannot start with its configuration.",
        "Install and enable the provider plugin and give it its runtime configuration.",
    ),
    ErrorCode.SECRETS_AUTH_MISSING: (
        "The provider's credentials are not configured.",
        "Set the credential variables the provider documents (never in workflow YAML).",
    ),
    ErrorCode.SECRETS_AUTH_INVALID: (
        "The provider rejected its credentials.",
        "Check or rotate the password, keyfile or token the provider uses.",
    ),
    ErrorCode.SECRETS_ACCESS_DENIED: (
        "The credentials are valid but not allowed to read this secret.",
        "Grant the token or account access to the vault or item.",
    ),
    ErrorCode.SECRETS_NOT_FOUND: (
        "The reference names an entry, item or variable that does not exist.",
        "Check the path in the reference.",
    ),
    ErrorCode.SECRETS_FIELD_NOT_FOUND: (
        "The entry exists but has no such field.",
        "Check the `#field` or last path segment of the reference.",
    ),
    ErrorCode.SECRETS_AMBIGUOUS: (
        "The reference matches more than one entry.",
        "Rename or move one of the entries so the path is unique.",
    ),
    ErrorCode.SECRETS_VALUE_UNSAFE: (
        "A resolved value is blank or shorter than the minimum length that redaction "
        "can mask without destroying ordinary output.",
        "Store a longer secret value; docs/redaction.md explains the minimum (`secrets.min_length`).",
    ),
    ErrorCode.SECRETS_PROVIDER_FAILED: (
        "The provider failed for a reason it could not classify.",
        "The message names the reference and the provider's error category.",
    ),
    ErrorCode.SECRETS_UNSAFE_DEBUG_TRACE: (
        "Shell tracing is on (`CI_DEBUG_TRACE`, or `SHELLOPTS` listing `xtrace`) while a secret is "
        "injected with `file: false`.",
        "Switch the secret to `file: true`, or unset `CI_DEBUG_TRACE` / take `xtrace` out of `SHELLOPTS`.",
    ),
    ErrorCode.WORKFLOW_NOT_FOUND: (
        "The workflow file or the requested job does not exist.",
        "Check the path and the job name.",
    ),
    ErrorCode.WORKFLOW_YAML_INVALID: (
        "The workflow file is not valid YAML.",
        "Fix the syntax at the line the message names.",
    ),
    ErrorCode.WORKFLOW_SCHEMA_INVALID: (
        "The workflow breaks the schema (unknown field, inline value, default.secrets, ...).",
        "`loom check FILE` lists every problem with its path and line.",
    ),
    ErrorCode.WORKFLOW_CYCLE: (
        "The jobs' `needs` form a cycle or name a missing job.",
        "Remove the cycle or fix the job name.",
    ),
    ErrorCode.WORKFLOW_JOB_FAILED: (
        "A job exited non-zero, timed out or was interrupted, or its output could not be written "
        "(console closed, disk full).",
        "Read the job's redacted output in the console or the receipt.",
    ),
    ErrorCode.WORKFLOW_DOCKER_UNAVAILABLE: (
        "A job needs Docker and no Docker engine answers.",
        "Start a Docker engine, or run the job without `image`.",
    ),
    ErrorCode.WORKFLOW_RECEIPT_UNWRITABLE: (
        "The run's receipt cannot be written (its directory is a file, read-only, or the disk is full), or "
        "`--receipt` names a directory, socket or block device (symlinks are followed; character devices "
        "and FIFOs are written to).",
        "Pass `--receipt` a path in a writable directory. Checked before the first job starts, so "
        "nothing ran; if it fails at the end, the console still shows each job's outcome.",
    ),
    ErrorCode.AUTH_REQUIRED: (
        "The request carries no `Authorization: Bearer` header.",
        "Send the key from the variable named by `server.auth_token_env`.",
    ),
    ErrorCode.AUTH_INVALID: (
        "The Bearer key is wrong.",
        "Send the key held by the variable `server.auth_token_env` names (or `server.auth_token_ref`).",
    ),
    ErrorCode.VALIDATION_FAILED: (
        "A request field is missing or invalid; the message names the field.",
        "Fix the field as the message says.",
    ),
    ErrorCode.PAYLOAD_TOO_LARGE: (
        "The request body exceeds `server.max_body_bytes`.",
        "Send smaller batches or raise the limit.",
    ),
    ErrorCode.HEADERS_TOO_LARGE: (
        "The request line and headers exceed 16 KiB (answered 431).",
        "Send shorter headers (a cookie jar or a long query string are the usual causes).",
    ),
    ErrorCode.NOT_FOUND: (
        "The chunk, stream, entity or relation does not exist.",
        "Check the id.",
    ),
    ErrorCode.CONFLICT: (
        "The request conflicts with the current state (e.g. superseding a superseded chunk).",
        "Re-read the record and retry against its newest version.",
    ),
    ErrorCode.BACKUP_FAILED: (
        "A backup, restore, export or import could not complete.",
        "The message names the path and the reason; nothing was overwritten.",
    ),
    ErrorCode.SERVER_UNAVAILABLE: (
        "The client could not reach the Loomem server (refused, timed out, connection lost).",
        "Start it with `loom serve` and check the URL; retry once it answers `GET /health`.",
    ),
    ErrorCode.SERVER_BIND_FAILED: (
        "`loom serve` could not listen on the configured address and port (in use, or not allowed).",
        "Stop the process using the port or pick another with `--port` / `server.port`; "
        "ports below 1024 need privileges.",
    ),
    ErrorCode.OAUTH_UNAVAILABLE: (
        "An OAuth endpoint was called on a server running without an API key (local passthrough mode), "
        "where OAuth is off (answered 404).",
        "Connect the MCP client without authorization, or set the variable `server.auth_token_env` names "
        "to turn on the key and OAuth.",
    ),
}

CATALOGUE: Mapping[ErrorCode, tuple[str, str]] = _CATALOGUE_ROWS
"""Per code: what it means, and how to fix it."""


class LoomError(Exception):
    """A failure with a stable :class:`ErrorCode` and a message safe to show.

    ``details`` carries extra machine-readable context (names, paths, counts);
    it must never carry secret values.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"LoomError({self.code.value!r}, {self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by the CLI's ``--format json`` and the HTTP API."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def raised_at(exc: BaseException) -> str:
    """`` in FILE:LINE (FUNCTION)`` of the frame that raised ``exc``, or ``""``.

    Where a foreign exception came from, without its message: the message may
    quote what the failing code held (a value), its place never does, and a
    plugin author needs it to find the bug.
    """
    import traceback
    from pathlib import Path

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" in {Path(last.filename).name}:{last.lineno} ({last.name})"


def render_catalogue_markdown() -> str:
    """Render ``docs/errors.md``; a test keeps the file equal to this output."""
    lines = [
        "# Error codes",
        "",
        "Every failure Loom reports carries one of these stable codes. The CLI prints",
        "`error[CODE]: message` on stderr (or JSON with `--format json`); the HTTP API",
        'answers `{"error": {"code": ..., "message": ...}}`. Codes are never renamed or reused.',
        "",
        "This file is generated from `loom_core/errors.py` "
        "(`python -m loom_core.errors > docs/errors.md`).",
        "",
        "| code | meaning | how to fix |",
        "| --- | --- | --- |",
    ]
    for code in ErrorCode:
        meaning, fix = CATALOGUE[code]
        lines.append(f"| `{code.value}` | {meaning} | {fix} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - documentation generator
    print(render_catalogue_markdown(), end="")
