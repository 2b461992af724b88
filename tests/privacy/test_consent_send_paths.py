"""After an opt-out no message reaches the person, on every send path: invitations, reminders
(also a stored one retried after a failed send), promise questions, follow-ups, and anything the
outbox holds for them that was queued before they said stop. An owner's digest is the owner
role's work mail and still goes to a person who is also an owner (docs/privacy.md)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

import pytest
from sqlalchemy import select

from bot.app import App
from bot.delivery import Delivery
from bot.digests import DigestDelivery
from bot.engine.owners import link_owner
from bot.engine.ports import Inbound
from bot.runner import schedules_from_config
from memory import promises, store
from memory.db import transaction
from memory.errors import OptedOut, RetryLater
from memory.models import Checkin, FollowUp, OutboxMessage, Owner, Person
from scheduler.digests import DigestSchedule, plan_digests
from scheduler.dispatch import Dispatcher, DispatchReport, DispatchSettings
from scheduler.planner import Planner
from tests.fakes.channel import RecordingChannel
from tests.history_builder import T0, History
from tests.scheduler.conftest import Clock, add_people
from tests.scheduler.test_dispatch import ALL_DAY, drain, outbox

UTC = dt.UTC
NOW = dt.datetime(2026, 6, 2, 10, tzinfo=UTC)


def dispatcher(app: App, clock: Clock, channel: RecordingChannel, **settings: object) -> Dispatcher:
    delivery = Delivery(app=app, channels={"telegram": channel}, clock=clock)
    return Dispatcher(
        sessions=app.sessions, handlers=delivery.handlers(), worker_id="w1", programs=schedules_from_config(app.config),
        settings=DispatchSettings(**settings),  # type: ignore[arg-type]
        clock=clock, sleep=clock.sleep, rng=random.Random(3),
    )  # fmt: skip


def says(app: App, key: str, text: str, at: dt.datetime, n: int) -> list[str]:
    """The person writes in their Telegram chat (the engine's rule for stop, yes, start...)."""
    inbound = Inbound(channel="telegram", sender=f"chat-{key}", kind="text", text=text, received_at=at,
                      event_key=f"{key}-{n}")  # fmt: skip
    return [m.text for m in app.service.handle(inbound)]


def opted_out(app: App, key: str) -> bool:
    with transaction(app.sessions) as s:
        return store.require_person(s, key).opted_out_at is not None


def queue_wave(app: App, clock: Clock, n: int = 2) -> list[str]:
    keys = add_people(app, n, now=clock() - dt.timedelta(days=10))
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config)).start_wave(program="pulse", now=clock())
    return keys


