"""`rapport status` as an operator reads it in an 80-column terminal."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import ROOT

runner = CliRunner()
MONDAY_22 = dt.datetime(2026, 11, 30, 22, 0, tzinfo=dt.UTC)
ROSTER = (
    "id,name,email,timezone,owner,programs\n"
    "ann,Ann,ann@example.com,Europe/London,,customers\n"
    "bob,Bob,bob@example.com,Europe/London,,customers\n"
)


def _config(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["programs"]["customers"]["channels"] = ["terminal"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_status_fits_80_columns_in_full_words_and_says_when_sends_resume(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.cli.wave.utcnow", lambda: MONDAY_22)
    monkeypatch.setattr("bot.cli.status.utcnow", lambda: MONDAY_22 + dt.timedelta(minutes=5))
    config = _config(tmp_path)
    roster = tmp_path / "people.csv"
    roster.write_text(ROSTER, encoding="utf-8")

    def invoke(*args: str) -> str:
        result = runner.invoke(app, ["--config", str(config), "--database", db_url, *args])
        assert result.exit_code == 0, result.output
        return result.stdout

    invoke("people", "import", str(roster))
    invoke("wave", "start", "customers")  # Monday 22:00: outside the 09:00-17:00 window
    out = invoke("status")
    assert max(len(line) for line in out.splitlines()) <= 80, out
    for heading in ("invited", "waiting", "answered", "completed", "response"):
        assert heading in out
    for abbreviation in ("deliv", "answ", "expd", "manual-2026"):
        assert not re.search(rf"\b{abbreviation}\b", out), abbreviation
    assert "started 30 Nov 2026" in out
    assert "next sends: Tuesday 09:00 in Europe/London" in out
    data = json.loads(invoke("status", "--json"))
    (wave,) = data["waves"]
    assert (wave["name"], wave["due"], wave["pending"]) == ("started 30 Nov 2026", 2, 2)
    assert wave["next_send"] == "2026-12-01T09:00:00+00:00"
    assert data["held_back"] == []
