"""A local stand-in for the OpenAI HTTP API, for tests that cannot reach OpenAI.

It is a real HTTP server on 127.0.0.1 (an ephemeral port, served from a thread) speaking the
parts of the OpenAI interface the ``openai`` backend uses: the same paths, Bearer auth, request
validation, response JSON and error bodies (``{"error": {"message", "type", "param", "code"}}``)
with OpenAI's status codes. Point any OpenAI client at :attr:`OpenAIStandIn.base_url`::

    from loom_llm_openai.standin import ChatReply, OpenAIStandIn

    with OpenAIStandIn(api_key="sk-test-123") as api:
        api.base_url                         # "http://127.0.0.1:PORT/v1"
        api.replies.append('{"facts": []}')  # the next chat completion's content, in order
        api.replies.append(ChatReply(refusal="I can't help with that."))
        api.responder = lambda body: "..."   # answers chats when ``replies`` is empty
        api.fail_next(status=429, count=2, retry_after="1")  # the next two requests get 429
        api.fail_next(status=200, body=b"not json")          # a garbled success
        api.drop_next()                      # the next connection closes without an answer
        api.requests                         # what it received: path, body, texts, status ...
        api.embedding("some text", dimensions=64)            # the vector it serves for a text

Served:

* ``POST /v1/embeddings``: ``model`` (``text-embedding-3-small`` / ``-3-large`` /
  ``text-embedding-ada-002``, or those given to the constructor), ``input`` (a string or a list
  of 1-2048 non-empty strings, each at most 8,192 tokens by :func:`estimate_tokens`, else 400
  as OpenAI answers an input over the model's context length), ``dimensions`` (text-embedding-3 models only, at most the
  model's size), ``encoding_format`` (``float`` or ``base64``). Vectors are unit length and
  derived from a hash of model and text: the same text always gets the same vector.
* ``POST /v1/chat/completions``: ``model``, ``messages`` (roles ``system``, ``developer``,
  ``user``, ``assistant``; string content), ``max_completion_tokens`` or ``max_tokens`` (a reply
  longer than that is cut and ends with ``finish_reason: "length"``), ``response_format``
  (``text``, ``json_object``, or ``json_schema`` whose ``strict: true`` schemas are checked the
  way OpenAI checks them: every object needs ``additionalProperties: false`` and all its
  properties required). The reply is the next item of :attr:`OpenAIStandIn.replies`, else what
  :attr:`OpenAIStandIn.responder` returns, else a default: a minimal instance of the schema for
  JSON schema requests, ``{}`` for ``json_object``, a fixed sentence otherwise.

Token counts in ``usage`` are estimates (a token per 4 UTF-8 bytes); they are deterministic.
A wrong key gets 401 ``invalid_api_key``; an injected failure (:meth:`OpenAIStandIn.fail_next`)
answers before auth is checked, like a gateway in front of the API would. The API key is
compared, never recorded: :attr:`RecordedRequest.headers` omits ``Authorization``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Embedding models served, with their native vector size.
EMBEDDING_MODELS: Mapping[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
MAX_EMBEDDING_INPUTS = 2048
#: tokens of one embedding input the API takes (counted with :func:`estimate_tokens`)
MAX_EMBEDDING_TOKENS = 8192
MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_CHAT_REPLY = "Hello from the OpenAI stand-in."
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ROLES = frozenset({"system", "developer", "user", "assistant"})

#: Default error bodies for injected failures: (type, code, message) per status.
_ERRORS: Mapping[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory",
          "Country, region, or territory not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


@dataclass(frozen=True)
class ChatReply:
    """A scripted assistant answer: its content, or a refusal, and how it finished."""

    content: str | None = None
    refusal: str | None = None
    finish_reason: str = "stop"
    #: override the estimated ``usage`` counts (None: estimate)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the stand-in received and the status it answered with."""

    method: str
    path: str
    #: request headers, lower-cased names, without ``authorization``
    headers: Mapping[str, str]
    #: whether it carried ``Authorization: Bearer <the configured key>``
    authorized: bool
    #: the parsed JSON body (None when the body was not JSON)
    body: Any
    status: int

    @property
    def texts(self) -> list[str]:
        """Every text the request sent for the provider to read: embedding inputs, message contents."""
        body = self.body if isinstance(self.body, dict) else {}
        found: list[str] = []
        inputs = body.get("input")
        found += [inputs] if isinstance(inputs, str) else [t for t in inputs or () if isinstance(t, str)]
        for message in body.get("messages") or ():
            if isinstance(message, dict) and isinstance(message.get("content"), str):
                found.append(message["content"])
        return found