async def test_an_invitation_queued_before_the_stop_is_not_sent(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(NOW)
    channel = RecordingChannel()
    first, second = queue_wave(app, clock)
    # Between check-ins "stop" needs no confirmation (bot.engine.outside).
    assert says(app, first, "stop", clock(), 1)
    assert opted_out(app, first)
    await drain(app, dispatcher(app, clock, channel), clock)
    assert channel.recipients() == [f"chat-{second}"]
    assert [(r.status, r.last_error) for r in outbox(app)] == [("skipped", "opted out"), ("sent", None)]


async def test_the_invitation_handler_checks_again_when_it_prepares_the_message(
    scheduled_app: Callable[..., App],
) -> None:
    """An opt-out that lands after the row was claimed: the handler's own check stops it."""
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(NOW)
    channel = RecordingChannel()
    (key,) = queue_wave(app, clock, 1)
    worker = dispatcher(app, clock, channel)
    (row,) = worker.claim(clock())
    assert says(app, key, "stop", clock(), 1)
    report = DispatchReport()
    await worker._send(row, report)
    assert channel.sent == []
    assert report.skipped == 1
    assert [(r.status, r.last_error) for r in outbox(app)] == [("skipped", "opted out")]
    with transaction(app.sessions) as s:
        assert s.scalars(select(Checkin)).all() == [], "no check-in was opened for them"


async def test_a_reminder_and_a_stored_retry_stop_after_the_person_confirms_stop(
    scheduled_app: Callable[..., App],
) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(NOW)
    channel = RecordingChannel()
    (key,) = queue_wave(app, clock, 1)
    worker = dispatcher(app, clock, channel, retry_base=dt.timedelta(seconds=2))
    await drain(app, worker, clock)
    assert len(channel.sent) == 1  # the invitation
    with transaction(app.sessions) as s:
        checkin = s.scalars(select(Checkin)).one()
        s.add(OutboxMessage(key="reminder:1", kind="reminder", person_id=checkin.person_id,
                            program_id=checkin.program_id, checkin_id=checkin.id, payload={"program": "pulse", "n": 1},
                            status="pending", not_before=clock(), attempts=0, created_at=clock()))  # fmt: skip
    # The reminder's first send fails after its message was prepared and stored...
    channel.fail_with = [RetryLater("502 Bad Gateway")]
    await worker.dispatch_once()
    assert len(channel.attempts) == 2
    # ...then the person says stop, in the conversation, and confirms.
    assert "Reply" in says(app, key, "stop", clock(), 1)[0]
    assert not opted_out(app, key)
    says(app, key, "yes", clock(), 2)
    assert opted_out(app, key)
    await drain(app, worker, clock)
    assert len(channel.sent) == 1, "the stored reminder was not retried"
    reminder = next(r for r in outbox(app) if r.kind == "reminder")
    assert (reminder.status, reminder.last_error) == ("skipped", "opted out")


async def test_any_row_to_a_person_is_skipped_once_they_opted_out(scheduled_app: Callable[..., App]) -> None:
    """The dispatcher's own check, for every kind addressed to a person (not only invitations)."""
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(NOW)
    (key,) = add_people(app, 1, now=clock())
    sent: list[int] = []

    async def notice(row: OutboxMessage) -> str:
        sent.append(row.id)
        return "m1"

    with transaction(app.sessions) as s:
        person = store.require_person(s, key)
        s.add(OutboxMessage(key="notice:1", kind="notice", person_id=person.id, payload={}, status="pending",
                            not_before=clock(), attempts=0, created_at=clock()))  # fmt: skip
    says(app, key, "stop", clock(), 1)
    worker = Dispatcher(sessions=app.sessions, handlers={"notice": notice}, worker_id="w1",
                        programs=schedules_from_config(app.config), clock=clock, sleep=clock.sleep)  # fmt: skip
    await worker.dispatch_once()
    assert sent == []
    assert [(r.status, r.last_error) for r in outbox(app)] == [("skipped", "opted out")]


def test_no_promise_question_and_no_follow_up_reach_a_person_who_stopped(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    (key,) = add_people(app, 1, now=NOW - dt.timedelta(days=60))
    with transaction(app.sessions) as s:
        person = store.require_person(s, key)
        promises.add_promise(s, person=person, owner=None, text="a named contact", now=NOW - dt.timedelta(days=50),
                             due_at=NOW - dt.timedelta(days=1))  # fmt: skip
    # A check-in opens (it will ask about the due promise after the core questions); the person
    # answers the rating, then stops before the words and the promise question.
    started = app.service.start(person_ref=key, program="pulse", now=NOW, channel="telegram")
    assert started.created
    says(app, key, "3", NOW, 1)
    says(app, key, "stop", NOW, 2)
    says(app, key, "yes", NOW, 3)
    assert opted_out(app, key)
    # Whatever they write now (words that would be compared with their history, a yes to the
    # promise) gets one reminder that they stopped: no question, no follow-up, nothing stored.
    later = NOW + dt.timedelta(hours=1)
    for n, text in enumerate(("Support got much worse since the spring", "yes, it happened"), start=4):
        assert says(app, key, text, later, n) == [
            'You asked us to stop, so you will not get check-ins. Send "start" if you want to take part again.'
        ]
    with transaction(app.sessions) as s:
        assert s.scalars(select(FollowUp)).all() == []
        checkin = s.scalars(select(Checkin)).one()
        assert checkin.status == "opted_out"
        assert [a.question for a in checkin.answers] == ["score"]
    # A new invitation is not even prepared while they are opted out.
    with pytest.raises(OptedOut):
        app.service.start(person_ref=key, program="pulse", now=later, channel="telegram")


async def test_a_person_who_is_also_an_owner_still_gets_the_owner_digest(make_app) -> None:
    """Decision: the digest is work mail to the owner role, about other people; a person's opt-out
    stops every message to them *as a person* (check-ins, reminders, follow-ups) and not that."""
    monday = dt.datetime(2025, 9, 1, 9, 0, tzinfo=UTC)
    app = make_app()
    with transaction(app.sessions) as s:
        h = History(s)
        dana = h.person("dana", owner="lead@example.com")
        h.checkin(dana, "customers", T0, rating=9, text="Support answers within the hour.")
        h.checkin(dana, "customers", monday - dt.timedelta(days=3), rating=3, text="Support is slow now.")
        # The owner is on the roster too (same e-mail), and has opted out of check-ins.
        lead, _ = store.upsert_person(s, key="lead", name="Lee", email="lead@example.com", timezone="UTC",
                                      owner_key=None, programs=[h.program("customers")], now=T0)  # fmt: skip
        lead.opted_out_at = T0
        (row,) = plan_digests(s, schedule=DigestSchedule(channel="telegram"), now=monday)
        owner = s.scalars(select(Owner).where(Owner.key == "lead@example.com")).one()
        link_owner(s, owner=owner, channel="telegram", external_id="4242", now=T0)
        s.flush()
        s.expunge(row)
        assert s.scalars(select(Person).where(Person.key == "lead")).one().opted_out_at is not None
    channel = RecordingChannel()
    deliver = DigestDelivery(sessions=app.sessions, config=app.config, channels={"telegram": channel})
    assert await deliver(row)
    ((address, messages),) = channel.sent
    assert address.external_id == "4242"
    assert "Support is slow now" in messages[0].text
