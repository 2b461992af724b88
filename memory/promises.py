"""Promises made to people, and their outcomes in the person's own view.

A promise is *due* once its due date has passed, or, when it has no due date, at the first
check-in that starts after it was made. Due promises are asked about at the person's next
check-in in an attributed program (``bot.engine.promises``); the answer becomes an
:class:`~memory.models.Outcome` and sets the promise's status.

An owner can correct a promise (:func:`edit_promise`), close one that no longer applies
(:func:`close_promise`: status ``closed``, never asked about, not judged) or record its outcome
themselves (:func:`mark_promise`). A due date is never before the promise was made.

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
#: An owner marks a promise by its status; the person's verdict is the same record.
STATUS_VERDICT = {status: verdict for verdict, status in VERDICT_STATUS.items()}
STATUSES = ("open", "kept", "partly", "broken", "closed")


class EmptyPromise(RapportError):
    """A promise needs words."""

    def __init__(self) -> None:
        super().__init__("a promise needs a text")


class DueBeforeMade(RapportError):
    """A due date before the promise was made would make it overdue the moment it is recorded."""

    def __init__(self, *, due_at: dt.datetime, made_at: dt.datetime) -> None:
        self.due_at, self.made_at = due_at, made_at
        super().__init__(
            f"the due date {due_at.date().isoformat()} is before the promise was made ({made_at.date().isoformat()})"
        )


class PromiseNotOpen(RapportError):
    """Only an open promise can be edited or closed."""

    def __init__(self, promise: Promise) -> None:
        self.promise_id, self.status = promise.id, promise.status
        super().__init__(f"promise {promise.id} is {promise.status}, not open")


def _clean_text(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        raise EmptyPromise()
    return text


def _check_due(due_at: dt.datetime | None, made_at: dt.datetime) -> None:
    # Compared by calendar day: "due today" is fine, "due yesterday" is a typo.
    if due_at is not None and due_at.date() < made_at.date():
        raise DueBeforeMade(due_at=due_at, made_at=made_at)


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
    text = _clean_text(text)
    _check_due(due_at, now)
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


def edit_promise(
    s: Session, *, promise: Promise, text: str | None = None, due_at: dt.datetime | None = None, clear_due: bool = False
) -> Promise:
    """Correct an open promise's words or due date (``clear_due`` removes the date). The same rules
    as :func:`add_promise`: whitespace is collapsed, empty words are refused, and a due date
    cannot come before the promise was made."""
    if promise.status != "open":
        raise PromiseNotOpen(promise)
    if text is not None:
        promise.text = _clean_text(text)
    if clear_due:
        promise.due_at = None
    elif due_at is not None:
        _check_due(due_at, promise.made_at)
        promise.due_at = due_at
    s.flush()
    return promise


def close_promise(s: Session, *, promise: Promise) -> Promise:
    """Close an open promise that no longer applies: it is never asked about and never judged."""
    if promise.status != "open":
        raise PromiseNotOpen(promise)
    promise.status = "closed"
    s.flush()
    return promise


def mark_promise(s: Session, *, promise: Promise, status: str, comment: str | None, now: dt.datetime) -> Outcome:
    """The owner records the outcome (kept, partly or broken), as a person's verdict would."""
    if status not in STATUS_VERDICT:
        raise ValueError(f"unknown outcome {status!r}")
    return record_outcome(s, promise=promise, verdict=STATUS_VERDICT[status], comment=comment, now=now, checkin_id=None)


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


def set_status(s: Session, *, promise: Promise, status: str, now: dt.datetime) -> Promise:
    """The owner marks a promise kept, partly kept or broken (:func:`mark_promise`, the same rule
    as ``rapport promise mark``), or reopens it."""
    if status not in OWNER_STATUSES:
        raise UnknownStatus(status)
    if status == "open":
        promise.status = "open"
        s.flush()
    else:
        mark_promise(s, promise=promise, status=status, comment=None, now=now)
    return promise
