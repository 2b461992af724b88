"""Dispatch: atomic claims, leases, retries with backoff, the send window at send time."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import select, update

from bot.app import App
from bot.channels.base import Address, Outbound, Sent
from bot.delivery import Delivery
from bot.runner import schedules_from_config
from memory.db import transaction
from memory.errors import DeliveryUnknown, PermanentFailure, RetryLater, Unreachable
from memory.models import ChannelIdentity, Checkin, OutboxMessage, Person
from memory.models_scheduler import OutboxSend, WorkerHeartbeat
from scheduler.dispatch import Dispatcher, DispatchSettings
from scheduler.planner import Planner
from tests.fakes.channel import Flaky, RecordingChannel
from tests.scheduler.conftest import Clock, add_people

UTC = dt.UTC
ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


class TimedChannel(RecordingChannel):
    """Records when each attempt happened, by the injected clock."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(name="telegram")
        self.clock = clock
        self.log: list[tuple[str, dt.datetime, str]] = []  # (person chat, when, outcome)

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        when = self.clock()
        try:
            sent = await super().send(address, messages)
        except RetryLater as exc:
            self.log.append((address.external_id, when, f"retry:{exc.retry_after}"))
            raise
        self.log.append((address.external_id, when, "ok"))
        return sent


def setup(app: App, clock: Clock, n: int, channel: RecordingChannel, **settings: object) -> Dispatcher:
    add_people(app, n, now=clock() - dt.timedelta(days=10))
    schedules = schedules_from_config(app.config)
    Planner(sessions=app.sessions, programs=schedules).start_wave(program="pulse", now=clock())
    delivery = Delivery(app=app, channels={"telegram": channel}, clock=clock)
    return Dispatcher(
        sessions=app.sessions, handlers=delivery.handlers(), worker_id="w1", programs=schedules,
        settings=DispatchSettings(**settings),  # type: ignore[arg-type]
        clock=clock, sleep=clock.sleep, rng=random.Random(3),
    )  # fmt: skip


def outbox(app: App) -> list[OutboxMessage]:
    with transaction(app.sessions) as s:
        out = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        s.expunge_all()
    return out


async def drain(app: App, dispatcher: Dispatcher, clock: Clock, *, rounds: int = 500) -> None:
    """Dispatch until nothing is left, jumping the clock to the next due row when idle."""
    for _ in range(rounds):
        report = await dispatcher.dispatch_once()
        if report.handled:
            continue
        waiting = [r.not_before for r in outbox(app) if r.status == "pending"]
        if not waiting:
            return
        clock.now = max(clock.now, min(waiting))
    raise AssertionError("outbox never drained")


async def test_every_invitation_is_sent_once_and_opens_a_checkin(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 12, channel)
    await drain(app, dispatcher, clock)
    assert sorted(channel.recipients()) == [f"chat-p{i:04d}" for i in range(12)]
    (first,) = channel.sent[0][1]  # the invitation and the first question, as one message
    assert first.text.startswith("Hi Person")
    assert first.kind == "question"
    assert first.choices
    rows = outbox(app)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.attempts == 1 and r.external_ref and r.checkin_id for r in rows)
    with transaction(app.sessions) as s:
        checkins = list(s.scalars(select(Checkin)))
        assert len(checkins) == 12
        assert all(c.status == "invited" and c.wave_id == rows[0].wave_id for c in checkins)
        assert all(c.expires_at == rows[0].not_after for c in checkins)
    # Dispatching again sends nothing.
    assert (await dispatcher.dispatch_once()).handled == 0


async def test_a_flaky_channel_still_delivers_everything_and_honours_retry_after(
    scheduled_app: Callable[..., App],
) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = TimedChannel(clock)
    channel.flaky = Flaky(rate=0.2, seed=11, retry_after=7.0)
    dispatcher = setup(app, clock, 60, channel, retry_base=dt.timedelta(seconds=2), max_attempts=12)
    await drain(app, dispatcher, clock)
    delivered = Counter(chat for chat, _, outcome in channel.log if outcome == "ok")
    assert len(delivered) == 60
    assert set(delivered.values()) == {1}  # 100 %, each exactly once
    kinds = Counter(type(e).__name__ + ":" + e.reason.split()[0] for e in channel.failures)
    assert len(channel.failures) >= 8  # the fake really failed about 20 % of the sends
    assert kinds["RetryLater:429"] >= 1
    # Every retry after a 429 came at least retry_after seconds later.
    by_person: dict[str, list[tuple[dt.datetime, str]]] = {}
    for chat, when, outcome in channel.log:
        by_person.setdefault(chat, []).append((when, outcome))
    checked = 0
    for attempts in by_person.values():
        for (when, outcome), (next_when, _) in itertools.pairwise(attempts):
            if outcome == "retry:7.0":
                assert next_when - when >= dt.timedelta(seconds=7)
                checked += 1
    assert checked >= 1
    rows = outbox(app)
    assert {r.status for r in rows} == {"sent"}
    assert sum(r.attempts for r in rows) == len(channel.log)


