"""Where a wave stands (``scheduler.waves.state``): scheduled, open, closed, or cancelled by an
operator."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from bot.app import App
from bot.runner import schedules_from_config
from memory.db import transaction
from memory.models import Wave
from scheduler.planner import Planner
from scheduler.waves import cancel_wave, close_wave, state
from tests.scheduler.conftest import add_people

START = dt.datetime(2026, 6, 1, 10, tzinfo=dt.UTC)
ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def _wave(app: App) -> int:
    add_people(app, 1, now=START - dt.timedelta(days=30))
    planner = Planner(sessions=app.sessions, programs=schedules_from_config(app.config))
    wave, _ = planner.start_wave(program="pulse", now=START)
    return wave.id


def _state(app: App, wave_id: int, now: dt.datetime) -> str:
    with transaction(app.sessions) as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        return state(wave, now)


def test_a_wave_is_open_until_its_planned_end_then_closed(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY, cadence={"every": "1 month", "open_for_days": 3, "reminders": 1})
    wave_id = _wave(app)
    assert _state(app, wave_id, START - dt.timedelta(minutes=1)) == "scheduled", "not open before it opens"
    assert _state(app, wave_id, START) == "open"
    assert _state(app, wave_id, START + dt.timedelta(days=1)) == "open"
    assert _state(app, wave_id, START + dt.timedelta(days=3)) == "closed"


def test_a_cancelled_wave_says_cancelled_and_a_closed_one_closed(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY, cadence={"every": "1 month", "open_for_days": 3, "reminders": 1})
    closed_id = _wave(app)
    with transaction(app.sessions) as s:
        wave = s.get(Wave, closed_id)
        assert wave is not None
        close_wave(s, wave, START + dt.timedelta(hours=1))
    planner = Planner(sessions=app.sessions, programs=schedules_from_config(app.config))
    other, _ = planner.start_wave(program="pulse", now=START + dt.timedelta(hours=2))
    cancelled_id = other.id
    with transaction(app.sessions) as s:
        wave = s.get(Wave, cancelled_id)
        assert wave is not None
        cancel_wave(s, wave, START + dt.timedelta(hours=3))
        cancel_wave(s, wave, START + dt.timedelta(hours=4))  # idempotent: the first cancel's time stays
        assert wave.cancelled_at == wave.closed_at == START + dt.timedelta(hours=3)
    later = START + dt.timedelta(days=10)
    assert (_state(app, closed_id, later), _state(app, cancelled_id, later)) == ("closed", "cancelled")


def test_a_closed_wave_cancelled_afterwards_is_cancelled(scheduled_app: Callable[..., App]) -> None:
    """Cancel after close still ends the open check-ins: the wave was cut short."""
    app = scheduled_app(window=ALL_DAY, cadence={"every": "1 month", "open_for_days": 3, "reminders": 1})
    wave_id = _wave(app)
    with transaction(app.sessions) as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        close_wave(s, wave, START + dt.timedelta(hours=1))
        cancel_wave(s, wave, START + dt.timedelta(hours=2))
    assert _state(app, wave_id, START + dt.timedelta(hours=3)) == "cancelled"


def test_cancelling_a_wave_past_its_planned_end_leaves_it_closed(scheduled_app: Callable[..., App]) -> None:
    """It ran its course; a late cancel cut nothing short."""
    app = scheduled_app(window=ALL_DAY, cadence={"every": "1 month", "open_for_days": 3, "reminders": 1})
    wave_id = _wave(app)
    with transaction(app.sessions) as s:
        wave = s.get(Wave, wave_id)
        assert wave is not None
        cancel_wave(s, wave, START + dt.timedelta(days=4))
        assert wave.cancelled_at is None
    assert _state(app, wave_id, START + dt.timedelta(days=5)) == "closed"


def test_the_migration_recognises_waves_cancelled_before_it(scheduled_app: Callable[..., App]) -> None:
    """0009_wave_cancelled: a wave whose cancel dropped messages is marked cancelled; a closed one is not."""
    from alembic import command

    from memory import db

    app = scheduled_app(window=ALL_DAY, cadence={"every": "1 month", "open_for_days": 3, "reminders": 1})
    add_people(app, 1, now=START - dt.timedelta(days=30))
    planner = Planner(sessions=app.sessions, programs=schedules_from_config(app.config))
    ids = []
    for hours, end in ((0, close_wave), (1, cancel_wave)):
        wave, report = planner.start_wave(program="pulse", now=START + dt.timedelta(hours=hours))
        assert report.invitations == 1
        with transaction(app.sessions) as s:
            row = s.get(Wave, wave.id)
            assert row is not None
            end(s, row, START + dt.timedelta(hours=hours, minutes=30))
        ids.append(wave.id)
    cfg = db.alembic_config(app.engine)
    command.downgrade(cfg, "0008_answers_autoincrement")
    command.upgrade(cfg, "heads")
    with transaction(app.sessions) as s:
        closed, cancelled = (s.get(Wave, i) for i in ids)
        assert closed is not None
        assert cancelled is not None
        assert closed.cancelled_at is None
        assert cancelled.cancelled_at == cancelled.closed_at == START + dt.timedelta(hours=1, minutes=30)
