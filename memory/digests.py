"""Per-owner change digests: who moved, by how much, in their own words, and what we promised.

A digest covers one owner's people over ``[since, until)``:

* **changes**: people whose rating moved by ``threshold`` points or more against their previous
  completed check-in in the same program, or whose view changed (the detector asked a follow-up):
  old and new rating, short quotes of the old and new reason, the follow-up answer, the
  detector's reasons and the themes that appeared or disappeared;
* **promise outcomes** recorded in the period (the person's yes / partly / no and comment);
* **due promises**: still open and due by ``until`` (overdue ones first);
* **silent**: the owner's people who have not answered an open check-in, or whose check-in
  expired in the period;
* **anonymous programs**: only k-anonymous aggregates of waves that closed in the period, for
  the owner's team (:func:`memory.anonymity.aggregate`); never a person.

Changes are ordered by importance: ``|delta| x 1.5`` for a fall (``x 1`` for a rise), ``+2`` when
the detector saw a changed view, ``+1`` when the person explained it in a follow-up, ``+3`` for
each promise to them that was broken in the period; ties by name. The summary line comes first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from memory import anonymity, wave_views
from memory import digest_rows as rows
from memory.changes import excerpt, is_non_answer
from memory.digest_rows import CheckinRow, LastFollowUp
from memory.errors import NotFound
from memory.models import Enrollment, Owner, Person, Program
from memory.stories import themes_in, trajectory


@dataclass(frozen=True, kw_only=True)
class PersonChange:
    person: str
    name: str
    program: str
    at: dt.datetime
    old_rating: int | None
    new_rating: int | None
    old_reason: str | None
    new_reason: str | None
    followup_answer: str | None
    view_changed: bool
    reasons: tuple[str, ...] = ()
    themes_appeared: tuple[str, ...] = ()
    themes_disappeared: tuple[str, ...] = ()
    trajectory: str = "new"
    importance: float = 0.0
    followup_no_reason: bool = False  # they answered "what changed?" without a reason ("yes", "idk")

    @property
    def delta(self) -> int | None:
        if self.old_rating is None or self.new_rating is None:
            return None
        return self.new_rating - self.old_rating


@dataclass(frozen=True, kw_only=True)
class PromiseItem:
    person: str
    name: str
    text: str
    made_at: dt.datetime
    due_at: dt.datetime | None
    status: str
    overdue: bool = False
    verdict: str | None = None
    comment: str | None = None


@dataclass(frozen=True, kw_only=True)
class Silent:
    person: str
    name: str
    program: str
    status: str  # "open" (not answered yet) | "expired"
    invited_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Digest:
    owner: str
    owner_name: str
    since: dt.datetime
    until: dt.datetime
    summary: str
    changes: tuple[PersonChange, ...] = ()
    outcomes: tuple[PromiseItem, ...] = ()
    due: tuple[PromiseItem, ...] = ()
    silent: tuple[Silent, ...] = ()
    aggregates: tuple[anonymity.AggregateView, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not (self.changes or self.outcomes or self.due or self.silent or self.aggregates)


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
    work_mem: str | None = None,
) -> Digest:
    """One owner's digest over ``[since, until)`` (:func:`build_digests` for one owner)."""
    found = build_digests(s, owners=[owner], since=since, until=until, threshold=threshold,
                          quote_chars=quote_chars, encode=encode, work_mem=work_mem)  # fmt: skip
    return found[owner]


