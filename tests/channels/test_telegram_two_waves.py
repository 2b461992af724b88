"""A full two-wave check-in over Telegram (polling, real model) ends in "what changed?"."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from bot.channels.base import Address
from memory.db import transaction
from memory.models import Checkin, FollowUp
from tests.channels.telegram_kit import CHAT, T0, Clock, add_person, make_channel, press_update, text_update

FIRST_REASON = "The onboarding team was fantastic and support answered within minutes"
SECOND_REASON = "Support takes days to reply now and billing keeps making mistakes"


@pytest.mark.model
async def test_two_waves_over_telegram_ask_what_changed(make_app, telegram_api) -> None:
    app = make_app(real_model=True)
    add_person(app)
    clock = Clock(T0 - dt.timedelta(days=182))
    channel = make_channel(app, telegram_api, clock=clock)
    address = Address(channel="telegram", external_id=str(CHAT))
    await channel.start()
    try:
        # Wave 1, six months ago: a button press, then the reason in words.
        started = app.service.start(person_ref="ann", program="customers", now=clock.now, channel="telegram",
                                    markup="telegram_html")  # fmt: skip
        sent = await channel.send(address, started.messages)
        assert sent.external_ref is not None
        telegram_api.push_update(press_update(f"r:{started.checkin_id}:9", message_id=int(sent.external_ref)))
        await telegram_api.wait_for("editMessageReplyMarkup", 1)
        await telegram_api.wait_for("sendMessage", 3)  # invitation, rating, then the reason question
        telegram_api.push_update(text_update(FIRST_REASON))
        await telegram_api.wait_for("sendMessage", 4)
        with transaction(app.sessions) as s:
            assert s.get(Checkin, started.checkin_id).status == "completed"  # type: ignore[union-attr]

        # Wave 2, today: a lower typed rating and a different reason.
        clock.now = T0
        second = app.service.start(person_ref="ann", program="customers", now=clock.now, channel="telegram",
                                   markup="telegram_html")  # fmt: skip
        assert second.created
        await channel.send(address, second.messages)
        count = len(telegram_api.calls_to("sendMessage"))
        telegram_api.push_update(text_update("4"))
        await telegram_api.wait_for("sendMessage", count + 1)
        count = len(telegram_api.calls_to("sendMessage"))
        telegram_api.push_update(text_update(SECOND_REASON))
        await telegram_api.wait_for("sendMessage", count + 1)
        followup = telegram_api.sent_texts(CHAT)[-1]
        with transaction(app.sessions) as s:
            asked = s.scalars(select(FollowUp).where(FollowUp.checkin_id == second.checkin_id)).all()
        assert len(asked) == 1, "the change is asked about"
        words = FIRST_REASON.lower().split()
        quoted = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
        assert any(q in followup.lower() for q in quoted), "the follow-up quotes their own earlier words"
        assert "March 2026" not in followup
        assert "September 2025" in followup

        # Their answer to "what changed?" is kept with the follow-up.
        count = len(telegram_api.calls_to("sendMessage"))
        telegram_api.push_update(text_update("A new support vendor took over in the summer"))
        await telegram_api.wait_for("sendMessage", count + 1)
        with transaction(app.sessions) as s:
            (asked,) = s.scalars(select(FollowUp).where(FollowUp.checkin_id == second.checkin_id))
            assert asked.answer_text == "A new support vendor took over in the summer"
            assert s.get(Checkin, second.checkin_id).status == "completed"  # type: ignore[union-attr]
    finally:
        await channel.stop()
