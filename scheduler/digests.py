"""Planning owner digests into the outbox: on a cron schedule, and when a wave closes.

Pure memory work, no sending and no clock: the caller passes the schedule as plain values and
``now``. Each due digest becomes one ``OutboxMessage`` (kind ``digest``) whose unique key makes a
second planner, a restart or a repeated tick a no-op:

* scheduled: ``digest:<owner key>:<period start ISO>``. The period runs from the end of the
  owner's previous scheduled digest (or, for the first one, the cron fire before this one) to
  the latest cron fire time at or before ``now``. A digest missed while Rapport was down is
  planned once, covering the whole gap.
* wave close: ``digest:<owner key>:wave:<wave id>``, covering the wave from its opening to its
  close, for each owner with people enrolled in the wave's program. Waves closed more than
  ``wave_lookback`` ago are not planned (no flood of old digests on the first run).

The payload carries ``owner``, ``since`` and ``until`` (ISO-8601) and ``trigger``; the digest
itself is computed when it is sent (``bot.digests.DigestDelivery``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import exc, select
from sqlalchemy.orm import Session

from memory.models import Enrollment, OutboxMessage, Owner, Person, Program, Wave

log = logging.getLogger(__name__)

_LOOKBACKS = (dt.timedelta(days=2), dt.timedelta(days=9), dt.timedelta(days=33), dt.timedelta(days=370))


@dataclass(frozen=True, kw_only=True)
class DigestSchedule:
    """Plain values from ``config.digests`` (the scheduler never reads bot config itself)."""

    cron: str = "0 8 * * mon"
    channel: str = "email"
    timezone: str = "UTC"
    on_wave_close: bool = True
    # owner key -> (cron, channel); program name -> (cron, channel). Owner beats program beats default.
    owners: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    programs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    wave_lookback: dt.timedelta = dt.timedelta(days=7)


def fires_before(cron: str, timezone: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """The last two fire times at or before ``now`` (previous, latest), in UTC.

    A schedule that fires once a year or less has no previous fire in the window: the period
    then starts a year before the latest fire. None when it has not fired for a year.
    """
    trigger = CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))
    fires: list[dt.datetime] = []
    for back in _LOOKBACKS:
        fires = []
        t = trigger.get_next_fire_time(None, now - back)
        while t is not None and t <= now:
            fires.append(t)
            t = trigger.get_next_fire_time(t, t + dt.timedelta(seconds=1))
        if len(fires) >= 2:
            return fires[-2].astimezone(dt.UTC), fires[-1].astimezone(dt.UTC)
    if fires:
        latest = fires[-1].astimezone(dt.UTC)
        return latest - _LOOKBACKS[-1], latest
    return None


def _insert(s: Session, row: OutboxMessage) -> bool:
    if s.scalar(select(OutboxMessage.id).where(OutboxMessage.key == row.key)) is not None:
        return False
    try:
        with s.begin_nested():
            s.add(row)
    except exc.IntegrityError:
        # Another planner inserted the same key between our check and our insert.
        return False
    return True


def _owner_programs(s: Session) -> dict[int, set[str]]:
    rows = s.execute(
        select(Person.owner_id, Program.name)
        .join(Enrollment, Enrollment.person_id == Person.id)
        .join(Program, Enrollment.program_id == Program.id)
        .where(Person.owner_id.is_not(None), Enrollment.active.is_(True))
    )
    out: dict[int, set[str]] = {}
    for owner_id, program in rows:
        if owner_id is not None:
            out.setdefault(owner_id, set()).add(program)
    return out


def _last_until(s: Session, owner: Owner) -> dt.datetime | None:
    latest = None
    for payload in s.scalars(
        select(OutboxMessage.payload).where(OutboxMessage.kind == "digest", OutboxMessage.owner_id == owner.id)
    ):
        if isinstance(payload, dict) and payload.get("trigger") == "schedule" and payload.get("until"):
            until = dt.datetime.fromisoformat(payload["until"])
            latest = until if latest is None or until > latest else latest
    return latest


def plan_digests(s: Session, *, schedule: DigestSchedule, now: dt.datetime) -> list[OutboxMessage]:
    """Insert the digests due at ``now``; returns the new rows (flushed, not committed)."""
    created: list[OutboxMessage] = []
    programs_of = _owner_programs(s)
    owners = {o.id: o for o in s.scalars(select(Owner).where(Owner.id.in_(list(programs_of))).order_by(Owner.key))}
    for owner_id, owner in owners.items():
        cron, channel = schedule.owners.get(owner.key) or next(
            (schedule.programs[p] for p in sorted(programs_of[owner_id]) if p in schedule.programs),
            (schedule.cron, schedule.channel),
        )
        fires = fires_before(cron, schedule.timezone, now)
        if fires is None:
            continue
        previous, latest = fires
        last = _last_until(s, owner)
        if last is not None and last >= latest:
            continue
        since = last or previous
        row = OutboxMessage(
            key=f"digest:{owner.key}:{since.isoformat()}", kind="digest", owner_id=owner.id, channel=channel,
            payload={"owner": owner.key, "since": since.isoformat(), "until": latest.isoformat(),
                     "trigger": "schedule"},
            status="pending", not_before=now, created_at=now,
        )  # fmt: skip
        if _insert(s, row):
            created.append(row)
    if schedule.on_wave_close:
        created += _plan_wave_close(s, schedule, now, owners, programs_of)
    if created:
        log.info("digests planned", extra={"count": len(created)})
    return created


def _plan_wave_close(
    s: Session, schedule: DigestSchedule, now: dt.datetime, owners: dict[int, Owner], programs_of: dict[int, set[str]]
) -> list[OutboxMessage]:
    created = []
    waves = s.scalars(select(Wave).join(Program, Wave.program_id == Program.id).order_by(Wave.id))
    for wave in waves:
        closed = wave.closed_at or wave.closes_at
        if closed is None or not (now - schedule.wave_lookback <= closed <= now):
            continue
        for owner_id, owner in owners.items():
            if wave.program.name not in programs_of.get(owner_id, set()):
                continue
            _, channel = schedule.owners.get(owner.key) or schedule.programs.get(
                wave.program.name, (schedule.cron, schedule.channel)
            )
            row = OutboxMessage(
                key=f"digest:{owner.key}:wave:{wave.id}", kind="digest", owner_id=owner.id, channel=channel,
                program_id=wave.program_id, wave_id=wave.id,
                payload={"owner": owner.key, "since": wave.opens_at.isoformat(), "until": closed.isoformat(),
                         "trigger": "wave_close", "wave": wave.key},
                status="pending", not_before=now, created_at=now,
            )  # fmt: skip
            if _insert(s, row):
                created.append(row)
    return created
