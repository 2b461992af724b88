"""Out-of-office dates from the roster import and `rapport away`, honoured by the planner."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from sqlalchemy import select

from bot.app import App
from memory.db import transaction
from memory.importing import import_people, parse_absences
from memory.models import Person
from memory.models_scheduler import Absence

D = dt.date


def absences(app: App, key: str) -> list[tuple[dt.date, dt.date]]:
    with transaction(app.sessions) as s:
        person = s.scalars(select(Person).where(Person.key == key)).one()
        rows = s.scalars(select(Absence).where(Absence.person_id == person.id).order_by(Absence.starts_on))
        return [(a.starts_on, a.ends_on) for a in rows]


def test_parse_absences() -> None:
    assert parse_absences("") == []
    assert parse_absences("2026-08-01..2026-08-14; 2026-12-24") == [
        (D(2026, 8, 1), D(2026, 8, 14)), (D(2026, 12, 24), D(2026, 12, 24)),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="not a date"):
        parse_absences("August")
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_absences("2026-08-14..2026-08-01")


def test_roster_column_sets_and_replaces_absences(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app()
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    first = "id,programs,out_of_office\nann,pulse,2026-08-01..2026-08-14;2026-12-24\nbob,pulse,August\n"
    report = import_people(app.sessions, first, known_programs=["pulse"], now=now)
    assert report.created == 1
    assert [(p.line, p.message) for p in report.problems] == [
        (3, "out_of_office 'August' is not a date or a range like 2026-08-01..2026-08-14")
    ]
    assert absences(app, "ann") == [(D(2026, 8, 1), D(2026, 8, 14)), (D(2026, 12, 24), D(2026, 12, 24))]
    # Re-importing the same file changes nothing; a new list replaces the old one.
    import_people(app.sessions, first, known_programs=["pulse"], now=now)
    assert len(absences(app, "ann")) == 2
    import_people(app.sessions, "id,programs,out_of_office\nann,pulse,2026-09-01\n", known_programs=["pulse"], now=now)
    assert absences(app, "ann") == [(D(2026, 9, 1), D(2026, 9, 1))]
    # A file without the column leaves them alone.
    import_people(app.sessions, "id,programs\nann,pulse\n", known_programs=["pulse"], now=now)
    assert absences(app, "ann") == [(D(2026, 9, 1), D(2026, 9, 1))]
