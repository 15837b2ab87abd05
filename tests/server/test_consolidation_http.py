"""Consolidation through a real ``loom serve``: the openai backend against the OpenAI stand-in,
the PII filter in front of it, the cost alert through the Telegram stand-in, audit events."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.memory.telegram_standin import TelegramStandIn
from tests.server.conftest import TOKEN, ServerProcess

standin = pytest.importorskip("loom_llm_openai.standin", reason="needs the llm_openai plugin installed")

OPENAI_KEY = "sk-test-server-consolidation-0123456789"
BOT = "7000000002:AAFakeBotTokenForServerTests_xyz"
CHAT = "777"


@pytest.fixture
def openai() -> Iterator[Any]:
    with standin.OpenAIStandIn(api_key=OPENAI_KEY) as api:
        yield api


@pytest.fixture
def telegram() -> Iterator[TelegramStandIn]:
    with TelegramStandIn(BOT, CHAT) as api:
        yield api


def _write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _llm_config(openai: Any, telegram: TelegramStandIn) -> str:
    return (
        f'[llm]\nbackend = "openai"\nbase_url = "{openai.base_url}"\nembedding_dimension = 64\n'
        '[pii]\nenabled = true\nblocklist = ["Project Nightjar"]\n'
        f'[alerts]\ntelegram_api_url = "{telegram.url}"\ndaily_cost_limit_usd = 0.0000001\n'
    )


def _client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


def _answer(memories: list[Any]) -> str:
    return json.dumps({"memories": memories, "entities": [], "relations": []})


def test_consolidation_end_to_end(
    spawn: Callable[..., ServerProcess], tmp_path: Path, openai: Any, telegram: TelegramStandIn
) -> None:
    config = _write_config(tmp_path, _llm_config(openai, telegram))
    server = spawn(extra_args=["--config", str(config)],
                   env={"OPENAI_API_KEY": OPENAI_KEY, "TELEGRAM_BOT_TOKEN": BOT,
                        "LOOMEM_TELEGRAM_CHAT_ID": CHAT}).start()
    with _client(server) as http:
        raw = http.post("/v1/streams/eve/chunks/batch", json={"chunks": [
            {"content": "Eve's email is eve.north@example.com and she runs Project Nightjar."},
            {"content": "Eve prefers tea to coffee."},
        ]}).json()
        assert http.get("/v1/streams/eve/consolidation").json() == {
            "stream": "eve", "through": None, "pending": 2, "available": True}
        openai.replies.append(_answer([{"content": "Eve runs [REDACTED]; contact [EMAIL].", "sources": ["S1"],
                                        "replaces": None},
                                       {"content": "Eve prefers tea.", "sources": ["S2"], "replaces": None}]))

        report = http.post("/v1/streams/eve/consolidate")

        assert report.status_code == 200, report.text
        body = report.json()
        assert body["raw_chunks"] == 2 and body["through"] == raw[-1]["id"] and len(body["memories"]) == 2
        memory = http.get(f"/v1/chunks/{body['memories'][1]}").json()
        assert (memory["level"], memory["content"]) == (1, "Eve prefers tea.")
        assert memory["metadata"]["consolidated_from"] == [raw[1]["id"]]
        assert http.get("/v1/streams/eve/consolidation").json()["pending"] == 0
        usage = http.get("/v1/llm/usage").json()
        assert usage["backend"] == "openai" and usage["chat"] is True and usage["pii_filter"] is True
        assert usage["gate"] == {"calls": 1, "pii_redactions": {"blocklist": 1, "email": 1}}
        assert usage["usage"]["requests"] >= 2 and usage["usage"]["cost_usd"] > 0
        assert usage["cost_alert"]["alerted"] is True
    chat = [r for r in openai.requests if r.path.endswith("/chat/completions")]
    sent = " ".join(chat[0].texts)
    assert "eve.north@example.com" not in sent and "Nightjar" not in sent and "[EMAIL]" in sent
    assert len(telegram.sent) == 1 and telegram.sent[0]["chat_id"] == CHAT
    server.stop()
    logs = server.logs()
    audit = [json.loads(line) for line in logs.splitlines() if '"consolidation.run"' in line]
    assert audit and audit[0]["target"] == "audit" and audit[0]["fields"]["details"]["memories"] == 2
    for secret in (OPENAI_KEY, BOT.split(":")[1], "eve.north@example.com", "Eve prefers tea"):
        assert secret not in logs, "a key, a bot token or memory content reached the server log"


def test_provider_failures_answer_with_their_code_and_are_audited(
    spawn: Callable[..., ServerProcess], tmp_path: Path, openai: Any
) -> None:
    config = _write_config(
        tmp_path, f'[llm]\nbackend = "openai"\nbase_url = "{openai.base_url}"\nembedding_dimension = 64\n'
        '[llm.options]\nmax_retries = 0\n')
    server = spawn(extra_args=["--config", str(config)], env={"OPENAI_API_KEY": OPENAI_KEY}).start()
    with _client(server) as http:
        http.post("/v1/streams/s/chunks", json={"content": "a note"}).raise_for_status()
        openai.fail_next(status=503, path="/v1/chat/completions")  # max_retries = 0: one answer is final
        down = http.post("/v1/streams/s/consolidate")
        assert down.status_code == 503 and down.json()["error"]["code"] == "LLM_UNAVAILABLE"
        openai.fail_next(status=200, body=b'{"not": "a chat completion"}', path="/v1/chat/completions")
        garbled = http.post("/v1/streams/s/consolidate")
        assert garbled.status_code == 502 and garbled.json()["error"]["code"] == "LLM_BAD_RESPONSE"
        assert http.get("/v1/streams/s/consolidation").json()["pending"] == 1, "nothing was consolidated"
    server.stop()
    failures = [json.loads(line) for line in server.logs().splitlines() if '"consolidation.run"' in line]
    assert [(f["fields"]["outcome"], f["fields"]["details"].get("code")) for f in failures] == [
        ("failure", "LLM_UNAVAILABLE"), ("failure", "LLM_BAD_RESPONSE")]


def test_an_embeddings_only_server_answers_409(spawn: Callable[..., ServerProcess]) -> None:
    server = spawn().start()
    with _client(server) as http:
        http.post("/v1/streams/s/chunks", json={"content": "a note"}).raise_for_status()
        refused = http.post("/v1/streams/s/consolidate")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "LLM_CAPABILITY_MISSING"
        assert http.post("/v1/admin/dream").status_code == 409
        assert http.get("/v1/streams/s/consolidation").json() == {
            "stream": "s", "through": None, "pending": None, "available": False}
        usage = http.get("/v1/llm/usage").json()
        assert usage["backend"] == "hash" and usage["chat"] is False


def test_dream_runs_every_waiting_stream(
    spawn: Callable[..., ServerProcess], tmp_path: Path, openai: Any
) -> None:
    config = _write_config(
        tmp_path, f'[llm]\nbackend = "openai"\nbase_url = "{openai.base_url}"\nembedding_dimension = 64\n')
    server = spawn(extra_args=["--config", str(config)], env={"OPENAI_API_KEY": OPENAI_KEY}).start()
    openai.responder = lambda body: _answer([{"content": "summary", "sources": ["S1"], "replaces": None}])
    with _client(server) as http:
        for stream in ("a", "b"):
            http.post(f"/v1/streams/{stream}/chunks", json={"content": f"note in {stream}"}).raise_for_status()
        reports = http.post("/v1/admin/dream").json()["reports"]
        assert sorted(r["stream"] for r in reports) == ["a", "b"]
        assert http.post("/v1/admin/dream").json() == {"reports": [], "failures": []}


@pytest.mark.parametrize(
    ("config", "env", "code"),
    [
        ("[consolidation]\nenabled = true\n", {}, "LLM_CAPABILITY_MISSING"),
        ("[alerts]\ndaily_cost_limit_usd = 5.0\n", {"TELEGRAM_BOT_TOKEN": BOT}, "CONFIG_INVALID"),
        ('[pii]\nenabled = true\noptions = {detect = ["shoe-size"]}\n', {}, "PII_CONFIG_INVALID"),
    ],
)
def test_settings_that_cannot_work_refuse_start_up(
    tmp_path: Path, unused_port: int, config: str, env: dict[str, str], code: str
) -> None:
    path = _write_config(tmp_path, config)
    result = subprocess.run(
        [sys.executable, "-m", "loom_core.cli.main", "serve", "--data-dir", str(tmp_path / "d"),
         "--port", str(unused_port), "--config", str(path)],
        env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"error[{code}]" in result.stderr
    assert BOT not in result.stderr and "Traceback" not in result.stderr


def test_the_mcp_consolidate_tool_matches_the_route(
    spawn: Callable[..., ServerProcess], tmp_path: Path, openai: Any
) -> None:
    from tests.server.test_mcp import error_of, keyed, with_client

    config = _write_config(
        tmp_path, f'[llm]\nbackend = "openai"\nbase_url = "{openai.base_url}"\nembedding_dimension = 64\n')
    server = spawn(extra_args=["--config", str(config)], env={"OPENAI_API_KEY": OPENAI_KEY}).start()
    openai.replies.append(_answer([{"content": "Fay keeps bees.", "sources": ["S1"], "replaces": None}]))

    async def scenario(client: Any) -> Any:
        await client.call_tool("remember", {"stream": "fay", "content": "Fay got two beehives today."})
        done = await client.call_tool("consolidate", {"stream": "fay"})
        bad = await client.call_tool("consolidate", {"stream": "not a stream name!"})
        return done.structured_content, error_of(bad)

    report, error = with_client(server.base_url, keyed(TOKEN), scenario)
    assert report["raw_chunks"] == 1 and len(report["memories"]) == 1 and report["pending"] == 0
    assert error["code"] == "VALIDATION_FAILED"
    with _client(server) as http:
        assert http.get(f"/v1/chunks/{report['memories'][0]}").json()["content"] == "Fay keeps bees."
    server.stop()
    assert '"consolidation.run"' in server.logs()


def test_the_mcp_consolidate_tool_on_an_embeddings_only_server(spawn: Callable[..., ServerProcess]) -> None:
    from tests.server.test_mcp import error_of, keyed, with_client

    server = spawn().start()

    async def scenario(client: Any) -> Any:
        return error_of(await client.call_tool("consolidate", {"stream": "s"}))

    assert with_client(server.base_url, keyed(TOKEN), scenario)["code"] == "LLM_CAPABILITY_MISSING"
