"""Everything held about one person, as one JSON-ready dict (``rapport export PERSON``).

Every row keyed to the person is included, column by column, so a column added later is
exported without a change here. Embeddings are the one exception: they are derived from the
words, so their presence and size are said, not their bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memory import audit
from memory.erasure import find_person
from memory.models import (
    Answer,
    ChannelIdentity,
    Checkin,
    Enrollment,
    FollowUp,
    OutboxMessage,
    Outcome,
    Person,
    Program,
    Promise,
)
from memory.models_scheduler import Absence, OutboxContent

FORMAT = "rapport.person-export/1"


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def row(obj: Any) -> dict[str, Any]:
    """Every column of a mapped row, JSON-ready."""
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        if column.key == "embedding":
            out["embedding"] = None if value is None else {"stored": True, "bytes": len(value)}
            continue
        out[column.key] = _value(value)
    return out


def export_person(s: Session, key: str, *, now: dt.datetime) -> dict[str, Any]:
    person = find_person(s, key)
    pid = person.id
    checkin_ids = select(Checkin.id).where(Checkin.person_id == pid)
    promise_ids = select(Promise.id).where(Promise.person_id == pid)
    outbox = list(s.scalars(select(OutboxMessage).where(OutboxMessage.person_id == pid).order_by(OutboxMessage.id)))
    contents = {
        c.outbox_id: c
        for c in s.scalars(select(OutboxContent).where(OutboxContent.outbox_id.in_([o.id for o in outbox])))
    }
    programs = {p.id: p.name for p in s.scalars(select(Program))}

    def rows(model: Any, *where: Any) -> list[dict[str, Any]]:
        return [row(r) for r in s.scalars(select(model).where(*where).order_by(model.id))]

    return {
        "format": FORMAT,
        "exported_at": now.isoformat(),
        "person": row(person),
        "programs": programs,
        "enrollments": rows(Enrollment, Enrollment.person_id == pid),
        "channel_identities": rows(ChannelIdentity, ChannelIdentity.person_id == pid),
        "absences": rows(Absence, Absence.person_id == pid),
        "checkins": rows(Checkin, Checkin.person_id == pid),
        "answers": rows(Answer, Answer.person_id == pid),
        "followups": rows(FollowUp, FollowUp.checkin_id.in_(checkin_ids)),
        "promises": rows(Promise, Promise.person_id == pid),
        "outcomes": rows(Outcome, Outcome.promise_id.in_(promise_ids)),
        "outbox": [{**row(o), "content": row(contents[o.id]) if o.id in contents else None} for o in outbox],
        "audit": [audit.as_dict(e) for e in audit.entries(s, person_id=pid, limit=100_000)],
    }


def person_summary(person: Person) -> str:
    """How a person is named in messages about an export or an erasure: the key only."""
    return person.key
