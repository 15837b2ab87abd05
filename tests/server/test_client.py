"""LoomemClient against a real server: every method reaches its route and decodes the answer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from loom_core.client import LoomemClient
from loom_core.errors import ErrorCode, LoomError


def test_client_covers_chunks_streams_search_and_graph(api_server: Any, token: str) -> None:
    """Round trip through each client method; errors keep the server's code."""
    stream = f"client-{uuid.uuid4().hex[:8]}"
    with LoomemClient(api_server.base_url, token=token) as client:
        assert client.health()["status"] == "ok"
        first = client.add_chunk(stream, "the lighthouse keeper logs the weather", metadata={"k": 1},
                                 expires_at="2999-01-01T00:00:00Z")
        batch = client.add_chunks(stream, [{"content": f"lighthouse entry {i}", "level": 1} for i in range(5)])
        newer = client.add_chunk(stream, "the lighthouse keeper logs the tides", supersedes=first["id"])
        assert [c["id"] for c in client.history(newer["id"])] == [first["id"], newer["id"]]
        assert [c["id"] for c in client.iter_chunks(stream, level=1, page_size=2)] == [c["id"] for c in batch]
        assert stream in {s["name"] for s in client.list_streams()}
        hits = client.search("lighthouse keeper", stream=stream, mode="bm25", k=3)
        assert hits[0]["chunk"]["id"] == newer["id"]
        assert client.delete_chunk(batch[0]["id"])["deleted"] == batch[0]["id"]

        keeper = client.add_entity(stream, "person", "Keeper", aliases=["the keeper"])
        tower = client.add_entity(stream, "place", "Lighthouse")
        assert [e["id"] for e in client.list_entities(stream, type="place")] == [tower["id"]]
        relation = client.add_relation(stream, keeper["id"], "works_at", tower["id"], source_chunks=[newer["id"]])
        assert client.get_relation(relation["id"])["object"] == tower["id"]
        assert [r["id"] for r in client.list_relations(stream, entity=keeper["id"])] == [relation["id"]]
        assert client.delete_relation(relation["id"])["deleted"] == relation["id"]
        assert client.get_entity(keeper["id"])["name"] == "Keeper"
        assert client.delete_entity(keeper["id"])["deleted"] == keeper["id"]

        report = client.consistency()
        assert report["missing_in_index"] == [] and report["extra_in_index"] == []
        assert client.rebuild_index()["documents"] == report["index"]
        assert client.delete_stream(stream)["count"] == 6
        with pytest.raises(LoomError) as info:
            client.get_entity(keeper["id"])
        assert info.value.code is ErrorCode.NOT_FOUND and info.value.details["status"] == 404
