"""A send whose answer comes too late may have arrived: it is never retried in place (that sent
invitations twice), but handed back as ``DeliveryUnknown``; and sends wait long enough for the
platform's slow answers (10-20 s when it is under load) before they give up."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bot.app import App
from bot.channels.base import Address, Outbound
from bot.channels.telegram import make_bot
from memory.errors import DeliveryUnknown, RetryLater
from tests.channels.slack_kit import SlackRig, dm_of, make_channel
from tests.channels.telegram_kit import CHAT, add_person
from tests.channels.telegram_kit import make_channel as make_telegram
from tests.fakes.telegram_api import FakeTelegramAPI

HELLO = [Outbound(text="hello")]


async def test_a_telegram_send_answered_too_late_is_not_sent_again(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    app = make_app()
    add_person(app)
    channel = make_telegram(app, telegram_api, mode="webhook", request_timeout=0.3, send_attempts=3)
    await channel.start()
    try:
        telegram_api.slow("sendMessage", seconds=1.0)
        with pytest.raises(DeliveryUnknown):
            await channel.send(Address(channel="telegram", external_id=str(CHAT)), HELLO)
        assert len(telegram_api.calls_to("sendMessage")) == 1, "the person got it once"
    finally:
        await channel.stop()


async def test_a_telegram_send_that_never_connected_is_retried_in_place(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    app = make_app()
    channel = make_telegram(app, telegram_api, mode="webhook")
    await channel.start()
    try:
        telegram_api.fail("sendMessage", status=502)
        await channel.send(Address(channel="telegram", external_id=str(CHAT)), HELLO)
        assert len(telegram_api.calls_to("sendMessage")) == 2
    finally:
        await channel.stop()


def test_telegram_sends_wait_out_telegrams_slow_answers() -> None:
    request = make_bot("1:abc")._request[1]  # the request object PTB uses for sends
    assert request.read_timeout is not None
    assert request.read_timeout >= 20, "Telegram answers in 10-20 s under load; PTB's 5 s sent twice"


async def test_a_slack_post_answered_too_late_is_not_posted_again(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user="U0ADA")
    channel = make_channel(slack_rig.app, slack_rig.api, slack_rig.clock, timeout_seconds=1)
    to = Address(channel="slack", external_id="U0ADA", conversation=dm_of("U0ADA"))
    slack_rig.api.slow("chat.postMessage", seconds=2.0)
    with pytest.raises(RetryLater) as caught:
        await channel.send(to, HELLO)
    assert isinstance(caught.value, DeliveryUnknown)
    assert len(slack_rig.api.calls_to("chat.postMessage")) == 1, "the person saw it once"
