"""k-anonymity cannot be bypassed: small teams, filters, differencing, open waves, and a single
person's timeline through story, digest and history."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest

from bot.digests import FORMATS, render_digest
from memory import anonymity, db
from memory.digests import build_digest
from memory.stories import build_story
from tests.history_builder import T0, History, months

W1_OPEN, W1_CLOSE = T0, T0 + dt.timedelta(days=10)
W2_OPEN, W2_CLOSE = T0 + months(3), T0 + months(3) + dt.timedelta(days=10)
NOW = T0 + months(4)
SECRET = "My lead shouts at me in every meeting."


def _pulse(app, teams: dict[str, int], *, open_wave: bool = False) -> None:
    """Teams of the given sizes answer two closed waves (and optionally an open third)."""
    with db.transaction(app.sessions) as s:
        h = History(s)
        w1 = h.wave("employees", "2025-Q1", W1_OPEN, W1_CLOSE)
        w2 = h.wave("employees", "2025-Q2", W2_OPEN, W2_CLOSE)
        w3 = h.wave("employees", "2025-Q3", NOW - dt.timedelta(days=1), None) if open_wave else None
        for owner, size in teams.items():
            for i in range(size):
                p = h.person(f"{owner}-p{i}", owner=owner, programs=("employees",))
                h.checkin(p, "employees", W1_OPEN + dt.timedelta(hours=i), rating=8, text="Good team, clear goals.",
                          wave=w1)  # fmt: skip
                rating = 2 if (owner, i) == ("c", 0) else 7 + i % 3
                text = SECRET if (owner, i) == ("c", 0) else f"Workload is high but fair ({i})."
                h.checkin(p, "employees", W2_OPEN + dt.timedelta(hours=i), rating=rating, text=text, wave=w2,
                          followup="It started in spring." if (owner, i) == ("c", 0) else None)  # fmt: skip
                if w3 is not None:
                    h.checkin(p, "employees", NOW - dt.timedelta(hours=12 - i), rating=5, text="Open wave.", wave=w3)


def _view(app, **kw) -> anonymity.AggregateView:
    with db.transaction(app.sessions) as s:
        return anonymity.aggregate(s, program="employees", now=NOW, **kw)


def _assert_empty(view: anonymity.AggregateView) -> None:
    assert view.suppressed
    assert view.respondents is None
    assert view.distribution == {}
    assert view.mean is None
    assert view.enps is None
    assert view.movement is None
    assert view.themes == ()
    assert view.comments == ()


def test_a_large_enough_team_sees_aggregates_without_identities(make_app) -> None:
    app = make_app()
    _pulse(app, {"a": 6, "b": 6})
    view = _view(app, owner="a")
    assert not view.suppressed
    assert view.respondents == 6
    assert sum(view.distribution.values()) == 6
    assert view.enps is not None
    assert view.mean is not None
    assert view.movement is not None
    assert view.movement.pairs == 6
    # Everyone gave 8 in the first wave, then 7, 8, 9, 7, 8, 9.
    assert (view.movement.up, view.movement.down, view.movement.same) == (2, 2, 2)
    assert view.distribution == {7: 2, 8: 2, 9: 2}
    assert view.enps == pytest.approx(100 * (2 - 0) / 6, abs=0.1)
    assert all(len(c) < 200 for c in view.comments)
    assert "a-p0" not in repr(view)
    assert "A-P0" not in repr(view)


def test_a_team_of_four_is_suppressed(make_app) -> None:
    app = make_app()
    _pulse(app, {"a": 6, "b": 4})
    _assert_empty(_view(app, owner="b"))
    assert "fewer than 5" in (_view(app, owner="b").why or "")


def test_filters_other_than_the_team_are_refused(make_app) -> None:
    app = make_app()
    _pulse(app, {"a": 6, "c": 1})
    for filters in ({"person": "c-p0"}, {"timezone": "UTC"}, {"people": ["a-p0", "c-p0"]}):
        with pytest.raises(anonymity.SliceRefused):
            _view(app, filters=filters)
    _assert_empty(_view(app, owner="c"))  # a filter down to one person
    _assert_empty(_view(app, owner="nobody-at-all"))


def test_differencing_a_team_against_the_program_reveals_no_one(make_app) -> None:
    # Team a has 6; one more person (team c) makes the program 7. Showing both a and the
    # program would reveal c-p0 by subtraction, so the team view is withheld.
    app = make_app()
    _pulse(app, {"a": 6, "c": 1})
    team, program = _view(app, owner="a"), _view(app)
    assert team.suppressed
    assert not program.suppressed
    assert "no subtraction reveals fewer than 5" in (team.why or "")


def test_differencing_the_program_against_all_shown_teams_reveals_no_one(make_app) -> None:
    # c has one person. Program - a - b = c, so one of a and b is withheld with c (complementary
    # suppression): the program minus the shown team is then 7 people, never c alone.
    app = make_app()
    _pulse(app, {"a": 6, "b": 6, "c": 1})
    views = {"a": _view(app, owner="a"), "b": _view(app, owner="b"), "c": _view(app, owner="c"), "*": _view(app)}
    assert views["c"].suppressed
    assert views["a"].suppressed != views["b"].suppressed
    assert not views["*"].suppressed
    hidden = sum(6 if views[t].suppressed else 0 for t in "ab") + 1
    assert hidden >= 5
    shown = {k: v.respondents or 0 for k, v in views.items() if not v.suppressed}
    # Whatever is shown, no combination of shown views isolates fewer than k people.
    for x, y in itertools.combinations(shown.values(), 2):
        assert abs(x - y) == 0 or abs(x - y) >= 5


def test_open_waves_are_never_shown(make_app) -> None:
    app = make_app()
    _pulse(app, {"a": 6, "b": 6}, open_wave=True)
    with pytest.raises(anonymity.SliceRefused):
        _view(app, wave="2025-Q3")
    assert _view(app).wave == "2025-Q2"  # the latest *closed* wave


def test_no_individual_timeline_or_alert_through_story_digest_or_history(make_app, tmp_path) -> None:
    app = make_app()
    _pulse(app, {"a": 6, "c": 1})
    with db.transaction(app.sessions) as s:
        h = History(s)
        target = h.person_by_key("c-p0")
        story = build_story(s, target)
        digest = build_digest(s, owner="c", since=T0, until=NOW)
        digest_a = build_digest(s, owner="a", since=T0, until=NOW)
    assert story.points == ()
    assert story.promises == ()
    assert digest.changes == ()
    assert digest.silent == ()
    assert all(a.suppressed for a in digest.aggregates)
    assert digest_a.changes == ()
    for fmt in FORMATS:
        for d in (digest, digest_a):
            out = render_digest(d, fmt)
            body = out.body + (out.html or "")
            assert SECRET not in body
            assert "shouts" not in body
            assert "C-P0" not in body
            assert "c-p0" not in body

    from bot.cli.core import history_data

    data = history_data(app, "c-p0")
    assert data["checkins"] == []
    assert "shouts" not in json.dumps(data)


def test_themes_smaller_than_k_lose_their_quotes(make_app) -> None:
    app = make_app()
    _pulse(app, {"a": 12})
    view = _view(app, owner="a", encode=app.embedder.encode)
    assert not view.suppressed
    assert view.themes, "themes are computed for a large enough group"
    for theme in view.themes:
        if theme.size < 5:
            assert theme.quotes == ()
            assert theme.label == "other"
