"""The one door through which owners see check-in data, and k-anonymity for anonymous programs.

Every owner-facing query (stories, digests, history, themes) goes through this module:

* :func:`visible_checkins` is how owner-facing code reads *individual* check-ins. It never
  returns a check-in of an anonymous program, whatever the filter. A meta-test keeps
  ``memory.stories`` and ``memory.digests`` from selecting check-ins any other way.
* :func:`aggregate` is the only view of an anonymous program: a score distribution, eNPS, mean,
  movement since the previous wave, and themes with identity-free comments, over one *closed*
  wave, for the whole program or one owner's team. Nothing else can be sliced.

Suppression rules (``k`` from the program, 5 by default):

1. A view covers the respondents of one closed wave. Open waves are never shown (a view that
   grows would reveal each newcomer by difference), and neither are check-ins without a wave.
2. The only slices are the whole program and one owner's team (a fixed partition); arbitrary
   filters such as a list of people or a date range are refused (:class:`SliceRefused`).
3. A team view is suppressed when the team has fewer than k respondents, or when the rest of the
   program has between 1 and k-1 (the program total minus the team would reveal them).
4. The program view is suppressed when it has fewer than k respondents, or when the teams that
   are suppressed add up to between 1 and k-1 (the total minus the shown teams would reveal them).
5. Movement (up/down/same against the previous closed wave) needs k people who answered both
   waves in the view; themes smaller than k lose their quotes (folded into "other").
6. No individual change alert, name, date or person key is ever part of a view; comments are
   excerpts, sorted, with no order that follows people.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from memory.changes import excerpt
from memory.embeddings import from_bytes
from memory.errors import RapportError
from memory.models import Checkin, Owner, Person, Program, Wave
from memory.themes import Theme, cluster_themes


class SliceRefused(RapportError):
    """A view of an anonymous program was asked for by a filter that could single people out."""

    def __init__(self, program: str, why: str) -> None:
        self.program = program
        self.why = why
        super().__init__(f"program {program!r} is anonymous: {why}")


def visible_checkins(
    s: Session,
    *,
    person_ids: Collection[int],
    statuses: Collection[str] | None = None,
) -> list[Checkin]:
    """Check-ins of these people an owner may see individually: attributed programs only.

    Oldest first, with answers, follow-ups, program and wave loaded.
    """
    if not person_ids:
        return []
    query = (
        select(Checkin)
        .join(Program, Checkin.program_id == Program.id)
        .where(Checkin.person_id.in_(list(person_ids)), Program.anonymous.is_(False))
        .options(
            selectinload(Checkin.answers),
            selectinload(Checkin.followups),
            selectinload(Checkin.program),
            selectinload(Checkin.wave),
            selectinload(Checkin.person),
        )
        .order_by(Checkin.started_at, Checkin.id)
    )
    if statuses is not None:
        query = query.where(Checkin.status.in_(list(statuses)))
    return list(s.scalars(query))


@dataclass(frozen=True, kw_only=True)
class Movement:
    pairs: int
    up: int
    down: int
    same: int
    mean_delta: float


@dataclass(frozen=True, kw_only=True)
class AggregateView:
    """What an owner may see of an anonymous program's wave. ``suppressed`` views carry no data."""

    program: str
    wave: str
    slice: str  # "program" or "owner:<key>"
    k: int
    suppressed: bool
    why: str | None = None
    respondents: int | None = None
    distribution: dict[int, int] = field(default_factory=dict)
    mean: float | None = None
    enps: float | None = None
    movement: Movement | None = None
    themes: tuple[Theme, ...] = ()
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Response:
    person_id: int
    owner_id: int | None
    rating: int | None
    text: str | None
    embedding: bytes | None


def _responses(s: Session, wave: Wave) -> list[_Response]:
    rows = s.scalars(
        select(Checkin)
        .where(Checkin.wave_id == wave.id, Checkin.status == "completed")
        .options(selectinload(Checkin.answers), selectinload(Checkin.followups), selectinload(Checkin.person))
    )
    out = []
    for c in rows:
        rating = next((a for a in c.answers if a.kind == "rating" and not a.skipped and a.rating is not None), None)
        text = next((a for a in c.answers if a.kind == "text" and not a.skipped and a.text), None)
        if rating is None and text is None:
            continue
        out.append(
            _Response(
                person_id=c.person_id,
                owner_id=c.person.owner_id,
                rating=rating.rating if rating else None,
                text=text.text if text else None,
                embedding=text.embedding if text else None,
            )
        )
    return out