@dataclass
class _Failure:
    status: int
    retry_after: str | None = None
    body: bytes | None = None
    drop: bool = False
    path: str | None = None


class _ApiError(Exception):
    """An OpenAI-shaped error answer, raised inside request handling."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def estimate_tokens(text: str) -> int:
    """The stand-in's token count for a text: one per 4 UTF-8 bytes, at least one."""
    return max(1, (len(text.encode("utf-8", "surrogatepass")) + 3) // 4)


def _unit_vector(model: str, text: str, size: int, dimensions: int | None) -> list[float]:
    import numpy as np

    digest = hashlib.sha256(f"{model}\x00{text}".encode("utf-8", "surrogatepass")).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    vector = rng.standard_normal(size)[: dimensions or size]
    vector /= np.linalg.norm(vector)
    values: list[float] = vector.astype(np.float32).tolist()
    return values


def _example(schema: Any) -> Any:
    """A small value of the schema's shape, for default JSON replies."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _example(schema[key][0])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {name: _example(sub) for name, sub in (schema.get("properties") or {}).items()}
    return {"string": "stand-in", "integer": 0, "number": 0, "boolean": False, "array": [], "null": None}.get(kind)


def _strict_problem(schema: Any, context: str = "()") -> str | None:
    """What OpenAI's strict structured-output mode would refuse in this schema, or None."""
    if not isinstance(schema, dict):
        return None
    is_object = schema.get("type") == "object" or "properties" in schema
    if is_object:
        if schema.get("additionalProperties") is not False:
            return f"In context={context}, 'additionalProperties' is required to be supplied and to be false."
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [name for name in properties if name not in required]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
        for name, sub in properties.items():
            problem = _strict_problem(sub, f"('properties', '{name}')")
            if problem:
                return problem
    if isinstance(schema.get("items"), dict):
        return _strict_problem(schema["items"], f"{context[:-1]}, 'items')")
    for key in ("anyOf", "$defs", "definitions"):
        subs = schema.get(key)
        for sub in subs.values() if isinstance(subs, dict) else subs or ():
            problem = _strict_problem(sub, context)
            if problem:
                return problem
    return None


class OpenAIStandIn:
    """The stand-in server; a context manager that starts it on entry and stops it on exit."""

    def __init__(
        self,
        api_key: str = "sk-standin-key-0000",
        *,
        embedding_models: Mapping[str, int] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.api_key = api_key
        self.embedding_models = dict(EMBEDDING_MODELS if embedding_models is None else embedding_models)
        #: scripted chat answers, used first in, first out
        self.replies: deque[str | ChatReply] = deque()
        #: answers chats when ``replies`` is empty; gets the request body
        self.responder: Callable[[dict[str, Any]], str | ChatReply] | None = None
        self._host = host
        self._lock = threading.Lock()
        self._failures: deque[_Failure] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"OpenAIStandIn(base_url={self.base_url if self._server else None!r})"

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> OpenAIStandIn:
        """Listen on an ephemeral port and serve from a daemon thread."""
        if self._server is None:
            server = _Server((self._host, 0), _Handler)
            server.standin = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="openai-standin", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port; calling it twice is fine."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OpenAIStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the value for the backend's ``base_url`` option."""
        if self._server is None:
            raise RuntimeError("the stand-in is not running; use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    # -- scripting --------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 500,
        *,
        count: int = 1,
        retry_after: str | float | None = None,
        body: bytes | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests (to ``path`` only, e.g. ``"/v1/embeddings"``, if given)
        with ``status``: OpenAI's error body for it unless ``body`` (raw bytes, sent as JSON
        content type) is given; ``retry_after`` becomes the ``Retry-After`` header."""
        after = None if retry_after is None else str(retry_after)
        with self._lock:
            self._failures.extend(_Failure(status, after, body, path=path) for _ in range(count))

    def drop_next(self, *, count: int = 1, path: str | None = None) -> None:
        """Close the connection of the next ``count`` requests without answering."""
        with self._lock:
            self._failures.extend(_Failure(0, drop=True, path=path) for _ in range(count))

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def embedding(
        self, text: str, *, model: str = "text-embedding-3-small", dimensions: int | None = None
    ) -> list[float]:
        """The vector the stand-in serves for ``text`` (unit length before float32 rounding)."""
        return _unit_vector(model, text, self.embedding_models[model], dimensions)

    # -- request handling (called from the server's threads) --------------------------

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.path is None or failure.path == path:
                    self._failures.remove(failure)
                    return failure
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _authorized(self, header: str | None) -> bool:
        scheme, _, token = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    def _check_auth(self, header: str | None) -> None:
        if not (header or "").strip():
            raise _ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
                "username) if you're accessing the API from your browser and are prompted for a username and "
                "password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
            )
        if not self._authorized(header):
            raise _ApiError(
                401,
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    def _embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _ApiError(400, "you must provide a model parameter", param="model")
        if model not in self.embedding_models:
            raise _ApiError(
                404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
            )
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(inputs, list)
            or not inputs
            or len(inputs) > MAX_EMBEDDING_INPUTS
            or not all(isinstance(text, str) and text for text in inputs)
        ):
            raise _ApiError(400, "'$.input' is invalid. Please check the API reference: "
                            "https://platform.openai.com/docs/api-reference.", param="input")
        for text in inputs:
            if estimate_tokens(text) > MAX_EMBEDDING_TOKENS:
                raise _ApiError(
                    400, f"This model's maximum context length is {MAX_EMBEDDING_TOKENS} tokens, however you "
                    f"requested {estimate_tokens(text)} tokens ({estimate_tokens(text)} in your prompt; 0 for the "
                    "completion). Please reduce your prompt; or completion length.",
                )
        dimensions = body.get("dimensions")
        size = self.embedding_models[model]
        if dimensions is not None:
            if not model.startswith("text-embedding-3"):
                raise _ApiError(400, "This model does not support specifying dimensions.", param="dimensions")
            if isinstance(dimensions, bool) or not isinstance(dimensions, int) or not 1 <= dimensions <= size:
                raise _ApiError(400, f"Invalid value for 'dimensions' = {dimensions}. Must be between 1 and {size}.",
                                param="dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _ApiError(400, f"Invalid value for 'encoding_format' = {encoding}.", param="encoding_format")
        data: list[dict[str, Any]] = []
        for i, text in enumerate(inputs):
            vector: Any = _unit_vector(model, text, size, dimensions)
            if encoding == "base64":
                import numpy as np

                vector = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": vector})
        tokens = sum(estimate_tokens(text) for text in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}

    def _chat(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _ApiError(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "'messages' must contain at least one message.", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _ApiError(400, f"Invalid value for 'messages[{i}].role'.", param=f"messages[{i}].role")
            if not isinstance(message.get("content"), str):
                raise _ApiError(400, f"Invalid type for 'messages[{i}].content'.", param=f"messages[{i}].content")
        limit = self._token_limit(body)
        schema = self._response_schema(body.get("response_format"))
        reply = self._next_reply(body, schema)
        content = reply.content
        finish = reply.finish_reason
        completion = reply.completion_tokens or estimate_tokens(content or reply.refusal or "")
        if limit is not None and content is not None and completion > limit and reply.completion_tokens is None:
            content, completion, finish = content[: limit * 4], limit, "length"
        prompt = reply.prompt_tokens or sum(4 + estimate_tokens(m["content"]) for m in messages)
        created = int(time.time())
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
        return {
            "id": f"chatcmpl-{digest}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": reply.refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish,
            }],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            "system_fingerprint": "fp_standin",
        }

    def _token_limit(self, body: dict[str, Any]) -> int | None:
        limits: list[int] = []
        for key in ("max_completion_tokens", "max_tokens"):
            limit = body.get(key)
            if limit is None:
                continue
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise _ApiError(400, f"Invalid '{key}': {limit}.", param=key)
            limits.append(limit)
        return min(limits) if limits else None

    def _response_schema(self, response_format: Any) -> tuple[str, Any] | None:
        """("json_schema", schema) / ("json_object", None) / None for text; refuses bad formats with 400."""
        if response_format is None:
            return None
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind == "text":
            return None
        if kind == "json_object":
            return ("json_object", None)
        if kind != "json_schema":
            raise _ApiError(400, "Invalid value for 'response_format.type'.", param="response_format")
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not _SCHEMA_NAME.match(spec["name"]):
            raise _ApiError(400, "Invalid 'response_format.json_schema.name': must match ^[a-zA-Z0-9_-]{1,64}$.",
                            param="response_format")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise _ApiError(400, "Missing required parameter: 'response_format.json_schema.schema'.",
                            param="response_format")
        if spec.get("strict") is True:
            problem = _strict_problem(schema)
            if problem:
                raise _ApiError(400, f"Invalid schema for response_format '{spec['name']}': {problem}",
                                param="response_format")
        return ("json_schema", schema)

    def _next_reply(self, body: dict[str, Any], schema: tuple[str, Any] | None) -> ChatReply:
        with self._lock:
            scripted = self.replies.popleft() if self.replies else None
        if scripted is None and self.responder is not None:
            scripted = self.responder(body)
        if scripted is None:
            if schema is None:
                scripted = DEFAULT_CHAT_REPLY
            else:
                scripted = json.dumps(_example(schema[1]) if schema[0] == "json_schema" else {})
        return ChatReply(content=scripted) if isinstance(scripted, str) else scripted


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: OpenAIStandIn


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are recorded, not printed."""

    def do_POST(self) -> None:
        standin = self.server.standin
        path = self.path.split("?", 1)[0]
        length = self.headers.get("content-length")
        if length is None or not length.isdigit() or int(length) > MAX_BODY_BYTES:
            status = 413 if length and length.isdigit() else 411
            self._send(_Answer(status, _ApiError(status, f"A Content-Length of at most {MAX_BODY_BYTES} bytes "
                                                 "is required.").body()))
            return
        raw = self.rfile.read(int(length))
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        authorization = self.headers.get("authorization")
        answer = self._answer(standin, path, body, authorization)
        # recorded before answering, so a client that has its answer always finds its request recorded
        standin._record(RecordedRequest("POST", path, self._headers(), standin._authorized(authorization), body,
                                        answer.status))
        self._send(answer)

    def _headers(self) -> dict[str, str]:
        return {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}

    def _answer(self, standin: OpenAIStandIn, path: str, body: Any, authorization: str | None) -> _Answer:
        failure = standin._take_failure(path)
        if failure is not None:
            return self._failure(failure)
        try:
            standin._check_auth(authorization)
            if not isinstance(body, dict):
                raise _ApiError(400, "We could not parse the JSON body of your request. (HINT: This likely means "
                                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                                "payload, but what was sent was not valid JSON.)")
            if path == "/v1/embeddings":
                payload = standin._embeddings(body)
            elif path == "/v1/chat/completions":
                payload = standin._chat(body)
            else:
                raise _ApiError(404, f"Invalid URL (POST {path})")
        except _ApiError as error:
            return _Answer(error.status, error.body())
        return _Answer(200, payload)

    def _not_found(self) -> None:
        path = self.path.split("?", 1)[0]
        length = self.headers.get("content-length")
        if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        standin = self.server.standin
        answer = _Answer(404, _ApiError(404, f"Invalid URL ({self.command} {path})").body())
        authorized = standin._authorized(self.headers.get("authorization"))
        standin._record(RecordedRequest(self.command, path, self._headers(), authorized, None, answer.status))
        self._send(answer)

    do_GET = do_PUT = do_DELETE = do_PATCH = _not_found

    def _failure(self, failure: _Failure) -> _Answer:
        if failure.drop:
            return _Answer(0, b"")
        extra = {"retry-after": failure.retry_after} if failure.retry_after is not None else {}
        if failure.body is not None:
            return _Answer(failure.status, failure.body, extra)
        type_, code, message = _ERRORS.get(failure.status, ("server_error", None, "Injected failure."))
        return _Answer(failure.status, _ApiError(failure.status, message, type_=type_, code=code).body(), extra)

    def _send(self, answer: _Answer) -> None:
        if answer.status == 0:  # a dropped connection: close without a byte
            self.close_connection = True
            self.connection.close()
            return
        data = answer.payload if isinstance(answer.payload, bytes) else json.dumps(answer.payload).encode()
        self.send_response(answer.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_{hashlib.sha256(data).hexdigest()[:16]}")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


@dataclass(frozen=True)
class _Answer:
    """A response decided but not yet written (status 0: drop the connection)."""

    status: int
    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)


__all__ = ["EMBEDDING_MODELS", "ChatReply", "OpenAIStandIn", "RecordedRequest", "estimate_tokens"]

