"""What ``rapport status`` shows: per program and wave, how far delivery and answers got."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.models import Answer, Checkin, OutboxMessage, Program, Wave
from scheduler.planner import OPTED_OUT, UNREACHABLE


@dataclass
class WaveStatus:
    program: str
    wave: str
    kind: str
    opens_at: dt.datetime
    closes_at: dt.datetime | None
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

    @property
    def response_rate(self) -> float | None:
        """Completed check-ins per invitation due; None before anything is due."""
        return round(self.completed / self.due, 4) if self.due else None

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["opens_at"] = self.opens_at.isoformat()
        data["closes_at"] = self.closes_at.isoformat() if self.closes_at else None
        data["response_rate"] = self.response_rate
        return data


def wave_status(s: Session, program: str | None = None) -> list[WaveStatus]:
    """One line per wave, newest first within each program."""
    query = select(Wave, Program.name).join(Program, Program.id == Wave.program_id)
    if program is not None:
        query = query.where(Program.name == program)
    waves = list(s.execute(query.order_by(Program.name, Wave.opens_at.desc(), Wave.id.desc())))
    if not waves:
        return []
    ids = [w.id for w, _ in waves]
    out: dict[int, WaveStatus] = {
        w.id: WaveStatus(program=name, wave=w.key, kind=w.kind, opens_at=w.opens_at, closes_at=w.closes_at)
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
    return [out[w.id] for w, _ in waves]
