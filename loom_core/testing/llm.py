"""Conformance suite for LLM backends (embeddings, optional chat/JSON, auth).

Fixture contract
----------------
A plugin's test class subclasses :class:`LLMSuite`, sets ``capabilities``
to what its backend declares (``embed`` always; ``chat``, ``json``,
``auth`` when offered), and provides one fixture, ``llm``, returning a
**builder**::

    build(auth: str = "valid") -> LLM

``auth="valid"`` builds the backend as production would (ideally through
``PluginHost().create("llm", NAME, ctx)``), pointed at whatever test double
speaks the provider's real HTTP interface. With capability ``auth`` the
builder must also accept ``auth="missing"`` (no API key in the context's
environment) and ``auth="invalid"`` (a key the provider rejects with its
real status code); the builder may raise there, or return a backend whose
first call raises. The builder may carry an attribute ``secret_material``
(a sequence of str/bytes, e.g. the API keys used); none of it may appear in
errors, reprs, logs or output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from loom_core.contracts.llm import LLM, ChatMessage, Completion, Usage
from loom_core.errors import ErrorCode, LoomError
from loom_core.testing.base import ConformanceSuite, core, requires

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Builder = Callable[..., LLM]

TEXTS = (
    "The cat sat on the mat.",
    "Quarterly revenue grew by twelve percent.",
    "Loom stores memories in keyspaces.",
    "",
    "\u6f22\u5b57\u3068\u304b\u306a \U0001f511 \u00fcml\u00e4ut",
)
JSON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
MESSAGES = (
    ChatMessage("system", "Answer in one short sentence."),
    ChatMessage("user", "Say hello."),
)


def _close(backend: object) -> None:
    try:
        backend.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: S110 - a failing close must not hide the real assertion
        pass


class LLMSuite(ConformanceSuite):
    """Guarantees of :class:`loom_core.contracts.llm.LLM`.

    See the module docstring for the ``llm`` builder fixture.
    """

    @pytest.fixture
    def backend(self, llm: Builder) -> Any:
        built = llm()
        yield built
        _close(built)

    def _embed(self, backend: LLM, texts: list[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        out = backend.embed(texts)
        assert isinstance(out, np.ndarray), f"embed returned {type(out).__name__}, not a numpy array"
        assert out.dtype == np.float32, f"embed returned dtype {out.dtype}, not float32"
        assert out.shape == (len(texts), backend.embedding_dimension), (
            f"embed returned shape {out.shape}, expected ({len(texts)}, {backend.embedding_dimension})"
        )
        return out

    # -- shape ----------------------------------------------------------------

    @core
    def test_backend_satisfies_contract(self, backend: LLM) -> None:
        """Proves the backend has the protocol's members, ``embed`` and the suite's capabilities.

        Fix: declare ``name``, ``capabilities`` (equal to the test class's, and
        containing ``embed``), a positive int ``embedding_dimension``, and
        ``embed``/``complete``/``usage``/``close``.
        """
        assert isinstance(backend, LLM), "backend lacks name/capabilities/embedding_dimension/embed/complete/..."
        assert "embed" in backend.capabilities, "every LLM backend must declare 'embed'"
        assert frozenset(backend.capabilities) == type(self).capabilities, (
            f"backend declares {sorted(backend.capabilities)}, test class {sorted(type(self).capabilities)}"
        )
        dim = backend.embedding_dimension
        assert isinstance(dim, int) and not isinstance(dim, bool) and dim > 0, f"bad embedding_dimension {dim!r}"
        assert isinstance(backend.name, str) and backend.name, "name must be a non-empty string"

    # -- embeddings -------------------------------------------------------------

    @core
    def test_embed_shape_dtype_unit_norm(self, backend: LLM) -> None:
        """Proves ``embed`` gives float32 ``(n, dimension)`` with finite, unit-L2-norm rows (empty text too).

        Fix: cast to float32, normalise each row, and give texts without
        content a deterministic unit vector rather than zeros or NaN.
        """
        import numpy as np

        out = self._embed(backend, list(TEXTS))
        assert bool(np.isfinite(out).all()), "embedding contains NaN or inf"
        norms = np.linalg.norm(out.astype(np.float64), axis=1)
        assert bool(np.allclose(norms, 1.0, atol=1e-4)), f"row norms {norms.round(5).tolist()} are not 1"

    @core
    def test_embed_empty_input(self, backend: LLM) -> None:
        """Proves ``embed([])`` returns shape ``(0, dimension)`` float32 without a provider call failing.

        Fix: return ``np.zeros((0, dim), np.float32)`` for no texts.
        """
        self._embed(backend, [])

    @core
    def test_embed_deterministic_and_batch_independent(self, llm: Builder) -> None:
        """Proves the same text gives the same vector: repeated, in another batch, in a new instance.

        Fix: do not add randomness or batch-dependent normalisation; embed
        each text independently of its neighbours.
        """
        import numpy as np

        first, second = llm(), llm()
        try:
            together = self._embed(first, list(TEXTS))
            again = self._embed(first, list(TEXTS))
            singly = np.vstack([self._embed(first, [t]) for t in reversed(TEXTS)])[::-1]
            fresh = self._embed(second, list(TEXTS))
        finally:
            _close(first)
            _close(second)
        assert bool(np.allclose(together, again, atol=1e-6)), "repeating embed changed the vectors"
        assert bool(np.allclose(together, singly, atol=1e-5)), "a text's vector depends on its batch"
        assert bool(np.allclose(together, fresh, atol=1e-6)), "a new instance embeds differently"

    @core
    def test_embed_distinguishes_texts(self, backend: LLM) -> None:
        """Proves different texts get different vectors (no constant or zero fallback).

        Fix: embed the actual text; never return a placeholder vector.
        """
        import numpy as np

        out = self._embed(backend, list(TEXTS[:3]))
        for i in range(3):
            for j in range(i + 1, 3):
                assert not bool(np.allclose(out[i], out[j], atol=1e-4)), f"texts {i} and {j} got the same vector"

    # -- chat -------------------------------------------------------------------

    @core
    def test_complete_matches_chat_capability(self, backend: LLM) -> None:
        """Proves ``complete`` works when ``chat`` is declared and raises ``LLM_CAPABILITY_MISSING`` otherwise.

        Fix: an embeddings-only backend raises the coded error (never an
        empty Completion); a chat backend returns ``Completion`` with text.
        """
        if "chat" in type(self).capabilities:
            result = backend.complete(list(MESSAGES))
            assert isinstance(result, Completion), f"complete returned {type(result).__name__}"
            assert isinstance(result.text, str) and result.text.strip(), "chat completion text is empty"
            return
        with pytest.raises(LoomError) as info:
            backend.complete(list(MESSAGES))
        assert info.value.code is ErrorCode.LLM_CAPABILITY_MISSING, f"raised {info.value.code}"

    @requires("json")
    @core
    def test_json_completion_returns_parsed_data(self, backend: LLM) -> None:
        """Proves a JSON completion returns parsed data that validates against the schema.

        Fix: ask the provider for JSON, parse it, validate it, and raise
        ``LLM_BAD_RESPONSE`` when it does not fit instead of returning text.
        """
        import jsonschema

        result = backend.complete(list(MESSAGES), json_schema=JSON_SCHEMA)
        assert isinstance(result, Completion), f"complete returned {type(result).__name__}"
        jsonschema.validate(result.data, JSON_SCHEMA)

    # -- accounting -----------------------------------------------------------------

    @core
    def test_usage_accounts_every_call(self, backend: LLM) -> None:
        """Proves ``usage()`` counts each request and the embedded tokens.

        Fix: increment ``requests`` per call and add the provider's reported
        (or estimated) token counts; return a snapshot, not the live object.
        """
        before = backend.usage()
        assert isinstance(before, Usage), f"usage returned {type(before).__name__}"
        self._embed(backend, ["count these tokens please"])
        self._embed(backend, ["and these"])
        after = backend.usage()
        assert after.requests >= before.requests + 2, f"requests went {before.requests} -> {after.requests}"
        assert after.embedding_tokens > before.embedding_tokens, "embedding tokens were not counted"
        assert after.cost_usd >= before.cost_usd >= 0.0, "cost must be non-negative and never decrease"

    @requires("chat")
    @core
    def test_chat_usage_counted(self, backend: LLM) -> None:
        """Proves a chat completion adds a request and its prompt and completion tokens to ``usage()``.

        Fix: read the provider's reported token counts from each response
        and add them (and their cost) to the running totals.
        """
        before = backend.usage()
        result = backend.complete(list(MESSAGES))
        after = backend.usage()
        assert after.requests >= before.requests + 1, "the completion was not counted as a request"
        assert after.prompt_tokens > before.prompt_tokens, "prompt tokens were not counted"
        assert after.completion_tokens > before.completion_tokens, "completion tokens were not counted"
        assert result.prompt_tokens > 0 and result.completion_tokens > 0, "Completion lacks token counts"

    @core
    def test_close_idempotent(self, llm: Builder) -> None:
        """Proves ``close`` may be called twice.

        Fix: make a second ``close`` a no-op.
        """
        built = llm()
        built.close()
        built.close()

    @core
    def test_secret_material_never_leaks(self, llm: Builder, secret_leak_check: Any) -> None:
        """Proves API keys (the builder's ``secret_material``) never reach reprs, errors, logs or output.

        Fix: keep keys out of ``__repr__``, log lines and exception messages;
        name the environment variable instead.
        """
        built = llm()
        errors: list[BaseException] = []
        try:
            self._embed(built, ["leak check"])
            try:
                built.complete(list(MESSAGES))
            except LoomError as exc:
                errors.append(exc)
        finally:
            _close(built)
        for n, material in enumerate(getattr(llm, "secret_material", ())):
            secret_leak_check.assert_absent(material, what=f"secret_material[{n}]", exceptions=errors, objects=[built])

    # -- authentication ---------------------------------------------------------------

    def _auth_error(self, llm: Builder, auth: str, code: ErrorCode) -> LoomError:
        try:
            built = llm(auth=auth)
        except LoomError as exc:
            assert exc.code is code, f"building with auth={auth!r} raised {exc.code}, expected {code}"
            return exc
        try:
            built.embed(["needs credentials"])
        except LoomError as exc:
            assert exc.code is code, f"embed with auth={auth!r} raised {exc.code}, expected {code}"
            return exc
        finally:
            _close(built)
        pytest.fail(f"auth={auth!r}: embed returned vectors instead of failing closed with {code}", pytrace=False)

    @requires("auth")
    @core
    def test_missing_key_fails_closed(self, llm: Builder, secret_leak_check: Any) -> None:
        """Proves a missing API key raises ``LLM_AUTH_MISSING``, never zero vectors or a fallback model.

        Fix: check the key before the first request and raise the coded
        error naming the variable to set.
        """
        exc = self._auth_error(llm, "missing", ErrorCode.LLM_AUTH_MISSING)
        for n, material in enumerate(getattr(llm, "secret_material", ())):
            secret_leak_check.assert_absent(material, what=f"secret_material[{n}]", exceptions=[exc])

    @requires("auth")
    @core
    def test_rejected_key_fails_closed(self, llm: Builder, secret_leak_check: Any) -> None:
        """Proves a key the provider rejects raises ``LLM_AUTH_INVALID`` and the key does not leak.

        Fix: map the provider's 401/403 to ``LLM_AUTH_INVALID`` without
        retrying, and keep the key out of the message.
        """
        exc = self._auth_error(llm, "invalid", ErrorCode.LLM_AUTH_INVALID)
        for n, material in enumerate(getattr(llm, "secret_material", ())):
            secret_leak_check.assert_absent(material, what=f"secret_material[{n}]", exceptions=[exc])


__all__ = ["JSON_SCHEMA", "MESSAGES", "TEXTS", "LLMSuite"]
