"""Importing rosters (``rapport people import``) from CSV; past answers are in
:mod:`memory.answer_import`.

Bad rows are reported with their line numbers and skipped; good rows still go in. Re-importing
the same file updates in place and never duplicates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from memory import store
from memory.answer_import import import_answers
from memory.db import transaction
from memory.errors import ImportProblem
from memory.import_csv import ImportReport, csv_reader
from memory.models import ChannelIdentity, Enrollment, Person, Program
from memory.models_scheduler import Absence
from memory.zones import canonical_zone

__all__ = ["ImportReport", "import_answers", "import_people", "parse_absences"]

PEOPLE_COLUMNS = ("id", "name", "email", "timezone", "owner", "programs")
# Optional ``slack_user`` column: a Slack user id (``U0123ABCD``), or ``T0123:U0123ABCD`` for
# one of several workspaces installed through the install flow.
SLACK_USER = re.compile(r"^(?:(?P<team>[TE][A-Z0-9]{2,30}):)?(?P<user>[UW][A-Z0-9]{2,30})$")


def parse_absences(text: str) -> list[tuple[dt.date, dt.date]]:
    """Out-of-office dates: ``2026-08-01..2026-08-14;2026-12-24`` (inclusive ranges or days)."""
    spans = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        first_text, _, last_text = part.partition("..")
        try:
            first = dt.date.fromisoformat(first_text.strip())
            last = dt.date.fromisoformat(last_text.strip()) if last_text else first
        except ValueError:
            raise ValueError(f"out_of_office {part!r} is not a date or a range like 2026-08-01..2026-08-14") from None
        if last < first:
            raise ValueError(f"out_of_office {part!r} ends before it starts")
        spans.append((first, last))
    return spans


def import_people(
    sessions: sessionmaker[Session],
    text: str,
    *,
    programs: Mapping[str, Program] | None = None,
    known_programs: Iterable[str],
    now: dt.datetime,
    batch: int = 500,
) -> ImportReport:
    """Columns ``id,name,email,timezone,owner,programs`` (programs separated by ``;``), and the
    optional ``slack_user`` and ``out_of_office`` (``2026-08-01..2026-08-14;2026-12-24``)."""
    report = ImportReport()
    reader = csv_reader(text, ("id",))
    known = set(known_programs)
    seen_ids: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    good: list[tuple[dict[str, str], str, str, str | None, list[str], re.Match[str] | None, list[Any]]] = []
    for row in reader:
        line = reader.line_num
        key = (row.get("id") or "").strip()
        if not key:
            report.problems.append(ImportProblem(line, "id is empty"))
            continue
        if key in seen_ids:
            report.problems.append(ImportProblem(line, f"id {key!r} is already on line {seen_ids[key]}"))
            continue
        seen_ids[key] = line
        try:
            tz = canonical_zone((row.get("timezone") or "").strip() or "UTC")
        except ValueError as exc:
            report.problems.append(ImportProblem(line, str(exc)))
            continue
        email = (row.get("email") or "").strip() or None
        if email and ("@" not in email or " " in email):
            report.problems.append(ImportProblem(line, f"{email!r} is not an e-mail address"))
            continue
        if email and email.lower() in seen_emails:
            report.problems.append(ImportProblem(line, f"{email!r} is already on line {seen_emails[email.lower()]}"))
            continue
        if email:
            seen_emails[email.lower()] = line
        names = [p.strip() for p in (row.get("programs") or "").split(";") if p.strip()]
        unknown = [p for p in names if p not in known]
        if unknown:
            report.problems.append(ImportProblem(line, f"unknown program(s): {', '.join(unknown)}"))
            continue
        slack_user = (row.get("slack_user") or "").strip()
        slack = SLACK_USER.match(slack_user) if slack_user else None
        if slack_user and slack is None:
            report.problems.append(ImportProblem(line, f"{slack_user!r} is not a Slack user id (U… or T…:U…)"))
            continue
        try:
            away = parse_absences(row.get("out_of_office") or "")
        except ValueError as exc:
            report.problems.append(ImportProblem(line, str(exc)))
            continue
        good.append((row, key, tz, email, names, slack, away))
    has_absences = "out_of_office" in (reader.fieldnames or ())
    # Batched transactions: one commit per ``batch`` rows, not one per row.
    for start in range(0, len(good), batch):
        with transaction(sessions) as s:
            programs_by_name = {p.name: p for p in s.scalars(select(Program))}
            for row, key, tz, email, names, slack, away in good[start : start + batch]:
                before = _roster_entry(s, key)
                person, created = store.upsert_person(
                    s,
                    key=key,
                    name=(row.get("name") or "").strip() or None,
                    email=email,
                    timezone=tz,
                    owner_key=(row.get("owner") or "").strip() or None,
                    programs=[programs_by_name[n] for n in names],
                    now=now,
                )
                if slack is not None:
                    store.link_identity(
                        s,
                        person=person,
                        channel="slack",
                        external_id=slack.group("user"),
                        workspace=slack.group("team") or "",
                        now=now,
                    )
                if has_absences:
                    # The column, when present, is the person's whole list: re-importing replaces it.
                    s.execute(delete(Absence).where(Absence.person_id == person.id))
                    for first, last in away:
                        s.add(Absence(person_id=person.id, starts_on=first, ends_on=last, created_at=now))
                    s.flush()
                if created:
                    report.created += 1
                elif before == _roster_entry(s, key):
                    report.unchanged += 1
                else:
                    report.updated += 1
    return report


def _roster_entry(s: Session, key: str) -> tuple[Any, ...] | None:
    """What a roster row sets, to tell an update from a row that changes nothing."""
    person = s.scalar(select(Person).where(Person.key == key))
    if person is None:
        return None
    s.flush()
    programs = sorted(s.scalars(select(Enrollment.program_id).where(Enrollment.person_id == person.id,
                                                                    Enrollment.active.is_(True))))  # fmt: skip
    identities = sorted(
        (i.channel, i.workspace, i.external_id)
        for i in s.scalars(select(ChannelIdentity).where(ChannelIdentity.person_id == person.id))
    )
    away = sorted(s.execute(select(Absence.starts_on, Absence.ends_on).where(Absence.person_id == person.id)).all())
    return (
        person.name,
        person.email,
        person.timezone,
        person.owner_id,
        tuple(programs),
        tuple(identities),
        tuple(away),
    )
