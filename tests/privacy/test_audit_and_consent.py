"""Operators' access is on record (ids and verbs, no words); operators can opt people out and in."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import select

from memory.db import transaction
from memory.models import Checkin, Person
from tests.privacy.test_privacy_cli import cli, setup
from tests.privacy.world import ANN_MARK


def actions(config: Path, db_url: str, *args: str) -> list[dict]:  # type: ignore[type-arg]
    result = cli(config, db_url, "audit", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_history_story_and_digest_are_recorded_without_words(db_url: str, make_app, tmp_path: Path) -> None:
    config, _ = setup(make_app, tmp_path)
    assert cli(config, db_url, "history", "ann").exit_code == 0
    assert cli(config, db_url, "story", "ann").exit_code == 0
    digest = cli(config, db_url, "digest", "lead", "--since", "2026-02-01", "--until", "2026-03-10")
    assert digest.exit_code == 0, digest.output
    assert ANN_MARK in digest.output
    about_ann = actions(config, db_url, "--person", "ann")
    assert [e["action"] for e in about_ann][:3] == ["digest.generate", "story.view", "history.view"]
    assert all(e["actor"].startswith("cli:") for e in about_ann[:3])
    assert about_ann[0]["detail"] == {"owner": "lead", "preview": True}
    every = json.dumps(actions(config, db_url))
    assert ANN_MARK not in every
    assert "support never answered" not in every


def test_operator_opts_a_person_out_and_back_in(db_url: str, make_app, tmp_path: Path) -> None:
    config, _ = setup(make_app, tmp_path)
    app = make_app()
    with transaction(app.sessions) as s:
        ann = s.scalar(select(Person).where(Person.key == "ann"))
        assert ann is not None
        s.add(Checkin(person_id=ann.id, program_id=1, status="invited", channel="terminal", state={}, source="live",
                      started_at=ann.created_at, updated_at=ann.created_at))  # fmt: skip
    out = cli(config, db_url, "optout", "ann", "--by", "maria")
    assert out.exit_code == 0, out.output
    assert "ann: opted out" in out.output
    assert "already opted out" in cli(config, db_url, "optout", "ann").output
    with transaction(app.sessions) as s:
        ann = s.scalar(select(Person).where(Person.key == "ann"))
        assert ann is not None
        assert ann.opted_out_at is not None
        statuses = s.scalars(select(Checkin.status).where(Checkin.person_id == ann.id)).all()
        assert "invited" not in statuses
        assert "opted_out" in statuses
    back = cli(config, db_url, "optin", "ann", "--by", "maria")
    assert "ann: opted back in" in back.output
    assert "had not opted out" in cli(config, db_url, "optin", "ann").output
    with transaction(app.sessions) as s:
        assert s.scalar(select(Person.opted_out_at).where(Person.key == "ann")) is None
    consent = [(e["action"], e["actor"]) for e in actions(config, db_url, "--person", "ann") if "opt" in e["action"]]
    assert consent == [("person.optin", "cli:maria"), ("person.optout", "cli:maria")]


def test_text_listing_is_one_line_per_entry(db_url: str, make_app, tmp_path: Path) -> None:
    config, _ = setup(make_app, tmp_path)
    cli(config, db_url, "optout", "bob", "--by", "ops\x1b[31m")
    listing = cli(config, db_url, "audit").output
    assert "\x1b" not in listing
    assert "person.optout" in listing
