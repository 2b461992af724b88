"""`rapport promise`, `story`, `digest`, `themes` and `owners link` as people use them."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from sqlalchemy import select

from memory import db
from memory.models_promises import OwnerIdentity
from tests.cli.test_cli import cli
from tests.helpers import seed
from tests.history_builder import T0, History, months


def _seed(make_app) -> None:
    app = make_app()
    seed(app)
    with db.transaction(app.sessions) as s:
        h = History(s)
        ann = h.person_by_key("ann")
        h.checkin(ann, "customers", T0, rating=9, text="Fast support.")
        h.checkin(ann, "customers", T0 + months(6), rating=3, text='=HYPERLINK("http://x","y") is <b>slow</b>',
                  followup="Our *manager* left.")  # fmt: skip


def test_promise_add_list_and_counts(db_url: str, make_app) -> None:
    _seed(make_app)
    added = cli(db_url, "promise", "add", "ann", "a dedicated contact", "--due", "2025-06-01", "--at", "2025-03-10")
    assert added.exit_code == 0, added.output
    assert "promise 1 to ann by owner@example.com, due 2025-06-01" in added.output
    assert cli(db_url, "promise", "add", "bob", "a call back", "--owner", "owner@example.com").exit_code == 0
    assert cli(db_url, "promise", "add", "ann", "   ").exit_code == 2
    assert "no owner" in cli(db_url, "promise", "add", "ann", "x", "--owner", "ghost").output
    assert cli(db_url, "promise", "add", "nobody", "x").exit_code != 0

    listing = cli(db_url, "promise", "list")
    assert listing.exit_code == 0, listing.output
    assert "#1 ann · open OVERDUE · due 2025-06-01 · a dedicated contact" in listing.output
    assert "owner@example.com: kept 0, partly 0, broken 0, open 2, overdue 1, kept rate n/a" in listing.output
    overdue = json.loads(cli(db_url, "promise", "list", "--overdue", "--json").stdout)
    assert [p["id"] for p in overdue["promises"]] == [1]
    assert overdue["owners"][0]["overdue"] == 1
    ghost = cli(db_url, "promise", "list", "--owner", "ghost", "--json")
    assert ghost.exit_code == 2  # an unknown owner is an error, as in every other command
    assert "no owner 'ghost'" in ghost.output


def test_story_in_three_forms(db_url: str, make_app) -> None:
    _seed(make_app)
    text = cli(db_url, "story", "ann")
    assert text.exit_code == 0, text.output
    assert "customers: declining" in text.output
    assert "Our *manager* left." in text.output
    data = json.loads(cli(db_url, "story", "ann", "--json").stdout)
    assert [p["rating"] for p in data["points"]] == [9, 3]
    assert data["trajectories"]["customers"]["kind"] == "declining"
    md = cli(db_url, "story", "ann", "--markdown").output
    assert "\\*manager\\*" in md
    assert "<b>" not in md
    assert cli(db_url, "story", "ann", "--json", "--markdown").exit_code == 2


def test_digest_preview_in_every_format(db_url: str, make_app) -> None:
    _seed(make_app)
    window = ["--since", (T0 + months(5)).date().isoformat(), "--until", (T0 + months(7)).date().isoformat()]
    md = cli(db_url, "digest", "owner@example.com", *window)
    assert md.exit_code == 0, md.output
    assert "1 person changed" in md.output
    slack = json.loads(cli(db_url, "digest", "owner@example.com", *window, "--format", "slack").stdout)
    assert slack["blocks"][0]["type"] == "header"
    rows = list(csv.reader(io.StringIO(cli(db_url, "digest", "owner@example.com", *window, "--format", "csv").stdout)))
    assert rows[1][0] == "ann"
    assert rows[1][8].startswith("'=HYPERLINK")
    for fmt in ("html", "telegram", "email"):
        out = cli(db_url, "digest", "owner@example.com", *window, "--format", fmt)
        assert out.exit_code == 0, out.output
        assert "&lt;b&gt;slow&lt;/b&gt;" in out.output
    assert '=HYPERLINK("http://x","y") is <b>slow</b>' in cli(db_url, "digest", "owner@example.com", *window,
                                                               "--format", "text").output  # fmt: skip
    assert cli(db_url, "digest", "owner@example.com", "--format", "pdf").exit_code == 2
    assert cli(db_url, "digest", "ghost").exit_code != 0


def test_owners_link(db_url: str, make_app) -> None:
    app = make_app()
    seed(app)
    ok = cli(db_url, "owners", "link", "owner@example.com", "--channel", "telegram", "--id", "555")
    assert ok.exit_code == 0, ok.output
    assert cli(db_url, "owners", "link", "owner@example.com", "--channel", "fax", "--id", "1").exit_code == 2
    assert cli(db_url, "owners", "link", "ghost", "--channel", "slack", "--id", "U1").exit_code == 2
    with db.transaction(app.sessions) as s:
        (link,) = s.scalars(select(OwnerIdentity)).all()
        assert (link.channel, link.external_id) == ("telegram", "555")


def test_themes_of_an_anonymous_program_show_only_the_k_anonymous_view(db_url: str, make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        wave = h.wave("employees", "Q1", T0, T0 + dt.timedelta(days=10))
        for i in range(3):
            p = h.person(f"e{i}", owner="lead", programs=("employees",))
            h.checkin(p, "employees", T0, rating=3, text="Secret words", wave=wave)
    out = cli(db_url, "themes", "employees", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["suppressed"] is True
    assert "Secret" not in out.stdout
    assert cli(db_url, "themes", "employees", "--wave", "Q9").exit_code == 2
    assert cli(db_url, "themes", "nope").exit_code == 2


def test_terminal_output_carries_no_escape_sequences(db_url: str, make_app) -> None:
    app = make_app()
    seed(app)
    with db.transaction(app.sessions) as s:
        h = History(s)
        ann = h.person_by_key("ann")
        h.checkin(ann, "customers", T0, rating=9, text="Fine.")
        h.checkin(ann, "customers", T0 + months(6), rating=2, text="\x1b[2J\x1b[31mcleared your screen")
    story = cli(db_url, "story", "ann")
    assert "\x1b" not in story.output
    assert "cleared your screen" in story.output
    window = ["--since", (T0 + months(5)).date().isoformat(), "--until", (T0 + months(7)).date().isoformat()]
    digest = cli(db_url, "digest", "owner@example.com", *window, "--format", "text")
    assert "\x1b" not in digest.output
    assert "cleared your screen" in digest.output
