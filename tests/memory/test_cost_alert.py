"""The daily LLM cost alert, sent through a Telegram Bot API stand-in on 127.0.0.1."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from loom_core.config import LoomConfig
from loom_core.contracts.llm import Usage
from loom_core.errors import ErrorCode, LoomError
from loom_core.memory.cost_alert import DailyCostAlert, TelegramNotifier, notifier_from_env
from tests.memory.telegram_standin import TelegramStandIn

TOKEN = "7000000001:AAFakeBotTokenForTests_abcdefghij"
CHAT = "424242"
DAY = 1_800_000_000.0  # a fixed UTC instant; +86400 is the next day


@pytest.fixture
def telegram() -> Iterator[TelegramStandIn]:
    with TelegramStandIn(TOKEN, CHAT) as api:
        yield api


def _alert(api: TelegramStandIn, limit: float, clock: list[float]) -> DailyCostAlert:
    return DailyCostAlert(limit, TelegramNotifier(api.url, TOKEN, CHAT).send, clock=lambda: clock[0])


def test_one_alert_when_the_days_spend_reaches_the_limit(telegram: TelegramStandIn) -> None:
    clock = [DAY]
    alert = _alert(telegram, 1.0, clock)
    for total in (0.2, 0.6, 0.99):
        alert(Usage(cost_usd=total))
    assert telegram.sent == []
    alert(Usage(cost_usd=1.01))
    alert(Usage(cost_usd=1.5))
    assert len(telegram.sent) == 1, "one alert per day, not one per call over the limit"
    assert telegram.sent[0]["chat_id"] == CHAT
    assert "$1.01" in telegram.sent[0]["text"] and "$1.00" in telegram.sent[0]["text"]
    assert alert.to_dict()["alerted"] is True


def test_the_next_utc_day_counts_from_zero_and_may_alert_again(telegram: TelegramStandIn) -> None:
    clock = [DAY]
    alert = _alert(telegram, 1.0, clock)
    alert(Usage(cost_usd=1.2))
    clock[0] = DAY + 86_400
    alert(Usage(cost_usd=1.9))  # 0.7 today
    assert len(telegram.sent) == 1 and alert.to_dict()["spent_usd"] == pytest.approx(0.7)
    alert(Usage(cost_usd=2.3))
    assert len(telegram.sent) == 2


def test_a_failed_send_is_retried_on_the_next_call(telegram: TelegramStandIn, caplog: pytest.LogCaptureFixture) -> None:
    clock = [DAY]
    alert = _alert(telegram, 1.0, clock)
    telegram.fail_next(429)
    with caplog.at_level(logging.DEBUG):
        alert(Usage(cost_usd=1.5))
    assert telegram.sent == [] and telegram.statuses == [429]
    assert "answered 429" in caplog.text
    alert(Usage(cost_usd=1.6))
    assert len(telegram.sent) == 1


def test_the_bot_token_never_reaches_the_logs(telegram: TelegramStandIn, caplog: pytest.LogCaptureFixture) -> None:
    """The token is part of the Bot API's URL path, and httpx logs request URLs at INFO."""
    notifier = TelegramNotifier(telegram.url, TOKEN, CHAT)
    with caplog.at_level(logging.DEBUG):
        assert notifier.send("hello")
        bad = TelegramNotifier(telegram.url, TOKEN + "x", CHAT)
        assert not bad.send("hello")
        unreachable = TelegramNotifier("http://127.0.0.1:9", TOKEN, CHAT, timeout=2)
        assert not unreachable.send("hello")
    assert "sendMessage" in caplog.text, "the HTTP client logged nothing: the check below proves nothing"
    leaked = TOKEN.split(":")[1] in caplog.text or TOKEN.split(":")[1] in repr(notifier)
    assert not leaked, "the bot token was logged or shown in the notifier's repr"


def test_a_limit_without_token_or_chat_refuses_start_up() -> None:
    alerts = LoomConfig().alerts.model_copy(update={"daily_cost_limit_usd": 5.0})
    with pytest.raises(LoomError) as caught:
        notifier_from_env(alerts, {"TELEGRAM_BOT_TOKEN": TOKEN})
    assert caught.value.code is ErrorCode.CONFIG_INVALID
    assert "LOOMEM_TELEGRAM_CHAT_ID" in caught.value.message and TOKEN not in str(caught.value)
    assert notifier_from_env(LoomConfig().alerts, {}) is None  # no limit: no alert wanted
    built = notifier_from_env(alerts, {"TELEGRAM_BOT_TOKEN": TOKEN, "LOOMEM_TELEGRAM_CHAT_ID": CHAT})
    assert isinstance(built, TelegramNotifier)
