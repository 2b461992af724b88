"""What a digest reads of one owner's people, as plain rows: no ORM objects, no flow state, no
embeddings, and only the check-ins a digest can show (the period's, the open ones, and the one
before the period), so all owners' digests stay fast at 100,000 people.

The same rule as :func:`memory.anonymity.visible_checkins` holds here: only attributed programs
are read individually; an anonymous program's check-ins never appear in these rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from memory.models import Answer, Checkin, FollowUp, Program


@dataclass(kw_only=True)
class CheckinRow:
    """What a digest needs of one check-in: no state, no embeddings, no ORM object."""

    id: int
    person_id: int
    program: str
    status: str
    started_at: dt.datetime
    completed_at: dt.datetime | None
    expires_at: dt.datetime | None
    updated_at: dt.datetime
    rating: int | None = None
    reason: str | None = None
    has_reason: bool = False


def _chunks(ids: Sequence[int], size: int = 5000) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def _first_rating() -> Any:
    return (
        select(Answer.rating)
        .where(
            Answer.checkin_id == Checkin.id,
            Answer.kind == "rating",
            Answer.skipped.is_(False),
            Answer.rating.is_not(None),
        )
        .order_by(Answer.id)
        .limit(1)
        .scalar_subquery()
    )


def _has_reason() -> Any:
    return (
        select(Answer.id)
        .where(
            Answer.checkin_id == Checkin.id,
            Answer.kind == "text",
            Answer.skipped.is_(False),
            Answer.text.is_not(None),
            Answer.text != "",
        )
        .exists()
    )


def _columns() -> Any:
    return select(
        Checkin.id, Checkin.person_id, Program.name, Checkin.status, Checkin.started_at, Checkin.completed_at,
        Checkin.expires_at, Checkin.updated_at, _first_rating(), _has_reason(),
    ).join(Program, Checkin.program_id == Program.id)  # fmt: skip


def checkin_rows(s: Session, person_ids: Sequence[int], since: dt.datetime, until: dt.datetime) -> list[CheckinRow]:
    """What a digest over ``[since, until)`` reads of these people's check-ins, oldest first:
    those completed in the period, those still open or expired, and the last one completed before
    the period of each person and program (the view they moved from). Attributed programs only:
    an anonymous program is never read individually, as with
    :func:`memory.anonymity.visible_checkins`. Everything older stays in the database.

    Every query is driven by ``checkins.person_id IN (...)``, and status is tested through
    ``completed_at`` where it can be: SQLite has no statistics, and an equality on the status
    index looks selective to it although "completed" is nearly every row, which made each
    owner's digest scan all check-ins.
    """
    rows: dict[int, CheckinRow] = {}
    for chunk in _chunks(sorted(set(person_ids))):
        current = _columns().where(
            Checkin.person_id.in_(chunk),
            Program.anonymous.is_(False),
            or_(
                and_(Checkin.completed_at >= since, Checkin.completed_at < until),
                Checkin.status.in_(("invited", "in_progress", "expired")),
            ),
        )
        latest = (
            select(Checkin.person_id, Checkin.program_id, func.max(Checkin.completed_at).label("at"))
            .where(Checkin.person_id.in_(chunk), Checkin.completed_at < since)
            .group_by(Checkin.person_id, Checkin.program_id)
            .subquery()
        )
        same = and_(
            latest.c.person_id == Checkin.person_id,
            latest.c.program_id == Checkin.program_id,
            latest.c.at == Checkin.completed_at,
        )
        before = _columns().join(latest, same).where(Program.anonymous.is_(False), Checkin.status == "completed")
        for query in (current, before):
            for r in s.execute(query):
                rows[r[0]] = CheckinRow(id=r[0], person_id=r[1], program=r[2], status=r[3], started_at=r[4],
                                        completed_at=r[5], expires_at=r[6], updated_at=r[7], rating=r[8],
                                        has_reason=bool(r[9]))  # fmt: skip
    return sorted(rows.values(), key=lambda r: (r.started_at, r.id))


def rating_series(s: Session, person_ids: Sequence[int], until: dt.datetime) -> dict[tuple[int, str], list[int]]:
    """Each (person, program)'s ratings of completed check-ins before ``until``, oldest first:
    for the trajectories of the few people a digest lists."""
    out: dict[tuple[int, str], list[int]] = {}
    for chunk in _chunks(sorted(set(person_ids))):
        query = (
            _columns()
            .where(
                Checkin.person_id.in_(chunk),
                Program.anonymous.is_(False),
                Checkin.completed_at < until,
            )
            .order_by(Checkin.completed_at, Checkin.id)
        )
        for r in s.execute(query):
            if r[8] is not None and r[3] == "completed":
                out.setdefault((r[1], r[2]), []).append(r[8])
    return out


def load_reasons(s: Session, rows: Sequence[CheckinRow]) -> None:
    """The first free-text answer of just these check-ins (the ones a digest quotes)."""
    by_id = {r.id: r for r in rows if r.has_reason and r.reason is None}
    for chunk in _chunks(list(by_id)):
        query = (
            select(Answer.checkin_id, Answer.text)
            .where(Answer.checkin_id.in_(chunk), Answer.kind == "text", Answer.skipped.is_(False))
            .order_by(Answer.id)
        )
        for checkin_id, text in s.execute(query):
            row = by_id[checkin_id]
            if row.reason is None and text:
                row.reason = text


@dataclass(frozen=True, kw_only=True)
class LastFollowUp:
    reasons: list[Any]
    answer: str | None


def last_followups(
    s: Session, person_ids: Sequence[int], since: dt.datetime, until: dt.datetime
) -> dict[int, LastFollowUp]:
    """The last follow-up of each of these people's check-ins completed in the period."""
    out: dict[int, LastFollowUp] = {}
    for chunk in _chunks(sorted(set(person_ids))):
        query = (
            select(FollowUp.checkin_id, FollowUp.reasons, FollowUp.answer_text, FollowUp.skipped)
            .join(Checkin, FollowUp.checkin_id == Checkin.id)
            .where(Checkin.person_id.in_(chunk), Checkin.completed_at >= since, Checkin.completed_at < until)
            .order_by(FollowUp.id)
        )
        for cid, reasons, answer, skipped in s.execute(query):
            out[cid] = LastFollowUp(reasons=list(reasons or []), answer=None if skipped else answer)
    return out
