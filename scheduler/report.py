"""What ``rapport status`` shows: per program and wave, how far delivery and answers got."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.models import Answer, Checkin, OutboxMessage, Person, Program, Wave
from scheduler.audience import OPTED_OUT, UNREACHABLE
from scheduler.frequency import HELD_BACK
from scheduler.waves import human_name
from scheduler.windows import zone


@dataclass
class WaveStatus:
    program: str
    wave: str
    kind: str
    opens_at: dt.datetime
    closes_at: dt.datetime | None
    # How people read the wave ("started 30 Nov 2026"); ``wave`` is its stable key.
    name: str = ""
    # Invitations planned for people who can be reached (not opted out, not unreachable).
    due: int = 0
    # Accepted by the channel's API.
    sent: int = 0
    # Accepted with a message id from the channel (the API confirmed the message exists).
    delivered: int = 0
    # Waiting to go out (pending or being sent).
    pending: int = 0
    # Check-ins with at least one answer, and those finished.
    answered: int = 0
    completed: int = 0
    # Check-ins that got at least one reminder, and reminders sent in all.
    reminded: int = 0
    reminders_sent: int = 0
    expired: int = 0
    opted_out: int = 0
    unreachable: int = 0
    # Permanent failures, and messages skipped for another reason (no window, too late).
    failed: int = 0
    skipped: int = 0
    # Invitations the contact limit across programs delayed (still counted as due) or skipped.
    held_back: int = 0
    # When the first waiting message may go out (its send window), and in whose time zone.
    next_send: dt.datetime | None = None
    next_send_zone: str | None = None

    @property
    def response_rate(self) -> float | None:
        """Completed check-ins per invitation due; None before anything is due."""
        return round(self.completed / self.due, 4) if self.due else None

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["opens_at"] = self.opens_at.isoformat()
        data["closes_at"] = self.closes_at.isoformat() if self.closes_at else None
        data["next_send"] = self.next_send.isoformat() if self.next_send else None
        data["response_rate"] = self.response_rate
        return data


def wave_status(s: Session, program: str | None = None, now: dt.datetime | None = None) -> list[WaveStatus]:
    """One line per wave, newest first within each program; with ``now``, when waiting messages
    go out next (``next_send``), for those the send window holds back."""
    query = select(Wave, Program.name).join(Program, Program.id == Wave.program_id)
    if program is not None:
        query = query.where(Program.name == program)
    waves = list(s.execute(query.order_by(Program.name, Wave.opens_at.desc(), Wave.id.desc())))
    if not waves:
        return []
    ids = [w.id for w, _ in waves]
    out: dict[int, WaveStatus] = {
        w.id: WaveStatus(
            program=name,
            wave=w.key,
            kind=w.kind,
            opens_at=w.opens_at,
            closes_at=w.closes_at,
            name=human_name(w.kind, w.opens_at),
        )
        for w, name in waves
    }
    rows = s.execute(
        select(
            OutboxMessage.wave_id,
            OutboxMessage.kind,
            OutboxMessage.status,
            OutboxMessage.last_error,
            OutboxMessage.external_ref.is_not(None),
            func.count(),
        )
        .where(OutboxMessage.wave_id.in_(ids))
        .group_by(
            OutboxMessage.wave_id,
            OutboxMessage.kind,
            OutboxMessage.status,
            OutboxMessage.last_error,
            OutboxMessage.external_ref.is_not(None),
        )
    )
    for wave_id, kind, status, reason, has_ref, count in rows:
        assert wave_id is not None
        line = out[wave_id]
        if kind == "reminder":
            if status == "sent":
                line.reminders_sent += count
            continue
        if kind != "invitation":
            continue
        if status == "skipped" and reason == OPTED_OUT:
            line.opted_out += count
            continue
        if status == "skipped" and reason == UNREACHABLE:
            line.unreachable += count
            continue
        if reason == HELD_BACK:
            line.held_back += count
            if status == "skipped":
                continue
        line.due += count
        if status == "sent":
            line.sent += count
            line.delivered += count if has_ref else 0
        elif status in ("pending", "claimed"):
            line.pending += count
        elif status == "failed":
            line.failed += count
        elif status == "skipped" and (reason or "").startswith("unreachable"):
            line.unreachable += count
        elif status == "skipped":
            line.skipped += count
    statuses = Counter[tuple[int, str]]()
    for wave_id, status, reminders, count in s.execute(
        select(Checkin.wave_id, Checkin.status, Checkin.reminders_sent, func.count())
        .where(Checkin.wave_id.in_(ids))
        .group_by(Checkin.wave_id, Checkin.status, Checkin.reminders_sent)
    ):
        assert wave_id is not None
        statuses[(wave_id, status)] += count
        if reminders:
            out[wave_id].reminded += count
    for (wave_id, status), count in statuses.items():
        line = out[wave_id]
        if status == "completed":
            line.completed += count
        elif status == "expired":
            line.expired += count
        elif status == "opted_out":
            line.opted_out += count
    for wave_id, count in s.execute(
        select(Checkin.wave_id, func.count(func.distinct(Checkin.id)))
        .join(Answer, Answer.checkin_id == Checkin.id)
        .where(Checkin.wave_id.in_(ids), Answer.skipped.is_(False))
        .group_by(Checkin.wave_id)
    ):
        assert wave_id is not None
        out[wave_id].answered += count
    if now is not None:
        _next_sends(s, out, now)
    return [out[w.id] for w, _ in waves]


def _next_sends(s: Session, out: dict[int, WaveStatus], now: dt.datetime) -> None:
    """Per wave, the first waiting message that its send window holds until later."""
    first = (
        select(OutboxMessage.wave_id, func.min(OutboxMessage.not_before).label("at"))
        .where(
            OutboxMessage.wave_id.in_(list(out)),
            OutboxMessage.status == "pending",
            OutboxMessage.kind.in_(("invitation", "reminder")),
            OutboxMessage.not_before > now,
        )
        .group_by(OutboxMessage.wave_id)
        .subquery()
    )
    rows = s.execute(
        select(first.c.wave_id, first.c.at, Person.timezone)
        .join(OutboxMessage, (OutboxMessage.wave_id == first.c.wave_id) & (OutboxMessage.not_before == first.c.at))
        .join(Person, Person.id == OutboxMessage.person_id)
    )
    for wave_id, at, timezone in rows:
        line = out[wave_id]
        if line.next_send is None:
            line.next_send, line.next_send_zone = at, timezone


def describe_next_send(at: dt.datetime, timezone: str | None, now: dt.datetime) -> str:
    """ "Monday 09:00 in Europe/London": the person's own clock; a date too when it is a week or more away."""
    tz = zone(timezone)
    local = at.astimezone(tz)
    day = f"{local:%A}" if at - now < dt.timedelta(days=6) else f"{local:%A} {local.day} {local:%B}"
    return f"{day} {local:%H:%M} in {tz.key}"


@dataclass(frozen=True)
class HeldBack:
    """A person whose scheduled invitation the contact limit delayed (waiting) or skipped."""

    person: str
    program: str
    wave: str
    waiting: bool
    not_before: dt.datetime


def held_back(s: Session, program: str | None = None) -> list[HeldBack]:
    query = (
        select(Person.key, Program.name, Wave.kind, Wave.opens_at, OutboxMessage.status, OutboxMessage.not_before)
        .join(Person, Person.id == OutboxMessage.person_id)
        .join(Program, Program.id == OutboxMessage.program_id)
        .join(Wave, Wave.id == OutboxMessage.wave_id)
        .where(
            OutboxMessage.kind == "invitation",
            OutboxMessage.last_error == HELD_BACK,
            OutboxMessage.status.in_(("pending", "claimed", "skipped")),
        )
        .order_by(OutboxMessage.not_before, Person.key)
    )
    if program is not None:
        query = query.where(Program.name == program)
    return [
        HeldBack(person=key, program=name, wave=human_name(kind, opens), waiting=status != "skipped", not_before=at)
        for key, name, kind, opens, status, at in s.execute(query)
    ]