def build_digests(
    s: Session,
    *,
    owners: Sequence[str] | None = None,
    since: dt.datetime,
    until: dt.datetime,
    threshold: int = 2,
    quote_chars: int = 120,
    encode: Callable[[Sequence[str]], NDArray[np.float32]] | None = None,
    work_mem: str | None = None,
) -> dict[str, Digest]:
    """These owners' digests (every owner's when None), by owner key, in one pass.

    One query per table reads every owner's people at once (:mod:`memory.digest_rows`); the rows
    are grouped by owner in memory. A named owner that does not exist is :class:`NotFound`.
    On PostgreSQL the transaction's ``work_mem`` is raised to ``work_mem`` (None: the server's),
    so the pass's sorts and hashes of every owner's check-ins stay in memory, and JIT is off.
    """
    rows.tune_transaction(s, work_mem)
    query = select(Owner.id, Owner.key, Owner.name).order_by(Owner.key)
    if owners is not None:
        query = query.where(Owner.key.in_(list(owners)))
    found = {key: (oid, name or key) for oid, key, name in s.execute(query)}
    for key in owners or ():
        if key not in found:
            raise NotFound("owner", key)
    scope = rows.owners_scope(None if owners is None else [oid for oid, _ in found.values()])
    programs, anonymous = rows.program_names(s)
    team: dict[int, list[rows.PersonRow]] = {oid: [] for oid, _ in found.values()}
    owner_of: dict[int, int] = {}
    for person in rows.people(s, scope):
        team[person.owner_id].append(person)
        owner_of[person.id] = person.owner_id
    keys = {p.id: p.key for ps in team.values() for p in ps}
    names = {p.id: p.name for ps in team.values() for p in ps}

    # Promises first: broken ones raise the importance of that person's change.
    recorded = rows.outcomes(s, scope, since, until)
    outcomes: dict[int, list[PromiseItem]] = {oid: [] for oid in team}
    due: dict[int, list[PromiseItem]] = {oid: [] for oid in team}
    broken: dict[int, int] = {}
    for promise in rows.promises(s, scope):
        if promise.program_id in anonymous:
            continue
        oid = owner_of[promise.person_id]
        for o in recorded.get(promise.id, ()):
            outcomes[oid].append(_promise_item(promise, keys, names, until, o))
            if o.verdict == "no":
                broken[promise.person_id] = broken.get(promise.person_id, 0) + 1
        if promise.status == "open" and promise.due_at is not None and promise.due_at < until:
            due[oid].append(_promise_item(promise, keys, names, until, None))

    silent: dict[int, list[Silent]] = {oid: [] for oid in team}
    series: dict[tuple[int, str], list[CheckinRow]] = {}
    for c in rows.checkin_rows(s, scope, since, until, programs):
        if c.status == "completed":
            series.setdefault((c.person_id, c.program), []).append(c)
        elif c.status in ("invited", "in_progress") and c.started_at < until:
            silent[owner_of[c.person_id]].append(_silent(c, keys, names, "open"))
        elif c.status == "expired" and _in(c.expired_at, since, until):
            silent[owner_of[c.person_id]].append(_silent(c, keys, names, "expired"))
    followups = rows.last_followups(s, scope, since, until)
    # Only the people who moved (or were asked what changed) get their words and history read.
    moved = []
    for done in series.values():
        done.sort(key=lambda c: (c.completed_at or c.started_at, c.id))
        move = _movement(done, since, until)
        if move is None:
            continue
        before, last, upto = move
        fu = next(
            (followups[c.id] for c in reversed(upto) if c.id in followups and _in(c.completed_at, since, until)), None
        )
        old = before.rating if before is not None else None
        if fu is not None or (last.rating is not None and old is not None and abs(last.rating - old) >= threshold):
            moved.append((before, last, fu))
    rows.load_reasons(s, [c for before, last, _ in moved for c in (before, last) if c is not None])
    history = rows.rating_series(s, [last.person_id for _, last, _ in moved], until, programs)
    # One entry per person: their movement over the period (the most important one when they
    # moved in several programs), never one entry per check-in.
    best: dict[int, PersonChange] = {}
    for before, last, fu in moved:
        ratings = history.get((last.person_id, last.program), [])
        change = _change(last, before, ratings, fu, keys, names, threshold, quote_chars, broken.get(last.person_id, 0))
        if change is not None and (last.person_id not in best or change.importance > best[last.person_id].importance):
            best[last.person_id] = change
    changes: dict[int, list[PersonChange]] = {oid: [] for oid in team}
    for pid, change in best.items():
        changes[owner_of[pid]].append(change)

    aggregates = _aggregates(s, scope, anonymous, since, until)
    digests = {}
    for key, (oid, name) in found.items():
        digest = Digest(
            owner=key,
            owner_name=name,
            since=since,
            until=until,
            summary="",
            changes=tuple(sorted(changes[oid], key=lambda ch: (-ch.importance, ch.name))),
            outcomes=tuple(sorted(outcomes[oid], key=_outcome_order)),
            due=tuple(due[oid]),
            silent=tuple(sorted(silent[oid], key=lambda x: (x.status != "expired", x.name))),
            aggregates=tuple(
                anonymity.aggregate(s, program=program, wave=wave, owner=key, now=until, encode=encode)
                for program, wave, teams in aggregates
                if oid in teams
            ),
        )
        digests[key] = _with_summary(digest)
    return digests


def _outcome_order(item: PromiseItem) -> tuple[int, str]:
    return {"no": 0, "partly": 1, "yes": 2}.get(item.verdict or "", 3), item.name


def _aggregates(
    s: Session,
    scope: ColumnElement[bool],
    anonymous: set[int],
    since: dt.datetime,
    until: dt.datetime,
) -> list[tuple[str, str, set[int]]]:
    """(program, wave, the owners whose team is in it) of each anonymous wave that closed in the
    period, programs by name: each such owner's digest carries that wave's team view."""
    out: list[tuple[str, str, set[int]]] = []
    if not anonymous:
        return out
    for program in s.scalars(select(Program).where(Program.anonymous.is_(True)).order_by(Program.name)):
        waves = [
            w for w in anonymity.closed_waves(s, program, until) if _in(wave_views.released_at(s, w), since, until)
        ]
        if not waves:
            continue
        query = (
            select(Person.owner_id)
            .join(Enrollment, Enrollment.person_id == Person.id)
            .where(Enrollment.program_id == program.id, scope)
            .distinct()
        )
        teams = {oid for oid in s.scalars(query) if oid is not None}
        out += [(program.name, wave.key, teams) for wave in waves]
    return out


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
    p: rows.PromiseRow, keys: dict[int, str], names: dict[int, str], until: dt.datetime, outcome: rows.OutcomeRow | None
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
