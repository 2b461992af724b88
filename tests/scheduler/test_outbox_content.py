"""The outbox carries the message: a retry sends exactly what the first attempt prepared."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select, update

from bot.app import App
from memory.db import transaction
from memory.errors import RetryLater
from memory.models import Checkin, OutboxMessage
from memory.models_scheduler import OutboxContent
from tests.fakes.channel import RecordingChannel
from tests.scheduler.conftest import Clock
from tests.scheduler.test_dispatch import ALL_DAY, drain, outbox, setup

UTC = dt.UTC


async def test_an_invitation_whose_first_send_fails_with_a_5xx_arrives_once_with_its_greeting(
    scheduled_app: Callable[..., App],
) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    channel.fail_with = [RetryLater("502 Bad Gateway")]
    dispatcher = setup(app, clock, 1, channel, retry_base=dt.timedelta(seconds=2))
    await drain(app, dispatcher, clock)
    assert len(channel.attempts) == 2
    ((_, messages),) = channel.sent  # reached the person once
    (message,) = messages
    assert message.text.startswith("Hi Person 0! It's time for your pulse check-in.")
    assert "Welcome back" not in message.text
    assert "How are we doing?" in message.text
    assert len(message.choices) == 11  # the rating buttons came with it
    (row,) = outbox(app)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_reminder_retry_sends_the_stored_nudge_not_a_new_rendering(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 1, channel)
    await drain(app, dispatcher, clock)
    with transaction(app.sessions) as s:
        checkin = s.scalars(select(Checkin)).one()
        s.add(OutboxMessage(key="reminder:1", kind="reminder", person_id=checkin.person_id,
                            program_id=checkin.program_id, checkin_id=checkin.id, payload={"program": "pulse", "n": 1},
                            status="pending", not_before=clock(), attempts=0, created_at=clock()))  # fmt: skip
    channel.fail_with = [RetryLater("503 Service Unavailable")]
    await drain(app, dispatcher, clock)
    first, second = channel.attempts[-2:]
    assert first == second
    reminder = channel.sent[-1][1]
    assert "a gentle reminder" in reminder[0].text
    assert "Welcome back" not in "".join(m.text for m in reminder)
    with transaction(app.sessions) as s:
        stored = s.scalars(select(OutboxContent).join(OutboxMessage).where(OutboxMessage.kind == "reminder")).one()
        assert stored.body["messages"][0]["text"] == reminder[0].text


async def test_a_stored_invitation_is_not_sent_once_the_checkin_closed(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    channel.fail_with = [RetryLater("500")]
    dispatcher = setup(app, clock, 1, channel, retry_base=dt.timedelta(seconds=2))
    await dispatcher.dispatch_once()
    # Meanwhile the person answered everything from another channel.
    with transaction(app.sessions) as s:
        s.execute(update(Checkin).values(status="completed"))
    await drain(app, dispatcher, clock)
    assert channel.sent == []
    (row,) = outbox(app)
    assert (row.status, row.last_error) == ("skipped", "the check-in is completed")


async def test_a_digest_retry_sends_the_stored_rendering(scheduled_app: Callable[..., App]) -> None:
    from bot.digests import DigestDelivery

    app = scheduled_app(window=ALL_DAY)
    now = dt.datetime(2026, 6, 2, 10, tzinfo=UTC)
    channel = RecordingChannel()
    with transaction(app.sessions) as s:
        row = OutboxMessage(key="digest:x", kind="digest", channel="telegram", payload={}, status="claimed",
                            not_before=now, attempts=1, created_at=now)  # fmt: skip
        s.add(row)
        s.flush()
        body = {"channel": "telegram", "address": {"channel": "telegram", "external_id": "4242", "workspace": ""},
                "message": {"text": "3 people changed their view", "blocks": None}}  # fmt: skip
        s.add(OutboxContent(outbox_id=row.id, channel="telegram", body=body, prepared_at=now))
        s.flush()
        s.expunge(row)
    # The payload no longer even names an owner: nothing is rebuilt, the stored digest goes out.
    deliver = DigestDelivery(sessions=app.sessions, config=app.config, channels={"telegram": channel})
    await deliver(row)
    ((address, messages),) = channel.sent
    assert (address.external_id, messages[0].text) == ("4242", "3 people changed their view")