def closed_waves(s: Session, program: Program, now: dt.datetime) -> list[Wave]:
    """The program's waves that are closed at ``now``, oldest first."""
    waves = s.scalars(select(Wave).where(Wave.program_id == program.id).order_by(Wave.opens_at, Wave.id))
    return [
        w
        for w in waves
        if (w.closed_at is not None and w.closed_at <= now) or (w.closes_at is not None and w.closes_at <= now)
    ]


def _released(n: int, rest: int, k: int) -> str | None:
    """Why a group of n (with ``rest`` others in the same wave) must be hidden, or None."""
    if n < k:
        return f"fewer than {k} respondents"
    if 0 < rest < k:
        return f"the rest of the program would be fewer than {k} respondents"
    return None


def enps(ratings: Sequence[int]) -> float | None:
    """Promoters (9-10) minus detractors (0-6), in percent of all ratings on a 0-10 scale."""
    if not ratings:
        return None
    promoters = sum(r >= 9 for r in ratings)
    detractors = sum(r <= 6 for r in ratings)
    return round(100 * (promoters - detractors) / len(ratings), 1)


Vectoriser = Callable[[Sequence[str]], NDArray[np.float32]]


def aggregate(
    s: Session,
    *,
    program: str,
    now: dt.datetime,
    wave: str | None = None,
    owner: str | None = None,
    filters: dict[str, object] | None = None,
    encode: Vectoriser | None = None,
) -> AggregateView:
    """The k-anonymous view of one closed wave of an anonymous program (the latest by default).

    ``owner`` narrows the view to one owner's team. Any other filter is refused.
    """
    row = s.scalar(select(Program).where(Program.name == program))
    if row is None:
        raise SliceRefused(program, "no such program")
    if filters:
        raise SliceRefused(program, f"views can only be sliced by owner, not by {', '.join(sorted(filters))}")
    k = max(int(row.k_anonymity or 5), 2)
    waves = closed_waves(s, row, now)
    if wave is not None:
        chosen = next((w for w in waves if w.key == wave), None)
        if chosen is None:
            raise SliceRefused(program, f"wave {wave!r} is not closed (open waves are never shown)")
    elif waves:
        chosen = waves[-1]
    else:
        return AggregateView(program=program, wave="", slice="program", k=k, suppressed=True, why="no closed wave")
    previous = waves[waves.index(chosen) - 1] if waves.index(chosen) > 0 else None

    responses = _responses(s, chosen)
    by_owner = Counter(r.owner_id for r in responses)
    total = len(responses)
    owner_id: int | None = None
    label = "program"
    if owner is not None:
        owner_row = s.scalar(select(Owner).where(Owner.key == owner))
        owner_id = owner_row.id if owner_row else -1
        label = f"owner:{owner}"
        n = by_owner.get(owner_id, 0)
        why = _released(n, total - n, k)
    else:
        hidden = sum(n for o, n in by_owner.items() if _released(n, total - n, k) is not None)
        why = _released(total, 0, k) or (
            f"teams below {k} respondents add up to fewer than {k}" if 0 < hidden < k else None
        )
    base = AggregateView(program=program, wave=chosen.key, slice=label, k=k, suppressed=True, why=why)
    if why is not None:
        return base

    mine = [r for r in responses if owner is None or r.owner_id == owner_id]
    ratings = [r.rating for r in mine if r.rating is not None]
    movement = None
    if previous is not None:
        before = {r.person_id: r.rating for r in _responses(s, previous) if r.rating is not None}
        all_pairs = [
            (before[r.person_id], r.rating) for r in responses if r.person_id in before and r.rating is not None
        ]
        pairs = [(before[r.person_id], r.rating) for r in mine if r.person_id in before and r.rating is not None]
        if _released(len(pairs), len(all_pairs) - len(pairs), k) is None:
            deltas = [b - a for a, b in pairs]
            movement = Movement(
                pairs=len(pairs),
                up=sum(d > 0 for d in deltas),
                down=sum(d < 0 for d in deltas),
                same=sum(d == 0 for d in deltas),
                mean_delta=round(sum(deltas) / len(deltas), 2),
            )
    texts = [r.text for r in mine if r.text]
    themes: tuple[Theme, ...] = ()
    if texts and len(texts) >= k:
        vectors = _vectors([r for r in mine if r.text], encode)
        if vectors is not None:
            raw = cluster_themes(texts, vectors, min_size=k)
            themes = tuple(t if t.size >= k else Theme(label="other", words=(), size=t.size, share=t.share, quotes=())
                           for t in raw)  # fmt: skip
    comments = tuple(sorted({excerpt(t) for t in texts})) if len(texts) >= k else ()
    return AggregateView(
        program=program,
        wave=chosen.key,
        slice=label,
        k=k,
        suppressed=False,
        respondents=len(mine),
        distribution=dict(sorted(Counter(ratings).items())),
        mean=round(sum(ratings) / len(ratings), 2) if ratings else None,
        enps=enps(ratings),
        movement=movement,
        themes=themes,
        comments=comments,
    )


