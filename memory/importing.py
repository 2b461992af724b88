"""Importing rosters and past answers from CSV.

Bad rows are reported with their line numbers and skipped; good rows still go in. Re-importing
the same file updates in place and never duplicates.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from memory import store
from memory.db import transaction
from memory.embeddings import Embedder, encode_many, to_bytes
from memory.errors import ImportProblem
from memory.models import Answer, ChannelIdentity, Checkin, Enrollment, Person, Program
from memory.models_scheduler import Absence
from memory.text import clean_text
from memory.zones import canonical_zone

PEOPLE_COLUMNS = ("id", "name", "email", "timezone", "owner", "programs")
# Optional ``slack_user`` column: a Slack user id (``U0123ABCD``), or ``T0123:U0123ABCD`` for
# one of several workspaces installed through the install flow.
SLACK_USER = re.compile(r"^(?:(?P<team>[TE][A-Z0-9]{2,30}):)?(?P<user>[UW][A-Z0-9]{2,30})$")
ANSWER_COLUMNS = ("person", "program", "question", "answered_at", "rating", "text")


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[ImportProblem] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.created + self.updated + self.unchanged


def _reader(text: str, required: Iterable[str]) -> csv.DictReader[str]:
    # People's words are cleaned as at every other door (no NUL or control characters, NFC).
    reader = csv.DictReader(io.StringIO(clean_text(text.lstrip("\ufeff"))))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in required if c not in header]
    if missing:
        raise ImportProblem(1, f"missing column(s): {', '.join(missing)}")
    reader.fieldnames = header
    return reader


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
    reader = _reader(text, ("id",))
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


def _parse_when(value: str) -> dt.datetime:
    value = value.strip()
    if not value:
        raise ValueError("answered_at is empty")
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def import_answers(
    sessions: sessionmaker[Session],
    text: str,
    *,
    questions: Mapping[str, Mapping[str, tuple[str, int, int]]],
    embedder: Embedder,
    now: dt.datetime,
    batch: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Past answers: ``person,program,question,answered_at,rating,text``.

    ``questions`` maps program -> question key -> (kind, min, max). Rows of one person, program
    and ``answered_at`` form one completed check-in, so a rating and its reason stay together.
    """
    report = ImportReport()
    reader = _reader(text, ANSWER_COLUMNS)
    rows: list[tuple[int, dict[str, str]]] = [(reader.line_num, dict(r)) for r in reader]
    total = len(rows)
    valid: list[tuple[int, str, str, str, dt.datetime, int | None, str | None]] = []
    seen: dict[tuple[str, str, str, dt.datetime], int] = {}
    for line, row in rows:
        person_key, program_name, question = ((row.get(c) or "").strip() for c in ("person", "program", "question"))
        spec = questions.get(program_name, {}).get(question)
        if not person_key:
            report.problems.append(ImportProblem(line, "person is empty"))
            continue
        if program_name not in questions:
            report.problems.append(ImportProblem(line, f"unknown program {program_name!r}"))
            continue
        if spec is None:
            report.problems.append(ImportProblem(line, f"program {program_name!r} has no question {question!r}"))
            continue
        try:
            when = _parse_when(row.get("answered_at") or "")
        except ValueError as exc:
            report.problems.append(ImportProblem(line, f"answered_at: {exc}"))
            continue
        if when > now:
            report.problems.append(ImportProblem(line, "answered_at is in the future"))
            continue
        kind, low, high = spec
        rating_raw = (row.get("rating") or "").strip()
        answer_text = (row.get("text") or "").strip() or None
        rating = None
        if rating_raw and kind == "text":
            report.problems.append(ImportProblem(line, f"question {question!r} takes text, not a rating"))
            continue
        if rating_raw:
            try:
                number = float(rating_raw)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                report.problems.append(ImportProblem(line, f"rating {rating_raw!r} is not a number"))
                continue
            if not number.is_integer():
                report.problems.append(ImportProblem(line, f"rating {rating_raw!r} is not a whole number"))
                continue
            rating = int(number)
            if not low <= rating <= high:
                report.problems.append(ImportProblem(line, f"rating {rating} is outside {low}–{high}"))
                continue
        if kind == "rating" and rating is None:
            report.problems.append(ImportProblem(line, f"question {question!r} needs a rating"))
            continue
        if kind == "text" and not answer_text:
            report.problems.append(ImportProblem(line, f"question {question!r} needs text"))
            continue
        same = (person_key, program_name, question, when)
        if same in seen:
            report.problems.append(ImportProblem(line, f"the same answer is already on line {seen[same]}"))
            continue
        seen[same] = line
        valid.append((line, person_key, program_name, question, when, rating, answer_text))

    done = len(rows) - len(valid)
    # Lookups cached across the whole import: each person, program and enrolment once.
    people: dict[str, int | None] = {}
    programs: dict[str, Program] = {}
    enrolled: set[tuple[int, int]] = set()
    for start in range(0, len(valid), batch):
        chunk = valid[start : start + batch]
        # One bulk encode per chunk; the embedder sorts by length so batches pad little.
        vectors = encode_many(embedder, [t for *_, t in chunk if t])
        with transaction(sessions) as s:
            for line, person_key, program_name, question, when, rating, answer_text in chunk:
                if person_key not in people:
                    found = store.find_person(s, person_key)
                    people[person_key] = found.id if found is not None else None
                person_id = people[person_key]
                if person_id is None:
                    report.problems.append(ImportProblem(line, f"unknown person {person_key!r} (import people first)"))
                    continue
                if program_name not in programs:
                    programs[program_name] = store.program_by_name(s, program_name)
                program = programs[program_name]
                if (person_id, program.id) not in enrolled:
                    store.enroll(s, s.get_one(Person, person_id), program, now)
                    enrolled.add((person_id, program.id))
                checkin = s.scalar(
                    select(Checkin).where(
                        Checkin.person_id == person_id,
                        Checkin.program_id == program.id,
                        Checkin.source == "import",
                        Checkin.started_at == when,
                    )
                )
                if checkin is None:
                    checkin = Checkin(
                        person_id=person_id,
                        program_id=program.id,
                        status="completed",
                        source="import",
                        state={},
                        started_at=when,
                        updated_at=now,
                        completed_at=when,
                    )
                    s.add(checkin)
                    s.flush()
                answer = store.answer_for(s, checkin.id, question)
                if answer is not None and answer.rating == rating and answer.text == answer_text:
                    report.unchanged += 1
                    continue
                if answer is None:
                    answer = Answer(
                        checkin_id=checkin.id,
                        person_id=person_id,
                        program_id=program.id,
                        question=question,
                        kind=questions[program_name][question][0],
                        answered_at=when,
                    )
                    s.add(answer)
                    report.created += 1
                else:
                    report.updated += 1
                answer.rating, answer.text = rating, answer_text
                if answer_text:
                    answer.embedding, answer.embedding_model = to_bytes(vectors[answer_text]), embedder.model_id
            s.flush()
        done += len(chunk)
        if progress:
            progress(done, total)
    report.problems.sort(key=lambda p: p.line)
    return report
