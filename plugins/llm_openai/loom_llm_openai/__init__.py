"""Loom LLM backend ``openai``: embeddings and chat completions over the OpenAI HTTP API.

The backend lives in :mod:`loom_llm_openai.backend` and registers through
:mod:`loom_llm_openai.plugin`; :mod:`loom_llm_openai.standin` is a local stand-in server that
speaks the same HTTP interface, for tests. Nothing is imported here so that listing plugins
stays cheap.
"""