def _vectors(responses: Sequence[_Response], encode: Vectoriser | None) -> NDArray[np.float32] | None:
    rows: list[NDArray[np.float32] | None] = [from_bytes(r.embedding) if r.embedding else None for r in responses]
    missing = [i for i, v in enumerate(rows) if v is None]
    if missing:
        if encode is None:
            return None
        fresh = encode([responses[i].text or "" for i in missing])
        for j, i in enumerate(missing):
            rows[i] = fresh[j]
    return np.vstack([v for v in rows if v is not None]).astype(np.float32)


def owners_in_program(s: Session, program: Program) -> list[Owner]:
    """Owners with at least one person enrolled in the program."""
    from memory.models import Enrollment

    return list(
        s.scalars(
            select(Owner)
            .join(Person, Person.owner_id == Owner.id)
            .join(Enrollment, Enrollment.person_id == Person.id)
            .where(Enrollment.program_id == program.id)
            .distinct()
            .order_by(Owner.key)
        )
    )


@dataclass(frozen=True, kw_only=True)
class TextSet:
    """Free-text answers (reasons and follow-up answers) of one slice, without identities."""

    label: str
    texts: tuple[str, ...]
    embeddings: tuple[bytes | None, ...]


def attributed_texts(s: Session, *, program: str, since: dt.datetime, until: dt.datetime) -> TextSet:
    """Reasons and follow-up answers given in ``[since, until)`` in an attributed program.

    Anonymous programs are refused: their themes come only from :func:`aggregate`.
    """
    row = s.scalar(select(Program).where(Program.name == program))
    if row is None:
        raise SliceRefused(program, "no such program")
    if row.anonymous:
        raise SliceRefused(program, "themes of an anonymous program come only from its k-anonymous wave view")
    checkins = s.scalars(
        select(Checkin)
        .where(
            Checkin.program_id == row.id,
            Checkin.status == "completed",
            Checkin.completed_at >= since,
            Checkin.completed_at < until,
        )
        .options(selectinload(Checkin.answers), selectinload(Checkin.followups))
        .order_by(Checkin.completed_at, Checkin.id)
    )
    texts: list[str] = []
    embeddings: list[bytes | None] = []
    for c in checkins:
        for a in c.answers:
            if a.kind == "text" and not a.skipped and a.text:
                texts.append(a.text)
                embeddings.append(a.embedding)
        for f in c.followups:
            if f.answer_text and not f.skipped:
                texts.append(f.answer_text)
                embeddings.append(None)
    return TextSet(label=f"{since.date().isoformat()}..{until.date().isoformat()}", texts=tuple(texts),
                   embeddings=tuple(embeddings))  # fmt: skip


def _stack(texts: Sequence[str], blobs: Sequence[bytes | None], encode: Callable[[Sequence[str]], NDArray[np.float32]]
           ) -> NDArray[np.float32]:  # fmt: skip
    missing = [i for i, b in enumerate(blobs) if b is None]
    fresh = encode([texts[i] for i in missing]) if missing else None
    rows = []
    j = 0
    for b in blobs:
        if b is None:
            assert fresh is not None
            rows.append(fresh[j])
            j += 1
        else:
            rows.append(from_bytes(b))
    return np.vstack(rows).astype(np.float32) if rows else np.zeros((0, 384), dtype=np.float32)


def program_themes(
    s: Session,
    *,
    program: str,
    since: dt.datetime,
    until: dt.datetime,
    encode: Callable[[Sequence[str]], NDArray[np.float32]],
    max_k: int = 6,
) -> list[Theme]:
    """Themes of an attributed program's reasons and follow-up answers in ``[since, until)``,
    with the change against the period of the same length before it.

    Anonymous programs get their themes from :func:`aggregate` (per closed wave,
    k-anonymous); asking here raises ``SliceRefused``.
    """
    now = attributed_texts(s, program=program, since=since, until=until)
    before = attributed_texts(s, program=program, since=since - (until - since), until=since)
    if not now.texts:
        return []
    vectors = _stack(now.texts, now.embeddings, encode)
    previous = (before.texts, _stack(before.texts, before.embeddings, encode)) if before.texts else None
    return cluster_themes(now.texts, vectors, previous=previous, max_k=max_k)
