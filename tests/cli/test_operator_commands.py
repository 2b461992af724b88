"""What an operator does by hand, and undoes: people, owners, waves, days away and promises;
and the errors they see when they mistype, in Rapport's words with the option that was wrong."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import ROOT

runner = CliRunner()
ROSTER = (
    "id,name,email,timezone,owner,programs\n"
    "ann,Ann,ann@example.com,Europe/Berlin,alex@example.com,customers\n"
    "bob,Bob,bob@example.com,UTC,alex@example.com,customers\n"
    "cy,Cy,cy@example.com,UTC,,employees\n"
)


def cli(db_url: str, *args: str, config: Path = ROOT / "config.yaml", input: str | None = None):
    return runner.invoke(app, ["--config", str(config), "--database", db_url, *args], input=input)


@pytest.fixture
def roster(db_url: str, tmp_path: Path) -> str:
    path = tmp_path / "people.csv"
    path.write_text(ROSTER, encoding="utf-8")
    assert cli(db_url, "people", "import", str(path)).exit_code == 0
    return db_url


def test_people_and_owners_can_be_listed_and_shown(roster: str) -> None:
    listed = cli(roster, "people", "list")
    assert listed.exit_code == 0, listed.output
    assert "3 people" in listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80
    data = json.loads(cli(roster, "people", "list", "--program", "customers", "--json").stdout)
    assert [p["id"] for p in data["people"]] == ["ann", "bob"]
    shown = cli(roster, "people", "show", "ann")
    assert "Europe/Berlin" in shown.stdout
    assert "alex@example.com" in shown.stdout
    assert cli(roster, "people", "show", "nobody").exit_code != 0
    owners = json.loads(cli(roster, "owners", "list", "--json").stdout)
    assert owners["owners"] == [
        {"key": "alex@example.com", "name": "alex@example.com", "email": "alex@example.com", "people": 2,
         "open_promises": 0,
         "linked": []}
    ]  # fmt: skip
    one = cli(roster, "owners", "show", "alex@example.com")
    assert "2 people" in one.stdout
    assert "ann" in one.stdout
    unknown = cli(roster, "owners", "show", "nobody")
    assert unknown.exit_code == 2
    assert "no owner 'nobody'" in unknown.output


def test_days_away_can_be_listed_and_removed(roster: str) -> None:
    added = cli(roster, "away", "add", "ann", "2099-08-01", "2099-08-14")
    assert added.exit_code == 0, added.output
    (row,) = json.loads(cli(roster, "away", "list", "--json").stdout)["away"]
    assert (row["person"], row["from"], row["to"]) == ("ann", "2099-08-01", "2099-08-14")
    assert "2099-08-01 to 2099-08-14" in cli(roster, "people", "show", "ann").stdout
    removed = cli(roster, "away", "remove", str(row["id"]))
    assert removed.exit_code == 0, removed.output
    assert json.loads(cli(roster, "away", "list", "--json").stdout)["away"] == []
    assert cli(roster, "away", "remove", str(row["id"])).exit_code == 2
    bad = cli(roster, "away", "add", "ann", "2099-02-30", "2099-03-01")
    assert bad.exit_code == 2
    assert "FIRST '2099-02-30' is not a date" in bad.output


def test_promises_can_be_edited_closed_and_marked(roster: str) -> None:
    made = cli(roster, "promise", "add", "ann", "A dedicated contact", "--due", "2026-06-01", "--at", "2026-03-01")
    assert made.exit_code == 0, made.output
    (p,) = json.loads(cli(roster, "promise", "list", "--json").stdout)["promises"]
    edited = cli(roster, "promise", "edit", str(p["id"]), "--text", "A named account manager", "--due", "2026-07-01")
    assert edited.exit_code == 0, edited.output
    (p,) = json.loads(cli(roster, "promise", "list", "--json").stdout)["promises"]
    assert (p["text"], p["due_at"][:10]) == ("A named account manager", "2026-07-01")
    marked = cli(roster, "promise", "mark", str(p["id"]), "partly", "--comment", "only by e-mail")
    assert marked.exit_code == 0, marked.output
    listed = json.loads(cli(roster, "promise", "list", "--json").stdout)
    assert len(listed["promises"]) == 1
    assert listed["promises"][0]["status"] == "partly"
    assert listed["promises"][0]["outcomes"][0]["comment"] == "only by e-mail"
    assert listed["owners"][0]["partly"] == 1
    # A marked promise is no longer open: it cannot be edited or closed.
    assert "is partly, not open" in cli(roster, "promise", "edit", str(p["id"]), "--text", "x").output
    other = cli(roster, "promise", "add", "bob", "Fix the export")
    assert other.exit_code == 0
    promises = json.loads(cli(roster, "promise", "list", "--json").stdout)["promises"]
    (second,) = [x["id"] for x in promises if x["person"] == "bob"]
    assert cli(roster, "promise", "close", str(second)).exit_code == 0
    statuses = {x["id"]: x["status"] for x in json.loads(cli(roster, "promise", "list", "--json").stdout)["promises"]}
    assert statuses[second] == "closed"
    assert cli(roster, "promise", "mark", "999", "kept").exit_code == 2
    assert "kept, partly or broken" in cli(roster, "promise", "mark", str(second), "done").output


def test_promise_errors_name_the_option_and_refuse_a_due_date_in_the_past(roster: str) -> None:
    bad = cli(roster, "promise", "add", "ann", "A dedicated contact", "--due", "2026-13-45")
    assert bad.exit_code == 2
    assert "--due '2026-13-45' is not a date" in bad.output
    assert "--at" not in bad.output
    assert "isoformat" not in bad.output
    early = cli(roster, "promise", "add", "ann", "A dedicated contact", "--due", "2026-02-01", "--at", "2026-03-01")
    assert early.exit_code == 2
    assert "--due: the due date 2026-02-01 is before the promise was made (2026-03-01)" in early.output
    assert json.loads(cli(roster, "promise", "list", "--json").stdout)["promises"] == []
    nobody = cli(roster, "promise", "list", "--owner", "nobody")
    assert nobody.exit_code == 2
    assert "no owner 'nobody'" in nobody.output
    since = cli(roster, "digest", "alex@example.com", "--since", "last week")
    assert since.exit_code == 2
    assert "--since 'last week' is not a date or time" in since.output


def test_chat_at_refuses_the_future_and_a_checkin_opened_later(roster: str) -> None:
    future = cli(roster, "chat", "ann", "--at", "2999-01-01", input="")
    assert future.exit_code == 2
    assert "in the future" in future.output
    opened = cli(roster, "chat", "ann", "--at", "2026-03-02T10:00:00Z", input="8\n")
    assert opened.exit_code == 0, opened.output
    earlier = cli(roster, "chat", "ann", "--at", "2026-01-15", input="Great support\n")
    assert earlier.exit_code == 2
    assert "before ann's open customers check-in began (2026-03-02 10:00)" in earlier.output
    resumed = cli(roster, "chat", "ann", "--at", "2026-03-02T11:00:00Z", input="Great support\n")
    assert resumed.exit_code == 0
    assert "pick up where we left off" in resumed.output


def _terminal_config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for program in data["programs"].values():
        program["channels"] = ["terminal"]
        program["window"] = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat",
                                                                         "sun"]}  # fmt: skip
    path = tmp_path / "terminal.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_wave_can_be_listed_shown_closed_and_cancelled(
    roster: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The CLI's clock, so "open" does not depend on today's date.
    monkeypatch.setattr("bot.cli.wave.utcnow", lambda: dt.datetime(2026, 11, 30, 23, tzinfo=dt.UTC))
    config = _terminal_config(tmp_path)
    started = cli(roster, "wave", "start", "customers", "--people", "ann", "--at", "2026-11-30T22:32:00Z",
                  config=config)  # fmt: skip
    assert started.exit_code == 0, started.output
    assert "started 30 Nov 2026" in started.output
    (wave,) = json.loads(cli(roster, "wave", "list", "--json", config=config).stdout)["waves"]
    assert (wave["program"], wave["name"], wave["state"]) == ("customers", "started 30 Nov 2026", "open")
    shown = cli(roster, "wave", "show", str(wave["id"]), config=config)
    assert "invited 1" in shown.stdout
    closed = cli(roster, "wave", "close", str(wave["id"]), config=config)
    assert closed.exit_code == 0, closed.output
    assert "1 unsent invitation(s) dropped" in closed.output
    (wave,) = json.loads(cli(roster, "wave", "list", "--json", config=config).stdout)["waves"]
    assert wave["state"] == "closed"
    again = cli(roster, "wave", "start", "customers", "--people", "bob", "--at", "2026-12-01T09:00:00Z",
                config=config)  # fmt: skip
    assert again.exit_code == 0
    newest = json.loads(cli(roster, "wave", "list", "--json", config=config).stdout)["waves"][0]
    cancelled = cli(roster, "wave", "cancel", newest["key"], config=config)
    assert cancelled.exit_code == 0, cancelled.output
    assert "1 unsent message(s) dropped" in cancelled.output
    # Listed (JSON and table) and shown as cancelled, not closed; the closed one stays closed.
    listed = json.loads(cli(roster, "wave", "list", "--json", config=config).stdout)["waves"]
    assert [(w["id"], w["state"]) for w in listed] == [(newest["id"], "cancelled"), (wave["id"], "closed")]
    table = cli(roster, "wave", "list", config=config).stdout
    states = [
        line.split()[-2] for line in table.splitlines() if line.split()[:1] in ([str(newest["id"])], [str(wave["id"])])
    ]
    assert states == ["cancelled", "closed"]
    shown = cli(roster, "wave", "show", str(newest["id"]), config=config).stdout
    assert shown.splitlines()[0].endswith(", cancelled")
    assert cli(roster, "wave", "close", "nope", config=config).exit_code == 2
