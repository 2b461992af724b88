"""Two ``rapport run`` processes on one database: what one process learned, the other must see.

Each "process" here is its own App (its own engine and connection pool) and its own channel
object on the same database, so nothing is shared between them but the database, exactly as with
two processes. On PostgreSQL (``RAPPORT_TEST_DATABASE_URL``) this is the deployment the docs
describe; on SQLite it is two connections to one file.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app import App
from bot.channels.base import Address, Choice, Outbound
from bot.channels.pacing import Pacer
from memory.db import transaction
from memory.errors import RetryLater
from memory.models import Answer
from tests.channels.slack_kit import SlackRig, dm_of, make_channel
from tests.channels.telegram_kit import CHAT, T0, Clock, add_person, press_update
from tests.channels.telegram_kit import make_channel as make_telegram
from tests.fakes.telegram_api import FakeTelegramAPI

ADA = "U0ADA"
ADA_DM = dm_of(ADA)
TO_ADA = Address(channel="slack", external_id=ADA)


def ratings(app: App) -> list[int | None]:
    with transaction(app.sessions) as s:
        return [a.rating for a in s.query(Answer).order_by(Answer.id)]


async def test_a_slack_button_clicked_in_each_process_counts_and_shows_once(
    slack_rig: SlackRig, make_app: Callable[..., App]
) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    question = slack_rig.last_rating_message(ADA_DM)
    other_app = make_app()
    other = make_channel(other_app, slack_rig.api, slack_rig.clock)

    await slack_rig.click(ADA, value=3, message=question)
    posts = len(slack_rig.posted(ADA_DM))
    ten = next(
        e for b in question["blocks"] if b["type"] == "actions" for e in b["elements"] if e["value"][-3:] == ":10"
    )
    await other.bolt.async_dispatch(
        AsyncBoltRequest(body=slack_rig.block_actions(ADA, question, ten), mode="socket_mode")
    )
    await other.drain()

    assert ratings(slack_rig.app) == [3]
    assert len(slack_rig.posted(ADA_DM)) == posts, "the second click got no reply"
    updates = slack_rig.api.calls_to("chat.update")
    assert len(updates) == 1, "the message shows one answer: the one that counts"
    assert "Your answer: *3*" in json.dumps(updates[0]["blocks"])


async def test_a_partial_slack_batch_is_finished_by_the_other_process(
    slack_rig: SlackRig, make_app: Callable[..., App]
) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    batch = [Outbound(text="invitation"), Outbound(text="first question")]
    original = slack_rig.api.handlers["chat.postMessage"]
    answered = 0

    def second_is_rate_limited(params: dict) -> dict:
        nonlocal answered
        answered += 1
        if answered == 1:
            slack_rig.api.fail("chat.postMessage", status=429, retry_after=60)
        return original(params)

    slack_rig.api.handlers["chat.postMessage"] = second_is_rate_limited
    try:
        await slack_rig.channel.send(TO_ADA, batch)
        raise AssertionError("the rate limit should hand the batch back")
    except RetryLater:
        pass
    assert slack_rig.posted_texts(ADA_DM) == ["invitation"]

    other = make_channel(make_app(), slack_rig.api, slack_rig.clock)
    other.transport.pacer = Pacer(per_conversation=0)
    await other.send(TO_ADA, batch)  # the outbox's retry, claimed by the other process
    assert slack_rig.posted_texts(ADA_DM) == ["invitation", "first question"]


def question(checkin: int = 0) -> Outbound:
    return Outbound(text="How likely?", choices=tuple(Choice(str(v), v) for v in range(3)), checkin_id=checkin)


async def test_a_telegram_keyboard_is_closed_by_the_other_process(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    first_app, second_app = make_app(), make_app()
    add_person(first_app)
    first = make_telegram(first_app, telegram_api, mode="webhook", clock=Clock(T0))
    second = make_telegram(second_app, telegram_api, mode="webhook", clock=Clock(T0))
    await first.start()
    await second.start()
    try:
        to = Address(channel="telegram", external_id=str(CHAT))
        sent = await first.send(to, [question()])
        assert telegram_api.calls_to("editMessageReplyMarkup") == []
        # The next question goes out from the other process: the old keyboard is closed there.
        await second.send(to, [question()])
        (closed,) = telegram_api.calls_to("editMessageReplyMarkup")
        assert int(closed["message_id"]) == int(sent.external_ref or 0)
    finally:
        await first.stop()
        await second.stop()


async def test_a_telegram_keyboard_answered_in_the_other_process_is_not_closed_again(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    first_app, second_app = make_app(), make_app()
    add_person(first_app)
    first = make_telegram(first_app, telegram_api, mode="webhook", clock=Clock(T0))
    second = make_telegram(second_app, telegram_api, mode="webhook", clock=Clock(T0))
    await first.start()
    await second.start()
    try:
        to = Address(channel="telegram", external_id=str(CHAT))
        sent = await first.send(to, [question()])
        message_id = int(sent.external_ref or 0)
        # The press reaches the other process: it closes that keyboard ...
        await second.process_update(press_update("r:0:2", message_id=message_id))
        assert [int(c["message_id"]) for c in telegram_api.calls_to("editMessageReplyMarkup")] == [message_id]
        # ... and the first process, sending the next question, knows it is closed already.
        await first.send(to, [question()])
        assert len(telegram_api.calls_to("editMessageReplyMarkup")) == 1
    finally:
        await first.stop()
        await second.stop()
