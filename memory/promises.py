"""Promises made to people, and their outcomes in the person's own view.

A promise is *due* once its due date has passed, or, when it has no due date, at the first
check-in that starts after it was made. Due promises are asked about at the person's next
check-in in an attributed program (``bot.engine.promises``); the answer becomes an
:class:`~memory.models.Outcome` and sets the promise's status.

Per owner, :func:`owner_stats` counts kept, partly kept, broken, open and overdue promises. The
kept rate is kept / (kept + partly + broken): a promise counts once the person has judged it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from memory.errors import RapportError
from memory.models import Outcome, Owner, Person, Promise

VERDICT_STATUS = {"yes": "kept", "partly": "partly", "no": "broken"}
STATUSES = ("open", "kept", "partly", "broken")


class EmptyPromise(RapportError):
    """A promise needs words."""

    def __init__(self) -> None:
        super().__init__("a promise needs a text")


def add_promise(
    s: Session,
    *,
    person: Person,
    owner: Owner | None,
    text: str,
    now: dt.datetime,
    due_at: dt.datetime | None = None,
    program_id: int | None = None,
    source: str = "cli",
) -> Promise:
    text = " ".join(text.split())
    if not text:
        raise EmptyPromise()
    promise = Promise(
        person_id=person.id,
        owner_id=owner.id if owner is not None else (person.owner_id),
        program_id=program_id,
        text=text,
        made_at=now,
        due_at=due_at,
        status="open",
        source=source,
        created_at=now,
    )
    s.add(promise)
    s.flush()
    return promise


def due_promises(s: Session, *, person_id: int, now: dt.datetime, program_id: int | None = None) -> list[Promise]:
    """Open promises to ask the person about at a check-in starting ``now``, oldest first."""
    query = select(Promise).where(
        Promise.person_id == person_id,
        Promise.status == "open",
        or_(Promise.due_at <= now, Promise.due_at.is_(None) & (Promise.made_at < now)),
    )
    if program_id is not None:
        query = query.where(or_(Promise.program_id.is_(None), Promise.program_id == program_id))
    return list(s.scalars(query.order_by(Promise.made_at, Promise.id)))


def record_outcome(
    s: Session, *, promise: Promise, verdict: str, comment: str | None, now: dt.datetime, checkin_id: int | None
) -> Outcome:
    """The person's verdict on a promise; the promise's status follows the latest verdict."""
    if verdict not in VERDICT_STATUS:
        raise ValueError(f"unknown verdict {verdict!r}")
    outcome = Outcome(
        promise_id=promise.id, checkin_id=checkin_id, verdict=verdict, comment=comment or None, recorded_at=now
    )
    s.add(outcome)
    promise.status = VERDICT_STATUS[verdict]
    s.flush()
    return outcome


def is_overdue(promise: Promise, now: dt.datetime) -> bool:
    return promise.status == "open" and promise.due_at is not None and promise.due_at < now


@dataclass(frozen=True, kw_only=True)
class OwnerStats:
    owner: str | None
    open: int
    kept: int
    partly: int
    broken: int
    overdue: int

    @property
    def judged(self) -> int:
        return self.kept + self.partly + self.broken

    @property
    def kept_rate(self) -> float | None:
        """Kept / judged; None until the first verdict."""
        return self.kept / self.judged if self.judged else None


def list_promises(
    s: Session, *, now: dt.datetime, owner_key: str | None = None, overdue_only: bool = False
) -> list[Promise]:
    query = select(Promise).options(selectinload(Promise.outcomes)).order_by(Promise.due_at, Promise.id)
    if owner_key is not None:
        query = query.join(Owner, Promise.owner_id == Owner.id).where(Owner.key == owner_key)
    promises = list(s.scalars(query))
    if overdue_only:
        promises = [p for p in promises if is_overdue(p, now)]
    return promises


def owner_stats(promises: Sequence[Promise], owners: dict[int, str], now: dt.datetime) -> list[OwnerStats]:
    """Counts per owner (by key; ``None`` for promises without an owner), sorted by owner."""
    groups: dict[str | None, list[Promise]] = {}
    for p in promises:
        groups.setdefault(owners.get(p.owner_id) if p.owner_id else None, []).append(p)
    out = []
    for key in sorted(groups, key=lambda k: (k is None, k or "")):
        ps = groups[key]
        out.append(
            OwnerStats(
                owner=key,
                open=sum(p.status == "open" for p in ps),
                kept=sum(p.status == "kept" for p in ps),
                partly=sum(p.status == "partly" for p in ps),
                broken=sum(p.status == "broken" for p in ps),
                overdue=sum(is_overdue(p, now) for p in ps),
            )
        )
    return out


def owner_keys(s: Session) -> dict[int, str]:
    return {o.id: o.key for o in s.scalars(select(Owner))}


# Editing and closing (the web's promise forms; the CLI uses the same functions) ---------------

#: Statuses an owner may set by hand. "open" reopens a promise closed by mistake.
OWNER_STATUSES = ("open", "kept", "partly", "broken")


class UnknownStatus(RapportError):
    def __init__(self, status: str) -> None:
        super().__init__(f"unknown promise status {status!r} (use one of: {', '.join(OWNER_STATUSES)})")


def get_promise(s: Session, promise_id: int) -> Promise | None:
    return s.scalar(select(Promise).where(Promise.id == promise_id).options(selectinload(Promise.outcomes)))


def edit_promise(
    s: Session, *, promise: Promise, text: str | None = None, due_at: dt.datetime | None = None, clear_due: bool = False
) -> Promise:
    """Change a promise's words and/or due date (``clear_due`` removes the date). The same rule
    as :func:`add_promise`: whitespace is collapsed and empty words are refused."""
    if text is not None:
        text = " ".join(text.split())
        if not text:
            raise EmptyPromise()
        promise.text = text
    if clear_due:
        promise.due_at = None
    elif due_at is not None:
        promise.due_at = due_at
    s.flush()
    return promise


def set_status(s: Session, *, promise: Promise, status: str) -> Promise:
    """The owner closes a promise as kept, partly kept or broken, or reopens it.

    This records the owner's judgement in the status only; the person's own verdict, asked at
    their next check-in, stays an :class:`Outcome` and still overrides it (``record_outcome``).
    """
    if status not in OWNER_STATUSES:
        raise UnknownStatus(status)
    promise.status = status
    s.flush()
    return promise
