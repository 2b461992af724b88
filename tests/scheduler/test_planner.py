"""Planning into the outbox: who is due, at a decent hour, once; reminders; expiry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import func, select

from bot.app import App
from bot.engine.ports import Inbound
from bot.runner import schedules_from_config
from memory import store
from memory.db import transaction
from memory.models import Checkin, Enrollment, OutboxMessage, Person, Wave
from memory.models_scheduler import Absence
from scheduler.audience import ANSWERED_RECENTLY, NO_WINDOW, OPTED_OUT, UNREACHABLE
from scheduler.planner import Planner
from tests.scheduler.conftest import add_people

UTC = dt.UTC


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def planner_for(app: App) -> Planner:
    return Planner(sessions=app.sessions, programs=schedules_from_config(app.config), expire=app.service.expire)


def rows(app: App, kind: str | None = None) -> list[OutboxMessage]:
    with transaction(app.sessions) as s:
        q = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind:
            q = q.where(OutboxMessage.kind == kind)
        out = list(s.scalars(q))
        s.expunge_all()
    return out


def test_cron_wave_invites_everyone_once_inside_their_window(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 1 * *", "open_for_days": 7, "reminders": 2})
    t0 = utc(2026, 6, 1, 6, 0)  # Monday 06:00 UTC
    add_people(app, 3, now=t0 - dt.timedelta(days=30), timezone="Europe/Berlin", prefix="be")
    add_people(app, 2, now=t0 - dt.timedelta(days=30), timezone="America/New_York", prefix="ny")
    planner = planner_for(app)
    report = planner.tick(t0 + dt.timedelta(minutes=1))
    assert report.waves == 1
    assert report.invitations == 5
    again = planner.tick(t0 + dt.timedelta(minutes=2))
    assert again.invitations == 0
    assert again.waves == 0
    invites = rows(app, "invitation")
    assert len(invites) == 5
    assert len({r.key for r in invites}) == 5
    by_zone = {r.key.rsplit(":", 1)[1][:2]: r.not_before for r in invites}
    assert by_zone["be"] == utc(2026, 6, 1, 7, 0)  # 09:00 CEST
    assert by_zone["ny"] == utc(2026, 6, 1, 13, 0)  # 09:00 EDT
    assert all(r.not_after == t0 + dt.timedelta(days=7) for r in invites)
    assert all(r.key.startswith("invitation:pulse:2026-06-01T06:00Z:") for r in invites)


def test_no_wave_before_the_first_fire_time_and_none_after_it_closed(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 1 * *", "open_for_days": 7, "reminders": 0})
    add_people(app, 2, now=utc(2026, 5, 1))
    planner = planner_for(app)
    assert planner.tick(utc(2026, 5, 31, 23)).invitations == 0
    # Down for the whole open window of the June wave: nothing stale goes out afterwards.
    assert planner.tick(utc(2026, 6, 9)).invitations == 0
    assert rows(app) == []


def test_catch_up_after_downtime_is_one_row_not_n(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"every": "1 week", "open_for_days": 5, "reminders": 0},
                        window={"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})  # fmt: skip
    add_people(app, 1, now=utc(2026, 6, 1))
    planner = planner_for(app)
    planner.tick(utc(2026, 6, 1))
    with transaction(app.sessions) as s:
        anchor = s.scalar(select(Enrollment.anchor_at))
    assert anchor is not None
    # Asleep through three weekly due dates; waking up inside the open window of the latest one.
    wake = anchor + dt.timedelta(weeks=3, days=1)
    report = planner.tick(wake)
    assert report.invitations == 1
    invites = rows(app, "invitation")
    assert len(invites) == 1
    assert invites[0].not_before == wake
    assert planner.tick(wake + dt.timedelta(hours=1)).invitations == 0


def test_staggered_program_spreads_people_and_fills_waves(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"every": "1 month", "open_for_days": 7, "reminders": 0},
                        window={"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})  # fmt: skip
    add_people(app, 60, now=utc(2026, 6, 1))
    planner = planner_for(app)
    counts = []
    day = utc(2026, 6, 1)
    for _ in range(31):  # daily ticks through 1 July 00:00
        counts.append(planner.tick(day).invitations)
        day += dt.timedelta(days=1)
    assert sum(counts) == 60
    assert len({r.key for r in rows(app, "invitation")}) == 60
    assert max(counts) <= 10  # about 2 a day, never everyone at once
    assert sum(1 for c in counts if c) >= 15
    with transaction(app.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Wave)) == 1
        assert s.scalar(select(Wave.key)) == "2026-06-01/1m"


def test_opted_out_and_unreachable_get_nothing_and_are_counted(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 * * *", "open_for_days": 1, "reminders": 0})
    now = utc(2026, 6, 1, 6, 30)
    add_people(app, 2, now=now - dt.timedelta(days=1), prefix="ok")
    add_people(app, 1, now=now - dt.timedelta(days=1), prefix="stop")
    add_people(app, 1, now=now - dt.timedelta(days=1), prefix="gone", channel=None)
    add_people(app, 1, now=now - dt.timedelta(days=1), prefix="slack", channel="slack")
    with transaction(app.sessions) as s:
        s.scalars(select(Person).where(Person.key == "stop0000")).one().opted_out_at = now
    report = planner_for(app).tick(now)
    assert (report.invitations, report.opted_out, report.unreachable) == (2, 1, 2)
    by_person = {r.key.rsplit(":", 1)[1]: r for r in rows(app)}
    assert by_person["stop0000"].status == "skipped"
    assert by_person["stop0000"].last_error == OPTED_OUT
    assert by_person["gone0000"].status == "skipped"
    assert by_person["gone0000"].last_error == UNREACHABLE
    assert by_person["slack0000"].last_error == UNREACHABLE  # the program only uses telegram
    assert by_person["ok0000"].status == "pending"
    assert by_person["ok0000"].channel == "telegram"


def test_out_of_office_moves_the_invitation_past_the_absence(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 1 * *", "open_for_days": 14, "reminders": 0})
    add_people(app, 1, now=utc(2026, 5, 1))
    with transaction(app.sessions) as s:
        person = s.scalars(select(Person)).one()
        s.add(Absence(person_id=person.id, starts_on=dt.date(2026, 6, 1), ends_on=dt.date(2026, 6, 5),
                      created_at=utc(2026, 5, 1)))  # fmt: skip
    planner_for(app).tick(utc(2026, 6, 1, 7))
    (invite,) = rows(app)
    assert invite.not_before == utc(2026, 6, 8, 9)  # Monday after the week off, 09:00 UTC


def test_no_window_before_the_wave_closes_is_recorded(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 * * sat", "open_for_days": 1, "reminders": 0})
    add_people(app, 1, now=utc(2026, 5, 1))
    report = planner_for(app).tick(utc(2026, 6, 6, 7))  # Saturday; weekdays-only window
    assert report.no_window == 1
    (row,) = rows(app)
    assert row.status == "skipped"
    assert row.last_error == NO_WINDOW


def test_manual_wave_for_some_people(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app()
    keys = add_people(app, 4, now=utc(2026, 5, 1))
    wave, report = planner_for(app).start_wave(program="pulse", now=utc(2026, 6, 2, 10), people=keys[:2])
    assert report.invitations == 2
    assert wave.key == "manual-20260602T100000Z"
    assert sorted(r.key.rsplit(":", 1)[1] for r in rows(app)) == keys[:2]


def _open_checkin(app: App, key: str, now: dt.datetime, expires: dt.datetime, wave_id: int) -> int:
    with transaction(app.sessions) as s:
        person = store.require_person(s, key)
        started = app.service.start_in(s, person=person, program="pulse", now=now, channel="telegram",
                                       wave_id=wave_id, expires_at=expires)  # fmt: skip
        return started.checkin_id


def test_reminders_only_to_people_who_have_not_finished(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"every": "1 month", "open_for_days": 9, "reminders": 2},
                        window={"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})  # fmt: skip
    keys = add_people(app, 3, now=utc(2026, 5, 1))
    start = utc(2026, 6, 1, 10)
    planner = planner_for(app)
    wave, _ = planner.start_wave(program="pulse", now=start, people=[])
    expires = start + dt.timedelta(days=9)
    ids = {k: _open_checkin(app, k, start, expires, wave.id) for k in keys}
    # keys[0] finishes; keys[1] answers the first question only; keys[2] says nothing.
    for text in ("8", "fine"):
        app.service.handle(Inbound(channel="terminal", sender=keys[0], kind="text", text=text, received_at=start))
    app.service.handle(Inbound(channel="terminal", sender=keys[1], kind="text", text="5", received_at=start))
    # Reminders are due at +3 and +6 days.
    assert planner.tick(start + dt.timedelta(days=2)).reminders == 0
    first = planner.tick(start + dt.timedelta(days=3, minutes=1))
    assert first.reminders == 2
    reminded = sorted(r.checkin_id for r in rows(app, "reminder"))
    assert reminded == sorted([ids[keys[1]], ids[keys[2]]])
    assert planner.tick(start + dt.timedelta(days=3, hours=2)).reminders == 0  # once
    r1 = rows(app, "reminder")[0]
    assert r1.not_after == start + dt.timedelta(days=6)  # must go before the second is due
    assert r1.key.endswith(":1")


def test_after_downtime_only_the_latest_reminder_is_planned(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"every": "1 month", "open_for_days": 9, "reminders": 2},
                        window={"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})  # fmt: skip
    (key,) = add_people(app, 1, now=utc(2026, 5, 1))
    start = utc(2026, 6, 1, 10)
    planner = planner_for(app)
    wave, _ = planner.start_wave(program="pulse", now=start, people=[])
    _open_checkin(app, key, start, start + dt.timedelta(days=9), wave.id)
    assert planner.tick(start + dt.timedelta(days=7)).reminders == 1
    (reminder,) = rows(app, "reminder")
    assert reminder.key.endswith(":2")


def test_expiry_closes_open_checkins_and_skips_their_reminders(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"every": "1 month", "open_for_days": 3, "reminders": 1},
                        window={"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})  # fmt: skip
    keys = add_people(app, 2, now=utc(2026, 5, 1))
    start = utc(2026, 6, 1, 10)
    planner = planner_for(app)
    wave, _ = planner.start_wave(program="pulse", now=start, people=[])
    for k in keys:
        _open_checkin(app, k, start, start + dt.timedelta(days=3), wave.id)
    for text in ("9", "great"):
        app.service.handle(Inbound(channel="terminal", sender=keys[0], kind="text", text=text, received_at=start))
    planner.tick(start + dt.timedelta(days=1, hours=12, minutes=1))
    assert len(rows(app, "reminder")) == 1
    report = planner.tick(start + dt.timedelta(days=3))
    assert report.expired == 1
    with transaction(app.sessions) as s:
        statuses = {k: v for k, v in s.execute(select(Person.key, Checkin.status).join(Person))}
        closed = s.scalar(select(Wave.closed_at).where(Wave.id == wave.id))
    assert statuses == {keys[0]: "completed", keys[1]: "expired"}
    assert closed is not None
    (reminder,) = rows(app, "reminder")
    assert reminder.status == "skipped"
    # Expired check-ins are never reminded again.
    assert planner.tick(start + dt.timedelta(days=4)).reminders == 0


def test_no_scheduled_invitation_over_an_open_checkin_or_right_after_one(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 * * *", "open_for_days": 1, "reminders": 0},
                        window={"start": "00:00", "end": "23:59",
                                "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})  # fmt: skip
    busy, done, free = add_people(app, 3, now=utc(2026, 5, 1))
    start = utc(2026, 6, 1, 5)
    planner = planner_for(app)
    wave, _ = planner.start_wave(program="pulse", now=start, people=[busy, done])
    _open_checkin(app, busy, start, start + dt.timedelta(days=1), wave.id)
    _open_checkin(app, done, start, start + dt.timedelta(days=1), wave.id)
    for text in ("9", "fine"):
        app.service.handle(Inbound(channel="terminal", sender=done, kind="text", text=text, received_at=start))
    report = planner.tick(utc(2026, 6, 1, 6, 30))
    assert report.invitations == 1
    assert report.answered_recently == 1
    cron_rows = {r.key.rsplit(":", 1)[1]: r for r in rows(app, "invitation") if "T06:00Z" in r.key}
    assert cron_rows[free].status == "pending"
    assert (cron_rows[done].status, cron_rows[done].last_error) == ("skipped", ANSWERED_RECENTLY)
    assert busy not in cron_rows  # looked at again once their check-in closes


def test_someone_who_links_a_channel_during_the_wave_is_invited(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(cadence={"cron": "0 6 * * mon", "open_for_days": 5, "reminders": 0})
    (key,) = add_people(app, 1, now=utc(2026, 5, 1), channel=None)
    planner = planner_for(app)
    assert planner.tick(utc(2026, 6, 1, 6, 30)).unreachable == 1
    assert planner.tick(utc(2026, 6, 1, 7)).invitations == 0
    with transaction(app.sessions) as s:
        store.link_identity(s, person=store.require_person(s, key), channel="telegram", external_id="42",
                            now=utc(2026, 6, 2))  # fmt: skip
    assert planner.tick(utc(2026, 6, 2, 20)).invitations == 1
    (row,) = rows(app)
    assert (row.status, row.channel, row.last_error) == ("pending", "telegram", None)
    assert row.not_before == utc(2026, 6, 3, 9)


ALL_WEEK = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def test_a_manual_wave_and_a_staggered_slot_invite_once(scheduled_app: Callable[..., App]) -> None:
    """One open invitation per person and program, whichever planner wrote it."""
    app = scheduled_app(cadence={"every": "1 week", "open_for_days": 5, "reminders": 0}, window=ALL_WEEK)
    add_people(app, 3, now=utc(2026, 6, 1))
    planner = planner_for(app)
    planner.tick(utc(2026, 6, 1))
    with transaction(app.sessions) as s:
        anchors = sorted(s.scalars(select(Enrollment.anchor_at)))
    # The operator starts a wave just before the first person's own slot falls due; nothing is
    # sent yet (the dispatcher is not running), then every slot comes due.
    manual_at = anchors[0] - dt.timedelta(minutes=5)
    _, manual = planner.start_wave(program="pulse", now=manual_at)
    assert manual.invitations == 3
    report = planner.tick(anchors[-1] + dt.timedelta(minutes=1))
    assert report.invitations == 0
    assert report.already_invited == 3
    pending = [r for r in rows(app, "invitation") if r.status == "pending"]
    assert len(pending) == 3
    assert len({r.person_id for r in pending}) == 3


def test_a_manual_wave_skips_people_whose_staggered_invitation_is_waiting(
    scheduled_app: Callable[..., App],
) -> None:
    app = scheduled_app(cadence={"every": "1 week", "open_for_days": 5, "reminders": 0}, window=ALL_WEEK)
    add_people(app, 2, now=utc(2026, 6, 1))
    planner = planner_for(app)
    planner.tick(utc(2026, 6, 1))
    with transaction(app.sessions) as s:
        anchors = sorted(s.scalars(select(Enrollment.anchor_at)))
    due = anchors[-1] + dt.timedelta(minutes=1)
    assert planner.tick(due).invitations == 2
    _, manual = planner.start_wave(program="pulse", now=due + dt.timedelta(minutes=1))
    assert manual.invitations == 0
    assert manual.already_invited == 2
    assert len([r for r in rows(app, "invitation") if r.status == "pending"]) == 2
