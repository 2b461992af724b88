"""The fake Bot API with the modes of the reliability harness (``benchmarks/reliability.py``).

    async with FaultyTelegramAPI() as api:
        api.inject_faults(0.2)        # 20% of sendMessage: 429 retry_after, 500, or answered late
        api.enforce_rate(30)          # 429 beyond 30 delivered messages within a second
        api.answer_as_people()        # chats press a rating on their invitation, then type a reason
        api.deliver_to_webhook()      # updates are POSTed to the webhook set, until answered 2xx
        ...
        api.sends                     # every sendMessage and its answer (Send)

Everything else is :class:`tests.fakes.telegram_api.FakeTelegramAPI`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.telegram_api import ERRORS, Call, FakeTelegramAPI

JSON = dict[str, Any]


@dataclass(frozen=True)
class Send:
    """One ``sendMessage`` request as the fake saw it (``status`` 200: delivered)."""

    at: float
    chat_id: int
    status: int
    retry_after: int | None
    # Sent to a chat before the retry_after it was given had passed.
    early: bool
    # It carried rating buttons (an invitation or a reminder).
    keyboard: bool
    # Delivered, but answered late.
    late: bool


def _chat_of(update: JSON) -> object:
    for kind in ("message", "edited_message", "callback_query", "my_chat_member"):
        body = update.get(kind)
        if isinstance(body, dict):
            chat = (body.get("message") or {}).get("chat") if kind == "callback_query" else body.get("chat")
            if isinstance(chat, dict):
                return chat.get("id")
    return None


@dataclass
class FaultyTelegramAPI(FakeTelegramAPI):
    """The fake Bot API, faulty, rate-limited and answered by fake people on request."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._init_reliability()

    def _init_reliability(self) -> None:
        # Every sendMessage request and what it was answered.
        self.sends: list[Send] = []
        self._faults = (0.0, random.Random(7), 1, 35.0)
        self._limit = (0.0, 1)
        self._recent: deque[float] = deque()
        # chat -> monotonic time before which it was told (429 retry_after) not to send.
        self._wait_until: dict[int, float] = {}
        self._people: JSON | None = None
        self._pressed: set[int] = set()
        self._typed: set[int] = set()
        self._webhook_tasks: list[asyncio.Task[None]] = []

    def inject_faults(self, rate: float, *, seed: int = 7, retry_after: int = 1, slow_seconds: float = 35.0) -> None:
        """Answer a share ``rate`` of ``sendMessage`` calls with a fault, in three equal parts:
        429 with ``retry_after``, a 500 (neither delivered), or delivered but answered
        ``slow_seconds`` late (beyond the client's timeout, it cannot know it went out)."""
        self._faults = (rate, random.Random(seed), retry_after, slow_seconds)

    def enforce_rate(self, per_second: float = 30.0, *, retry_after: int = 1) -> None:
        """Telegram's overall limit: a ``sendMessage`` that would make more than ``per_second``
        messages delivered within the last second is answered 429 with ``retry_after``."""
        self._limit = (per_second, retry_after)

    def answer_as_people(self, *, rating: int = 7, text: str = "The team listens to us.") -> None:
        """Fake people: a chat that receives a rating keyboard presses ``rating`` on it (once),
        and after the next message to that chat types ``text`` (once), as updates."""
        self._people = {"rating": rating, "text": text}

    def deliver_to_webhook(self, *, connections: int = 8, retry_seconds: float = 0.5) -> None:
        """While a webhook is set, POST queued updates to it with its secret token, as Telegram
        does: an update is forgotten only once answered 2xx, otherwise delivered again later;
        a chat's updates go one at a time, in order, up to ``connections`` chats at once."""
        busy: set[object] = set()

        async def worker() -> None:
            import aiohttp

            async with aiohttp.ClientSession() as http:
                while True:
                    update = next((u for u in self._updates if _chat_of(u) not in busy), None)
                    url = self.webhook.get("url")
                    if update is None or not url:
                        async with self._changed:
                            with contextlib.suppress(TimeoutError):
                                await asyncio.wait_for(self._changed.wait(), retry_seconds)
                        continue
                    chat = _chat_of(update)
                    busy.add(chat)
                    headers = {"X-Telegram-Bot-Api-Secret-Token": str(self.webhook.get("secret_token") or "")}
                    try:
                        async with http.post(url, json=update, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=60)) as response:  # fmt: skip
                            delivered = 200 <= response.status < 300
                    except (aiohttp.ClientError, TimeoutError):
                        delivered = False
                    finally:
                        busy.discard(chat)
                    if delivered:
                        if update in self._updates:
                            self._updates.remove(update)
                            self.consumed.append(update)
                        await self._notify()
                    else:
                        await asyncio.sleep(retry_seconds)

        self._webhook_tasks = [asyncio.get_running_loop().create_task(worker()) for _ in range(connections)]

    async def stop_webhook_delivery(self) -> None:
        for task in self._webhook_tasks:
            task.cancel()
        for task in self._webhook_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._webhook_tasks = []

    async def _reliability_gate(self, method: str, params: JSON) -> web.Response | float | None:
        """A refusal to answer instead, seconds to answer late, or None (answer normally)."""
        if method != "sendMessage":
            return None
        now = time.monotonic()
        chat = params.get("chat_id")
        chat_id = chat if isinstance(chat, int) else -1
        early = now < self._wait_until.get(chat_id, 0.0)
        keyboard = "r:" in json.dumps(params.get("reply_markup") or {})
        rate, rng, retry_after, slow_seconds = self._faults
        per_second, limit_retry_after = self._limit
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        status, late, wait = 200, None, None
        if early:
            status, wait = 429, max(1, round(self._wait_until[chat_id] - now + 0.5))
        elif per_second and len(self._recent) >= per_second:
            status, wait = 429, limit_retry_after
        elif rate and rng.random() < rate:
            kind = rng.choice(("429", "500", "slow"))
            if kind == "429":
                status, wait = 429, retry_after
            elif kind == "500":
                status = 500
            else:
                late = slow_seconds
        self.sends.append(Send(at=now, chat_id=chat_id, status=status, retry_after=wait, early=early,
                               keyboard=keyboard, late=late is not None))  # fmt: skip
        if status == 200:
            self._recent.append(now)
            return late
        self.calls.append(Call(method, params))
        await self._notify()
        if wait is not None:
            self._wait_until[chat_id] = max(self._wait_until.get(chat_id, 0.0), now + wait)
        return self._error(status, ERRORS[status].format(retry_after=wait), wait)

    def _after_send(self, params: JSON) -> None:
        """Fake people reading a delivered message (``answer_as_people``)."""
        chat = params.get("chat_id")
        if self._people is None or not isinstance(chat, int):
            return
        person = {"id": chat, "is_bot": False, "first_name": "Person"}
        where = {"id": chat, "type": "private", "first_name": "Person"}
        data = [b.get("callback_data") for row in (params.get("reply_markup") or {}).get("inline_keyboard", [])
                for b in row if isinstance(b, dict)]  # fmt: skip
        choices = [d for d in data if isinstance(d, str) and d.startswith("r:")]
        if choices and chat not in self._pressed:
            self._pressed.add(chat)
            wanted = next((d for d in choices if d.endswith(f":{self._people['rating']}")), choices[-1])
            message = {"message_id": 0, "date": 1_700_000_000, "chat": where, "from": self.me, "text": "?"}
            self.push_update({"callback_query": {"id": f"cb-{chat}", "from": person, "chat_instance": str(chat),
                                                 "message": message, "data": wanted}})  # fmt: skip
        elif not choices and chat in self._pressed and chat not in self._typed:
            self._typed.add(chat)
            self.push_update({"message": {"message_id": 10_000 + len(self._typed), "date": 1_700_000_000,
                                          "chat": where, "from": person, "text": self._people["text"]}})  # fmt: skip
