"""Nothing lost on Telegram when a process dies or stops: polling confirms an update to Telegram
only after it was durably processed, and stopping finishes the updates in hand, replies included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import OperationalError

from bot.app import App
from tests.channels.telegram_kit import (
    CHAT,
    T0,
    add_person,
    answers,
    make_channel,
    post_update,
    text_update,
    webhook_client,
)
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import blocking_handle


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async def reached() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(reached(), timeout)


async def test_an_update_a_dead_process_was_handling_reaches_the_next_one(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    first_app, second_app = make_app(), make_app()
    add_person(first_app)
    entered, release = blocking_handle(first_app)
    first = make_channel(first_app, telegram_api, poll_retry_seconds=0.05)
    await first.start()
    second = None
    try:
        telegram_api.push_update(text_update("hello"))
        await until(entered.is_set)
        # The first process dies while handling it: the update was never confirmed to Telegram,
        # so the next process (a restart) gets it and handles it.
        first.receiver.running = False
        second = make_channel(second_app, telegram_api, poll_retry_seconds=0.05)
        await second.start()
        await until(lambda: bool(telegram_api.calls_to("sendMessage")))
        assert telegram_api.calls_to("sendMessage")[0]["chat_id"] == CHAT, "the second process replied"
    finally:
        release.set()
        if second is not None:
            await second.stop()
        await first.stop()


async def test_an_update_whose_processing_failed_is_fetched_again(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    app = make_app()
    add_person(app)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram")
    original, failed = app.service.handle, []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(1)
            raise OperationalError("SELECT 1", {}, Exception("the database is restarting"))
        return original(*args, **kwargs)

    app.service.handle = flaky  # type: ignore[method-assign]
    channel = make_channel(app, telegram_api, poll_retry_seconds=0.05)
    await channel.start()
    try:
        telegram_api.push_update(text_update("8"))
        await until(lambda: bool(answers(app)))
        assert failed, "the first attempt failed"
        assert answers(app) == [("recommend", 8, None)]
    finally:
        await channel.stop()


async def test_stopping_finishes_the_webhook_updates_in_hand_and_their_replies(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    app = make_app()
    add_person(app)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram")
    entered, release = blocking_handle(app)
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    client = await webhook_client(channel)
    try:
        posted = asyncio.ensure_future(post_update(client, text_update("8", update_id=77)))
        await until(entered.is_set)
        stopping = asyncio.ensure_future(channel.stop())  # SIGTERM arrives mid-update
        await asyncio.sleep(0)
        release.set()
        assert await posted == 200
        await stopping
        assert answers(app) == [("recommend", 8, None)]
        assert telegram_api.calls_to("sendMessage"), "the reply went out before the channel stopped"
        # New updates during the stop are refused, so Telegram delivers them again later.
        assert await post_update(client, text_update("9", update_id=78)) == 503
    finally:
        release.set()
        await client.close()
