"""The audit log: who looked at or changed a person's data, what, and when.

Every owner-facing read of a person's data (a story, a promise form) and every change made from
the web is written here with :func:`record`, in the same transaction as the read or the change.
The log holds no people's words: ``action`` is a fixed verb (``story.view``, ``promise.edit``...)
and ``detail`` carries ids and counts only. Privacy work (exports, erasure) reads it with
:func:`entries`; erasing a person keeps their audit rows (``person_id`` is set to NULL by the
foreign key) so the record of access survives the data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from memory.models import Base

#: The actions written today. Add new verbs here, so the list stays the one reference.
ACTIONS = (
    "portfolio.view",
    "story.view",
    "promise.view",
    "promises.view",
    "program.view",
    "digest.view",
    "promise.add",
    "promise.edit",
    "promise.status",
    "login",
    "login.link",
    # Written by the command line and the privacy work (memory.erasure, memory.export...).
    "history.view",
    "person.export",
    "person.erase",
    "person.optout",
    "person.optin",
    "digest.generate",
    "retention.run",
    # Written when a person deletes or corrects one of their own answers (bot.engine.mydata):
    # actor "person", the answer's id and how (chat, a deleted message, the web page); no words.
    "answer.delete",
    "answer.correct",
    # The same for the person's comment on a promise (``outcomes.comment``): the outcome's id.
    "outcome.delete",
    "outcome.correct",
)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_person_at", "person_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime]
    # Who: an owner key ("alice@example.com"), or "cli" / "system".
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(50))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def record(
    s: Session,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    person_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one entry. ``detail`` must hold ids and counts, never people's words."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r} (add it to memory.audit.ACTIONS)")
    entry = AuditEntry(at=now, actor=actor, action=action, person_id=person_id, detail=dict(detail or {}))
    s.add(entry)
    s.flush()
    return entry


def entries(
    s: Session, *, person_id: int | None = None, actor: str | None = None, limit: int = 500
) -> list[AuditEntry]:
    """Newest first, optionally for one person or one actor."""
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if person_id is not None:
        query = query.where(AuditEntry.person_id == person_id)
    if actor is not None:
        query = query.where(AuditEntry.actor == actor)
    return list(s.scalars(query))


def as_dict(entry: AuditEntry) -> dict[str, Any]:
    """One entry as plain JSON-ready values (for ``rapport audit --json`` and exports)."""
    return {
        "id": entry.id,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "person_id": entry.person_id,
        "detail": entry.detail,
    }


def record_digest(
    s: Session, *, actor: str, now: dt.datetime, owner: str, person_keys: Iterable[str], detail: dict[str, Any]
) -> int:
    """A digest was generated for ``owner``: one ``digest.generate`` entry per person it shows,
    so ``rapport audit --person`` lists every digest that carried that person's data."""
    from memory.models import Person

    keys = sorted({k for k in person_keys if k})
    ids: list[int | None] = list(s.scalars(select(Person.id).where(Person.key.in_(keys)))) if keys else []
    for person_id in ids or [None]:
        record(
            s, actor=actor, action="digest.generate", now=now, person_id=person_id, detail={"owner": owner, **detail}
        )
    return len(ids)


def digest_people(d: Any) -> list[str]:
    """The people a ``memory.digests.Digest`` shows by name (changes, promises, silence)."""
    return [item.person for group in (d.changes, d.outcomes, d.due, d.silent) for item in group]
