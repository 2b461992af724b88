"""A loopback fake of the Telegram Bot API, for pointing the real python-telegram-bot at.

Usage (the ``telegram_api`` fixture in ``tests/channels/conftest.py`` does this for you)::

    async with FakeTelegramAPI(token="123:TEST") as api:
        bot = Bot(token=api.token, base_url=api.base_url)
        api.push_update({"message": {...}})            # update_id is filled in when absent
        api.fail("sendMessage", status=429, retry_after=3)  # the next sendMessage answers 429
        ...
        assert api.calls_to("sendMessage")[0]["text"] == "..."

It binds to port 0 on 127.0.0.1, records every call (method name and decoded parameters), keeps
``getUpdates`` offset semantics (an offset confirms and forgets every earlier update; long polls
wait until an update arrives or the timeout passes), and answers like Telegram does: ``{"ok":
true, "result": ...}`` or ``{"ok": false, "error_code": ..., "description": ...}``. Updates it
forgot because they were confirmed are in ``consumed``. Faults at a rate, Telegram's overall rate
limit, fake people answering and webhook delivery are ``tests.fakes.telegram_limits``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

JSON = dict[str, Any]

ERRORS = {
    400: "Bad Request: message text is empty",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    409: "Conflict: terminated by other getUpdates request",
    429: "Too Many Requests: retry after {retry_after}",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass
class Call:
    method: str
    params: JSON


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    remaining: int


@dataclass
class FakeTelegramAPI:
    token: str = "123456:TEST-token"
    bot_id: int = 123456
    username: str = "RapportTestBot"
    calls: list[Call] = field(default_factory=list)
    webhook: JSON = field(default_factory=lambda: {"url": ""})

    def __post_init__(self) -> None:
        self._updates: list[JSON] = []
        self._next_update_id = itertools.count(1000)
        self._next_message_id = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
        # method -> [seconds, times]: the next ``times`` calls are delivered, then answered late.
        self._slow: dict[str, list[float]] = {}
        self._changed = asyncio.Condition()
        self._server: TestServer | None = None
        # Updates Telegram forgot because they were confirmed (an offset above them), in order.
        self.consumed: list[JSON] = []
        self.handlers: dict[str, Callable[[JSON], Any]] = {
            "getMe": lambda p: self.me,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": lambda p: {"pending_update_count": len(self._updates), **self.webhook},
            "sendMessage": self._send_message,
            "answerCallbackQuery": lambda p: True,
            "setMyCommands": lambda p: True,
            "editMessageReplyMarkup": self._edit_markup,
            "editMessageText": self._edit_markup,
            "close": lambda p: True,
            "logOut": lambda p: True,
        }

    # Lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            await self._server.close()

    @property
    def root(self) -> str:
        assert self._server is not None, "use `async with FakeTelegramAPI()`"
        return f"http://127.0.0.1:{self._server.port}"

    @property
    def base_url(self) -> str:
        """What ``channels.telegram.api_base_url`` (PTB's ``base_url``) should be."""
        return f"{self.root}/bot"

    @property
    def me(self) -> JSON:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Rapport", "username": self.username,
                "can_join_groups": False, "can_read_all_group_messages": False,
                "supports_inline_queries": False}  # fmt: skip

    # Steering from tests ----------------------------------------------------------------------

    def push_update(self, update: JSON, *, assign_id: bool = True) -> int:
        """Queue an update for getUpdates; returns its update_id (-1 when it has none).

        ``assign_id=False`` keeps an update without ``update_id`` as it is: no offset can confirm
        it, so every later poll returns it again (a legacy or hand-made payload).
        """
        update = dict(update)
        if assign_id and "update_id" not in update:
            update["update_id"] = next(self._next_update_id)
        self._updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())
        uid = update.get("update_id")
        return uid if isinstance(uid, int) else -1

    def fail(self, method: str, *, status: int, times: int = 1, retry_after: int | None = None,
             description: str | None = None) -> None:  # fmt: skip
        """Make the next ``times`` calls of ``method`` fail with this HTTP status."""
        text = description or ERRORS.get(status, "Error").format(retry_after=retry_after)
        self._failures.setdefault(method, []).append(_Failure(status, text, retry_after, times))

    def slow(self, method: str, *, seconds: float, times: int = 1) -> None:
        """Deliver the next ``times`` calls of ``method`` at once, but answer them ``seconds``
        late (as Telegram does under load): a client that gives up first cannot know it went out."""
        self._slow[method] = [seconds, float(times)]

    def calls_to(self, method: str) -> list[JSON]:
        return [c.params for c in self.calls if c.method == method]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        return [p["text"] for p in self.calls_to("sendMessage") if chat_id is None or p["chat_id"] == chat_id]

    @property
    def pending_updates(self) -> list[JSON]:
        return list(self._updates)

    async def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[JSON]:
        """Wait until ``method`` was called at least ``count`` times (successfully or not)."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls_to(method)) >= count)

        await asyncio.wait_for(reached(), timeout)
        return self.calls_to(method)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; it is checked after every API call."""

        async def reached() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(reached(), timeout)

    async def wait_confirmed(self, update_id: int, timeout: float = 10.0) -> None:
        """Wait until a getUpdates call confirmed ``update_id`` (offset above it was answered)."""
        await self.wait_until(
            lambda: any(isinstance(p.get("offset"), int) and p["offset"] > update_id
                        for p in self.calls_to("getUpdates")), timeout
        )  # fmt: skip

    # The API ----------------------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _dispatch(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        verdict = await self._reliability_gate(method, params)
        if isinstance(verdict, web.Response):
            return verdict
        failures = self._failures.get(method)
        if failures:
            failure = failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                failures.pop(0)
            self.calls.append(Call(method, params))
            await self._notify()
            return self._error(failure.status, failure.description, failure.retry_after)
        if method == "getUpdates":
            # Record only once answered, so tests can wait for "the poll after this update".
            result = await self._get_updates(params)
            self.calls.append(Call(method, params))
            await self._notify()
            return web.json_response({"ok": True, "result": result})
        self.calls.append(Call(method, params))
        await self._notify()
        handler = self.handlers.get(method)
        if handler is None:
            return self._error(404, "Not Found: method not found")
        result = handler(params)
        if method == "sendMessage":
            self._after_send(params)
        if isinstance(verdict, float):
            await asyncio.sleep(verdict)  # delivered, answered late
        slow = self._slow.get(method)
        if slow is not None and slow[1] > 0:
            slow[1] -= 1
            await asyncio.sleep(slow[0])
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    async def _params(request: web.Request) -> JSON:
        if request.content_type == "application/json":
            body = await request.json()
            return dict(body) if isinstance(body, dict) else {}
        form = await request.post()
        params: JSON = {}
        for key, value in form.items():
            if not isinstance(value, str):
                continue
            # PTB JSON-encodes every non-string value; strings (text, callback ids) go as they are.
            if key in ("chat_id", "message_id", "offset", "limit", "timeout", "max_connections"):
                params[key] = int(value) if value.lstrip("-").isdigit() else value
            elif key in ("reply_markup", "allowed_updates", "link_preview_options", "drop_pending_updates",
                         "show_alert", "entities", "reply_parameters"):  # fmt: skip
                params[key] = json.loads(value)
            else:
                params[key] = value
        return params

    @staticmethod
    def _error(status: int, description: str, retry_after: int | None = None) -> web.Response:
        body: JSON = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=status)

    async def _get_updates(self, params: JSON) -> list[JSON]:
        offset = params.get("offset")
        if isinstance(offset, int):
            # Telegram forgets every update below the offset: they count as confirmed.
            self.consumed.extend(u for u in self._updates if isinstance(u.get("update_id"), int)
                                 and u["update_id"] < offset)  # fmt: skip
            self._updates = [u for u in self._updates if not isinstance(u.get("update_id"), int)
                             or u["update_id"] >= offset]  # fmt: skip
        timeout = params.get("timeout") or 0
        if not self._updates and isinstance(timeout, int) and timeout > 0:
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(lambda: bool(self._updates)), timeout)
            except TimeoutError:
                return []
        limit = params.get("limit") or 100
        return self._updates[: int(limit)]

    # Hooks for the reliability modes (tests/fakes/telegram_limits.py) ---------------------------

    async def _reliability_gate(self, method: str, params: JSON) -> web.Response | float | None:
        """An answer to give instead, seconds to answer late, or None: answer normally."""
        return None

    def _after_send(self, params: JSON) -> None:
        """A sendMessage was delivered."""

    def _delete_webhook(self, params: JSON) -> bool:
        self.webhook = {"url": ""}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    def _set_webhook(self, params: JSON) -> bool:
        self.webhook = {"url": params.get("url", ""), "secret_token": params.get("secret_token"),
                        "allowed_updates": params.get("allowed_updates")}  # fmt: skip
        return True

    def _send_message(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        return {"message_id": next(self._next_message_id), "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private", "first_name": "Person"},
                "from": self.me, "text": params.get("text", "")}  # fmt: skip

    def _edit_markup(self, params: JSON) -> JSON | bool:
        if "inline_message_id" in params:
            return True
        return {"message_id": params.get("message_id"), "date": 1_700_000_000,
                "chat": {"id": params.get("chat_id"), "type": "private", "first_name": "Person"},
                "from": self.me, "text": params.get("text", "")}  # fmt: skip


@pytest.fixture
async def telegram_api() -> AsyncIterator[FakeTelegramAPI]:
    """A running fake Bot API; point ``channels.telegram.api_base_url`` at ``telegram_api.base_url``."""
    async with FakeTelegramAPI() as api:
        yield api
