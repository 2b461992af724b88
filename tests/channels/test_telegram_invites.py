"""Invite tokens (pure) and ``/start <token>`` linking a Telegram chat to a person."""

from __future__ import annotations

import datetime as dt
import re

import pytest

import prompts
from bot.channels.telegram import fetch_bot_username
from bot.invites import TOKEN_LENGTH, InvalidInvite, derive_key, make_token, read_token
from memory.errors import RetryLater
from tests.channels.telegram_kit import INVITE_KEY, T0, add_person, answers, identity, make_channel, text_update

DAY = dt.timedelta(days=1)


def html(template: str, /, **ctx: object) -> str:
    return prompts.render(template, "telegram_html", **ctx)


# Tokens ----------------------------------------------------------------------------------------


def test_token_fits_telegram_deep_links_and_round_trips() -> None:
    token = make_token(person_id=2**40, key=INVITE_KEY, now=T0, ttl=3 * DAY)
    assert len(token) == TOKEN_LENGTH <= 64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    invite = read_token(token, key=INVITE_KEY, now=T0 + DAY)
    assert invite.person_id == 2**40
    assert invite.expires_at == T0 + 3 * DAY
    assert invite.event_key == f"invite:{invite.nonce}"
    assert make_token(person_id=1, key=INVITE_KEY, now=T0, ttl=DAY) != make_token(
        person_id=1, key=INVITE_KEY, now=T0, ttl=DAY
    ), "every token has its own nonce"


def test_expired_token_is_refused() -> None:
    token = make_token(person_id=1, key=INVITE_KEY, now=T0, ttl=DAY)
    with pytest.raises(InvalidInvite) as caught:
        read_token(token, key=INVITE_KEY, now=T0 + DAY)
    assert caught.value.reason == "expired"


@pytest.mark.parametrize("change", ["flip", "other_key", "truncate", "junk", "empty", "long", "padding"])
def test_forged_or_malformed_tokens_are_refused(change: str) -> None:
    token = make_token(person_id=7, key=INVITE_KEY, now=T0, ttl=DAY)
    key = INVITE_KEY
    if change == "flip":
        token = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    elif change == "other_key":
        key = b"x" * 32
    elif change == "truncate":
        token = token[:-1]
    elif change == "junk":
        token = "hello"
    elif change == "empty":
        token = ""
    elif change == "long":
        token = token * 2
    elif change == "padding":
        token = token[:-1] + "="
    with pytest.raises(InvalidInvite) as caught:
        read_token(token, key=key, now=T0)
    assert caught.value.reason in ("forged", "malformed")


def test_derived_key_depends_on_secret_or_bot_token() -> None:
    assert derive_key(invite_secret="s", bot_token="1:a") == derive_key(invite_secret="s", bot_token="2:b")
    assert derive_key(invite_secret=None, bot_token="1:a") != derive_key(invite_secret=None, bot_token="2:b")
    assert derive_key(invite_secret=None, bot_token="1:a") != derive_key(invite_secret="1:a", bot_token="1:a")


# /start <token> ----------------------------------------------------------------------------------


async def test_start_with_token_links_the_chat_and_resumes_the_open_checkin(make_app, telegram_api) -> None:
    app = make_app()
    person_id = add_person(app, chat_id=None)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram", markup="telegram_html")
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    try:
        token = make_token(person_id=person_id, key=INVITE_KEY, now=T0, ttl=DAY)
        await channel.process_update(text_update(f"/start {token}", chat_id=777, update_id=1))
        linked = identity(app, 777)
        assert linked is not None
        assert linked.person_id == person_id
        texts = telegram_api.sent_texts(777)
        assert texts[0] == html("telegram/linked", name="Ann", resume=True)
        assert texts[1] == html("person/resumed")
        question = telegram_api.calls_to("sendMessage")[-1]
        assert question["reply_markup"]["inline_keyboard"], "the pending rating question comes back"

        await channel.process_update(text_update("9", chat_id=777))
        assert answers(app) == [("recommend", 9, None)]

        # Someone else with the same link: refused, nothing shown or linked.
        await channel.process_update(text_update(f"/start {token}", chat_id=888, update_id=2))
        assert telegram_api.sent_texts(888) == [html("telegram/invite_used")]
        assert identity(app, 888) is None
        # The same person tapping their own link again is simply greeted.
        before = len(telegram_api.sent_texts(777))
        await channel.process_update(text_update(f"/start {token}", chat_id=777, update_id=3))
        again = telegram_api.sent_texts(777)[before:]
        assert again[:2] == [html("telegram/linked", name="Ann", resume=True), html("person/resumed")]
    finally:
        await channel.stop()


async def test_linking_without_an_open_checkin_just_greets(make_app, telegram_api) -> None:
    app = make_app()
    person_id = add_person(app, name=None, chat_id=None)
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    try:
        token = make_token(person_id=person_id, key=INVITE_KEY, now=T0, ttl=DAY)
        await channel.process_update(text_update(f"/start@RapportTestBot {token}", chat_id=777))
        assert telegram_api.sent_texts(777) == [html("telegram/linked", name=None, resume=False)]
    finally:
        await channel.stop()


@pytest.mark.parametrize(
    ("token_of", "template"),
    [
        (lambda pid: make_token(person_id=pid, key=INVITE_KEY, now=T0 - 10 * DAY, ttl=DAY), "telegram/invite_expired"),
        (lambda pid: make_token(person_id=pid, key=b"z" * 32, now=T0, ttl=DAY), "telegram/invite_invalid"),
        (lambda pid: make_token(person_id=pid + 999, key=INVITE_KEY, now=T0, ttl=DAY), "telegram/invite_invalid"),
        (lambda pid: "<b>hello</b>", "telegram/invite_invalid"),
        (lambda pid: "x" * 5000, "telegram/invite_invalid"),
    ],
    ids=["expired", "forged", "unknown-person", "markup", "huge"],
)
async def test_bad_tokens_get_a_polite_explanation_and_no_data(make_app, telegram_api, token_of, template) -> None:
    app = make_app()
    person_id = add_person(app, chat_id=None)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram", markup="telegram_html")
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    try:
        await channel.process_update(text_update(f"/start {token_of(person_id)}", chat_id=777))
        assert telegram_api.sent_texts(777) == [html(template)]
        assert identity(app, 777) is None
    finally:
        await channel.stop()


async def test_unknown_chats_learn_nothing(make_app, telegram_api) -> None:
    app = make_app()
    add_person(app)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram", markup="telegram_html")
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    try:
        for text in ("/start", "hello", "9", "/stop"):
            await channel.process_update(text_update(text, chat_id=31337))
        assert set(telegram_api.sent_texts(31337)) == {html("person/unknown_person")}
        assert answers(app) == []
    finally:
        await channel.stop()


async def test_bot_username_comes_from_get_me(config, telegram_api) -> None:
    telegram = config.channels.telegram.model_copy(update={"api_base_url": telegram_api.base_url})
    assert (
        await fetch_bot_username(token=telegram_api.token, api_base_url=telegram.api_base_url) == telegram_api.username
    )
    assert telegram_api.calls_to("getMe")
    with pytest.raises(RetryLater):
        await fetch_bot_username(token="999:wrong", api_base_url=telegram.api_base_url)
