"""Views that can be subtracted never isolate fewer than k people (complementary suppression),
comments need a larger group than scores, and nothing owner-facing says who took part."""

from __future__ import annotations

import datetime as dt
import json
from itertools import product
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from bot.cli import app as cli_app
from bot.config import load_config
from memory import db, erasure
from memory.digests import build_digest
from tests.conftest import ROOT
from tests.history_builder import History
from tests.privacy.anonymity_world import CLOSE, LATE, LATECOMER, OPEN, PROGRAM, build_pulse, view, wave_in

K = 5
W1_OPEN, W1_CLOSE = OPEN - dt.timedelta(days=90), OPEN - dt.timedelta(days=80)


def _two_waves(app, teams: dict[str, tuple[int, int]]) -> None:
    """``teams[owner] = (in both waves, only in the second)``; ratings move by +1, -1 or 0."""
    with db.transaction(app.sessions) as s:
        h = History(s)
        w1 = h.wave(PROGRAM, "2025-Q1", W1_OPEN, W1_CLOSE)
        w2 = h.wave(PROGRAM, "2025-Q2", OPEN, CLOSE)
        for owner, (both, new) in teams.items():
            for i in range(both + new):
                p = h.person(f"{owner}-p{i}", owner=owner, programs=(PROGRAM,))
                if i < both:
                    h.checkin(p, PROGRAM, W1_OPEN + dt.timedelta(hours=i), rating=6, text="Fine.", wave=w1)
                h.checkin(p, PROGRAM, OPEN + dt.timedelta(hours=i), rating=6 + (i % 3) - 1, text=f"Reason {i}.",
                          wave=w2)  # fmt: skip


def test_movement_of_the_program_minus_the_shown_teams_is_never_fewer_than_k(make_app) -> None:
    # c has 6 respondents but only one also answered last wave. Main showed the program's movement
    # (13 pairs) and a's and b's (6 each): program minus a minus b was c-p0's own change.
    app = make_app()
    _two_waves(app, {"a": (6, 0), "b": (6, 0), "c": (1, 5)})
    program = view(app, now=LATE)
    teams = {o: view(app, owner=o, now=LATE) for o in "abc"}
    assert program.movement is not None
    shown = [v.movement for v in teams.values() if v.movement is not None]
    rest = program.movement.pairs - sum(m.pairs for m in shown)
    assert rest == 0 or rest >= K
    for field in ("up", "down", "same"):
        left = getattr(program.movement, field) - sum(getattr(m, field) for m in shown)
        assert left >= 0
    assert sum(m.pairs for m in shown) <= 6  # a or b went with c


@pytest.mark.parametrize("sizes", [(6, 5, 4), (6, 6, 1), (5, 5, 3), (9, 2, 2)])
def test_a_team_view_against_the_program_never_isolates_fewer_than_k(make_app, sizes: tuple[int, int, int]) -> None:
    # The wave (6, 5, 4) and its neighbours: every shown team against the program, and the
    # program against all shown teams, leaves either nobody or at least k people; and the program
    # itself is shown (suppressing a team rather than the whole).
    app = make_app()
    build_pulse(app, dict(zip("abc", sizes, strict=True)), latecomer=False)
    program = view(app)
    teams = [view(app, owner=o) for o in "abc"]
    shown = [t.respondents or 0 for t in teams if not t.suppressed]
    assert not program.suppressed
    assert program.respondents == sum(sizes)
    assert sum(sizes) - sum(shown) == 0 or sum(sizes) - sum(shown) >= K
    for n in shown:
        assert sum(sizes) - n >= K


def test_the_complementary_rule_holds_for_every_partition_of_small_teams() -> None:
    from memory.suppression import hidden_cells

    for sizes in product(range(0, 8), repeat=4):
        cells = dict(enumerate(sizes))
        hidden = hidden_cells(cells, K)
        assert all(c in hidden for c in cells if 0 < cells[c] < K), sizes
        left = sum(cells[c] for c in hidden)
        # The whole below k is hidden itself (whole_hidden), so nothing is subtracted from it.
        assert left == 0 or left >= K or sum(sizes) < K, sizes


