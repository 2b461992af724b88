"""The program and wave page: response rate, score distribution, NPS over time with its margin
of error, and themes.

* Attributed programs: computed from the check-ins of the people the viewer may see (an admin:
  everyone), read through ``memory.anonymity.visible_checkins``.
* Anonymous programs: only ``memory.anonymity.aggregate``, the one door: closed waves, the whole
  program or the viewer's team, suppressed below k. Any other filter in the query string is
  passed to it as a filter and refused there (:class:`memory.anonymity.SliceRefused`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.config import ProgramConfig
from bot.dashboard.auth import Viewer, visible_people_query
from bot.dashboard.stats import Nps, nps, nps_from_distribution
from memory import anonymity
from memory.embeddings import from_bytes
from memory.models import Program, Wave
from memory.themes import Theme, cluster_themes


@dataclass(frozen=True, kw_only=True)
class WaveStats:
    wave: str
    invited: int | None
    answered: int | None
    nps: Nps | None
    mean: float | None
    suppressed: str | None = None

    @property
    def response_rate(self) -> float | None:
        if not self.invited or self.answered is None:
            return None
        return round(100 * self.answered / self.invited, 1)


@dataclass(frozen=True, kw_only=True)
class ProgramPage:
    name: str
    title: str
    anonymous: bool
    k: int
    low: int
    high: int
    is_nps: bool
    waves: tuple[WaveStats, ...]
    distribution: dict[int, int]
    latest: str | None
    themes: tuple[Theme, ...] = ()
    views: tuple[anonymity.AggregateView, ...] = field(default_factory=tuple)


def scale(config: ProgramConfig) -> tuple[str | None, int, int]:
    q = next((q for q in config.questions if q.kind == "rating"), None)
    return (q.key, q.min, q.max) if q else (None, 0, 10)


def attributed(s: Session, viewer: Viewer, program: Program, config: ProgramConfig) -> ProgramPage:
    _key, low, high = scale(config)
    people = [p.id for p in s.scalars(visible_people_query(viewer))]
    checkins = [c for c in anonymity.visible_checkins(s, person_ids=people) if c.program_id == program.id]
    by_wave: dict[int, list[object]] = defaultdict(list)
    for c in checkins:
        if c.wave_id is not None:
            by_wave[c.wave_id].append(c)
    waves = list(s.scalars(select(Wave).where(Wave.program_id == program.id).order_by(Wave.opens_at, Wave.id)))
    stats: list[WaveStats] = []
    distribution: Counter[int] = Counter()
    texts: list[str] = []
    vectors: list[bytes] = []
    for w in waves:
        mine = [c for c in checkins if c.wave_id == w.id]
        if not mine:
            continue
        done = [c for c in mine if c.status == "completed"]
        ratings = [a.rating for c in done for a in c.answers if a.kind == "rating" and a.rating is not None]
        stats.append(WaveStats(
            wave=w.key, invited=len(mine), answered=len(done),
            nps=nps(ratings) if (low, high) == (0, 10) else None,
            mean=round(sum(ratings) / len(ratings), 2) if ratings else None,
        ))  # fmt: skip
        distribution = Counter(ratings)
        texts = [a.text for c in done for a in c.answers if a.kind == "text" and a.text and a.embedding]
        vectors = [a.embedding for c in done for a in c.answers if a.kind == "text" and a.text and a.embedding]
    themes: tuple[Theme, ...] = ()
    if len(texts) >= 4:
        themes = tuple(cluster_themes(texts, np.vstack([from_bytes(v) for v in vectors]), min_texts=4))
    return ProgramPage(
        name=program.name, title=config.title or program.name, anonymous=False, k=program.k_anonymity,
        low=low, high=high, is_nps=(low, high) == (0, 10), waves=tuple(stats),
        distribution=dict(sorted(distribution.items())), latest=stats[-1].wave if stats else None, themes=themes,
    )  # fmt: skip


def anonymous(
    s: Session, viewer: Viewer, program: Program, config: ProgramConfig, *, now: dt.datetime,
    filters: dict[str, object],
) -> ProgramPage:  # fmt: skip
    """Raises SliceRefused for any filter but the wave (handled as the door's ``wave``)."""
    _key, low, high = scale(config)
    wave = filters.pop("wave", None)
    views: list[anonymity.AggregateView] = []
    stats: list[WaveStats] = []
    for w in anonymity.closed_waves(s, program, now):
        v = anonymity.aggregate(s, program=program.name, now=now, wave=w.key, filters=dict(filters))
        stats.append(WaveStats(
            wave=w.key, invited=None, answered=v.respondents,
            nps=nps_from_distribution(v.distribution) if not v.suppressed and (low, high) == (0, 10) else None,
            mean=v.mean, suppressed=v.why if v.suppressed else None,
        ))  # fmt: skip
    chosen = str(wave) if wave else None
    views.append(anonymity.aggregate(s, program=program.name, now=now, wave=chosen, filters=dict(filters)))
    if not viewer.is_admin:
        views.append(anonymity.aggregate(s, program=program.name, now=now, wave=chosen, owner=viewer.key))
    shown = next((v for v in views if not v.suppressed), None)
    return ProgramPage(
        name=program.name, title=config.title or program.name, anonymous=True, k=program.k_anonymity,
        low=low, high=high, is_nps=(low, high) == (0, 10), waves=tuple(stats),
        distribution=dict(shown.distribution) if shown else {}, latest=views[0].wave or None,
        themes=shown.themes if shown else (), views=tuple(views),
    )  # fmt: skip
