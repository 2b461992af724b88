"""What digests read of owners' people, as plain rows, in one pass for any number of owners.

No ORM objects, no flow state, no embeddings, and only the check-ins a digest can show (the
period's, the open ones, the expired ones, and the one before the period): one query per table
for every owner in scope, grouped in memory by the caller, so all owners' digests at 100,000
people take a handful of queries rather than a handful per owner. Whose people are read is a
*scope*, a condition on ``people`` (:func:`owners_scope`). No query is correlated: ratings and
reasons come from one read of the answers of the chosen check-ins.

The same rule as :func:`memory.anonymity.visible_checkins` holds here: only attributed programs
are read individually; an anonymous program's check-ins never appear in these rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, text, union_all
from sqlalchemy.orm import Session

from memory.models import OPEN_STATUSES, Answer, Checkin, FollowUp, Outcome, Person, Program, Promise


@dataclass(kw_only=True, slots=True)
class CheckinRow:
    """What a digest needs of one check-in: no state, no embeddings, no ORM object."""

    id: int
    person_id: int
    program: str
    status: str
    started_at: dt.datetime
    completed_at: dt.datetime | None
    expired_at: dt.datetime | None = None  # an expired one's expiry (else its last update)
    rating: int | None = None
    reason: str | None = None
    has_reason: bool = False  # read only for completed check-ins without a rating


@dataclass(frozen=True, kw_only=True, slots=True)
class PersonRow:
    id: int
    key: str
    name: str
    owner_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class PromiseRow:
    id: int
    person_id: int
    program_id: int | None
    text: str
    made_at: dt.datetime
    due_at: dt.datetime | None
    status: str


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeRow:
    promise_id: int
    verdict: str | None
    comment: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class LastFollowUp:
    reasons: list[Any]
    answer: str | None


def owners_scope(owner_ids: Sequence[int] | None) -> ColumnElement[bool]:
    """The people of these owners (every owner's people when None): the scope of a digest pass."""
    if owner_ids is None:
        return Person.owner_id.is_not(None)
    return Person.owner_id.in_(list(owner_ids))


def tune_transaction(s: Session, work_mem: str | None) -> None:
    """On PostgreSQL, let this transaction's sorts and hashes use ``work_mem`` (e.g. "64MB") each,
    and turn JIT compilation off for it.

    A digest pass is index probes and in-memory hashes of a few hundred thousand rows: compiling
    it (which the planner's cost estimate of the joins on the chosen check-ins triggers) costs
    0.3-0.5 s and saves nothing. ``set_config(..., true)`` is ``SET LOCAL``: both end with the
    transaction, so the pool's connections keep the server's settings. ``work_mem`` None keeps
    the server's; SQLite has neither."""
    if s.get_bind().dialect.name != "postgresql":
        return
    s.execute(text("SELECT set_config('jit', 'off', true)"))
    if work_mem:
        s.execute(text("SELECT set_config('work_mem', :value, true)"), {"value": work_mem})


def _chunks(ids: Sequence[int], size: int = 5000) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def _in_period(column: Any, since: dt.datetime, until: dt.datetime) -> ColumnElement[bool]:
    return and_(column >= since, column < until)


def program_names(s: Session) -> tuple[dict[int, str], set[int]]:
    """Every program's name by id, and the ids of the anonymous ones (a handful of rows)."""
    names, anonymous = {}, set()
    for pid, name, is_anonymous in s.connection().execute(select(Program.id, Program.name, Program.anonymous)):
        names[pid] = name
        if is_anonymous:
            anonymous.add(pid)
    return names, anonymous


def people(s: Session, scope: ColumnElement[bool]) -> list[PersonRow]:
    query = select(Person.id, Person.key, Person.name, Person.owner_id).where(scope)
    return [
        PersonRow(id=i, key=k, name=n or k, owner_id=o) for i, k, n, o in s.connection().execute(query) if o is not None
    ]


def _attributed() -> ColumnElement[bool]:
    return Checkin.program_id.in_(select(Program.id).where(Program.anonymous.is_(False)))


def _expired_at() -> ColumnElement[dt.datetime]:
    return func.coalesce(Checkin.expires_at, Checkin.updated_at)


def _chosen(scope: ColumnElement[bool], since: dt.datetime, until: dt.datetime) -> Any:
    """The check-ins a digest over ``[since, until)`` reads, with the columns it needs: completed
    in the period, open (started before its end), expired in it, and the last one completed
    before it of each person and program (the view they moved from). The two parts are disjoint
    (completed before ``since`` or not), so nothing is read twice or joined back."""

    def columns(*extra: Any) -> Any:
        expired = case((Checkin.status == "expired", _expired_at())).label("expired_at")
        return select(Checkin.id, Checkin.person_id, Checkin.program_id, Checkin.status, Checkin.started_at,
                      Checkin.completed_at, expired, *extra).join(Person, Checkin.person_id == Person.id)  # fmt: skip

    expired_at = _expired_at()
    current = columns().where(
        scope,
        _attributed(),
        or_(
            and_(Checkin.status == "completed", _in_period(Checkin.completed_at, since, until)),
            and_(Checkin.status.in_(OPEN_STATUSES), Checkin.started_at < until),
            and_(Checkin.status == "expired", _in_period(expired_at, since, until)),
        ),
    )
    # Each person and program's last check-in completed before the period (ties all kept): a
    # window over the (person, program, completed_at, status) index.
    last = func.max(Checkin.completed_at).over(partition_by=(Checkin.person_id, Checkin.program_id)).label("last")
    ranked = columns(last).where(scope, Checkin.completed_at < since).subquery()
    before = select(*(c for c in ranked.c if c.name != "last")).where(
        ranked.c.completed_at == ranked.c.last,
        ranked.c.status == "completed",
        ranked.c.program_id.in_(select(Program.id).where(Program.anonymous.is_(False))),
    )
    return union_all(current, before).cte("chosen")


def _rated() -> ColumnElement[bool]:
    return and_(Answer.kind == "rating", Answer.skipped.is_(False), Answer.rating.is_not(None))


def _reasoned() -> ColumnElement[bool]:
    return and_(Answer.kind == "text", Answer.skipped.is_(False), Answer.text.is_not(None), Answer.text != "")


def checkin_rows(
    s: Session, scope: ColumnElement[bool], since: dt.datetime, until: dt.datetime, programs: dict[int, str]
) -> list[CheckinRow]:
    """The check-ins a digest over ``[since, until)`` reads of the scope's people, oldest first,
    one row each with its first rating. Whether one has a reason is read only where it decides
    anything: a completed check-in without a rating. Attributed programs only: an anonymous
    program is never read individually, as with :func:`memory.anonymity.visible_checkins`.
    Everything older stays in the database."""
    chosen = _chosen(scope, since, until)
    # Each chosen check-in's lowest and highest rating, from the answers' rating index alone (an
    # index-only scan once a vacuum has marked the pages visible, no sort): where they agree, that
    # is its first rating. The few that hold different ratings get their first read by answer id.
    ratings = (
        select(Answer.checkin_id, func.min(Answer.rating).label("low"), func.max(Answer.rating).label("high"))
        .where(Answer.checkin_id.in_(select(chosen.c.id)), _rated())
        .group_by(Answer.checkin_id)
        .subquery()
    )
    query = (
        select(chosen, ratings.c.low, ratings.c.high)
        .outerjoin(ratings, ratings.c.checkin_id == chosen.c.id)
        .order_by(chosen.c.started_at, chosen.c.id)
    )
    out = []
    unrated = {}
    mixed = {}
    for cid, pid, program, status, started, completed, expired, low, high in s.connection().execute(query):
        row = CheckinRow(id=cid, person_id=pid, program=programs[program], status=status, started_at=started,
                         completed_at=completed, expired_at=expired, rating=low)  # fmt: skip
        out.append(row)
        if low is None and status == "completed":
            unrated[cid] = row
        elif low != high:
            mixed[cid] = row
    for chunk in _chunks(list(mixed)):
        first = select(Answer.checkin_id, Answer.rating).where(Answer.checkin_id.in_(chunk), _rated())
        seen: set[int] = set()
        for cid, rating in s.connection().execute(first.order_by(Answer.id)):
            if cid not in seen:
                seen.add(cid)
                mixed[cid].rating = rating
    for chunk in _chunks(list(unrated)):
        reasoned = select(Answer.checkin_id).where(Answer.checkin_id.in_(chunk), _reasoned()).distinct()
        for (cid,) in s.connection().execute(reasoned):
            unrated[cid].has_reason = True
    return out


def rating_series(
    s: Session, person_ids: Iterable[int], until: dt.datetime, programs: dict[int, str]
) -> dict[tuple[int, str], list[int]]:
    """Each (person, program)'s ratings of completed check-ins before ``until``, oldest first:
    for the trajectories of the few people a digest lists."""
    out: dict[tuple[int, str], list[int]] = {}
    # Which rows count is computed in the select list, not the WHERE clause: a planner without
    # statistics would otherwise walk every completed check-in by status instead of these people.
    counts = and_(Checkin.status == "completed", Checkin.completed_at < until)
    for chunk in _chunks(sorted(set(person_ids))):
        query = (
            select(Checkin.person_id, Checkin.program_id, Checkin.id, Answer.rating, counts)
            .join(Answer, and_(Answer.checkin_id == Checkin.id, _rated()))
            .where(Checkin.person_id.in_(chunk), _attributed())
            .order_by(Checkin.completed_at, Checkin.id, Answer.id)
        )
        seen: set[int] = set()
        for pid, program, cid, rating, ok in s.connection().execute(query):
            if ok and cid not in seen and rating is not None:
                seen.add(cid)
                out.setdefault((pid, programs[program]), []).append(rating)
    return out


def load_reasons(s: Session, rows: Sequence[CheckinRow]) -> None:
    """The first free-text answer of just these check-ins (the ones a digest quotes)."""
    by_id = {r.id: r for r in rows if r.reason is None}
    for chunk in _chunks(list(by_id)):
        query = (
            select(Answer.checkin_id, Answer.text)
            .where(Answer.checkin_id.in_(chunk), Answer.kind == "text", Answer.skipped.is_(False))
            .order_by(Answer.id)
        )
        for checkin_id, words in s.connection().execute(query):
            row = by_id[checkin_id]
            if row.reason is None and words:
                row.reason = words


def last_followups(
    s: Session, scope: ColumnElement[bool], since: dt.datetime, until: dt.datetime
) -> dict[int, LastFollowUp]:
    """The last follow-up of each of the scope's check-ins completed in the period."""
    out: dict[int, LastFollowUp] = {}
    query = (
        select(FollowUp.checkin_id, FollowUp.reasons, FollowUp.answer_text, FollowUp.skipped)
        .join(Checkin, FollowUp.checkin_id == Checkin.id)
        .join(Person, Checkin.person_id == Person.id)
        .where(scope, _in_period(Checkin.completed_at, since, until))
        .order_by(FollowUp.id)
    )
    for cid, reasons, answer, skipped in s.connection().execute(query):
        out[cid] = LastFollowUp(reasons=list(reasons or []), answer=None if skipped else answer)
    return out


def promises(s: Session, scope: ColumnElement[bool]) -> list[PromiseRow]:
    """The scope's promises, by due date then id (the database's order, nulls included)."""
    query = (
        select(
            Promise.id,
            Promise.person_id,
            Promise.program_id,
            Promise.text,
            Promise.made_at,
            Promise.due_at,
            Promise.status,
        )
        .join(Person, Promise.person_id == Person.id)
        .where(scope)
        .order_by(Promise.due_at, Promise.id)
    )
    return [
        PromiseRow(id=i, person_id=p, program_id=g, text=t, made_at=m, due_at=d, status=st)
        for i, p, g, t, m, d, st in s.connection().execute(query)
    ]


def outcomes(
    s: Session, scope: ColumnElement[bool], since: dt.datetime, until: dt.datetime
) -> dict[int, list[OutcomeRow]]:
    """The outcomes recorded in the period of the scope's promises, by promise, oldest first."""
    query = (
        select(Outcome.promise_id, Outcome.verdict, Outcome.comment)
        .join(Promise, Outcome.promise_id == Promise.id)
        .join(Person, Promise.person_id == Person.id)
        .where(scope, _in_period(Outcome.recorded_at, since, until))
        .order_by(Outcome.id)
    )
    out: dict[int, list[OutcomeRow]] = {}
    for pid, verdict, comment in s.connection().execute(query):
        out.setdefault(pid, []).append(OutcomeRow(promise_id=pid, verdict=verdict, comment=comment))
    return out
