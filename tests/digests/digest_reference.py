"""The per-owner digest as it was built before the one-pass loader (``memory.digests.build_digests``):
frozen here as the oracle the one pass must agree with, owner by owner, on a seeded world.

Its queries read one owner's people at a time, with a correlated sub-select per check-in for the
rating and the reason; the rules after the reads are the product's own at the time of the change.
"""

# ruff: noqa
# mypy: ignore-errors

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, selectinload

from memory import anonymity, wave_views
from memory.changes import excerpt, is_non_answer
from memory.digests import Digest, PersonChange, PromiseItem, Silent
from memory.errors import NotFound
from memory.models import Answer, Checkin, Enrollment, FollowUp, Outcome, Owner, Person, Program, Promise
from memory.stories import themes_in, trajectory


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


def _in(when: dt.datetime | None, since: dt.datetime, until: dt.datetime) -> bool:
    return when is not None and since <= when < until


def build_digest(
    s: Session,
    *,
    owner: str,
    since: dt.datetime,
    until: dt.datetime,
    threshold: int = 2,
    quote_chars: int = 120,
    encode: Callable[[Sequence[str]], NDArray[np.float32]] | None = None,
) -> Digest:
    owner_row = s.scalar(select(Owner).where(Owner.key == owner))
    if owner_row is None:
        raise NotFound("owner", owner)
    people = s.execute(select(Person.id, Person.key, Person.name).where(Person.owner_id == owner_row.id)).all()
    names = {p.id: p.name or p.key for p in people}
    keys = {p.id: p.key for p in people}

    # Promises first: broken ones raise the importance of that person's change.
    promises = list(
        s.scalars(
            select(Promise)
            .join(Person, Promise.person_id == Person.id)
            .where(Person.owner_id == owner_row.id)
            .options(selectinload(Promise.outcomes))
            .order_by(Promise.due_at, Promise.id)
        )
    )
    anonymous_programs = set(s.scalars(select(Program.id).where(Program.anonymous.is_(True))))
    promises = [p for p in promises if p.program_id not in anonymous_programs]
    outcomes: list[PromiseItem] = []
    broken: dict[int, int] = {}
    for p in promises:
        for o in p.outcomes:
            if _in(o.recorded_at, since, until):
                outcomes.append(_promise_item(p, keys, names, until, o))
                if o.verdict == "no":
                    broken[p.person_id] = broken.get(p.person_id, 0) + 1
    outcomes.sort(key=lambda i: ({"no": 0, "partly": 1, "yes": 2}.get(i.verdict or "", 3), i.name))
    due = [
        _promise_item(p, keys, names, until, None)
        for p in promises
        if p.status == "open" and p.due_at is not None and p.due_at < until
    ]

    silent: list[Silent] = []
    series: dict[tuple[int, str], list[CheckinRow]] = {}
    for c in checkin_rows(s, list(names), since, until):
        if c.status == "completed":
            series.setdefault((c.person_id, c.program), []).append(c)
        elif c.status in ("invited", "in_progress") and c.started_at < until:
            silent.append(_silent(c, keys, names, "open"))
        elif c.status == "expired" and _in(c.expires_at or c.updated_at, since, until):
            silent.append(_silent(c, keys, names, "expired"))
    followups = last_followups(s, list(names), since, until)
    moves = []
    for done in series.values():
        done.sort(key=lambda c: (c.completed_at or c.started_at, c.id))
        move = _movement(done, since, until)
        if move is not None:
            moves.append(move)
    # Only the people who moved (or were asked what changed) get their words and history read.
    moved = []
    for before, last, upto in moves:
        fu = next(
            (followups[c.id] for c in reversed(upto) if c.id in followups and _in(c.completed_at, since, until)), None
        )
        old = before.rating if before is not None else None
        if fu is not None or (last.rating is not None and old is not None and abs(last.rating - old) >= threshold):
            moved.append((before, last, fu))
    load_reasons(s, [c for before, last, _ in moved for c in (before, last) if c is not None])
    history = rating_series(s, [last.person_id for _, last, _ in moved], until)
    # One entry per person: their movement over the period (the most important one when they
    # moved in several programs), never one entry per check-in.
    best: dict[int, PersonChange] = {}
    for before, last, fu in moved:
        ratings = history.get((last.person_id, last.program), [])
        change = _change(last, before, ratings, fu, keys, names, threshold, quote_chars, broken.get(last.person_id, 0))
        if change is not None and (last.person_id not in best or change.importance > best[last.person_id].importance):
            best[last.person_id] = change
    changes = sorted(best.values(), key=lambda ch: (-ch.importance, ch.name))
    silent.sort(key=lambda x: (x.status != "expired", x.name))

    aggregates = []
    for program in s.scalars(select(Program).where(Program.anonymous.is_(True)).order_by(Program.name)):
        has_team = s.scalar(
            select(Enrollment.id)
            .join(Person, Enrollment.person_id == Person.id)
            .where(Enrollment.program_id == program.id, Person.owner_id == owner_row.id)
            .limit(1)
        )
        if has_team is None:
            continue
        for wave in anonymity.closed_waves(s, program, until):
            closed = wave_views.released_at(s, wave)
            if _in(closed, since, until):
                aggregates.append(
                    anonymity.aggregate(s, program=program.name, wave=wave.key, owner=owner, now=until, encode=encode)
                )

    digest = Digest(
        owner=owner,
        owner_name=owner_row.name or owner,
        since=since,
        until=until,
        summary="",
        changes=tuple(changes),
        outcomes=tuple(outcomes),
        due=tuple(due),
        silent=tuple(silent),
        aggregates=tuple(aggregates),
    )
    return _with_summary(digest)


