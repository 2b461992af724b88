"""Views of an anonymous program's wave, computed once when the wave closes and kept.

A closed wave's views are a fixed snapshot (:class:`memory.models_anonymity.WaveView`): one row
for the whole program and one per owner's team, suppressed ones included. The scheduler's tick
writes them in the transaction that closes the wave (``rapport wave cancel`` at once); a wave
that closed before the snapshot existed (an older database, imported history) is frozen the
first time anyone looks at it. Every owner-facing view reads the snapshot, so:

* a late answer cannot change a closed view: only check-ins completed by the wave's end count
  (and the engine refuses answers after the end, see ``bot.engine.service``);
* a roster change cannot either: each respondent's team is the owner they had at close;
* views of two waves differ by whole waves, never by one person joining a view.

Suppression is :mod:`memory.suppression` (complementary, per count); comments and themes need
the higher ``k_comments``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from memory.changes import excerpt
from memory.embeddings import from_bytes
from memory.models import Checkin, Owner, Program, Wave
from memory.models_anonymity import WaveView
from memory.suppression import hidden_cells, whole_hidden
from memory.themes import Theme, cluster_themes

#: Scores need ``k`` respondents (5 by default); comments and themes need this many writers.
DEFAULT_K_COMMENTS = 10
PROGRAM = "program"

Vectoriser = Callable[[Sequence[str]], NDArray[np.float32]]


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
    k_comments: int | None = None
    # Why comments and themes are not shown although the scores are (None when they are).
    comments_why: str | None = None


def enps(ratings: Sequence[int]) -> float | None:
    """Promoters (9-10) minus detractors (0-6), in percent of all ratings on a 0-10 scale."""
    if not ratings:
        return None
    promoters = sum(r >= 9 for r in ratings)
    detractors = sum(r <= 6 for r in ratings)
    return round(100 * (promoters - detractors) / len(ratings), 1)


def thresholds(program: Program) -> tuple[int, int]:
    """(k for scores, k for comments); the comment threshold is never below k."""
    k = max(int(program.k_anonymity or 5), 2)
    return k, max(int(program.k_comments or DEFAULT_K_COMMENTS), k)


# When a wave is over -------------------------------------------------------------------------


def end_of(wave: Wave) -> dt.datetime | None:
    """The moment after which nothing counts in the wave: its planned end (an operator's early
    ``wave close`` lets open check-ins run to it), or when it was closed if it had no planned end."""
    return wave.closes_at or wave.closed_at


def released_at(s: Session, wave: Wave) -> dt.datetime | None:
    """When the wave's views became final: its end, or earlier if it was frozen earlier (a
    cancelled wave). Digests show a wave in the period that contains this moment."""
    end = end_of(wave)
    frozen = s.scalar(select(WaveView.frozen_at).where(WaveView.wave_id == wave.id).limit(1))
    return min(end, frozen) if end is not None and frozen is not None else (frozen or end)


def frozen_wave_ids(s: Session, program: Program) -> set[int]:
    return set(
        s.scalars(select(WaveView.wave_id).join(Wave, Wave.id == WaveView.wave_id).where(Wave.program_id == program.id))
    )


def final_waves(s: Session, program: Program, now: dt.datetime) -> list[Wave]:
    """Waves whose views are final at ``now`` (frozen, or past their end), oldest first."""
    frozen = frozen_wave_ids(s, program)
    waves = s.scalars(select(Wave).where(Wave.program_id == program.id).order_by(Wave.opens_at, Wave.id))
    return [w for w in waves if w.id in frozen or ((end := end_of(w)) is not None and end <= now)]


# Computing a snapshot -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    person_id: int
    owner_id: int | None
    rating: int | None
    text: str | None
    embedding: bytes | None


def _responses(s: Session, wave: Wave, until: dt.datetime | None) -> list[_Response]:
    query = (
        select(Checkin)
        .where(Checkin.wave_id == wave.id, Checkin.status == "completed")
        .options(selectinload(Checkin.answers), selectinload(Checkin.person))
        .order_by(Checkin.id)
    )
    if until is not None:
        query = query.where(Checkin.completed_at.is_not(None), Checkin.completed_at <= until)
    out = []
    for c in s.scalars(query):
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


def _other(theme: Theme) -> Theme:
    """A theme smaller than k, folded into "other": its size only, no words or quotes."""
    return Theme(label="other", words=(), size=theme.size, share=theme.share, quotes=())


def compute(
    s: Session, program: Program, wave: Wave, *, previous: Wave | None, encode: Vectoriser | None
) -> dict[str, AggregateView]:
    """Every view of the wave (the program and each owner's team), suppression applied."""
    k, kc = thresholds(program)
    responses = _responses(s, wave, end_of(wave))
    before: dict[int, int] = {}
    if previous is not None:
        before = {r.person_id: r.rating for r in _responses(s, previous, end_of(previous)) if r.rating is not None}
    paired = [r for r in responses if r.person_id in before and r.rating is not None]
    written = [r for r in responses if r.text]

    hidden = hidden_cells(Counter(r.owner_id for r in responses), k)
    hidden_pairs = hidden_cells(Counter(r.owner_id for r in paired), k, what="people in both waves")
    hidden_texts = hidden_cells(Counter(r.owner_id for r in written), kc, what="comments")
    owners = dict(s.execute(select(Owner.id, Owner.key).where(Owner.id.in_({r.owner_id for r in responses}))).all())

    def view(label: str, owner_id: int | None, whole: bool) -> AggregateView:
        mine = responses if whole else [r for r in responses if r.owner_id == owner_id]
        base = {"program": program.name, "wave": wave.key, "slice": label, "k": k, "k_comments": kc}
        why = whole_hidden(len(responses), k) if whole else hidden.get(owner_id)
        if why is not None:
            return AggregateView(suppressed=True, why=why, **base)  # type: ignore[arg-type]
        ratings = [r.rating for r in mine if r.rating is not None]
        pairs = paired if whole else [r for r in paired if r.owner_id == owner_id]
        movement = None
        pairs_why = whole_hidden(len(pairs), k) if whole else hidden_pairs.get(owner_id)
        if pairs and pairs_why is None:
            deltas = [(r.rating or 0) - before[r.person_id] for r in pairs]
            movement = Movement(
                pairs=len(pairs),
                up=sum(d > 0 for d in deltas),
                down=sum(d < 0 for d in deltas),
                same=sum(d == 0 for d in deltas),
                mean_delta=round(sum(deltas) / len(deltas), 2),
            )
        texts = [r for r in mine if r.text]
        comments_why = (whole_hidden(len(texts), kc, what="comments") if whole else hidden_texts.get(owner_id)) or (
            None if texts else "no comments"
        )
        themes: tuple[Theme, ...] = ()
        comments: tuple[str, ...] = ()
        if comments_why is None:
            comments = tuple(sorted({excerpt(r.text or "") for r in texts}))
            vectors = _vectors(texts, encode)
            if vectors is not None:
                raw = cluster_themes([r.text or "" for r in texts], vectors, min_size=k)
                themes = tuple(t if t.size >= k else _other(t) for t in raw)
        return AggregateView(
            suppressed=False, respondents=len(mine), distribution=dict(sorted(Counter(ratings).items())),
            mean=round(sum(ratings) / len(ratings), 2) if ratings else None, enps=enps(ratings), movement=movement,
            themes=themes, comments=comments, comments_why=comments_why, **base,  # type: ignore[arg-type]
        )  # fmt: skip

    views = {PROGRAM: view(PROGRAM, None, True)}
    for owner_id, key in sorted(owners.items(), key=lambda kv: kv[1]):
        views[f"owner:{key}"] = view(f"owner:{key}", owner_id, False)
    return views


# Storing and reading ------------------------------------------------------------------------


def _to_json(view: AggregateView) -> dict[str, Any]:
    data = asdict(view)
    data["distribution"] = [[rating, n] for rating, n in view.distribution.items()]
    return data


def _from_json(data: dict[str, Any]) -> AggregateView:
    data = dict(data)
    data["distribution"] = {int(rating): int(n) for rating, n in data.get("distribution") or []}
    data["movement"] = Movement(**data["movement"]) if data.get("movement") else None
    data["themes"] = tuple(
        Theme(**{**t, "words": tuple(t.get("words") or ()), "quotes": tuple(t.get("quotes") or ())})
        for t in data.get("themes") or ()
    )
    data["comments"] = tuple(data.get("comments") or ())
    return AggregateView(**data)


def load(s: Session, wave: Wave) -> dict[str, AggregateView] | None:
    rows = list(s.scalars(select(WaveView).where(WaveView.wave_id == wave.id)))
    return {r.slice: _from_json(r.view) for r in rows} if rows else None


def _previous(s: Session, program: Program, wave: Wave) -> Wave | None:
    waves = list(s.scalars(select(Wave).where(Wave.program_id == program.id).order_by(Wave.opens_at, Wave.id)))
    earlier = [w for w in waves[: waves.index(wave)] if end_of(w) is not None]
    return earlier[-1] if earlier else None


def freeze(
    s: Session, program: Program, wave: Wave, *, now: dt.datetime, encode: Vectoriser | None = None
) -> dict[str, AggregateView]:
    """Write the wave's snapshot once and return it; an existing snapshot is returned unchanged.

    Runs in a savepoint: when another process froze the same wave meanwhile, its rows win.
    """
    existing = load(s, wave)
    if existing is not None:
        return existing
    views = compute(s, program, wave, previous=_previous(s, program, wave), encode=encode)
    try:
        with s.begin_nested():
            rows = [WaveView(wave_id=wave.id, slice=name, view=_to_json(v), frozen_at=now) for name, v in views.items()]
            s.add_all(rows)
    except IntegrityError:
        stored = load(s, wave)
        assert stored is not None
        return stored
    return views


def freeze_due(s: Session, program: Program, now: dt.datetime, encode: Vectoriser | None = None) -> int:
    """Freeze every wave of an anonymous program that is over and not frozen yet, oldest first."""
    if not program.anonymous:
        return 0
    frozen = frozen_wave_ids(s, program)
    due = [w for w in final_waves(s, program, now) if w.id not in frozen]
    for wave in due:
        freeze(s, program, wave, now=now, encode=encode)
    return len(due)
