"""What a dispatcher decides about a row while claiming it: skip a row to a person who opted out
(or was deleted) since it was queued, keep the send window, take back a dead holder's claim.
Used by :class:`scheduler.dispatch.Dispatcher` inside its claim transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from memory.models import OutboxMessage, Person, Program
from memory.models_scheduler import OutboxSend
from scheduler.audience import away_of
from scheduler.plans import ProgramSchedule
from scheduler.windows import is_open, next_open, zone

log = logging.getLogger("scheduler.dispatch")

WINDOWED_KINDS = frozenset({"invitation", "reminder"})


def take_back(s: Session, row: OutboxMessage) -> None:
    """A claim whose holder died or whose lease ended: was a send of it under way?"""
    extra = {"outbox_id": row.id, "previous_worker": row.claimed_by, "attempts": row.attempts}
    started = s.scalar(select(exists().where(OutboxSend.outbox_id == row.id)))
    if started:
        log.warning("reclaiming a row whose send had started (an earlier attempt may have been delivered)", extra=extra)
        s.execute(delete(OutboxSend).where(OutboxSend.outbox_id == row.id))
    else:
        log.info("reclaiming a row that was claimed but never tried", extra=extra)


def _program_name(s: Session, program_id: int, names: dict[int, str]) -> str | None:
    if program_id not in names:
        name = s.scalar(select(Program.name).where(Program.id == program_id))
        if name is None:
            return None
        names[program_id] = name
    return names[program_id]


def set_aside(
    s: Session, row: OutboxMessage, now: dt.datetime, programs: Mapping[str, ProgramSchedule], names: dict[int, str]
) -> bool:
    """Keep the send window: True if the row was rescheduled or skipped instead of claimed."""
    if row.not_after is not None and now >= row.not_after:
        close(s, row, "skipped", "too late: its window closed before it could be sent")
        return True
    # Every row addressed to a person, whatever its kind: an opt-out given after the row was queued
    # stops it here (and the handlers check again in the transaction that prepares it).
    person = s.get(Person, row.person_id) if row.person_id is not None else None
    if row.person_id is not None:
        if person is None:
            close(s, row, "skipped", "person deleted")
            return True
        if person.opted_out_at is not None:
            close(s, row, "skipped", "opted out")
            return True
    if row.kind not in WINDOWED_KINDS or person is None or row.program_id is None:
        return False
    program = programs.get(_program_name(s, row.program_id, names) or "")
    if program is None:
        return False
    tz, away = zone(person.timezone), away_of(s, person.id)
    if is_open(now, program.window, tz, away):
        return False
    opens = next_open(now, program.window, tz, away)
    if opens is None or (row.not_after is not None and opens >= row.not_after):
        close(s, row, "skipped", "no send window before it expires")
    else:
        row.status, row.not_before = "pending", opens
        row.claimed_by = row.claimed_until = None
        log.info("outside the send window; waits", extra={"outbox_id": row.id, "not_before": opens.isoformat()})
    return True


def close(s: Session, row: OutboxMessage, status: str, reason: str) -> None:
    row.status, row.last_error = status, reason[:500]
    row.claimed_by = row.claimed_until = None
    s.execute(delete(OutboxSend).where(OutboxSend.outbox_id == row.id))
    log.info("outbox row closed", extra={"outbox_id": row.id, "status": status, "reason": reason})
