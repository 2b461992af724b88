"""A closed anonymous wave's views cannot change afterwards: not by a late answer on any channel,
not by a roster change, not by an operator closing a wave early while check-ins stay open."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.engine.ports import Inbound
from bot.runner import schedules_from_config
from memory import db, importing
from memory.models import Checkin
from scheduler.planner import Planner
from scheduler.waves import cancel_wave, close_wave
from tests.history_builder import History
from tests.privacy.anonymity_world import (
    CLOSE,
    LATE,
    LATECOMER,
    OPEN,
    PROGRAM,
    SECRET,
    build_pulse,
    every_view,
    view,
    wave_in,
    wave_of,
)

#: Every channel path that can carry an answer into a check-in: (channel, sender, workspace, kind).
PATHS = [
    ("terminal", LATECOMER, "", "text"),
    ("slack", "UA6", "T1", "text"),
    ("slack", "UA6", "T1", "choice"),
    ("telegram", "7006", "", "text"),
    ("telegram", "7006", "", "choice"),
    ("web", LATECOMER, "", "text"),
    ("web", LATECOMER, "", "choice"),
]


def _answer(app, checkin_id: int, channel: str, sender: str, workspace: str, kind: str, at: dt.datetime) -> list[str]:
    rating = Inbound(channel=channel, sender=sender, workspace=workspace, kind=kind,  # type: ignore[arg-type]
                     text="9", value=9 if kind == "choice" else None, received_at=at, checkin_id=checkin_id,
                     event_key=f"{channel}-late-1")  # fmt: skip
    reason = Inbound(channel=channel, sender=sender, workspace=workspace, kind="text", text=SECRET,
                     received_at=at + dt.timedelta(minutes=1), checkin_id=checkin_id,
                     event_key=f"{channel}-late-2")  # fmt: skip
    return [m.text for m in app.service.handle(rating) + app.service.handle(reason)]


@pytest.mark.parametrize(("channel", "sender", "workspace", "kind"), PATHS)
def test_an_answer_after_the_wave_closed_is_refused_and_changes_no_view(
    make_app, channel: str, sender: str, workspace: str, kind: str
) -> None:
    # The first attack: owner a sees 6 people, a late answer arrives before the next tick
    # expired the check-in, owner a looks again; on main the view became 7 and gave the rating.
    app = make_app()
    checkin_id = build_pulse(app)
    assert checkin_id is not None
    before = every_view(app, now=CLOSE + dt.timedelta(minutes=1))
    assert view(app, owner="a").respondents == 6
    replies = _answer(app, checkin_id, channel, sender, workspace, kind, LATE)
    assert "not counted" in replies[0]
    assert every_view(app) == before
    with db.transaction(app.sessions) as s:
        checkin = s.get(Checkin, checkin_id)
        assert checkin is not None
        assert checkin.status == "expired"
        assert checkin.answers == []  # refused, not kept for a later wave


def test_a_late_answer_looked_at_only_afterwards_still_counts_nowhere(make_app) -> None:
    # Nobody looked before the late answer: the first look must not include it either.
    app = make_app()
    checkin_id = build_pulse(app)
    assert checkin_id is not None
    _answer(app, checkin_id, "telegram", "7006", "", "text", LATE)
    a, program = view(app, owner="a"), view(app)
    assert a.respondents == 6
    assert program.respondents == 15
    assert not any(SECRET[:20] in c for c in program.comments)


def test_a_completion_stored_after_the_end_is_left_out_of_the_snapshot(make_app) -> None:
    # However an answer got in after the wave's end (an import, an older version), it is not counted.
    app = make_app()
    build_pulse(app, latecomer=False)
    wave = wave_of(app)
    with db.transaction(app.sessions) as s:
        h = History(s)
        p = h.person(LATECOMER, owner="a", programs=(PROGRAM,))
        c = h.checkin(p, PROGRAM, LATE, rating=0, text=SECRET)
        c.wave_id = wave.id
    a, program = view(app, owner="a"), view(app)
    assert a.respondents == 6
    assert 0 not in a.distribution
    assert program.respondents == 15


def test_the_tick_that_closes_the_wave_freezes_it_and_a_roster_move_changes_nothing(make_app, tmp_path: Path) -> None:
    # The second attack: re-importing the roster with a-p0 moved to owner b changed a's view
    # of the same closed wave; the difference gave a-p0's rating and comment.
    app = make_app()
    build_pulse(app, latecomer=False)
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config), expire=app.service.expire).tick(
        CLOSE + dt.timedelta(minutes=1)
    )
    before = every_view(app)
    assert before["a"][1] == 6
    roster = "id,name,email,timezone,owner,programs\na-p0,A-P0,a-p0@example.com,UTC,b,employees\n"
    report = importing.import_people(app.sessions, roster, known_programs=app.config.programs, now=LATE)
    assert report.accepted == 1
    assert every_view(app) == before
    # Later waves follow the new roster; only this closed one keeps the team a-p0 had at close.


def test_a_wave_closed_early_stays_hidden_while_its_check_ins_can_still_be_answered(make_app) -> None:
    # `rapport wave close` invites nobody new but lets open check-ins run to the planned end. A view
    # shown at the early close would grow with each of those answers (6, then 7: the difference is
    # one person), so the wave is shown only once its planned end has passed.
    app = make_app()
    checkin_id = build_pulse(app)
    assert checkin_id is not None
    early = OPEN + dt.timedelta(days=2)
    with db.transaction(app.sessions) as s:
        close_wave(s, wave_in(s), early)
    with pytest.raises(Exception, match="not closed"):
        view(app, owner="a", now=early + dt.timedelta(hours=1), wave="2025-Q2")
    replies = _answer(app, checkin_id, "terminal", LATECOMER, "", "text", early + dt.timedelta(hours=2))
    assert "not counted" not in " ".join(replies)  # still open: counted in this wave
    final = every_view(app, now=CLOSE + dt.timedelta(minutes=1))
    assert view(app, owner="a", now=CLOSE + dt.timedelta(minutes=1)).respondents == 7
    assert every_view(app, now=CLOSE + dt.timedelta(days=30)) == final


def test_the_cancelled_wave_is_frozen_at_once(make_app) -> None:
    app = make_app()
    checkin_id = build_pulse(app)
    cancelled = OPEN + dt.timedelta(days=2)
    with db.transaction(app.sessions) as s:
        cancel_wave(s, wave_in(s), cancelled, expire=app.service.expire)
    frozen = every_view(app, now=cancelled + dt.timedelta(minutes=1))
    assert frozen["a"][1] == 6
    assert checkin_id is not None
    replies = _answer(app, checkin_id, "web", LATECOMER, "", "choice", cancelled + dt.timedelta(hours=1))
    assert "no open check-in" in replies[0]
    assert every_view(app, now=CLOSE + dt.timedelta(days=1)) == frozen
