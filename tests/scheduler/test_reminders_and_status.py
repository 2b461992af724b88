"""A wave from start to finish: invitations, answers, reminders to non-responders, expiry, and
what ``rapport status`` counts."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from sqlalchemy import select

from bot.app import App
from bot.delivery import Delivery
from bot.engine.ports import Inbound
from bot.runner import schedules_from_config
from memory.db import transaction
from memory.models import Checkin, Person
from scheduler.dispatch import Dispatcher
from scheduler.planner import Planner
from scheduler.report import wave_status
from tests.fakes.channel import RecordingChannel
from tests.scheduler.conftest import Clock, add_people

UTC = dt.UTC
ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def answer(app: App, key: str, text: str, at: dt.datetime) -> None:
    app.service.handle(Inbound(channel="telegram", sender=f"chat-{key}", kind="text", text=text, received_at=at))


async def test_a_wave_from_invitation_to_expiry(scheduled_app: Callable[..., App]) -> None:
    # A cron wave on 1 January never fires here: this test follows one manual wave.
    app = scheduled_app(window=ALL_DAY, cadence={"cron": "0 6 1 1 *", "open_for_days": 9, "reminders": 2})
    clock = Clock(dt.datetime(2026, 6, 1, 10, tzinfo=UTC))
    keys = add_people(app, 5, now=clock() - dt.timedelta(days=5))
    add_people(app, 1, now=clock() - dt.timedelta(days=5), prefix="gone", channel=None)
    add_people(app, 1, now=clock() - dt.timedelta(days=5), prefix="stop")
    with transaction(app.sessions) as s:
        s.scalars(select(Person).where(Person.key == "stop0000")).one().opted_out_at = clock()
    schedules = schedules_from_config(app.config)
    planner = Planner(sessions=app.sessions, programs=schedules, expire=app.service.expire)
    channel = RecordingChannel()
    dispatcher = Dispatcher(
        sessions=app.sessions, handlers=Delivery(app=app, channels={"telegram": channel}, clock=clock).handlers(),
        worker_id="w", programs=schedules, clock=clock, sleep=clock.sleep,
        rng=random.Random(1),
    )  # fmt: skip

    async def step(**delta: float) -> None:
        clock.advance(**delta)
        planner.tick(clock())
        while (await dispatcher.dispatch_once()).handled:
            pass

    planner.start_wave(program="pulse", now=clock())
    await step(minutes=1)
    assert len(channel.sent) == 5
    # p0 finishes, p1 answers one question, p2 opts out after the invitation.
    for text in ("9", "all good"):
        answer(app, keys[0], text, clock())
    answer(app, keys[1], "4", clock())
    for text in ("stop", "yes"):
        answer(app, keys[2], text, clock())
    channel.sent.clear()

    await step(days=3)  # the first reminder is due (9 days / 3)
    reminded = sorted(channel.recipients())
    assert reminded == [f"chat-{keys[1]}", f"chat-{keys[3]}", f"chat-{keys[4]}"]
    for address, messages in channel.sent:
        (message,) = messages  # one message: a retry can never repeat half of it
        assert message.text.startswith("Hi Person")
        assert "gentle reminder" in message.text
        assert "pick up where we left off" not in message.text  # no greeting again
        assert message.kind == "question"  # the question they are at
        if address.external_id == f"chat-{keys[1]}":
            assert message.question == "why"
    channel.sent.clear()
    answer(app, keys[3], "7", clock())
    answer(app, keys[3], "better", clock())

    await step(hours=1)
    assert channel.sent == []  # once per reminder
    await step(days=3)  # the second reminder
    assert sorted(channel.recipients()) == [f"chat-{keys[1]}", f"chat-{keys[4]}"]
    channel.sent.clear()
    await step(days=4)  # the wave closes
    assert channel.sent == []

    with transaction(app.sessions) as s:
        statuses = {p.key: c.status for c, p in s.execute(select(Checkin, Person).join(Person))}
        reminders = {p.key: c.reminders_sent for c, p in s.execute(select(Checkin, Person).join(Person))}
        (line,) = wave_status(s)
    assert statuses == {keys[0]: "completed", keys[1]: "expired", keys[2]: "opted_out", keys[3]: "completed",
                        keys[4]: "expired"}  # fmt: skip
    assert reminders == {keys[0]: 0, keys[1]: 2, keys[2]: 0, keys[3]: 1, keys[4]: 2}
    assert (line.due, line.sent, line.delivered, line.pending) == (5, 5, 5, 0)
    assert (line.answered, line.completed, line.reminded, line.reminders_sent) == (3, 2, 3, 5)
    assert (line.expired, line.opted_out, line.unreachable, line.failed) == (2, 2, 1, 0)
    assert line.response_rate == 0.4
    assert line.as_dict()["response_rate"] == 0.4