def test_comments_need_a_higher_threshold_than_scores(make_app) -> None:
    # Team a: 6 people, enough for scores (k = 5) but not for comments (k_comments = 10).
    app = make_app()
    build_pulse(app, {"a": 6, "b": 6}, latecomer=False)
    a, program = view(app, owner="a"), view(app)
    assert not a.suppressed
    assert a.respondents == 6
    assert a.comments == ()
    assert a.themes == ()
    assert a.comments_why is not None
    assert "10" in a.comments_why
    assert len(program.comments) == 12  # 12 writers: the program's comments are shown


@pytest.mark.parametrize(("k_comments", "shown"), [(6, 7), (8, 0)])
def test_the_comment_threshold_is_configurable(make_app, tmp_path: Path, k_comments: int, shown: int) -> None:
    # Teams of 7 and 12: with k_comments 6 team a's 7 comments show; with 8 they are hidden (and
    # b's with them, so the program's comments minus b's are not a's).
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "k_comments: 10" in text
    (tmp_path / "config.yaml").write_text(text.replace("k_comments: 10", f"k_comments: {k_comments}"), "utf-8")
    app = make_app(config_override=load_config(tmp_path / "config.yaml"))
    build_pulse(app, {"a": 7, "b": 12}, latecomer=False)
    a, b = view(app, owner="a"), view(app, owner="b")
    assert not a.suppressed
    assert len(a.comments) == shown
    assert len(b.comments) == (12 if shown else 0)
    assert len(view(app).comments) == 19


def test_nothing_owner_facing_says_who_took_part(make_app, db_url: str) -> None:
    # a-p0 answered the anonymous wave, the latecomer holds an open check-in, d-p0 never answered.
    app = make_app()
    build_pulse(app)
    with db.transaction(app.sessions) as s:
        History(s).person("d-p0", owner="a", programs=(PROGRAM,))
    runner = CliRunner()

    def cli(*args: str) -> dict[str, object]:
        out = runner.invoke(cli_app, ["--config", str(ROOT / "config.yaml"), "--database", db_url, *args, "--json"])
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout)
        assert isinstance(data, dict)
        return data

    def anonymous_part(data: dict[str, object]) -> dict[str, object]:
        person = data.get("person")
        drop = {"id", "name", "email", "person", "channels"}
        return {k: v for k, v in data.items() if k not in drop} | (
            {"person_keys": sorted(person)} if isinstance(person, dict) else {}
        )

    for command in ("history", "people show"):
        seen = [anonymous_part(cli(*command.split(), key)) for key in ("a-p0", LATECOMER, "d-p0")]
        assert seen[0] == seen[1] == seen[2], command
    with db.transaction(app.sessions) as s:
        digest = build_digest(s, owner="a", since=CLOSE - dt.timedelta(days=1), until=LATE + dt.timedelta(days=1))
    assert digest.changes == ()
    assert digest.silent == ()


def test_forget_removes_the_person_s_comment_from_frozen_views(make_app) -> None:
    from memory.models_anonymity import WaveView

    app = make_app()
    build_pulse(app, {"a": 6, "b": 5}, latecomer=False)
    mark = "Qzxuniquecomment4471 about the rota"
    with db.transaction(app.sessions) as s:
        h = History(s)
        p = h.person("a-p9", owner="a", programs=(PROGRAM,))
        h.checkin(p, PROGRAM, OPEN + dt.timedelta(days=1), rating=3, text=mark, wave=wave_in(s))
    assert any(mark in c for c in view(app).comments)
    erasure.forget(app.sessions, "a-p9", actor="dpo", now=LATE)
    with db.transaction(app.sessions) as s:
        stored = [json.dumps(v) for v in s.scalars(select(WaveView.view))]
    assert stored
    assert not any("Qzxuniquecomment4471" in v for v in stored)
    assert not any("Qzxuniquecomment4471" in c for c in view(app).comments)
