"""Consent on Telegram, through the real python-telegram-bot client against the fake Bot API:
the stop button and the "/" menu, who sees the answers (invitation, help, the anonymous
follow-up), and owners acting only on their own people."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

import prompts
from bot.channels.base import Address
from bot.channels.telegram import TelegramChannel
from bot.config import Config
from bot.engine.owners import link_owner
from memory import store
from memory.db import transaction
from memory.models import Promise
from tests.channels.telegram_kit import CHAT, T0, add_person, make_channel, press_update, text_update
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.history_builder import History

ADDRESS = Address(channel="telegram", external_id=str(CHAT))
ATTRIBUTED = "Your account manager sees your answers."
ANONYMOUS = "Only groups of at least 5 are shown; nobody sees your name next to your words."


def html(template: str, /, **ctx: object) -> str:
    return prompts.render(template, "telegram_html", **ctx)


async def started(app, api: FakeTelegramAPI) -> TelegramChannel:
    channel = make_channel(app, api, mode="webhook")
    await channel.start()
    return channel


def opted_out(app, key: str = "ann") -> bool:
    with transaction(app.sessions) as s:
        return store.require_person(s, key).opted_out_at is not None


# The stop button ------------------------------------------------------------------------------


async def test_the_stop_button_asks_to_confirm_like_a_typed_stop(make_app, telegram_api: FakeTelegramAPI) -> None:
    app = make_app()
    add_person(app)
    channel = await started(app, telegram_api)
    try:
        commands = telegram_api.calls_to("setMyCommands")
        assert commands, "the commands are registered in Telegram's / menu"
        assert "stop" in str(commands[0]["commands"])
        assert "promise" not in str(commands[0]["commands"]), "owners' commands are not in people's menu"

        started_checkin = app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram",
                                            markup="telegram_html")  # fmt: skip
        sent = await channel.send(ADDRESS, started_checkin.messages)
        question = telegram_api.calls_to("sendMessage")[-1]
        stop = question["reply_markup"]["inline_keyboard"][-1][0]
        assert (stop["text"], stop["callback_data"]) == ("Stop check-ins", f"s:{started_checkin.checkin_id}")

        message_id = int(str(sent.external_ref))
        await channel.process_update(press_update(stop["callback_data"], message_id=message_id))
        assert telegram_api.sent_texts()[-1] == html("person/confirm_stop")
        assert not opted_out(app), "a tap is not a decision: the conversation asks first"
        assert telegram_api.calls_to("answerCallbackQuery")
        # A second tap on the same button (before its keyboard closed) asks nothing more and
        # never confirms by itself.
        await channel.process_update(press_update(stop["callback_data"], message_id=message_id))
        assert telegram_api.sent_texts().count(html("person/confirm_stop")) == 1
        assert not opted_out(app)

        # "no" carries on: the rating question comes back with its buttons.
        await channel.process_update(text_update("no"))
        again = telegram_api.calls_to("sendMessage")[-1]
        assert telegram_api.sent_texts()[-2] == html("person/stop_cancelled")
        assert again["reply_markup"]["inline_keyboard"][-1][0]["text"] == "Stop check-ins"

        await channel.process_update(press_update(stop["callback_data"], message_id=message_id + 100))
        await channel.process_update(text_update("yes"))
        assert telegram_api.sent_texts()[-1] == html("person/opted_out")
        assert opted_out(app)
    finally:
        await channel.stop()


async def test_a_forged_stop_button_stops_nobody(make_app, telegram_api: FakeTelegramAPI) -> None:
    app = make_app()
    add_person(app)
    channel = await started(app, telegram_api)
    try:
        await channel.process_update(press_update("s:abc"))
        await channel.process_update(press_update("s:" + "9" * 40))
        assert not opted_out(app)
        assert len(telegram_api.calls_to("answerCallbackQuery")) == 2  # answered, nothing else
        assert telegram_api.sent_texts() == []
    finally:
        await channel.stop()


# Who sees the answers -------------------------------------------------------------------------


async def test_the_invitation_and_help_say_who_sees_the_answers(make_app, telegram_api: FakeTelegramAPI) -> None:
    app = make_app()
    add_person(app)
    add_person(app, "eve", name="Eve", chat_id=CHAT + 1, program="employees")
    channel = await started(app, telegram_api)
    try:
        for key, program, chat, sentence, other in (
            ("ann", "customers", CHAT, ATTRIBUTED, ANONYMOUS),
            ("eve", "employees", CHAT + 1, ANONYMOUS, ATTRIBUTED),
        ):
            begun = app.service.start(person_ref=key, program=program, now=T0, channel="telegram",
                                      markup="telegram_html")  # fmt: skip
            await channel.send(Address(channel="telegram", external_id=str(chat)), begun.messages)
            invitation = telegram_api.sent_texts(chat)[0]
            assert sentence in invitation
            assert other not in invitation
            await channel.process_update(text_update("/help", chat_id=chat))
            assert sentence in telegram_api.sent_texts(chat)[-2]  # help, then the pending question
    finally:
        await channel.stop()


def test_k_and_the_owner_role_come_from_the_program_config(make_app) -> None:
    base = make_app()
    data = base.config.model_dump()
    data["programs"]["employees"]["k"] = 7
    data["programs"]["customers"]["owner_role"] = "relationship lead <b>"
    app = make_app(config_override=Config.model_validate(data))
    add_person(app)
    add_person(app, "eve", name="Eve", chat_id=CHAT + 1, program="employees")
    ann = app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram", markup="telegram_html")
    eve = app.service.start(person_ref="eve", program="employees", now=T0, channel="telegram", markup="telegram_html")
    assert "Your relationship lead &lt;b&gt; sees your answers." in ann.messages[0].text
    assert "Only groups of at least 7 are shown" in eve.messages[0].text


@pytest.mark.model
async def test_an_anonymous_follow_up_says_only_the_person_sees_the_quote(
    make_app, telegram_api: FakeTelegramAPI
) -> None:
    app = make_app(real_model=True)
    earlier = T0 - dt.timedelta(days=120)
    with transaction(app.sessions) as s:
        h = History(s)
        for key, program in (("eve", "employees"), ("ann", "customers")):
            person = h.person(key, programs=(program,))
            chat = CHAT if key == "ann" else CHAT + 1
            store.link_identity(s, person=person, channel="telegram", external_id=str(chat), now=earlier)
            h.checkin(person, program, earlier, rating=9, text="My manager backs me up and the team is great.")
    channel = await started(app, telegram_api)
    try:
        followups = {}
        for key, program, chat in (("eve", "employees", CHAT + 1), ("ann", "customers", CHAT)):
            begun = app.service.start(person_ref=key, program=program, now=T0, channel="telegram",
                                      markup="telegram_html")  # fmt: skip
            await channel.send(Address(channel="telegram", external_id=str(chat)), begun.messages)
            await channel.process_update(text_update("2", chat_id=chat))
            await channel.process_update(
                text_update("My manager humiliated me in front of everyone; the team is falling apart.", chat_id=chat)
            )
            followups[key] = telegram_api.sent_texts(chat)[-1]
        assert "“My manager backs me up" in followups["eve"]
        assert "Only you see this quote" in followups["eve"]
        assert "“My manager backs me up" in followups["ann"]
        assert "Only you see this quote" not in followups["ann"], "attributed: the owner sees the answers"
    finally:
        await channel.stop()


# Owners act only on their own people ----------------------------------------------------------


async def test_an_owner_cannot_act_on_someone_else_s_person(make_app, telegram_api: FakeTelegramAPI) -> None:
    app = make_app()
    owner_chat = 777
    with transaction(app.sessions) as s:
        h = History(s)
        h.person("ann", owner="alex@example.com")
        h.person("bob", owner="blair@example.com")
        alex = store.get_or_create_owner(s, "alex@example.com", T0)
        link_owner(s, owner=alex, channel="telegram", external_id=str(owner_chat), now=T0)
    channel = await started(app, telegram_api)

    async def owner_says(text: str) -> str:
        await channel.process_update(text_update(text, chat_id=owner_chat))
        return telegram_api.sent_texts(owner_chat)[-1]

    try:
        theirs = await owner_says("promise @bob a pay rise by 2026-04-01")
        assert theirs == html("owner/promise_unknown_person", ref="bob")
        by_email = await owner_says("promise @bob@example.com a pay rise")
        assert by_email == html("owner/promise_unknown_person", ref="bob@example.com")
        nobody = await owner_says("promise @zed a pay rise")
        assert nobody == html("owner/promise_unknown_person", ref="zed"), "the same answer as an unknown name"
        assert "Noted" in await owner_says("promise @ann a named contact by 2026-04-01")
        with transaction(app.sessions) as s:
            (promise,) = s.scalars(select(Promise)).all()
            assert (promise.person_id, promise.text) == (store.require_person(s, "ann").id, "a named contact")
    finally:
        await channel.stop()


async def test_yes_and_no_buttons_answer_the_stop_question_once(make_app, telegram_api: FakeTelegramAPI) -> None:
    app = make_app()
    add_person(app)
    channel = await started(app, telegram_api)

    async def confirm_message() -> tuple[int, dict]:  # type: ignore[type-arg]
        assert telegram_api.sent_texts()[-1] == html("person/confirm_stop")
        # The fake numbers sent messages 1, 2, 3...: the question to confirm is the last one.
        return len(telegram_api.calls_to("sendMessage")), telegram_api.calls_to("sendMessage")[-1]

    try:
        begun = app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram",
                                  markup="telegram_html")  # fmt: skip
        await channel.send(ADDRESS, begun.messages)
        await channel.process_update(text_update("stop"))
        asked, message = await confirm_message()
        (row,) = message["reply_markup"]["inline_keyboard"]
        assert [(b["text"], b["callback_data"]) for b in row] == [
            ("Yes", f"c:{begun.checkin_id}:yes"), ("No", f"c:{begun.checkin_id}:no")]  # fmt: skip

        # "No" carries on, as a typed "no"; a second tap on the same message does nothing more.
        await channel.process_update(press_update(f"c:{begun.checkin_id}:no", message_id=asked))
        await channel.process_update(press_update(f"c:{begun.checkin_id}:no", message_id=asked))
        assert telegram_api.sent_texts().count(html("person/stop_cancelled")) == 1
        assert telegram_api.calls_to("sendMessage")[-1]["reply_markup"]["inline_keyboard"][-1][0]["text"] == (
            "Stop check-ins"
        )
        assert not opted_out(app)

        # An old "stop?" answered by typing: its Yes, tapped late, stops nothing.
        await channel.process_update(text_update("stop"))
        stale, _ = await confirm_message()
        await channel.process_update(text_update("no"))
        await channel.process_update(press_update(f"c:{begun.checkin_id}:yes", message_id=stale))
        assert not opted_out(app)
        assert telegram_api.sent_texts()[-1] != html("person/opted_out")

        # "Yes" stops, once.
        await channel.process_update(text_update("stop"))
        asked, _ = await confirm_message()
        await channel.process_update(press_update(f"c:{begun.checkin_id}:yes", message_id=asked))
        await channel.process_update(press_update(f"c:{begun.checkin_id}:yes", message_id=asked))
        assert opted_out(app)
        assert telegram_api.sent_texts().count(html("person/opted_out")) == 1
        assert {"chat_id": str(CHAT), "message_id": str(asked)}.items() <= {
            k: str(v) for k, v in telegram_api.calls_to("editMessageReplyMarkup")[-1].items()
        }.items(), "the tapped keyboard is closed"
        await channel.process_update(press_update("c:1:maybe"))  # forged: answered, nothing else
        assert telegram_api.sent_texts().count(html("person/opted_out")) == 1
    finally:
        await channel.stop()
