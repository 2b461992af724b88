"""The import's progress bar: drawn on a terminal (count and time left), nothing when piped."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from bot.cli._progress import progress_bar
from tests.cli.test_cli import ROSTER, cli, write


def test_piped_the_import_prints_its_report_and_nothing_else(db_url: str, tmp_path: Path) -> None:
    cli(db_url, "people", "import", str(write(tmp_path, "people.csv", ROSTER)))
    rows = "".join(f"ann,customers,recommend,2025-01-01T{i // 60:02d}:{i % 60:02d}:00,7,\n" for i in range(600))
    answers = write(tmp_path, "answers.csv", "person,program,question,answered_at,rating,text\n" + rows)
    result = cli(db_url, "answers", "import", str(answers))
    assert result.exit_code == 0, result.output
    assert result.stdout == "answers: 600 created, 0 updated, 0 unchanged, 0 rejected\n"
    assert result.stderr == ""


def test_on_a_terminal_the_bar_shows_the_count_and_the_time_left() -> None:
    screen = io.StringIO()
    with progress_bar("importing answers", Console(file=screen, force_terminal=True, width=100)) as bar:
        task = bar.add_task("answers", total=None)
        bar.update(task, completed=512, total=2000)
        bar.refresh()
    drawn = screen.getvalue()
    assert "importing answers" in drawn
    assert "512/2000" in drawn
    assert "ETA" in drawn


def test_not_on_a_terminal_the_bar_draws_nothing() -> None:
    screen = io.StringIO()
    with progress_bar("importing answers", Console(file=screen)) as bar:
        task = bar.add_task("answers", total=10)
        bar.update(task, completed=10)
        bar.refresh()
    assert screen.getvalue() == ""
