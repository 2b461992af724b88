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

This module decides which wave is current and who is due in it; who of them gets an invitation,
and the row written for each, is :mod:`scheduler.invitations`; steps 2 and 3 are
:mod:`scheduler.upkeep`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from memory.db import transaction
from memory.models import Checkin, Enrollment, Person, Program, Wave
from memory.wave_views import Vectoriser
from scheduler import upkeep
from scheduler.audience import TickReport
from scheduler.cadence import cron_trigger, cron_wave_key, first_anchor, latest_due, latest_fire
from scheduler.invitations import invite_many
from scheduler.plans import ProgramSchedule
from scheduler.upkeep import Expire

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
        invite_many(s, program, [(p, waves[i], when, closes) for p, when, closes, i in due], now=now, report=report)
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
        invite_many(s, program, batch, now=now, report=report)
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
            invite_many(s, schedule, batch, now=now, report=report, scheduled=False)
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
