"""A closed wave of the anonymous ``employees`` pulse (k = 5, comments k = 10), for attack tests.

Teams of 6, 5 and 4 (owners ``a``, ``b``, ``c``) answered the wave ``2025-Q2`` between ``OPEN``
and ``CLOSE``; ``a-p6`` of team a holds a check-in of the same wave that is still open (the tick
has not expired it yet) when the wave's end passes. Timelines are pinned (``tests/history_builder``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.app import App
from memory import anonymity, db, store
from memory.anonymity import AggregateView
from memory.models import Wave
from tests.history_builder import T0, History, months

PROGRAM = "employees"
OPEN, CLOSE = T0 + months(3), T0 + months(3) + dt.timedelta(days=10)
LATE = CLOSE + dt.timedelta(hours=1)
SECRET = "my manager humiliated me in front of the whole team"
TEAMS = {"a": 6, "b": 5, "c": 4}
LATECOMER = "a-p6"


def wave_in(s: Session, key: str = "2025-Q2") -> Wave:
    wave = s.scalar(select(Wave).where(Wave.key == key))
    assert wave is not None
    return wave


def wave_of(app: App, key: str = "2025-Q2") -> Wave:
    with db.transaction(app.sessions) as s:
        wave = wave_in(s, key)
        s.expunge(wave)
        return wave


def build_pulse(app: App, teams: dict[str, int] | None = None, *, latecomer: bool = True) -> int | None:
    """Answers of the teams in one wave that ends at CLOSE (not yet marked closed by a tick).

    Returns the latecomer's open check-in id (opened as an invitation would open it).
    """
    with db.transaction(app.sessions) as s:
        h = History(s)
        wave = Wave(program_id=h.program(PROGRAM).id, key="2025-Q2", kind="cron", opens_at=OPEN, closes_at=CLOSE,
                    closed_at=None, created_at=OPEN)  # fmt: skip
        s.add(wave)
        s.flush()
        for owner, size in (teams or TEAMS).items():
            for i in range(size):
                p = h.person(f"{owner}-p{i}", owner=owner, programs=(PROGRAM,))
                h.checkin(p, PROGRAM, OPEN + dt.timedelta(hours=i + 1), rating=5 + i % 5,
                          text=f"Team {owner}: workload is fine, number {i}.", wave=wave)  # fmt: skip
        if not latecomer:
            return None
        late = h.person(LATECOMER, owner="a", programs=(PROGRAM,))
        started = app.service.start_in(s, person=late, program=PROGRAM, now=OPEN + dt.timedelta(days=1),
                                       channel="terminal", wave_id=wave.id, expires_at=CLOSE)  # fmt: skip
        for channel, external in (("slack", "UA6"), ("telegram", "7006"), ("web", LATECOMER)):
            store.link_identity(s, person=late, channel=channel, external_id=external, now=OPEN,
                                workspace="T1" if channel == "slack" else "")  # fmt: skip
        return started.checkin_id


def view(app: App, *, owner: str | None = None, now: dt.datetime = LATE, **kw: object) -> AggregateView:
    with db.transaction(app.sessions) as s:
        return anonymity.aggregate(s, program=PROGRAM, now=now, owner=owner, **kw)  # type: ignore[arg-type]


def numbers(v: AggregateView) -> tuple[object, ...]:
    """Everything a view shows that a subtraction could use."""
    return (v.suppressed, v.respondents, v.distribution, v.mean, v.enps, v.movement, v.comments,
            tuple((t.label, t.size) for t in v.themes))  # fmt: skip


def every_view(app: App, now: dt.datetime = LATE) -> dict[str, tuple[object, ...]]:
    views = {"program": numbers(view(app, now=now))}
    for owner in ("a", "b", "c"):
        views[owner] = numbers(view(app, owner=owner, now=now))
    return views
