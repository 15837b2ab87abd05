"""A daily LLM-spend alert sent to a Telegram chat, the seed's optional cost-alert webhook.

The LLM backend keeps a running cost (``Usage.cost_usd``); this watches it, books the growth to
the current UTC day, and when a day's spend first reaches ``alerts.daily_cost_limit_usd`` sends
one message through the Telegram Bot API. It alerts, it does not stop calls: a memory server
that silently stopped consolidating would be a worse surprise than a bill, and the operator
decides. A failed send is logged with its status and tried again on the next call that day.

The bot token is part of the Bot API's URL path (``/bot<token>/sendMessage``), so the request
is never logged by URL: httpx logs every request URL at INFO, which is why the token-bearing
path is masked by a filter on its logger.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from loom_core.contracts.llm import Usage

log = logging.getLogger("loom.alerts")
_TOKEN_IN_PATH = re.compile(r"/bot[^/\s]+/")


class _MaskBotToken(logging.Filter):
    """Masks ``/bot<token>/`` in records of the HTTP client's loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _TOKEN_IN_PATH.sub("/bot<hidden>/", str(a)) if "/bot" in str(a) else a
                for a in (record.args if isinstance(record.args, tuple) else (record.args,))
            )
        if isinstance(record.msg, str) and "/bot" in record.msg:
            record.msg = _TOKEN_IN_PATH.sub("/bot<hidden>/", record.msg)
        return True


_MASK = _MaskBotToken()
for _name in ("httpx", "httpcore"):
    if _MASK not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_MASK)


class TelegramNotifier:
    """Sends text to one chat through the Bot API; the token never leaves this object's request."""

    def __init__(self, api_url: str, token: str, chat_id: str, *, timeout: float = 10.0) -> None:
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self._chat_id = chat_id
        self._timeout = timeout

    def __repr__(self) -> str:
        return "TelegramNotifier(<token hidden>)"

    def send(self, text: str) -> bool:
        """True when Telegram accepted the message (``ok: true``); failures are logged, not raised."""
        try:
            answer = httpx.post(self._url, json={"chat_id": self._chat_id, "text": text}, timeout=self._timeout)
        except httpx.HTTPError as exc:
            log.warning("cost alert not sent: %s reaching the Telegram Bot API", type(exc).__name__)
            return False
        try:
            body = answer.json()
        except ValueError:
            body = None
        ok = answer.status_code == 200 and isinstance(body, dict) and body.get("ok") is True
        if not ok:
            log.warning("cost alert not sent: the Telegram Bot API answered %d", answer.status_code)
        return ok


def notifier_from_env(alerts: Any, environ: Mapping[str, str]) -> TelegramNotifier | None:
    """A notifier when a daily limit is set and both variables are; None when no limit is set.

    A limit without the token or chat id is a configuration error, refused at start-up rather
    than discovered the day the alert should have fired.
    """
    from loom_core.errors import ErrorCode, LoomError

    if not alerts.daily_cost_limit_usd:
        return None
    names = (alerts.telegram_bot_token_env, alerts.telegram_chat_id_env)
    missing = [n for n in names if not environ.get(n, "").strip()]
    if missing:
        raise LoomError(
            ErrorCode.CONFIG_INVALID,
            f"alerts.daily_cost_limit_usd is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not set; set them or set the limit to 0",
        )
    token = environ[alerts.telegram_bot_token_env].strip()
    chat = environ[alerts.telegram_chat_id_env].strip()
    return TelegramNotifier(alerts.telegram_api_url, token, chat)


class DailyCostAlert:
    """Books cost growth per UTC day and sends one alert per day when the limit is reached."""

    def __init__(
        self,
        limit_usd: float,
        send: Callable[[str], bool],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit_usd = limit_usd
        self._send = send
        self._clock = clock
        self._lock = threading.Lock()
        self._last_total: float | None = None
        self._day = ""
        self.spent_today = 0.0
        self._alerted_day = ""

    def __call__(self, usage: Usage) -> None:
        day = datetime.fromtimestamp(self._clock(), UTC).strftime("%Y-%m-%d")
        with self._lock:
            total = float(usage.cost_usd)
            # the first reading books whatever this process spent before the alert was listening
            grown = total if self._last_total is None else max(0.0, total - self._last_total)
            self._last_total = total
            if day != self._day:
                self._day, self.spent_today = day, 0.0
            self.spent_today += grown
            spent = self.spent_today
            due = spent >= self.limit_usd and self._alerted_day != day
            if due:
                self._alerted_day = day  # claimed before sending: two racing calls send one alert
        if due and not self._send(
            f"Loomem: LLM spend today ({day} UTC) is ${spent:.2f}, at or above the daily limit of "
            f"${self.limit_usd:.2f}. Consolidation keeps running; check [alerts] and the provider's usage page."
        ):
            with self._lock:
                if self._alerted_day == day:
                    self._alerted_day = ""  # not delivered: the next call that day tries again

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"day": self._day or None, "spent_usd": round(self.spent_today, 6), "limit_usd": self.limit_usd,
                    "alerted": bool(self._day) and self._alerted_day == self._day}
