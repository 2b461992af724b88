"""What `rapport run` writes to stderr, as a log shipper (JSON) and an operator (text) see it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import ROOT

ROSTER = "id,name,email,timezone,owner,programs\nann,Ann,ann@example.com,UTC,lead@example.com,customers\n"
TOKENS = ("TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET")


def _config(tmp_path: Path, fmt: str) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["logging"] = {"level": "INFO", "format": fmt}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(tmp_path: Path, db_url: str, fmt: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name in TOKENS:
        monkeypatch.delenv(name, raising=False)
    config = _config(tmp_path, fmt)
    roster = tmp_path / "people.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    base = ["--config", str(config), "--database", db_url]
    runner = CliRunner()
    assert runner.invoke(app, [*base, "people", "import", str(roster)]).exit_code == 0
    result = runner.invoke(app, [*base, "run", "--until-idle", "--no-web"])
    assert result.exit_code == 0, result.output
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_json_logs_are_json_lines_only(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(tmp_path, db_url, "json", monkeypatch)
    records = [json.loads(line) for line in lines]  # a plain line would raise here
    messages = [r["msg"] for r in records]
    assert sum(m.startswith("channel telegram: off") for m in messages) == 1
    assert sum(m.startswith("channel slack: off") for m in messages) == 1
    assert messages.count("digests planned") == 1


def test_text_logs_say_each_thing_once(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _run(tmp_path, db_url, "text", monkeypatch)
    assert sum("telegram: off" in line for line in lines) == 1
    assert sum("slack: off" in line for line in lines) == 1
    assert sum("digests planned" in line for line in lines) == 1
    assert not any("Logging error" in line for line in lines)


def test_a_record_after_stderr_was_swapped_and_closed_is_still_written(capsys: pytest.CaptureFixture[str]) -> None:
    # What `make test` hit: a CLI run set logging up on a captured stderr that was closed
    # afterwards, and the next record printed "--- Logging error --- I/O operation on closed file".
    import io
    import logging
    import sys

    from bot import logs

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    captured, real = io.StringIO(), sys.stderr
    try:
        sys.stderr = captured
        logs.setup("INFO", "text")
        logging.getLogger("bot.test").info("while captured")
        sys.stderr = real
        captured.close()
        logging.getLogger("bot.test").info("after the capture closed")
    finally:
        sys.stderr = real
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    err = capsys.readouterr().err
    assert "after the capture closed" in err
    assert "Logging error" not in err
