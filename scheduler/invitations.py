"""Invitations into a wave: who of a batch gets one, and the outbox row written for each.

The planner (:mod:`scheduler.planner`) decides which wave is current and who is due in it;
:func:`invite_many` writes the invitations, in the planner's transaction:

* a wave an operator closed or cancelled takes nobody new; a row that already exists (its unique
  key) is not written again;
* one open invitation per person and program: someone whose invitation from another wave is still
  waiting to go out is not invited again;
* scheduled waves only (a manual wave is an operator's explicit decision): someone mid-check-in is
  not invited over it, someone who just finished one is not asked again so soon, the contact
  limit across programs (:mod:`scheduler.frequency`) holds an invitation back, and someone skipped
  as unreachable who linked a channel while the wave is open is invited after all;
* ``not_before`` is the next moment inside the person's send window, ``not_after`` the end of
  their open window.

Opted-out and unreachable people get a ``skipped`` row (with the reason), which is how they are
counted in ``rapport status`` and how they are never contacted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from memory.models import OPEN_STATUSES, Checkin, OutboxMessage, Person, Wave
from scheduler.audience import (
    ANSWERED_RECENTLY,
    NO_WINDOW,
    OPTED_OUT,
    UNREACHABLE,
    PlanningPeople,
    TickReport,
    load_people,
    pick_channel,
)
from scheduler.frequency import HELD_BACK, earliest_allowed
from scheduler.plans import ProgramSchedule, outbox_key
from scheduler.waves import closed_early
from scheduler.windows import Away, next_open, zone

# The planner's log: these lines are part of its tick (as scheduler.claims writes the dispatcher's).
log = logging.getLogger("scheduler.planner")

#: One invitation to write: the person, the wave, when it is due and when their window closes.
Invite = tuple[Person, Wave, dt.datetime, dt.datetime]


def invite_many(
    s: Session,
    program: ProgramSchedule,
    batch: Sequence[Invite],
    *,
    now: dt.datetime,
    report: TickReport,
    scheduled: bool = True,
) -> None:
    """Write the invitations of ``batch`` that are due (``scheduled=False``: a manual wave)."""
    # A wave an operator closed or cancelled (`rapport wave close`) takes nobody new.
    batch = [item for item in batch if not closed_early(item[1])]
    if not batch:
        return
    wave_ids = {w.id for _, w, _, _ in batch}
    if scheduled:
        _reconsider_unreachable(s, program, batch, wave_ids, now, report)
    existing = set(
        s.scalars(
            select(OutboxMessage.key).where(OutboxMessage.wave_id.in_(wave_ids), OutboxMessage.kind == "invitation")
        )
    )
    todo = [item for item in batch if outbox_key("invitation", program.name, item[1].key, item[0].key) not in existing]
    if not todo:
        return
    ids = [p.id for p, *_ in todo]
    program_id = todo[0][1].program_id
    # One open invitation per person and program, whichever planner wrote it: someone whose
    # invitation from another wave (manual, cron or staggered) is still waiting to go out is not
    # invited again; the next tick looks again once that one was sent or has lapsed.
    invited = _invited_elsewhere(s, program_id, ids, wave_ids, now)
    busy: set[int] = set()
    last_done: dict[int, dt.datetime] = {}
    if scheduled:
        # Someone mid-check-in (say, from a manual wave) is not invited over it; the next tick
        # looks again once it closes. Someone who just finished one is not asked again so soon.
        busy = set(
            s.scalars(
                select(Checkin.person_id).where(
                    Checkin.program_id == program_id, Checkin.person_id.in_(ids), Checkin.status.in_(OPEN_STATUSES)
                )
            )
        )
        for person_id, done_at in s.execute(
            select(Checkin.person_id, func.max(Checkin.completed_at))
            .where(Checkin.program_id == program_id, Checkin.person_id.in_(ids), Checkin.status == "completed")
            .group_by(Checkin.person_id)
        ):
            if done_at is not None:
                last_done[person_id] = done_at
    people = load_people(s, ids, now.date())
    # Manual waves are an operator's explicit decision; only scheduled ones are held back.
    allowed = (
        earliest_allowed(s, person_ids=ids, program_id=program_id, gap=program.contact_gap, now=now)
        if scheduled
        else {}
    )
    for person, wave, due, closes in todo:
        if person.id in busy:
            continue
        done_at = last_done.get(person.id)
        if done_at is not None and done_at >= due - _too_soon(program, due):
            _record_skip(s, program, person, wave, due, closes, ANSWERED_RECENTLY, now)
            report.answered_recently += 1
            continue
        if person.id in invited:
            report.already_invited += 1
            continue
        note = None
        if person.id in allowed and allowed[person.id] > due:
            # The contact limit across programs: wait for the gap, inside this wave, or skip.
            report.held_back += 1
            if allowed[person.id] >= closes:
                _record_skip(s, program, person, wave, due, closes, HELD_BACK, now)
                continue
            due, note = allowed[person.id], HELD_BACK
        _invite(s, program, person, wave, due, closes, people, now, report, note=note)


def _invited_elsewhere(
    s: Session, program_id: int, person_ids: Sequence[int], wave_ids: set[int], now: dt.datetime
) -> set[int]:
    """People with an invitation of this program, from another wave, not yet sent and still valid."""
    return set(
        s.scalars(
            select(OutboxMessage.person_id).where(
                OutboxMessage.program_id == program_id,
                OutboxMessage.kind == "invitation",
                OutboxMessage.person_id.in_(person_ids),
                OutboxMessage.wave_id.not_in(wave_ids),
                OutboxMessage.status.in_(("pending", "claimed")),
                or_(OutboxMessage.not_after.is_(None), OutboxMessage.not_after > now),
            )
        )
    )


def _reconsider_unreachable(
    s: Session,
    program: ProgramSchedule,
    batch: Sequence[Invite],
    wave_ids: set[int],
    now: dt.datetime,
    report: TickReport,
) -> None:
    """Someone skipped as unreachable who linked a channel while the wave is open gets invited."""
    stale = list(
        s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.wave_id.in_(wave_ids),
                OutboxMessage.kind == "invitation",
                OutboxMessage.status == "skipped",
                OutboxMessage.last_error == UNREACHABLE,
                OutboxMessage.not_after > now,
            )
        )
    )
    if not stale:
        return
    persons = {p.id: p for p, *_ in batch}
    people = load_people(s, [r.person_id for r in stale if r.person_id is not None], now.date())
    for row in stale:
        person = persons.get(row.person_id or 0)
        channel = pick_channel(program, people.channels.get(row.person_id or 0, []))
        if person is None or person.opted_out_at is not None or channel is None or row.not_after is None:
            continue
        opens = next_open(now, program.window, zone(person.timezone), people.away.get(person.id, Away()))
        if opens is None or opens >= row.not_after:
            continue
        row.status, row.channel, row.not_before, row.last_error = "pending", channel, opens, None
        report.invitations += 1
        log.info("now reachable; invitation queued", extra={"outbox_id": row.id})


def _too_soon(program: ProgramSchedule, due: dt.datetime) -> dt.timedelta:
    """How recent a finished check-in makes a new invitation unnecessary."""
    if program.period is None:
        return program.open_for
    return max(program.open_for, (program.period.add(due, 1) - due) / 2)


def _record_skip(
    s: Session, program: ProgramSchedule, person: Person, wave: Wave, due: dt.datetime, closes: dt.datetime,
    reason: str, now: dt.datetime,
) -> None:  # fmt: skip
    message = OutboxMessage(
        key=outbox_key("invitation", program.name, wave.key, person.key), kind="invitation",
        person_id=person.id, owner_id=person.owner_id, program_id=wave.program_id, wave_id=wave.id,
        payload={"program": program.name, "wave": wave.key}, status="skipped", not_before=due,
        not_after=closes, attempts=0, last_error=reason, created_at=now,
    )  # fmt: skip
    s.add(message)


def _invite(
    s: Session,
    program: ProgramSchedule,
    person: Person,
    wave: Wave,
    due: dt.datetime,
    closes: dt.datetime,
    people: PlanningPeople,
    now: dt.datetime,
    report: TickReport,
    *,
    note: str | None = None,
) -> None:
    channel = pick_channel(program, people.channels.get(person.id, []))
    # A pending row carries the note (why it waits) where a skipped one carries its reason.
    status, reason, not_before = "pending", note, due
    if person.opted_out_at is not None:
        status, reason = "skipped", OPTED_OUT
        report.opted_out += 1
    elif channel is None:
        status, reason = "skipped", UNREACHABLE
        report.unreachable += 1
    else:
        window_opens = next_open(
            max(due, now), program.window, zone(person.timezone), people.away.get(person.id, Away())
        )
        if window_opens is None or window_opens >= closes:
            status, reason = "skipped", NO_WINDOW
            report.no_window += 1
        else:
            not_before = window_opens
            report.invitations += 1
    message = OutboxMessage(
            key=outbox_key("invitation", program.name, wave.key, person.key),
            kind="invitation", person_id=person.id, owner_id=person.owner_id, program_id=wave.program_id,
            wave_id=wave.id, channel=channel,
            payload={"program": program.name, "wave": wave.key, "expires_at": closes.isoformat()},
            status=status, not_before=not_before, not_after=closes, attempts=0, last_error=reason,
            created_at=now,
        )  # fmt: skip
    s.add(message)