def _movement(
    done: Sequence[CheckinRow], since: dt.datetime, until: dt.datetime
) -> tuple[CheckinRow | None, CheckinRow, list[CheckinRow]] | None:
    """(the last answered check-in before the period, the last one in it, every one up to it)."""
    inside = [i for i, c in enumerate(done) if _in(c.completed_at, since, until)]
    if not inside:
        return None
    first, last = inside[0], inside[-1]
    earlier = [e for e in done[:first] if e.rating is not None or e.has_reason]
    return (earlier[-1] if earlier else None), done[last], list(done[: last + 1])


def _promise_item(
    p: Promise, keys: dict[int, str], names: dict[int, str], until: dt.datetime, outcome: Outcome | None
) -> PromiseItem:
    return PromiseItem(
        person=keys.get(p.person_id, ""),
        name=names.get(p.person_id, ""),
        text=p.text,
        made_at=p.made_at,
        due_at=p.due_at,
        status=p.status,
        overdue=p.status == "open" and p.due_at is not None and p.due_at < until,
        verdict=outcome.verdict if outcome else None,
        comment=outcome.comment if outcome else None,
    )


def _silent(c: CheckinRow, keys: dict[int, str], names: dict[int, str], status: str) -> Silent:
    return Silent(
        person=keys.get(c.person_id, ""),
        name=names.get(c.person_id, ""),
        program=c.program,
        status=status,
        invited_at=c.started_at,
    )


def _change(
    c: CheckinRow,
    before: CheckinRow | None,
    ratings: Sequence[int],
    followup: LastFollowUp | None,
    keys: dict[int, str],
    names: dict[int, str],
    threshold: int,
    quote_chars: int,
    broken: int,
) -> PersonChange | None:
    new_rating, old_rating = c.rating, (before.rating if before is not None else None)
    delta = new_rating - old_rating if new_rating is not None and old_rating is not None else None
    view_changed = followup is not None
    if not (view_changed or (delta is not None and abs(delta) >= threshold)):
        return None
    reasons = followup.reasons if followup is not None else []
    old_reason = before.reason if before is not None else None
    new_reason = c.reason
    answer = followup.answer if followup is not None else None
    no_reason = is_non_answer(answer) if answer is not None else False
    importance = (abs(delta) * (1.5 if delta < 0 else 1.0) if delta else 0.0) + (2.0 if view_changed else 0.0)
    # Their own reason for the change ranks it higher; a bare "yes" is no reason.
    importance += (1.0 if answer and not no_reason else 0.0) + 3.0 * broken
    return PersonChange(
        person=keys.get(c.person_id, ""),
        name=names.get(c.person_id, ""),
        program=c.program,
        at=c.completed_at or c.started_at,
        old_rating=old_rating,
        new_rating=new_rating,
        old_reason=excerpt(old_reason, quote_chars) if old_reason else None,
        new_reason=excerpt(new_reason, quote_chars) if new_reason else None,
        followup_answer=excerpt(answer, quote_chars * 2) if answer and not no_reason else None,
        followup_no_reason=no_reason,
        view_changed=view_changed,
        reasons=tuple(str(r.get("text", "")) for r in reasons if isinstance(r, dict) and r.get("text")),
        themes_appeared=themes_in(reasons, "appeared"),
        themes_disappeared=themes_in(reasons, "disappeared"),
        trajectory=trajectory(ratings, step=threshold).kind,
        importance=round(importance, 2),
    )


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _with_summary(d: Digest) -> Digest:
    parts = []
    if d.changes:
        down = sum(1 for c in d.changes if (c.delta or 0) < 0)
        up = sum(1 for c in d.changes if (c.delta or 0) > 0)
        detail = ", ".join(x for x in (f"{down} down" if down else "", f"{up} up" if up else "") if x)
        parts.append(_plural(len(d.changes), "person", "people") + " changed" + (f" ({detail})" if detail else ""))
    broken = sum(1 for o in d.outcomes if o.verdict == "no")
    partly = sum(1 for o in d.outcomes if o.verdict == "partly")
    kept = sum(1 for o in d.outcomes if o.verdict == "yes")
    if broken or partly or kept:
        bits = [f"{broken} broken" if broken else "", f"{partly} partly kept" if partly else "",
                f"{kept} kept" if kept else ""]  # fmt: skip
        parts.append("promises: " + ", ".join(b for b in bits if b))
    if d.due:
        overdue = sum(1 for p in d.due if p.overdue)
        parts.append(_plural(len(d.due), "promise") + " due" + (f" ({overdue} overdue)" if overdue else ""))
    if d.silent:
        parts.append(_plural(len(d.silent), "person", "people") + " did not answer")
    if d.aggregates:
        parts.append(_plural(len(d.aggregates), "anonymous wave") + " closed")
    summary = "; ".join(parts) + "." if parts else "No changes."
    return Digest(
        owner=d.owner,
        owner_name=d.owner_name,
        since=d.since,
        until=d.until,
        summary=summary[0].upper() + summary[1:],
        changes=d.changes,
        outcomes=d.outcomes,
        due=d.due,
        silent=d.silent,
        aggregates=d.aggregates,
    )
