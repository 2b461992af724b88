"""Builders for Telegram channel tests: a channel on the fake Bot API, people, updates."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.channels.telegram import SECRET_HEADER, WEBHOOK_PATH, TelegramChannel, TelegramSettings
from bot.web import make_web_app
from memory import store
from memory.db import transaction
from memory.models import Answer, ChannelIdentity
from tests.fakes.telegram_api import FakeTelegramAPI

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SECRET = "webhook-secret-for-tests"
INVITE_KEY = b"k" * 32
CHAT = 4242
_ids = itertools.count(1)


class Clock:
    """A settable clock for the channel (received_at of every update)."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def make_channel(app: App, api: FakeTelegramAPI, *, mode: str = "polling", clock: Clock | None = None,
                 **kw: Any) -> TelegramChannel:  # fmt: skip
    options: dict[str, Any] = {"poll_timeout": 1.0, "retry_backoff": 0.01, "per_chat_rate": 0, "max_inline_wait": 1.5}
    options.update(kw)
    settings = TelegramSettings(
        token=api.token, invite_key=INVITE_KEY, mode=mode, api_base_url=api.base_url,
        webhook_url="https://rapport.example/telegram/webhook", secret_token=SECRET, **options,
    )  # fmt: skip
    return TelegramChannel(settings=settings, service=app.service, clock=clock or Clock())


def add_person(app: App, key: str = "ann", *, name: str | None = "Ann", chat_id: int | None = CHAT,
               program: str = "customers") -> int:  # fmt: skip
    with transaction(app.sessions) as s:
        programs = [store.program_by_name(s, program)]
        person, _ = store.upsert_person(s, key=key, name=name, email=None, timezone="UTC", owner_key=None,
                                        programs=programs, now=T0)  # fmt: skip
        if chat_id is not None:
            store.link_identity(s, person=person, channel="telegram", external_id=str(chat_id), now=T0)
        return person.id


def identity(app: App, chat_id: int = CHAT) -> ChannelIdentity | None:
    with transaction(app.sessions) as s:
        found = store.find_identity(s, channel="telegram", external_id=str(chat_id))
        if found is not None:
            s.expunge(found)
        return found


def answers(app: App) -> list[tuple[str, int | None, str | None]]:
    with transaction(app.sessions) as s:
        return [(a.question, a.rating, a.text) for a in s.query(Answer).order_by(Answer.id)]


def private_chat(chat_id: int = CHAT) -> dict[str, Any]:
    return {"id": chat_id, "first_name": "Ann", "type": "private"}


def text_update(text: str, *, chat_id: int = CHAT, message_id: int | None = None, update_id: int | None = None,
                edited: bool = False) -> dict[str, Any]:  # fmt: skip
    message = {"message_id": message_id or next(_ids), "date": 1_772_445_600, "chat": private_chat(chat_id),
               "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"}, "text": text}  # fmt: skip
    update: dict[str, Any] = {"edited_message" if edited else "message": message}
    if update_id is not None:
        update["update_id"] = update_id
    return update


def press_update(data: str, *, chat_id: int = CHAT, message_id: int = 1) -> dict[str, Any]:
    return {"callback_query": {
        "id": f"cb{next(_ids)}", "from": {"id": chat_id, "is_bot": False, "first_name": "Ann"},
        "chat_instance": "1", "data": data,
        "message": {"message_id": message_id, "date": 1_772_445_600, "chat": private_chat(chat_id), "text": "?"},
    }}  # fmt: skip


async def webhook_client(channel: TelegramChannel) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(make_web_app(routes=channel.routes())))
    await client.start_server()
    return client


async def post_update(client: TestClient[Any, Any], update: dict[str, Any], secret: str | None = SECRET) -> int:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    response = await client.post(WEBHOOK_PATH, json=update, headers=headers)
    return response.status


Factory = Callable[..., App]
