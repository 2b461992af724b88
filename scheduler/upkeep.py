"""Between invitations: the reminders due for open check-ins, and the end of what is over.

Both run in the planner's tick (:meth:`scheduler.planner.Planner.tick`), each in its own
transaction per program; both are idempotent (reminder rows have unique keys; expiring an
expired check-in changes nothing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memory.models import OPEN_STATUSES, Checkin, OutboxMessage, Person, Program, Wave
from memory.wave_views import Vectoriser, freeze_due
from scheduler.audience import EXPIRED, TickReport, load_people
from scheduler.plans import ProgramSchedule, outbox_key
from scheduler.windows import Away, next_open, zone

#: Closes a check-in whose window ended: ``CheckinService.expire`` on the bot side.
Expire = Callable[[Session, Checkin, dt.datetime], None]


# Reminders --------------------------------------------------------------------------------


def plan_reminders(s: Session, program: ProgramSchedule, now: dt.datetime) -> TickReport:
    """Write the reminder that is due for each open check-in (the latest one only, after downtime)."""
    report = TickReport()
    if program.reminders <= 0:
        return report
    rows = s.execute(
        select(Checkin, Person, Wave)
        .join(Person, Person.id == Checkin.person_id)
        .join(Wave, Wave.id == Checkin.wave_id)
        .join(Program, Program.id == Checkin.program_id)
        .where(
            Program.name == program.name,
            Checkin.status.in_(OPEN_STATUSES),
            Checkin.expires_at > now,
            Checkin.reminders_sent < program.reminders,
            Person.opted_out_at.is_(None),
        )
    )
    wanted: list[tuple[Checkin, Person, Wave, int, dt.datetime, dt.datetime]] = []
    for checkin, person, wave in rows:
        assert checkin.expires_at is not None
        n, due, until = reminder_due(checkin.started_at, checkin.expires_at, program.reminders, now)
        if n > checkin.reminders_sent:
            wanted.append((checkin, person, wave, n, due, until))
    if not wanted:
        return report
    existing = set(
        s.scalars(
            select(OutboxMessage.key).where(
                OutboxMessage.kind == "reminder", OutboxMessage.checkin_id.in_([c.id for c, *_ in wanted])
            )
        )
    )
    people = load_people(s, [p.id for _, p, *_ in wanted], now.date())
    for checkin, person, wave, n, due, until in wanted:
        key = outbox_key("reminder", program.name, wave.key, person.key, n)
        if key in existing:
            continue
        opens = next_open(max(due, now), program.window, zone(person.timezone), people.away.get(person.id, Away()))
        if opens is None or opens >= until:
            continue  # no decent hour before the next reminder or the end; the next one will try
        message = OutboxMessage(
                key=key, kind="reminder", person_id=person.id, owner_id=person.owner_id,
                program_id=checkin.program_id, wave_id=wave.id, checkin_id=checkin.id, channel=checkin.channel,
                payload={"program": program.name, "wave": wave.key, "n": n}, status="pending",
                not_before=opens, not_after=until, attempts=0, created_at=now,
            )  # fmt: skip
        s.add(message)
        report.reminders += 1
    return report


def expire_due(
    s: Session, program: ProgramSchedule, now: dt.datetime, *, expire: Expire | None = None,
    encode: Vectoriser | None = None,
) -> TickReport:  # fmt: skip
    """Expire open check-ins whose window closed and skip their unsent reminders; close the waves
    whose end passed and freeze what owners may see of anonymous ones, in the same transaction."""
    report = TickReport()
    checkins = list(
        s.scalars(
            select(Checkin)
            .join(Program, Program.id == Checkin.program_id)
            .where(
                Program.name == program.name,
                Checkin.status.in_(OPEN_STATUSES),
                Checkin.expires_at.is_not(None),
                Checkin.expires_at <= now,
            )
        )
    )
    for checkin in checkins:
        if expire is not None:
            expire(s, checkin, now)
        if checkin.status in OPEN_STATUSES:
            checkin.status, checkin.updated_at = "expired", now
        report.expired += 1
    if checkins:
        s.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.checkin_id.in_([c.id for c in checkins]),
                OutboxMessage.status == "pending",
            )
            .values(status="skipped", last_error=EXPIRED)
            .execution_options(synchronize_session=False)
        )
    s.execute(
        update(Wave)
        .where(
            Wave.program_id.in_(select(Program.id).where(Program.name == program.name)),
            Wave.closed_at.is_(None),
            Wave.closes_at <= now,
        )
        .values(closed_at=now)
        .execution_options(synchronize_session=False)
    )
    row = s.scalar(select(Program).where(Program.name == program.name))
    if row is not None:
        # Check-ins past their end were expired above, so nothing can still join these views.
        freeze_due(s, row, now, encode=encode)
    return report


def reminder_due(
    started_at: dt.datetime, expires_at: dt.datetime, reminders: int, now: dt.datetime
) -> tuple[int, dt.datetime, dt.datetime]:
    """The latest reminder due at ``now``: (its number, 0 if none, due time, send-by time).

    Reminder i of N is due at ``started + i * (expires - started) / (N + 1)`` and must go out
    before reminder i + 1 is due (or before the check-in expires, for the last one).
    """
    gap = (expires_at - started_at) / (reminders + 1)
    n = 0
    for i in range(1, reminders + 1):
        if started_at + gap * i <= now:
            n = i
    due = started_at + gap * n
    until = expires_at if n == reminders else started_at + gap * (n + 1)
    return n, due, until
