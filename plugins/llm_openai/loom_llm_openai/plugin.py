"""Entry point ``loom.llm: openai``: builds the backend from its context and registers it."""

from __future__ import annotations

from loom_core.contracts import BackendContext
from loom_core.errors import ErrorCode, LoomError
from loom_core.hookspecs import hookimpl
from loom_core.plugins.registry import BackendRegistry
from loom_llm_openai.backend import CAPABILITIES, NAME, OpenAILLM
from loom_llm_openai.options import parse


def create(ctx: BackendContext) -> OpenAILLM:
    """Options from ``ctx.options``; the key from ``ctx.environ[api_key_env]``, required (fail closed).

    Without a key there is no fallback model and no zero vectors: the backend is not built,
    so a server configured for ``openai`` does not start without one.
    """
    settings = parse(ctx.options)
    env = settings.api_key_env
    key = ctx.environ.get(env, "").strip()
    if not key:
        raise LoomError(
            ErrorCode.LLM_AUTH_MISSING,
            f"the openai LLM backend needs an API key: set ${env} (the variable llm.api_key_env names) "
            "or llm.api_key_ref",
            details={"api_key_env": env},
        )
    if not (key.isascii() and key.isprintable()) or any(ch.isspace() for ch in key):
        raise LoomError(
            ErrorCode.LLM_AUTH_INVALID,
            f"the value of ${env} is not a usable API key (it holds spaces or non-printable characters)",
            details={"api_key_env": env},
        )
    return OpenAILLM(settings, key)


@hookimpl
def loom_register_backends(registry: BackendRegistry) -> None:
    registry.add_llm(
        NAME,
        create,
        capabilities=CAPABILITIES,
        description="OpenAI API: embeddings and chat/JSON completions (sends text to the provider)",
    )
