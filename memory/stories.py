"""A person's relationship story: their timeline across waves, and its shape.

The timeline joins check-ins, answers, follow-ups, the themes that appeared or disappeared (from
the change detector's reasons) and the promises made to the person with their outcomes.

Owner-facing: check-ins are read only through :func:`memory.anonymity.visible_checkins`, so an
anonymous program never shows up in a story.

Trajectory rules (on the series of ratings of completed check-ins, oldest first, per program;
``step`` is the rating movement that counts, ``changes.rating_delta``, 2 by default):

* ``new``         fewer than two ratings.
* Moves are the steps between consecutive ratings with |delta| >= step; consecutive moves in the
  same direction collapse into one run.
* ``volatile``    three or more runs (up-down-up, down-up-down, ...).
* ``recovering``  a fall, then a rise (down, up).
* ``declining``   a fall, or a rise then a fall (down / up, down): the latest run is down.
* ``improving``   a rise.
* With no move of ``step`` or more, gradual drift still counts: a net change of at least
  ``step`` from first to last rating is ``improving`` / ``declining``; otherwise ``stable``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from memory import anonymity
from memory.models import Owner, Person, Program, Promise

TrajectoryKind = Literal["new", "stable", "improving", "declining", "recovering", "volatile"]
TRAJECTORIES: tuple[TrajectoryKind, ...] = ("new", "stable", "improving", "declining", "recovering", "volatile")


@dataclass(frozen=True)
class Trajectory:
    kind: TrajectoryKind
    why: str


def trajectory(ratings: Sequence[int], *, step: int = 2) -> Trajectory:
    """Classify a rating series (oldest first). See the module docstring for the rules."""
    if len(ratings) < 2:
        return Trajectory("new", "fewer than two ratings")
    runs: list[int] = []
    for before, after in itertools.pairwise(ratings):
        delta = after - before
        if abs(delta) < step:
            continue
        sign = 1 if delta > 0 else -1
        if not runs or runs[-1] != sign:
            runs.append(sign)
    path = " → ".join(str(r) for r in ratings)
    if len(runs) >= 3:
        return Trajectory("volatile", f"{len(runs)} swings of {step}+ points: {path}")
    if runs == [-1, 1]:
        return Trajectory("recovering", f"fell, then rose again: {path}")
    if runs and runs[-1] == -1:
        return Trajectory("declining", f"latest move is a fall of {step}+ points: {path}")
    if runs == [1]:
        return Trajectory("improving", f"rose by {step}+ points: {path}")
    net = ratings[-1] - ratings[0]
    if net >= step:
        return Trajectory("improving", f"drifted up by {net} points: {path}")
    if net <= -step:
        return Trajectory("declining", f"drifted down by {-net} points: {path}")
    return Trajectory("stable", f"within {step - 1} point(s) of where it started: {path}")


@dataclass(frozen=True, kw_only=True)
class Point:
    """One check-in on the timeline."""

    checkin_id: int
    program: str
    wave: str | None
    at: dt.datetime
    status: str
    rating: int | None
    rating_question: str | None
    reason: str | None
    reason_question: str | None
    followup_question: str | None = None
    followup_answer: str | None = None
    change_reasons: tuple[str, ...] = ()
    themes_appeared: tuple[str, ...] = ()
    themes_disappeared: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class OutcomeView:
    verdict: str
    comment: str | None
    at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class PromiseView:
    id: int
    text: str
    owner: str | None
    made_at: dt.datetime
    due_at: dt.datetime | None
    status: str
    outcomes: tuple[OutcomeView, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Story:
    person: str
    name: str | None
    owner: str | None
    points: tuple[Point, ...]
    promises: tuple[PromiseView, ...]
    trajectories: dict[str, Trajectory] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, dt.datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            return value

        data: dict[str, Any] = plain(asdict(self))
        return data


def themes_in(reasons: Sequence[Any], kind: str) -> tuple[str, ...]:
    """Ideas from the detector's ``appeared`` / ``disappeared`` reasons (``data.themes`` or
    ``data.theme``; a disappeared idea falls back to the quoted earlier words)."""
    out: list[str] = []
    for r in reasons:
        if not isinstance(r, dict) or r.get("kind") != kind:
            continue
        data = r.get("data") or {}
        themes = data.get("themes") or ([data["theme"]] if data.get("theme") else [])
        if not themes and kind == "disappeared" and r.get("quote"):
            themes = [r["quote"]]
        out += [str(t) for t in themes if t and str(t) not in out]
    return tuple(out)


def build_story(s: Session, person: Person, *, step: int = 2) -> Story:
    """The person's story as an owner may see it (attributed programs only)."""
    points = []
    for c in anonymity.visible_checkins(s, person_ids=[person.id]):
        rating = next((a for a in c.answers if a.kind == "rating" and not a.skipped), None)
        text = next((a for a in c.answers if a.kind == "text" and not a.skipped and a.text), None)
        fu = next((f for f in reversed(c.followups)), None)
        reasons = list(fu.reasons) if fu is not None else []
        points.append(
            Point(
                checkin_id=c.id,
                program=c.program.name,
                wave=c.wave.key if c.wave is not None else None,
                at=c.completed_at or c.started_at,
                status=c.status,
                rating=rating.rating if rating else None,
                rating_question=rating.question if rating else None,
                reason=text.text if text else None,
                reason_question=text.question if text else None,
                followup_question=fu.question if fu else None,
                followup_answer=fu.answer_text if fu else None,
                change_reasons=tuple(str(r.get("text", "")) for r in reasons if isinstance(r, dict)),
                themes_appeared=themes_in(reasons, "appeared"),
                themes_disappeared=themes_in(reasons, "disappeared"),
            )
        )
    series: dict[str, list[int]] = {}
    for p in points:
        if p.status == "completed" and p.rating is not None:
            series.setdefault(p.program, []).append(p.rating)
    programs_seen = {p.program for p in points}
    trajectories = {name: trajectory(series.get(name, []), step=step) for name in sorted(programs_seen)}
    return Story(
        person=person.key,
        name=person.name,
        owner=person.owner.key if person.owner else None,
        points=tuple(points),
        promises=tuple(promise_views(s, person.id)),
        trajectories=trajectories,
    )


def promise_views(s: Session, person_id: int) -> list[PromiseView]:
    """Promises to the person, except those tied to an anonymous program."""
    anonymous = set(s.scalars(select(Program.id).where(Program.anonymous.is_(True))))
    promises = s.scalars(
        select(Promise)
        .where(Promise.person_id == person_id)
        .options(selectinload(Promise.outcomes))
        .order_by(Promise.made_at, Promise.id)
    )
    out = []
    for p in promises:
        if p.program_id in anonymous:
            continue
        out.append(
            PromiseView(
                id=p.id,
                text=p.text,
                owner=_owner_key(s, p.owner_id),
                made_at=p.made_at,
                due_at=p.due_at,
                status=p.status,
                outcomes=tuple(OutcomeView(verdict=o.verdict, comment=o.comment, at=o.recorded_at) for o in p.outcomes),
            )
        )
    return out


def _owner_key(s: Session, owner_id: int | None) -> str | None:
    if owner_id is None:
        return None
    owner = s.get(Owner, owner_id)
    return owner.key if owner else None
