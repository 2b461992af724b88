"""Scheduling that respects people: the overdue are asked soon, and nobody is invited by two
programs in the same fortnight."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App
from bot.config import parse_config
from bot.runner import schedules_from_config
from memory import store
from memory.db import transaction
from memory.models import OutboxMessage
from scheduler.frequency import HELD_BACK
from scheduler.planner import Planner
from scheduler.report import held_back
from tests.history_builder import History

UTC = dt.UTC
MONDAY_22 = dt.datetime(2026, 11, 30, 22, 0, tzinfo=UTC)  # a Monday night
WEEKDAYS = {"start": "09:00", "end": "17:00", "days": ["mon", "tue", "wed", "thu", "fri"]}
QUESTIONS = [{"key": "recommend", "kind": "rating", "text": "How likely are you to recommend us?"}]


def _config(gap_days: int) -> Any:
    return parse_config({
        "programs": {
            "customers": {"questions": QUESTIONS, "cadence": {"every": "6 months", "open_for_days": 14},
                          "window": WEEKDAYS, "channels": ["telegram"]},
            "panel": {"questions": QUESTIONS, "cadence": {"cron": "0 10 * * mon", "open_for_days": 7},
                      "window": WEEKDAYS, "channels": ["telegram"]},
        },
        "scheduler": {"contact_gap_days": gap_days},
    })  # fmt: skip


def _app(make_app: Callable[..., App], gap_days: int = 14) -> App:
    return make_app(config_override=_config(gap_days))


def _person(app: App, key: str, programs: list[str], now: dt.datetime) -> None:
    with transaction(app.sessions) as s:
        person, _ = store.upsert_person(
            s, key=key, name=key.title(), email=None, timezone="UTC", owner_key=None,
            programs=[store.program_by_name(s, p) for p in programs], now=now,
        )  # fmt: skip
        store.link_identity(s, person=person, channel="telegram", external_id=f"chat-{key}", now=now)


def _planner(app: App) -> Planner:
    return Planner(sessions=app.sessions, programs=schedules_from_config(app.config), expire=app.service.expire)


def _invitations(app: App, key: str) -> list[OutboxMessage]:
    with transaction(app.sessions) as s:
        rows = list(
            s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "invitation", OutboxMessage.key.like(f"%:{key}"))
                .order_by(OutboxMessage.id)
            )
        )
        s.expunge_all()
    return rows


def test_someone_overdue_is_invited_at_the_next_good_moment(make_app: Callable[..., App]) -> None:
    app = _app(make_app)
    _person(app, "dana", ["customers"], MONDAY_22)
    with transaction(app.sessions) as s:
        dana = store.require_person(s, "dana")
        History(s).checkin(dana, "customers", dt.datetime(2025, 9, 15, 10, tzinfo=UTC), rating=8)
    _planner(app).tick(MONDAY_22)
    (invitation,) = _invitations(app, "dana")
    assert invitation.status == "pending"
    # Tuesday morning in her send window, not her slot in May 2027.
    assert invitation.not_before == dt.datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("gap", "expected"), [(14, "skipped"), (3, "pending"), (0, "pending")])
def test_a_second_program_waits_for_the_contact_gap_or_holds_the_person_back(
    make_app: Callable[..., App], gap: int, expected: str
) -> None:
    monday_9 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    app = _app(make_app, gap)
    _person(app, "ann", ["customers", "panel"], monday_9 - dt.timedelta(days=30))
    _, report = _planner(app).start_wave(program="customers", now=monday_9, people=["ann"])
    assert report.invitations == 1  # an operator's wave is never held back
    report = _planner(app).tick(monday_9 + dt.timedelta(hours=1, minutes=5))  # the panel fires at 10:00
    (row,) = [r for r in _invitations(app, "ann") if r.key.startswith("invitation:panel:")]
    assert row.status == expected
    if gap == 14:
        # The panel's wave closes in 7 days, inside the 14-day gap: Ann is held back.
        assert row.last_error == HELD_BACK
        assert report.held_back == 1
    elif gap == 3:
        # The gap ends inside the panel's wave: the invitation waits for it.
        assert row.not_before >= monday_9 + dt.timedelta(days=3)
        assert row.last_error == HELD_BACK
    else:
        assert row.not_before < monday_9 + dt.timedelta(days=1)
        assert report.held_back == 0
    with transaction(app.sessions) as s:
        people = held_back(s)
    assert [(p.person, p.program, p.waiting) for p in people] == ([] if gap == 0 else [("ann", "panel", gap == 3)])


def test_reminders_do_not_count_against_the_gap(make_app: Callable[..., App]) -> None:
    app = _app(make_app)
    _person(app, "bo", ["panel"], MONDAY_22 - dt.timedelta(days=30))
    with transaction(app.sessions) as s:
        bo = store.require_person(s, "bo")
        s.add(OutboxMessage(key="reminder:customers:x:bo:1", kind="reminder", person_id=bo.id,
                            program_id=store.program_by_name(s, "customers").id, payload={}, status="sent",
                            not_before=MONDAY_22 - dt.timedelta(days=7, hours=12), attempts=1,
                            created_at=MONDAY_22))  # fmt: skip
    _planner(app).tick(MONDAY_22 - dt.timedelta(hours=11, minutes=55))  # Monday 10:05
    (row,) = _invitations(app, "bo")
    assert (row.status, row.last_error) == ("pending", None)
