"""Who is due now: turns cadences into waves and outbox rows. The database decides.

``Planner.tick(now)`` is idempotent: every row it writes has a unique key (kind, program, wave,
person), so running it twice, after a restart or from a second process, adds nothing. It runs
under the scheduling lock (see :mod:`scheduler.leader`), which keeps the work in one place, but
correctness never depends on that lock: the unique keys do.

Per program, one tick:

1. opens the wave a cron expression or a staggered period says is current, and writes an
   invitation row for each enrolled person whose due date has come, with ``not_before`` at the
   next moment inside their send window and ``not_after`` at the end of their open window;
2. writes the reminder that is due for each open check-in (reminders are spread evenly over the
   open window; after downtime only the latest one is written, so nobody gets two at once);
3. expires open check-ins whose window closed and skips their unsent reminders, closes the
   waves whose end passed and, for anonymous programs, freezes what owners may see of them
   (:mod:`memory.wave_views`), in the same transaction.

Opted-out and unreachable people get a ``skipped`` row (with the reason), which is how they are
counted in ``rapport status`` and how they are never contacted.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from memory.db import transaction
from memory.models import OPEN_STATUSES, Checkin, Enrollment, OutboxMessage, Person, Program, Wave
from memory.wave_views import Vectoriser
from scheduler import upkeep
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
from scheduler.cadence import cron_trigger, cron_wave_key, first_anchor, latest_due, latest_fire
from scheduler.frequency import HELD_BACK, earliest_allowed
from scheduler.plans import ProgramSchedule, outbox_key
from scheduler.upkeep import Expire
from scheduler.waves import closed_early
from scheduler.windows import Away, next_open, zone

log = logging.getLogger(__name__)


class Planner:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        programs: Mapping[str, ProgramSchedule],
        expire: Expire | None = None,
        encode: Vectoriser | None = None,
    ) -> None:
        self.sessions = sessions
        self.programs = programs
        self.expire = expire
        # Themes of a frozen anonymous wave, for answers stored without an embedding.
        self.encode = encode

    # The tick -----------------------------------------------------------------------------------

    def tick(self, now: dt.datetime) -> TickReport:
        """Plan everything due at ``now``; one transaction per program and step."""
        report = TickReport()
        for program in self.programs.values():
            with transaction(self.sessions) as s:
                report.add(self.plan_invitations(s, program, now))
            with transaction(self.sessions) as s:
                report.add(upkeep.plan_reminders(s, program, now))
            with transaction(self.sessions) as s:
                report.add(upkeep.expire_due(s, program, now, expire=self.expire, encode=self.encode))
        if any(report.as_dict().values()):
            log.info("planned", extra=report.as_dict())
        return report

    # Invitations ------------------------------------------------------------------------------

    def plan_invitations(self, s: Session, program: ProgramSchedule, now: dt.datetime) -> TickReport:
        row = s.scalar(select(Program).where(Program.name == program.name))
        if row is None:
            return TickReport()
        if program.cron is not None:
            return self._plan_cron(s, program, row, now)
        return self._plan_staggered(s, program, row, now)

    def _enrolled(self, s: Session, program_id: int) -> list[tuple[Enrollment, Person]]:
        return [
            (e, p)
            for e, p in s.execute(
                select(Enrollment, Person)
                .join(Person, Person.id == Enrollment.person_id)
                .where(Enrollment.program_id == program_id, Enrollment.active.is_(True))
                .order_by(Person.id)
            )
        ]

    def _plan_staggered(self, s: Session, program: ProgramSchedule, row: Program, now: dt.datetime) -> TickReport:
        period = program.period
        assert period is not None
        report = TickReport()
        enrolled = self._enrolled(s, row.id)
        missing = [e for e, _ in enrolled if e.anchor_at is None]
        last: dict[int, dt.datetime] = {}
        if missing:
            for person_id, started_at in s.execute(
                select(Checkin.person_id, Checkin.started_at)
                .where(Checkin.program_id == row.id, Checkin.person_id.in_([e.person_id for e in missing]))
                .order_by(Checkin.started_at)
            ):
                last[person_id] = started_at
        due: list[tuple[Person, dt.datetime, dt.datetime, int]] = []
        for enrollment, person in enrolled:
            if enrollment.anchor_at is None:
                enrollment.anchor_at = first_anchor(
                    period=period, program=program.name, person_key=person.key,
                    enrolled_at=enrollment.enrolled_at, last_checkin_at=last.get(person.id),
                )  # fmt: skip
            when = latest_due(enrollment.anchor_at, period, now)
            if when is None:
                continue  # not yet
            index, closes = period.index(when), when + program.open_for
            if now >= closes:
                # This cycle's slot passed while nobody was running: the person is overdue and is
                # invited at the next good moment (their window), not a whole period later. The
                # slot's wave (its period) keeps it to one invitation per cycle.
                when, closes = now, now + program.open_for
            due.append((person, when, closes, index))
        waves: dict[int, Wave] = {}
        for _, _, _, index in due:
            if index not in waves:
                waves[index] = self._wave(
                    s, row, key=period.wave_key(index), kind="staggered", opens_at=period.start(index),
                    closes_at=period.start(index + 1) + program.open_for, now=now, report=report,
                )  # fmt: skip
        self._invite_many(
            s, program, [(p, waves[i], when, closes) for p, when, closes, i in due], now=now, report=report
        )
        return report

    def _plan_cron(self, s: Session, program: ProgramSchedule, row: Program, now: dt.datetime) -> TickReport:
        assert program.cron is not None
        report = TickReport()
        fire = latest_fire(cron_trigger(program.cron, program.timezone), now, program.open_for)
        if fire is None:
            return report
        closes = fire + program.open_for
        wave = self._wave(
            s, row, key=cron_wave_key(fire), kind="cron", opens_at=fire, closes_at=closes, now=now, report=report
        )
        batch = [
            (person, wave, max(fire, enrollment.enrolled_at), closes)
            for enrollment, person in self._enrolled(s, row.id)
            if enrollment.enrolled_at < closes
        ]
        self._invite_many(s, program, batch, now=now, report=report)
        return report

    def start_wave(
        self,
        *,
        program: str,
        now: dt.datetime,
        at: dt.datetime | None = None,
        people: Sequence[str] | None = None,
    ) -> tuple[Wave, TickReport]:
        """Open a manual wave now (or at ``at``) for everyone enrolled, or only ``people`` (keys)."""
        schedule = self.programs[program]
        opens = at or now
        closes = opens + schedule.open_for
        report = TickReport()
        with transaction(self.sessions) as s:
            row = s.scalar(select(Program).where(Program.name == program))
            assert row is not None
            wave = self._wave(
                s, row, key=f"manual-{opens:%Y%m%dT%H%M%SZ}", kind="manual", opens_at=opens, closes_at=closes,
                now=now, report=report,
            )  # fmt: skip
            wanted = set(people) if people is not None else None
            batch = [
                (person, wave, opens, closes)
                for _, person in self._enrolled(s, row.id)
                if wanted is None or person.key in wanted
            ]
            self._invite_many(s, schedule, batch, now=now, report=report, scheduled=False)
            s.expunge(wave)
        return wave, report

    def _wave(
        self,
        s: Session,
        program: Program,
        *,
        key: str,
        kind: str,
        opens_at: dt.datetime,
        closes_at: dt.datetime,
        now: dt.datetime,
        report: TickReport,
    ) -> Wave:
        wave = s.scalar(select(Wave).where(Wave.program_id == program.id, Wave.key == key))
        if wave is None:
            wave = Wave(
                program_id=program.id, key=key, kind=kind, opens_at=opens_at, closes_at=closes_at, created_at=now
            )
            # Two planners racing (a takeover mid-tick) both try; the loser's unique violation
            # rolls its transaction back and the next tick finds the wave.
            s.add(wave)
            s.flush()
            report.waves += 1
            log.info("wave opened", extra={"program": program.name, "wave": key, "kind": kind})
        return wave

    def _invite_many(
        self,
        s: Session,
        program: ProgramSchedule,
        batch: Sequence[tuple[Person, Wave, dt.datetime, dt.datetime]],
        *,
        now: dt.datetime,
        report: TickReport,
        scheduled: bool = True,
    ) -> None:
        # A wave an operator closed or cancelled (`rapport wave close`) takes nobody new.
        batch = [item for item in batch if not closed_early(item[1])]
        if not batch:
            return
        wave_ids = {w.id for _, w, _, _ in batch}
        if scheduled:
            self._reconsider_unreachable(s, program, batch, wave_ids, now, report)
        existing = set(
            s.scalars(
                select(OutboxMessage.key).where(OutboxMessage.wave_id.in_(wave_ids), OutboxMessage.kind == "invitation")
            )
        )
        todo = [
            item for item in batch if outbox_key("invitation", program.name, item[1].key, item[0].key) not in existing
        ]
        if not todo:
            return
        ids = [p.id for p, *_ in todo]
        program_id = todo[0][1].program_id
        # One open invitation per person and program, whichever planner wrote it: someone whose
        # invitation from another wave (manual, cron or staggered) is still waiting to go out is not
        # invited again; the next tick looks again once that one was sent or has lapsed.
        invited = self._invited_elsewhere(s, program_id, ids, wave_ids, now)
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
            if done_at is not None and done_at >= due - self._too_soon(program, due):
                self._record_skip(s, program, person, wave, due, closes, ANSWERED_RECENTLY, now)
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
                    self._record_skip(s, program, person, wave, due, closes, HELD_BACK, now)
                    continue
                due, note = allowed[person.id], HELD_BACK
            self._invite(s, program, person, wave, due, closes, people, now, report, note=note)

    @staticmethod
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
        self,
        s: Session,
        program: ProgramSchedule,
        batch: Sequence[tuple[Person, Wave, dt.datetime, dt.datetime]],
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

    @staticmethod
    def _too_soon(program: ProgramSchedule, due: dt.datetime) -> dt.timedelta:
        """How recent a finished check-in makes a new invitation unnecessary."""
        if program.period is None:
            return program.open_for
        return max(program.open_for, (program.period.add(due, 1) - due) / 2)

    @staticmethod
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
        self,
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
