"""`rapport history` as an owner reads it, piped or in a terminal: people quoted exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.cli.core import demo_history_command
from memory.changes import ChangeDetector, PastAnswer
from memory.embeddings import Embedder
from tests.conftest import ROOT

runner = CliRunner()
LONG = (
    "Support now takes days to reply, the last two releases broke our exports, and nobody told us "
    "who our new account manager is."
)


def cli(db_url: str, *args: str, input: str | None = None):
    return runner.invoke(app, ["--config", str(ROOT / "config.yaml"), "--database", db_url, *args], input=input)


def test_piped_history_quotes_each_answer_whole_on_one_line(db_url: str, tmp_path: Path) -> None:
    roster = tmp_path / "people.csv"
    roster.write_text("id,name,email,timezone,owner,programs\nann,Ann,ann@example.com,UTC,,customers\n")
    answers = tmp_path / "answers.csv"
    answers.write_text(
        "person,program,question,answered_at,rating,text\n"
        "ann,customers,recommend,2025-09-01,9,\n"
        f'ann,customers,reason,2025-09-01,,"{LONG}"\n'
    )
    assert cli(db_url, "people", "import", str(roster)).exit_code == 0
    assert cli(db_url, "answers", "import", str(answers)).exit_code == 0
    result = cli(db_url, "history", "ann")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"  reason: “{LONG}”" in lines  # one space after the colon, no wrap at 80 columns
    assert "  recommend: 9" in lines


@pytest.mark.model
def test_why_asked_quotes_keep_the_person_s_capitals(embedder: Embedder) -> None:
    found = ChangeDetector(embedder=embedder).assess(
        text="The support team answers within the hour. Invoices are always wrong.",
        rating=None,
        history=[PastAnswer(text="The onboarding was fast, and the support team answers within the hour.",
                            answered_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC))],
    )  # fmt: skip
    texts = {r.kind: r.text for r in found.reasons}
    assert "“Invoices are always wrong”" in texts["appeared"]
    assert "“The onboarding was fast" in texts["disappeared"]


@pytest.mark.model
def test_the_demo_s_history_hint_works(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'demo.db'}"
    demo = runner.invoke(app, ["--config", str(ROOT / "config.yaml"), "demo", "--database", database])
    assert demo.exit_code == 0, demo.output
    hint = demo_history_command(database)
    assert f"({hint})" in demo.output
    args = hint.split()[1:]  # the printed command, without "rapport"
    history = runner.invoke(app, ["--config", str(ROOT / "config.yaml"), *args])
    assert history.exit_code == 0, history.output
    assert "Dana" in history.stdout