async def test_backoff_grows_exponentially_with_jitter(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    dispatcher = setup(app, clock, 0, RecordingChannel(), retry_base=dt.timedelta(seconds=10),
                       retry_max=dt.timedelta(seconds=100))  # fmt: skip
    delays = [dispatcher.backoff(n) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(10 * 2 ** (n - 1), 100)
        assert ceiling / 2 <= delay <= ceiling


async def test_permanent_failure_and_unreachable_are_recorded_not_retried(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    channel.fail_with = [PermanentFailure("400 Bad Request: chat not found"), Unreachable("403: bot was blocked"), None]
    dispatcher = setup(app, clock, 3, channel, concurrency=1)
    await drain(app, dispatcher, clock)
    rows = outbox(app)
    assert [r.status for r in rows] == ["failed", "skipped", "sent"]
    assert rows[0].last_error == "400 Bad Request: chat not found"
    assert rows[1].last_error == "unreachable: 403: bot was blocked"
    assert len(channel.attempts) == 3
    with transaction(app.sessions) as s:
        blocked = s.scalar(select(ChannelIdentity).where(ChannelIdentity.person_id == rows[1].person_id))
        assert blocked is not None
        assert blocked.reachable is False


async def test_a_send_with_no_answer_is_recorded_unknown_and_never_sent_again(
    scheduled_app: Callable[..., App],
) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    channel.fail_with = [DeliveryUnknown("no answer within 30 s"), None]
    dispatcher = setup(app, clock, 2, channel, concurrency=1)
    await drain(app, dispatcher, clock)
    rows = outbox(app)
    assert [r.status for r in rows] == ["unknown", "sent"]
    assert rows[0].last_error == "no answer within 30 s"
    assert len(channel.attempts) == 2  # one try each: the unknown one is not resent
    with transaction(app.sessions) as s:
        # The invitation may have arrived: the check-in it opened stays open for the reminder.
        opened = s.scalar(select(Checkin).where(Checkin.person_id == rows[0].person_id))
        assert opened is not None
        assert opened.status in ("invited", "in_progress")


async def test_retries_stop_at_max_attempts(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    channel.fail_with = [RetryLater("503")] * 3
    dispatcher = setup(app, clock, 1, channel, max_attempts=3, retry_base=dt.timedelta(seconds=1))
    await drain(app, dispatcher, clock)
    (row,) = outbox(app)
    assert row.status == "failed"
    assert row.attempts == 3
    assert row.last_error == "gave up after 3 attempts: 503"


def claimed_by(app: App, worker: str, *, until: dt.datetime, started: bool, beat_at: dt.datetime | None) -> None:
    """Leave every row claimed by ``worker``, as a process killed mid-batch would."""
    with transaction(app.sessions) as s:
        s.execute(update(OutboxMessage).values(status="claimed", claimed_by=worker, attempts=1 if started else 0,
                                               claimed_until=until))  # fmt: skip
        for row in s.scalars(select(OutboxMessage)):
            if started:
                s.add(OutboxSend(outbox_id=row.id, worker_id=worker, started_at=until))
        if beat_at is not None:
            s.add(WorkerHeartbeat(worker_id=worker, seen_at=beat_at))


async def test_an_expired_lease_is_claimed_again_and_a_live_one_is_not(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 2, channel, lease=dt.timedelta(minutes=5))
    # A live process is sending both rows: its heartbeat is fresh and its lease runs.
    claimed_by(app, "busy", until=clock() + dt.timedelta(minutes=5), started=True, beat_at=clock())
    assert (await dispatcher.dispatch_once()).handled == 0
    clock.advance(minutes=6)
    report = await dispatcher.dispatch_once()
    assert report.sent == 2
    assert [r.attempts for r in outbox(app)] == [2, 2]


async def test_a_dead_holders_claims_are_taken_back_at_once_not_after_the_lease(
    scheduled_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 2, channel, lease=dt.timedelta(minutes=5))
    # Killed 10 s ago: the lease runs for almost 5 more minutes, but the heartbeat is fresh.
    claimed_by(app, "dead", until=clock() + dt.timedelta(minutes=5), started=True, beat_at=clock())
    clock.advance(seconds=29)
    assert (await dispatcher.dispatch_once()).handled == 0
    clock.advance(seconds=2)  # 31 s without a heartbeat: the holder is dead
    with caplog.at_level(logging.INFO, logger="scheduler.dispatch"):
        report = await dispatcher.dispatch_once()
    assert report.sent == 2
    assert sorted(channel.recipients()) == ["chat-p0000", "chat-p0001"]
    # Both had started, so both attempts count and each reclaim says a duplicate is possible.
    assert [r.attempts for r in outbox(app)] == [2, 2]
    assert sum("may have been delivered" in r.getMessage() for r in caplog.records) == 2


async def test_a_claim_that_was_never_tried_costs_no_attempt_and_no_warning(
    scheduled_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 2, channel)
    # A process with no heartbeat row at all (it stopped long ago) claimed the rows, sent nothing.
    claimed_by(app, "gone", until=clock() + dt.timedelta(minutes=5), started=False, beat_at=None)
    with caplog.at_level(logging.INFO, logger="scheduler.dispatch"):
        report = await dispatcher.dispatch_once()
    assert report.sent == 2
    assert [r.attempts for r in outbox(app)] == [1, 1]
    messages = [r.getMessage() for r in caplog.records]
    assert not any("may have been delivered" in m for m in messages)
    assert sum("never tried" in m for m in messages) == 2
    with transaction(app.sessions) as s:
        assert s.scalars(select(OutboxSend)).all() == []  # markers go with the outcome


async def test_concurrent_claims_never_share_a_row(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    first = setup(app, clock, 30, RecordingChannel(), batch_size=10)
    second = Dispatcher(sessions=app.sessions, handlers=first.handlers, worker_id="w2",
                        settings=DispatchSettings(batch_size=10), clock=clock)  # fmt: skip
    import asyncio

    ids: list[int] = []
    for _ in range(10):
        claims = await asyncio.gather(*(asyncio.to_thread(d.claim, clock()) for d in (first, second, first, second)))
        ids += [r.id for batch in claims for r in batch]
        if len(set(ids)) == 30:
            break
    assert len(ids) == 30  # every row claimed by exactly one claimer
    assert len(set(ids)) == 30


async def test_outside_the_window_a_row_waits_and_past_not_after_it_is_skipped(
    scheduled_app: Callable[..., App],
) -> None:
    app = scheduled_app(cadence={"every": "1 month", "open_for_days": 2, "reminders": 0})
    monday_noon = dt.datetime(2026, 6, 1, 12, tzinfo=UTC)
    clock = Clock(monday_noon)
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 2, channel)
    # The process was down; it comes back at 22:00, outside 09:00-17:00.
    clock.now = monday_noon.replace(hour=22)
    report = await dispatcher.dispatch_once()
    assert (report.sent, report.deferred) == (0, 2)
    assert {r.not_before for r in outbox(app)} == {dt.datetime(2026, 6, 2, 9, tzinfo=UTC)}
    assert channel.sent == []
    # One of them opted out meanwhile; the other goes out the next morning, once.
    with transaction(app.sessions) as s:
        s.scalars(select(Person).where(Person.key == "p0001")).one().opted_out_at = clock()
    clock.now = dt.datetime(2026, 6, 2, 9, 0, 30, tzinfo=UTC)
    await drain(app, dispatcher, clock)
    assert channel.recipients() == ["chat-p0000"]
    assert [(r.status, r.last_error) for r in outbox(app)] == [("sent", None), ("skipped", "opted out")]


async def test_a_row_past_its_window_is_skipped_not_sent(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY, cadence={"every": "1 month", "open_for_days": 1, "reminders": 0})
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 1, channel)
    clock.advance(days=2)
    await dispatcher.dispatch_once()
    (row,) = outbox(app)
    assert row.status == "skipped"
    assert row.last_error is not None
    assert row.last_error.startswith("too late")
    assert channel.sent == []


async def test_shutting_down_gives_unstarted_claims_back(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = RecordingChannel()
    dispatcher = setup(app, clock, 3, channel)
    dispatcher.stopping = True
    report = await dispatcher.dispatch_once()
    assert report.released == 3
    assert [(r.status, r.attempts, r.claimed_by) for r in outbox(app)] == [("pending", 0, None)] * 3
    assert channel.attempts == []


async def test_a_channel_that_is_off_here_waits_without_using_up_attempts(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY, channels=["slack", "telegram"])
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    add_people(app, 1, now=clock() - dt.timedelta(days=1), channel="slack")
    schedules = schedules_from_config(app.config)
    Planner(sessions=app.sessions, programs=schedules).start_wave(program="pulse", now=clock())
    telegram = RecordingChannel()
    dispatcher = Dispatcher(
        sessions=app.sessions, worker_id="w", programs=schedules, clock=clock,
        handlers=Delivery(app=app, channels={"telegram": telegram}, clock=clock).handlers(),
        settings=DispatchSettings(max_attempts=2),
    )  # fmt: skip
    for _ in range(5):  # more rounds than max_attempts
        report = await dispatcher.dispatch_once()
        assert report.deferred == 1
        clock.advance(minutes=5, seconds=1)
    (row,) = outbox(app)
    assert (row.status, row.attempts, row.channel) == ("pending", 0, "slack")
    assert row.last_error == "the person's channel is not running in this process"
    assert telegram.attempts == []
