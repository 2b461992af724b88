"""The one door through which owners see check-in data, and k-anonymity for anonymous programs.

Every owner-facing query (stories, digests, history, themes) goes through this module:

* :func:`visible_checkins` is how owner-facing code reads *individual* check-ins. It never
  returns a check-in of an anonymous program, whatever the filter. A meta-test keeps
  ``memory.stories`` and ``memory.digests`` from selecting check-ins any other way.
* :func:`aggregate` is the only view of an anonymous program: a score distribution, eNPS, mean,
  movement since the previous wave, and themes with identity-free comments, over one *closed*
  wave, for the whole program or one owner's team. Nothing else can be sliced.

Rules (``k`` from the program, 5 by default; ``k_comments`` 10 by default, never below k):

1. A view covers the respondents of one closed wave, read from the snapshot written when the
   wave closed (:mod:`memory.wave_views`): answers after the wave's end, edits and roster changes
   never alter it. Open waves are never shown, and neither are check-ins without a wave.
2. The only slices are the whole program and one owner's team (a fixed partition, with each
   respondent in the team of their owner at close); arbitrary filters such as a list of people
   or a date range are refused (:class:`SliceRefused`).
3. Complementary suppression (:mod:`memory.suppression`): a team below k is hidden, and while
   the hidden teams add up to fewer than k, the smallest shown team is hidden too, so the
   program minus the shown teams is never a group below k. The program is hidden below k.
4. Movement (up/down/same against the previous closed wave) follows the same rule over the
   people who answered both waves; comments and themes follow it over the people who wrote a
   comment, with ``k_comments``. Themes smaller than k lose their quotes (folded into "other").
5. No individual change alert, name, date, person key or participation is ever part of a view;
   comments are excerpts, sorted, with no order that follows people.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from memory import wave_views
from memory.embeddings import from_bytes
from memory.errors import RapportError
from memory.models import Checkin, Owner, Person, Program, Wave
from memory.themes import Theme, cluster_themes
from memory.wave_views import AggregateView, Movement, Vectoriser, enps

__all__ = ["AggregateView", "Movement", "SliceRefused", "aggregate", "closed_waves", "enps", "visible_checkins"]


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


def closed_waves(s: Session, program: Program, now: dt.datetime) -> list[Wave]:
    """The program's waves whose views are final at ``now`` (see :mod:`memory.wave_views`), oldest first."""
    return wave_views.final_waves(s, program, now)


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

    ``owner`` narrows the view to one owner's team. Any other filter is refused. The view is read
    from the wave's snapshot (frozen at close; frozen now if the wave closed before snapshots
    existed), so it is the same whenever and by whomever it is asked for.
    """
    row = s.scalar(select(Program).where(Program.name == program))
    if row is None:
        raise SliceRefused(program, "no such program")
    if filters:
        raise SliceRefused(program, f"views can only be sliced by owner, not by {', '.join(sorted(filters))}")
    k, kc = wave_views.thresholds(row)
    waves = closed_waves(s, row, now)
    if wave is not None:
        chosen = next((w for w in waves if w.key == wave), None)
        if chosen is None:
            raise SliceRefused(program, f"wave {wave!r} is not closed (open waves are never shown)")
    elif waves:
        chosen = waves[-1]
    else:
        return AggregateView(program=program, wave="", slice="program", k=k, k_comments=kc, suppressed=True,
                             why="no closed wave")  # fmt: skip
    views = wave_views.freeze(s, row, chosen, now=now, encode=encode)
    label = wave_views.PROGRAM if owner is None else f"owner:{owner}"
    found = views.get(label)
    if found is not None:
        return found
    # An owner with nobody in the wave reads exactly like a small team (and like an unknown owner).
    any_view = views[wave_views.PROGRAM]
    return AggregateView(program=program, wave=chosen.key, slice=label, k=any_view.k, k_comments=any_view.k_comments,
                         suppressed=True, why=f"fewer than {any_view.k} respondents")  # fmt: skip


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
