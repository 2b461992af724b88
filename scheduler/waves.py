"""Ending a wave early, as an operator does it: ``rapport wave close`` and ``rapport wave cancel``.

* **close**: nobody new is invited. Invitations not yet sent are dropped; people who already
  have their check-in keep it (and its reminders) until it ends as planned.
* **cancel**: the wave stops now. Invitations and reminders not yet sent are dropped, and open
  check-ins end at once (what people already answered is kept). In an anonymous program the
  wave's views are frozen at once (:mod:`memory.wave_views`); a closed wave's are frozen by the
  tick after its planned end, when the check-ins it kept open have ended.

Both mark the wave closed before its planned end, so the planner never invites anyone into it
again; cancel also marks it cancelled (``cancelled_at``), so it is listed as cancelled, not closed
(:func:`state`). Both are idempotent: closing a closed wave changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memory import wave_views
from memory.models import OPEN_STATUSES, Checkin, OutboxMessage, Program, Wave

#: Ends an open check-in properly (``CheckinService.expire``), as the planner's expiry does.
Expire = Callable[[Session, Checkin, dt.datetime], None]

CLOSED = "wave closed early"
CANCELLED = "wave cancelled"

#: Where a wave stands, as ``rapport wave list`` and ``wave show`` say it.
State = Literal["scheduled", "open", "closed", "cancelled"]


@dataclass(frozen=True)
class WaveEnded:
    dropped: int  # unsent invitations (and, on cancel, reminders) that will not go out
    ended: int  # open check-ins ended now (cancel only)


def human_name(kind: str, opens_at: dt.datetime) -> str:
    """How people read a wave: "started 30 Nov 2026", not ``manual-20261130T223200Z``."""
    label = {"manual": "started", "cron": "scheduled", "staggered": "period from", "import": "imported"}.get(kind, kind)
    return f"{label} {opens_at.day} {opens_at:%b %Y}"


def close_wave(s: Session, wave: Wave, now: dt.datetime) -> WaveEnded:
    dropped = _drop(s, wave, ("invitation",), CLOSED)
    _mark_closed(wave, now)
    return WaveEnded(dropped=dropped, ended=0)


def cancel_wave(s: Session, wave: Wave, now: dt.datetime, expire: Expire | None = None) -> WaveEnded:
    dropped = _drop(s, wave, ("invitation", "reminder"), CANCELLED)
    checkins = list(s.scalars(select(Checkin).where(Checkin.wave_id == wave.id, Checkin.status.in_(OPEN_STATUSES))))
    for checkin in checkins:
        checkin.expires_at = now
        if expire is not None:
            expire(s, checkin, now)
        if checkin.status in OPEN_STATUSES:
            checkin.status, checkin.updated_at = "expired", now
    if wave.cancelled_at is None and (wave.closes_at is None or now < wave.closes_at):
        # A wave that already ran to its planned end was not cut short: it stays "closed".
        wave.cancelled_at = now
    _mark_closed(wave, now)
    program = s.get(Program, wave.program_id)
    if program is not None and program.anonymous:
        s.flush()
        wave_views.freeze(s, program, wave, now=now)
    return WaveEnded(dropped=dropped, ended=len(checkins))


def _drop(s: Session, wave: Wave, kinds: tuple[str, ...], reason: str) -> int:
    result = s.execute(
        update(OutboxMessage)
        .where(OutboxMessage.wave_id == wave.id, OutboxMessage.kind.in_(kinds), OutboxMessage.status == "pending")
        .values(status="skipped", last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _mark_closed(wave: Wave, now: dt.datetime) -> None:
    # closes_at keeps the planned end, so "closed before its end" stays visible (closed_early).
    if wave.closed_at is None:
        wave.closed_at = now


def closed_early(wave: Wave) -> bool:
    """Closed by an operator before its planned end: the planner invites nobody into it."""
    return wave.closed_at is not None and (wave.closes_at is None or wave.closed_at < wave.closes_at)


def state(wave: Wave, now: dt.datetime) -> State:
    """``cancelled`` (``rapport wave cancel``), ``closed`` (by an operator, or past its planned end),
    ``scheduled`` (it opens later: ``rapport wave start --at``) or ``open``."""
    if wave.cancelled_at is not None:
        return "cancelled"
    if wave.closed_at is not None or (wave.closes_at is not None and wave.closes_at <= now):
        return "closed"
    return "scheduled" if wave.opens_at > now else "open"
