"""The Telegram channel: the real python-telegram-bot Application against the fake Bot API.

Polling and webhook modes, delivery failures (429, 403, 502, 400), idempotency, edits, commands,
non-text, group chats and HTML escaping. Uses the hashing embedder (meaning is not the point here).
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sqlalchemy import func, select
from telegram.error import InvalidToken

import prompts
from bot.app import build_channels
from bot.channels.base import Address, Choice, Outbound
from bot.channels.telegram import ALLOWED_UPDATES, TelegramChannel
from memory.db import transaction
from memory.errors import PermanentFailure, RetryLater, Unreachable
from memory.models import ProcessedEvent
from tests.channels.telegram_kit import (
    CHAT,
    SECRET,
    T0,
    Clock,
    add_person,
    answers,
    identity,
    make_channel,
    post_update,
    press_update,
    text_update,
    webhook_client,
)
from tests.fakes.telegram_api import FakeTelegramAPI

ADDRESS = Address(channel="telegram", external_id=str(CHAT))


def html(template: str, /, **ctx: object) -> str:
    return prompts.render(template, "telegram_html", **ctx)


async def started_channel(app, api: FakeTelegramAPI, **kw) -> TelegramChannel:
    channel = make_channel(app, api, **kw)
    await channel.start()
    return channel


def start_checkin(app, now: dt.datetime = T0, person: str = "ann") -> tuple[int, list[Outbound]]:
    started = app.service.start(person_ref=person, program="customers", now=now, channel="telegram",
                                markup="telegram_html")  # fmt: skip
    return started.checkin_id, started.messages


def processed_events(app) -> int:
    with transaction(app.sessions) as s:
        return s.scalar(select(func.count()).select_from(ProcessedEvent)) or 0


# Polling -------------------------------------------------------------------------------------


async def test_polling_check_in_with_buttons_and_typed_text(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api)
    try:
        assert telegram_api.calls_to("getMe"), "initialize asks getMe"
        assert telegram_api.calls_to("deleteWebhook"), "polling removes any webhook first"
        assert channel.username == telegram_api.username

        checkin_id, messages = start_checkin(app)
        sent = await channel.send(ADDRESS, messages)
        invitation, question = telegram_api.calls_to("sendMessage")
        assert invitation["chat_id"] == CHAT
        assert invitation["parse_mode"] == "HTML"
        *ratings, stop_row = question["reply_markup"]["inline_keyboard"]
        assert [b["callback_data"] for b in stop_row] == [f"s:{checkin_id}"]
        buttons = [b for row in ratings for b in row]
        assert [b["text"] for b in buttons] == [str(v) for v in range(11)]
        assert [b["callback_data"] for b in buttons] == [f"r:{checkin_id}:{v}" for v in range(11)]
        assert all(len(row) <= 6 for row in question["reply_markup"]["inline_keyboard"])
        assert sent.external_ref is not None

        telegram_api.push_update(press_update(f"r:{checkin_id}:7", message_id=int(sent.external_ref)))
        await telegram_api.wait_for("sendMessage", 3)
        assert len(telegram_api.calls_to("answerCallbackQuery")) == 1
        (closed,) = telegram_api.calls_to("editMessageReplyMarkup")
        assert closed["chat_id"] == CHAT
        assert closed["message_id"] == int(sent.external_ref)
        assert "inline_keyboard" not in str(closed.get("reply_markup", "")), "the keyboard is removed"

        last = telegram_api.push_update(text_update("Onboarding was quick and friendly"))
        await telegram_api.wait_for("sendMessage", 4)
        await telegram_api.wait_confirmed(last)
        assert answers(app) == [("recommend", 7, None), ("reason", None, "Onboarding was quick and friendly")]

        offsets = [p.get("offset") for p in telegram_api.calls_to("getUpdates")]
        assert last + 1 in offsets, "each poll confirms what was received"
        assert telegram_api.calls_to("getUpdates")[0]["allowed_updates"] == list(ALLOWED_UPDATES)
    finally:
        await channel.stop()


async def test_a_new_keyboard_closes_the_previous_one(make_app, telegram_api) -> None:
    channel = await started_channel(make_app(), telegram_api, mode="webhook")
    try:
        rating = Outbound(text="?", choices=(Choice("0", 0), Choice("1", 1)), checkin_id=1, kind="question")
        first = await channel.send(ADDRESS, [rating])
        await channel.send(ADDRESS, [Outbound(text="plain")])
        assert telegram_api.calls_to("editMessageReplyMarkup") == []
        await channel.send(ADDRESS, [rating])
        (closed,) = telegram_api.calls_to("editMessageReplyMarkup")
        assert closed["message_id"] == int(first.external_ref or 0)
    finally:
        await channel.stop()


async def test_typed_number_answers_a_rating(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api)
    try:
        start_checkin(app)
        telegram_api.push_update(text_update("8"))
        await telegram_api.wait_for("sendMessage", 1)
        assert answers(app) == [("recommend", 8, None)]
    finally:
        await channel.stop()


async def test_polling_survives_an_update_it_cannot_read(make_app, telegram_api) -> None:
    app = make_app()
    channel = await started_channel(app, telegram_api)
    try:
        # PTB's own parser would reject this batch and fetch it again forever.
        telegram_api.push_update({"message": {"chat": "nope", "text": 5}})
        telegram_api.push_update({"message": {"message_id": 1}})
        telegram_api.push_update(text_update("hello", chat_id=999))
        (reply,) = await telegram_api.wait_for("sendMessage", 1)
        assert reply["chat_id"] == 999
        assert reply["text"] == html("person/unknown_person")
    finally:
        await channel.stop()


async def test_polling_recovers_from_a_bad_gateway(make_app, telegram_api) -> None:
    app = make_app()
    channel = await started_channel(app, telegram_api)
    try:
        telegram_api.fail("getUpdates", status=502)
        telegram_api.push_update(text_update("hello", chat_id=999))
        (reply,) = await telegram_api.wait_for("sendMessage", 1)
        assert reply["chat_id"] == 999
        assert len(telegram_api.calls_to("getUpdates")) >= 2, "the failed poll was retried"
    finally:
        await channel.stop()


async def test_updates_without_update_id_are_processed_once(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api)
    try:
        kicked = {"my_chat_member": {"chat": {"id": CHAT, "type": "private"}, "date": 1,
                                     "new_chat_member": {"status": "kicked"}}}  # fmt: skip
        telegram_api.push_update(kicked, assign_id=False)
        telegram_api.push_update(text_update("hello", chat_id=999), assign_id=False)
        await telegram_api.wait_for("sendMessage", 1)
        polls = len(telegram_api.calls_to("getUpdates"))
        # The fake returns both again on every poll (nothing can confirm them); wait for more polls.
        await telegram_api.wait_until(lambda: len(telegram_api.calls_to("getUpdates")) >= polls + 5)
    finally:
        await channel.stop()
    assert telegram_api.sent_texts(999) == [html("person/unknown_person")]
    found = identity(app)
    assert found is not None
    assert not found.reachable


# Webhook -------------------------------------------------------------------------------------


async def test_webhook_sets_secret_and_refuses_requests_without_it(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    client = await webhook_client(channel)
    try:
        assert telegram_api.webhook["url"] == "https://rapport.example/telegram/webhook"
        assert telegram_api.webhook["secret_token"] == SECRET
        assert not telegram_api.calls_to("getUpdates"), "webhook mode does not poll"
        start_checkin(app)

        assert await post_update(client, text_update("9", update_id=1), secret=None) == 401
        assert await post_update(client, text_update("9", update_id=2), secret="wrong") == 403
        assert await post_update(client, text_update("9", update_id=3), secret=SECRET[:-1]) == 403
        assert telegram_api.calls_to("sendMessage") == []
        assert answers(app) == []
        assert processed_events(app) == 0, "nothing processed without the secret"

        assert await post_update(client, text_update("9", update_id=4)) == 200
        assert answers(app) == [("recommend", 9, None)]
        assert telegram_api.sent_texts(CHAT)

        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        response = await client.post("/telegram/webhook", data=b"{not json", headers=headers)
        assert response.status == 400
    finally:
        await client.close()
        await channel.stop()


async def test_webhook_before_start_asks_telegram_to_come_back(make_app, telegram_api) -> None:
    app = make_app()
    channel = make_channel(app, telegram_api, mode="webhook")
    client = await webhook_client(channel)
    try:
        assert await post_update(client, text_update("9", update_id=1)) == 503
        assert processed_events(app) == 0
    finally:
        await client.close()


async def test_polling_mode_serves_no_webhook_route(make_app, telegram_api) -> None:
    assert make_channel(make_app(), telegram_api).routes() == []


async def test_same_update_id_twice_is_processed_once(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    client = await webhook_client(channel)
    try:
        start_checkin(app)
        update = text_update("6", update_id=555)
        assert await post_update(client, update) == 200
        replies = len(telegram_api.calls_to("sendMessage"))
        assert await post_update(client, update) == 200
        assert len(telegram_api.calls_to("sendMessage")) == replies, "no second reply"
        assert answers(app) == [("recommend", 6, None)]
    finally:
        await client.close()
        await channel.stop()


async def test_update_redelivered_after_a_crash_before_the_reply_gets_the_pending_question(
    make_app, telegram_api
) -> None:
    """The answer was stored, then the process died before its reply went out (simulated: the
    engine ran with confirm=True and nothing was sent). Telegram delivers the update again: the
    answer is not stored twice, and the person sees the question their conversation waits on."""
    from bot.channels.telegram.translate import Deliver, translate

    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    client = await webhook_client(channel)
    try:
        start_checkin(app)
        update = text_update("6", update_id=777)
        action = translate(update, now=T0)
        assert isinstance(action, Deliver)
        crashed = app.service.handle(action.inbound, markup="telegram_html", confirm=True)
        assert crashed, "the engine had a reply ready when the process died"
        assert telegram_api.calls_to("sendMessage") == []
        assert await post_update(client, update) == 200
        sent = [c["text"] for c in telegram_api.calls_to("sendMessage")]
        assert sent == [html("person/resumed"), crashed[-1].text]
        assert answers(app) == [("recommend", 6, None)], "stored once"
        # Now the replies are confirmed: a further redelivery is an ordinary duplicate.
        assert await post_update(client, update) == 200
        assert len(telegram_api.calls_to("sendMessage")) == len(sent)
    finally:
        await client.close()
        await channel.stop()


# Conversation --------------------------------------------------------------------------------


async def test_edited_message_corrects_that_answer(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        start_checkin(app)
        await channel.process_update(text_update("8", message_id=10, update_id=1))
        await channel.process_update(text_update("6", message_id=10, update_id=2, edited=True))
        assert answers(app) == [("recommend", 6, None)]
        assert telegram_api.sent_texts()[-1] == html(
            "person/edit_ack", question=app.config.programs["customers"].questions[0].text
        )
    finally:
        await channel.stop()


async def test_commands_help_skip_stop(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        start_checkin(app)
        await channel.process_update(text_update("/help"))
        help_text = html("person/help")
        assert telegram_api.sent_texts()[:2] == [help_text, "Your account manager sees your answers."]
        await channel.process_update(text_update("/whatever@RapportTestBot"))
        assert telegram_api.sent_texts()[-3] == help_text, "unknown commands get help, not stored"
        await channel.process_update(text_update("/skip"))
        assert answers(app)[0][0] == "recommend"
        await channel.process_update(text_update("/stop"))
        assert telegram_api.sent_texts()[-1] == html("person/confirm_stop")
        await channel.process_update(text_update("/stop"))
        assert telegram_api.sent_texts()[-1] == html("person/opted_out")
        await channel.process_update(text_update("hello?"))
        assert telegram_api.sent_texts()[-1] == html("person/opted_out_reminder")
    finally:
        await channel.stop()


async def test_non_text_gets_a_clear_reply_and_nothing_is_stored(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        start_checkin(app)
        for extra in ({"sticker": {"file_id": "x"}}, {"voice": {"file_id": "v", "duration": 1}},
                      {"poll": {"id": "1"}}, {"some_future_kind": {}}):  # fmt: skip
            update = text_update("x")
            del update["message"]["text"]
            update["message"].update(extra)
            await channel.process_update(update)
            assert telegram_api.sent_texts()[-1] == html("person/not_text", rating=True, low=0, high=10)
        assert answers(app) == []
    finally:
        await channel.stop()


async def test_unknown_update_kinds_are_ignored_and_logged_at_debug(make_app, telegram_api, caplog) -> None:
    app = make_app()
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        with caplog.at_level(logging.DEBUG, logger="bot.channels.telegram"):
            await channel.process_update({"update_id": 9, "message_reaction": {"chat": {"id": 1}}})
            await channel.process_update({"update_id": 10, "brand_new_kind": {"x": 1}})
        assert telegram_api.calls_to("sendMessage") == []
        ignored = [r for r in caplog.records if r.getMessage() == "telegram update ignored"]
        assert [r.kind for r in ignored] == ["message_reaction", "brand_new_kind"]  # type: ignore[attr-defined]
        assert all(r.levelno == logging.DEBUG for r in ignored)
    finally:
        await channel.stop()


async def test_group_chats_get_a_polite_explanation_and_no_data(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app, chat_id=-100123)  # even a linked group id reveals nothing
    clock = Clock()
    channel = await started_channel(app, telegram_api, mode="webhook", clock=clock)
    try:
        start_checkin(app)
        group = {"id": -100123, "title": "team", "type": "supergroup"}
        update = text_update("9")
        update["message"]["chat"] = group
        await channel.process_update(update)
        assert telegram_api.sent_texts(-100123) == [html("telegram/group_chat")]
        await channel.process_update(update)
        assert len(telegram_api.sent_texts(-100123)) == 1, "explained once an hour, not to every message"
        clock.now += dt.timedelta(hours=2)
        added = {"update_id": 7, "my_chat_member": {"chat": {"id": -55, "type": "group", "title": "g"},
                 "new_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True}}}}  # fmt: skip
        await channel.process_update(added)
        assert telegram_api.sent_texts(-55) == [html("telegram/group_chat")]
        assert answers(app) == []
    finally:
        await channel.stop()


async def test_rating_buttons_with_bad_data_are_answered_and_ignored(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        start_checkin(app)
        for data in ("r:1:7:extra", "x" * 300, "r:abc:1", "", "r:99999999999999:5"):
            await channel.process_update(press_update(data))
        assert len(telegram_api.calls_to("answerCallbackQuery")) == 5
        assert all(
            c.get("text") == "That button no longer works." for c in telegram_api.calls_to("answerCallbackQuery")
        )
        assert answers(app) == []
        # A real press on an old keyboard of a finished check-in: answered, closed, explained.
        await channel.process_update(press_update("r:12345:3"))
        assert answers(app) == [("recommend", 3, None)], "falls back to the open check-in"
    finally:
        await channel.stop()


# Delivery ------------------------------------------------------------------------------------


async def test_429_short_retry_after_is_waited_out(make_app, telegram_api) -> None:
    channel = await started_channel(make_app(), telegram_api, mode="webhook")
    try:
        telegram_api.fail("sendMessage", status=429, retry_after=1)
        await channel.send(ADDRESS, [Outbound(text="hello")])
        assert len(telegram_api.calls_to("sendMessage")) == 2
    finally:
        await channel.stop()


async def test_429_long_retry_after_is_handed_back(make_app, telegram_api) -> None:
    channel = await started_channel(make_app(), telegram_api, mode="webhook")
    try:
        telegram_api.fail("sendMessage", status=429, retry_after=30)
        with pytest.raises(RetryLater) as caught:
            await channel.send(ADDRESS, [Outbound(text="hello")])
        assert caught.value.retry_after == 30
        assert len(telegram_api.calls_to("sendMessage")) == 1
        # The pause holds for that chat: its next message is handed back without calling Telegram,
        # while other chats go on.
        with pytest.raises(RetryLater) as again:
            await channel.send(ADDRESS, [Outbound(text="hello again")])
        assert again.value.retry_after is not None
        assert 25 < again.value.retry_after <= 30
        assert len(telegram_api.calls_to("sendMessage")) == 1
        await channel.send(Address(channel="telegram", external_id="99"), [Outbound(text="hello")])
        assert len(telegram_api.calls_to("sendMessage")) == 2
    finally:
        await channel.stop()


async def test_403_marks_the_person_unreachable_then_unblock_restores(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        telegram_api.fail("sendMessage", status=403)
        with pytest.raises(Unreachable) as caught:
            await channel.send(ADDRESS, [Outbound(text="hello")])
        assert caught.value.reason == "blocked"
        assert len(telegram_api.calls_to("sendMessage")) == 1, "no retries for a block"
        found = identity(app)
        assert found is not None
        assert not found.reachable
        assert found.unreachable_reason == "blocked"

        unblocked = {"update_id": 31, "my_chat_member": {"chat": {"id": CHAT, "type": "private"},
                     "new_chat_member": {"status": "member", "user": {"id": 1, "is_bot": True}}}}  # fmt: skip
        await channel.process_update(unblocked)
        found = identity(app)
        assert found is not None
        assert found.reachable
        assert found.unreachable_reason is None
    finally:
        await channel.stop()


async def test_my_chat_member_kicked_marks_unreachable(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    channel = await started_channel(app, telegram_api, mode="webhook")
    try:
        kicked = {"update_id": 30, "my_chat_member": {"chat": {"id": CHAT, "type": "private"},
                  "new_chat_member": {"status": "kicked", "user": {"id": 1, "is_bot": True}}}}  # fmt: skip
        await channel.process_update(kicked)
        found = identity(app)
        assert found is not None
        assert not found.reachable
        assert found.unreachable_reason == "blocked"
        assert telegram_api.calls_to("sendMessage") == []
    finally:
        await channel.stop()


async def test_502_is_retried_with_backoff(make_app, telegram_api) -> None:
    channel = await started_channel(make_app(), telegram_api, mode="webhook")
    try:
        telegram_api.fail("sendMessage", status=502, times=2)
        sent = await channel.send(ADDRESS, [Outbound(text="hello")])
        assert len(telegram_api.calls_to("sendMessage")) == 3
        assert sent.external_ref
        telegram_api.fail("sendMessage", status=502, times=10)
        with pytest.raises(RetryLater):
            await channel.send(ADDRESS, [Outbound(text="hello")])
        assert len(telegram_api.calls_to("sendMessage")) == 6, "bounded: three attempts, no endless retries"
    finally:
        await channel.stop()


async def test_400_is_a_permanent_failure(make_app, telegram_api) -> None:
    channel = await started_channel(make_app(), telegram_api, mode="webhook")
    try:
        telegram_api.fail("sendMessage", status=400, description="Bad Request: can't parse entities")
        with pytest.raises(PermanentFailure):
            await channel.send(ADDRESS, [Outbound(text="hello")])
        assert len(telegram_api.calls_to("sendMessage")) == 1
    finally:
        await channel.stop()


async def test_send_before_start_is_retry_later(make_app, telegram_api) -> None:
    channel = make_channel(make_app(), telegram_api)
    with pytest.raises(RetryLater):
        await channel.send(ADDRESS, [Outbound(text="hello")])
    with pytest.raises(PermanentFailure):
        await channel.send(Address(channel="telegram", external_id="not-a-number"), [Outbound(text="x")])


# Escaping ------------------------------------------------------------------------------------


async def test_quoted_words_are_escaped_for_telegram_html(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    clock = Clock(T0 - dt.timedelta(days=182))
    channel = await started_channel(app, telegram_api, mode="webhook", clock=clock)
    try:
        start_checkin(app, now=clock.now)
        await channel.process_update(text_update("9"))
        await channel.process_update(text_update("<b>Great</b> support & *fast* replies </i>"))
        clock.now = T0
        start_checkin(app, now=T0)
        await channel.process_update(text_update("3"))
        await channel.process_update(text_update("Nobody answers any more"))
        followup = telegram_api.calls_to("sendMessage")[-1]
        assert followup["parse_mode"] == "HTML"
        assert "&lt;b&gt;Great&lt;/b&gt; support &amp; *fast* replies &lt;/i&gt;" in followup["text"]
        assert "<" not in followup["text"]
        assert ">" not in followup["text"]
    finally:
        await channel.stop()


def test_composition_needs_a_token_and_a_webhook_secret(make_app, monkeypatch, caplog) -> None:
    app = make_app()
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    channels, notes = build_channels(app)
    assert "telegram" not in channels
    assert "telegram: off — set TELEGRAM_BOT_TOKEN" in notes

    def telegram_of(app):
        return build_channels(app)[0].get("telegram")

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:abc")
    monkeypatch.delenv("RAPPORT_INVITE_SECRET", raising=False)
    channel = telegram_of(app)
    assert isinstance(channel, TelegramChannel)
    assert channel.name == "telegram"
    assert channel.markup == "telegram_html"

    webhook = app.config.model_copy(deep=True)
    telegram = webhook.channels.telegram.model_copy(
        update={"mode": "webhook", "webhook_url": "https://x/telegram/webhook"}
    )
    app.config = webhook.model_copy(update={"channels": webhook.channels.model_copy(update={"telegram": telegram})})
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    with caplog.at_level(logging.WARNING):
        assert telegram_of(app) is None
    assert "TELEGRAM_WEBHOOK_SECRET" in caplog.text
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "not allowed: spaces")
    assert telegram_of(app) is None
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "s")
    channel = telegram_of(app)
    assert channel is not None
    assert len(channel.routes()) == 1


async def test_start_with_a_wrong_token_fails_cleanly(make_app, telegram_api) -> None:
    channel = make_channel(make_app(), telegram_api)
    channel.bot = type(channel.bot)(token="999:wrong", base_url=telegram_api.base_url)
    with pytest.raises(InvalidToken):
        await channel.start()
    assert not channel.running
    assert telegram_api.calls_to("getUpdates") == []
    await channel.stop()  # stopping a channel that never started is harmless
