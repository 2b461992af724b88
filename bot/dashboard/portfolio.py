"""The portfolio: one row per person the viewer may see, and its filters.

Read through ``memory.anonymity.visible_checkins`` (attributed programs only), so a filter can
never reach an anonymous program's individual answers: "declining" or "not answered" are
computed from check-ins the owner could open one by one anyway.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.dashboard.auth import Viewer, visible_people_query
from memory import anonymity
from memory.models import Checkin, Program, Promise, Wave
from memory.stories import Trajectory, trajectory

FILTERS = {
    "declining": "Declining",
    "changed": "Changed this wave",
    "broken": "Broken promises",
    "silent": "Not answered",
}


@dataclass(frozen=True, kw_only=True)
class Row:
    key: str
    name: str | None
    owner: str | None
    program: str | None
    ratings: tuple[int, ...]
    trajectory: Trajectory
    last_change: str | None
    last_change_at: str | None
    open_promises: int
    broken_promises: int
    latest_status: str | None
    changed_this_wave: bool
    tags: frozenset[str] = field(default_factory=frozenset)


def rows(s: Session, viewer: Viewer, *, step: int = 2, only: str | None = None) -> list[Row]:
    people = list(s.scalars(visible_people_query(viewer)))
    checkins = anonymity.visible_checkins(s, person_ids=[p.id for p in people])
    by_person: dict[int, list[Checkin]] = defaultdict(list)
    for c in checkins:
        by_person[c.person_id].append(c)
    latest_wave = dict(
        s.execute(
            select(Wave.program_id, func.max(Wave.id)).join(Program).where(Program.anonymous.is_(False))
            .group_by(Wave.program_id)
        ).all()
    )  # fmt: skip
    promises: dict[int, list[Promise]] = defaultdict(list)
    anonymous = set(s.scalars(select(Program.id).where(Program.anonymous.is_(True))))
    if people:
        for p in s.scalars(select(Promise).where(Promise.person_id.in_([x.id for x in people]))):
            if p.program_id not in anonymous:
                promises[p.person_id].append(p)
    out = []
    for person in people:
        mine = by_person.get(person.id, [])
        program = mine[-1].program.name if mine else None
        ratings = tuple(
            a.rating for c in mine if c.status == "completed" and c.program.name == program
            for a in c.answers if a.kind == "rating" and not a.skipped and a.rating is not None
        )  # fmt: skip
        change = next(((c, c.followups[-1]) for c in reversed(mine) if c.followups), None)
        latest = mine[-1] if mine else None
        in_wave = (
            latest is not None and latest.wave_id is not None and latest_wave.get(latest.program_id) == latest.wave_id
        )
        ps = promises.get(person.id, [])
        row = Row(
            key=person.key,
            name=person.name,
            owner=person.owner.key if person.owner else None,
            program=program,
            ratings=ratings,
            trajectory=trajectory(list(ratings), step=step),
            last_change=_change_text(change[1].reasons) if change else None,
            last_change_at=(change[0].completed_at or change[0].started_at).date().isoformat() if change else None,
            open_promises=sum(p.status == "open" for p in ps),
            broken_promises=sum(p.status == "broken" for p in ps),
            latest_status=latest.status if latest else None,
            changed_this_wave=bool(in_wave and latest is not None and latest.followups),
        )
        tags = {
            "declining": row.trajectory.kind == "declining",
            "changed": row.changed_this_wave,
            "broken": row.broken_promises > 0,
            "silent": latest is not None and latest.status in ("invited", "in_progress", "expired"),
        }
        row = Row(**{**row.__dict__, "tags": frozenset(k for k, v in tags.items() if v)})
        if only is None or only in row.tags:
            out.append(row)
    return out


def _change_text(reasons: list[object]) -> str | None:
    """The strongest reason's sentence, as the change detector stored it."""
    texts = [str(r.get("text")) for r in reasons if isinstance(r, dict) and r.get("text")]
    return texts[0] if texts else None
