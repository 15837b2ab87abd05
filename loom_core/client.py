"""A small synchronous client for the Loomem HTTP API.

Methods mirror the endpoints and return the decoded JSON. Any error answer
becomes a :class:`LoomError` carrying the server's stable code, so callers
handle ``NOT_FOUND`` the same whether they talk to the engine in process or
to a server. One persistent ``httpx.Client`` keeps connections alive.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from loom_core.errors import ErrorCode, LoomError

JSON = dict[str, Any]


def _seg(value: str) -> str:
    """Quote one path segment (stream names and ids may contain anything)."""
    return quote(value, safe="")


def _drop_none(values: Mapping[str, Any]) -> JSON:
    return {k: v for k, v in values.items() if v is not None}


class LoomemClient:
    """``LoomemClient("http://127.0.0.1:8420", token=...)``; use as a context manager."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def __repr__(self) -> str:  # never show the token
        return f"LoomemClient({str(self._http.base_url)!r})"

    # -- plumbing ----------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LoomemClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Send one request; decode JSON or raise the server's error as :class:`LoomError`."""
        try:
            response = self._http.request(method, path, json=json,
                                          params=_drop_none(params) if params else None)
        except httpx.HTTPError as exc:
            raise LoomError(
                ErrorCode.SERVER_UNAVAILABLE,
                f"{method} {self._http.base_url}{path} failed: {type(exc).__name__}",
            ) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- health ------------------------------------------------------------
    def health(self) -> JSON:
        result: JSON = self.request("GET", "/health")
        return result

    # -- chunks ------------------------------------------------------------
    def add_chunk(self, stream: str, content: str, *, level: int | None = None,
                  metadata: Mapping[str, Any] | None = None, supersedes: str | None = None,
                  expires_at: str | int | None = None) -> JSON:
        body = _drop_none({"content": content, "level": level, "metadata": metadata,
                           "supersedes": supersedes, "expires_at": expires_at})
        result: JSON = self.request("POST", f"/v1/streams/{_seg(stream)}/chunks", json=body)
        return result

    def add_chunks(self, stream: str, chunks: Iterable[Mapping[str, Any]]) -> list[JSON]:
        """Add many chunks in one request; each item has the same keys as :meth:`add_chunk`."""
        body = {"chunks": [_drop_none(c) for c in chunks]}
        result: list[JSON] = self.request("POST", f"/v1/streams/{_seg(stream)}/chunks/batch", json=body)
        return result

    def get_chunk(self, chunk_id: str) -> JSON:
        result: JSON = self.request("GET", f"/v1/chunks/{_seg(chunk_id)}")
        return result

    def history(self, chunk_id: str) -> list[JSON]:
        result: JSON = self.request("GET", f"/v1/chunks/{_seg(chunk_id)}/history")
        chain: list[JSON] = result["chunks"]
        return chain

    def delete_chunk(self, chunk_id: str) -> JSON:
        result: JSON = self.request("DELETE", f"/v1/chunks/{_seg(chunk_id)}")
        return result

    def list_streams(self) -> list[JSON]:
        result: JSON = self.request("GET", "/v1/streams")
        streams: list[JSON] = result["streams"]
        return streams

    def list_chunks(self, stream: str, *, level: int | None = None, cursor: str | None = None,
                    limit: int | None = None) -> JSON:
        """One page: ``{"chunks": [...], "next_cursor": str | None}``."""
        result: JSON = self.request("GET", f"/v1/streams/{_seg(stream)}/chunks",
                                    params={"level": level, "cursor": cursor, "limit": limit})
        return result

    def iter_chunks(self, stream: str, *, level: int | None = None, page_size: int = 100) -> Iterable[JSON]:
        """Every chunk of ``stream``, following cursors."""
        cursor: str | None = None
        while True:
            page = self.list_chunks(stream, level=level, cursor=cursor, limit=page_size)
            yield from page["chunks"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def delete_stream(self, stream: str) -> JSON:
        result: JSON = self.request("DELETE", f"/v1/streams/{_seg(stream)}")
        return result

    # -- search ------------------------------------------------------------
    def search(self, query: str, *, stream: str | None = None, streams: Iterable[str] | None = None,
               k: int | None = None, levels: Iterable[int] | None = None, mode: str | None = None,
               include_superseded: bool | None = None, since: str | int | None = None,
               until: str | int | None = None) -> list[JSON]:
        """``[{"chunk": {...}, "score": float, "scores": {...}}, ...]``, best first."""
        body = _drop_none({
            "query": query, "stream": stream, "streams": list(streams) if streams is not None else None,
            "k": k, "levels": list(levels) if levels is not None else None, "mode": mode,
            "include_superseded": include_superseded, "since": since, "until": until,
        })
        result: JSON = self.request("POST", "/v1/search", json=body)
        results: list[JSON] = result["results"]
        return results

    # -- entity graph --------------------------------------------------------
    def add_entity(self, stream: str, entity_type: str, name: str, *,
                   aliases: Iterable[str] = (), **extra: Any) -> JSON:
        body = {"type": entity_type, "name": name, "aliases": list(aliases), **extra}
        result: JSON = self.request("POST", f"/v1/streams/{_seg(stream)}/entities", json=body)
        return result

    def list_entities(self, stream: str, **params: Any) -> list[JSON]:
        result: JSON = self.request("GET", f"/v1/streams/{_seg(stream)}/entities", params=params)
        entities: list[JSON] = result["entities"]
        return entities

    def get_entity(self, entity_id: str) -> JSON:
        result: JSON = self.request("GET", f"/v1/entities/{_seg(entity_id)}")
        return result

    def delete_entity(self, entity_id: str) -> JSON:
        result: JSON = self.request("DELETE", f"/v1/entities/{_seg(entity_id)}")
        return result

    def add_relation(self, stream: str, subject: str, predicate: str, object: str, **extra: Any) -> JSON:
        body = {"subject": subject, "predicate": predicate, "object": object, **extra}
        result: JSON = self.request("POST", f"/v1/streams/{_seg(stream)}/relations", json=body)
        return result

    def list_relations(self, stream: str, **params: Any) -> list[JSON]:
        result: JSON = self.request("GET", f"/v1/streams/{_seg(stream)}/relations", params=params)
        relations: list[JSON] = result["relations"]
        return relations

    def get_relation(self, relation_id: str) -> JSON:
        result: JSON = self.request("GET", f"/v1/relations/{_seg(relation_id)}")
        return result

    def delete_relation(self, relation_id: str) -> JSON:
        result: JSON = self.request("DELETE", f"/v1/relations/{_seg(relation_id)}")
        return result

    # -- admin ---------------------------------------------------------------
    def consistency(self) -> JSON:
        """Storage, index and vector counts and the ids that differ (admin)."""
        result: JSON = self.request("GET", "/v1/admin/consistency")
        return result

    def rebuild_index(self) -> JSON:
        result: JSON = self.request("POST", "/v1/admin/rebuild-index")
        return result

    def create_backup(self) -> JSON:
        """Back up the running server: ``{"path": ..., "manifest": {...}}`` (admin; the path is on
        the server, under ``server.backup_dir``; restore it with ``loom backup restore``)."""
        result: JSON = self.request("POST", "/v1/admin/backups")
        return result


def error_from_response(response: httpx.Response) -> LoomError:
    """The server's ``{"error": {...}}`` as a :class:`LoomError` (``INTERNAL_ERROR`` if unreadable)."""
    try:
        payload = response.json()
        error = payload["error"]
        code = ErrorCode(error["code"])
        message = str(error["message"])
        details = error.get("details") or {}
    except (ValueError, KeyError, TypeError):
        return LoomError(
            ErrorCode.INTERNAL_ERROR,
            f"{response.request.method} {response.request.url.path} answered HTTP {response.status_code} "
            f"without a Loomem error body",
            details={"status": response.status_code},
        )
    return LoomError(code, message, details={**details, "status": response.status_code})
