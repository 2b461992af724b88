"""A new operator's first steps outside a checkout: `rapport init` writes a starter config,
paths in it are read from its folder, time zones are forgiving, and mistakes read plainly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine
from typer.testing import CliRunner

from bot.cli import app
from bot.config import load_config, parse_config
from bot.errors import ConfigError
from memory import db
from tests.conftest import ROOT

runner = CliRunner()


def test_init_outside_a_checkout_writes_a_commented_starter_config(tmp_path: Path) -> None:
    config = tmp_path / "rapport" / "config.yaml"
    refused = runner.invoke(app, ["--config", str(config), "init"])  # no terminal: nothing is asked
    assert refused.exit_code == 2
    assert "rapport init --write-config" in refused.output
    assert not config.exists()
    done = runner.invoke(app, ["--config", str(config), "init", "--write-config"])
    assert done.exit_code == 0, done.output
    assert "wrote" in done.output
    assert config.read_text(encoding="utf-8").startswith("# Rapport configuration")
    load_config(config)  # the starter validates as written
    # Its SQLite file lives beside the config, wherever init was started from.
    database = tmp_path / "rapport" / "data" / "rapport.db"
    assert database.exists()
    (head,) = db.head_revisions(create_engine(f"sqlite:///{database}"))
    assert f"database ready at revision {head};" in done.output


def test_init_asks_in_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.cli.core.stdin_is_tty", lambda: True)
    config = tmp_path / "config.yaml"
    declined = runner.invoke(app, ["--config", str(config), "init"], input="n\n")
    assert declined.exit_code == 2
    assert not config.exists()
    accepted = runner.invoke(app, ["--config", str(config), "init"], input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert config.exists()


def test_the_migrations_have_one_head(tmp_path: Path) -> None:
    # Branches written side by side need a merge revision; a second head fails this test.
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert len(db.head_revisions(engine)) == 1, db.head_revisions(engine)


def test_relative_paths_are_read_from_the_config_file_s_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["database"]["url"] = "sqlite:///state/rapport.db"
    data["digests"]["directory"] = "out/digests"
    (folder / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("..") / "etc" / "config.yaml")
    assert config.database.url == f"sqlite:///{folder / 'state' / 'rapport.db'}"
    assert config.digests.directory == str(folder / "out" / "digests")
    data["database"]["url"] = "sqlite:////var/lib/rapport.db"
    data["digests"]["directory"] = "/srv/digests"
    (folder / "config.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    config = load_config(folder / "config.yaml")
    assert (config.database.url, config.digests.directory) == ("sqlite:////var/lib/rapport.db", "/srv/digests")
    assert os.getcwd() == str(elsewhere)


def _program(**cadence: object) -> dict[str, object]:
    return {
        "questions": [{"key": "score", "kind": "rating", "text": "How are we doing?"}],
        "cadence": {"cron": "0 9 * * mon", **cadence},
    }


@pytest.mark.parametrize(("given", "kept"), [("utc", "UTC"), ("UTC", "UTC"), ("europe/london", "Europe/London")])
def test_time_zones_are_accepted_in_any_case(given: str, kept: str) -> None:
    config = parse_config({"programs": {"p": _program(timezone=given)}, "digests": {"timezone": given}})
    assert config.programs["p"].cadence.timezone == kept
    assert config.digests.timezone == kept


def test_config_problems_are_in_rapport_s_words() -> None:
    bad = {
        "programs": {
            "p": {
                "questions": [{"key": "Score!", "kind": "rating", "text": "x"}],
                "cadence": {"every": "six months"},
                "window": {"start": "9:00"},
                "colour": "blue",
            }
        },
        "digests": {"timezone": "Mars/Olympus"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(bad)
    problems = dict(caught.value.problems)
    assert (
        problems["programs.p.cadence.every"]
        == '\'six months\' is not a period such as "6 months", "2 weeks" or "10 days"'
    )
    assert problems["programs.p.window.start"].startswith("'9:00' is not a time of day as HH:MM")
    assert problems["programs.p.questions[0].key"].startswith("'Score!' is not lower-case letters")
    assert problems["programs.p.colour"] == "unknown setting (check its spelling and indentation)"
    assert "unknown time zone 'Mars/Olympus'" in problems["digests.timezone"]
    assert not any("should match pattern" in message for message in problems.values())
