"""The command line as people use it: imports, piped chats, history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import ROOT

runner = CliRunner()

ROSTER = """id,name,email,timezone,owner,programs
ann,Ann,ann@example.com,Europe/Berlin,owner@example.com,customers
bob,Bob,bob@example.com,Mars/Olympus,owner@example.com,customers
,Nameless,x@example.com,UTC,,customers
cy,Cy,not-an-email,UTC,,customers
dee,Dee,dee@example.com,UTC,,customers;unknown
eve,Eve,eve@example.com,,,employees
"""


def cli(db_url: str, *args: str, input: str | None = None):
    return runner.invoke(app, ["--config", str(ROOT / "config.yaml"), "--database", db_url, *args], input=input)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


#: What ``rapport --help`` (and each command's help) must not import: the model, the database
#: layer, the chat SDKs, the web server, templates, our config models, numpy, rich's help formatter and
#: asyncio. Commands import them when they run.
HEAVY = ("torch", "sentence_transformers", "onnxruntime", "tokenizers", "numpy", "sqlalchemy", "alembic",
         "telegram", "slack_bolt", "slack_sdk", "aiohttp", "jinja2", "yaml", "rich", "asyncio",
         "memory.models", "memory.db", "bot.app", "bot.config", "prompts")  # fmt: skip


@pytest.mark.parametrize("argv", [["--help"], ["people", "--help"], ["digest", "--help"], ["run", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    code = (
        f"import sys; sys.argv=['rapport', *{argv!r}]\ntry:\n from bot.cli import main; main()\n"
        "except SystemExit: pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_people_import_reports_bad_rows_and_keeps_good_ones(db_url: str, tmp_path: Path) -> None:
    result = cli(db_url, "people", "import", str(write(tmp_path, "people.csv", ROSTER)))
    assert result.exit_code == 1, result.output  # rows were rejected
    assert "2 created" in result.output
    assert "4 rejected" in result.output
    assert "line 3: unknown time zone 'Mars/Olympus'" in result.output
    assert "line 4: id is empty" in result.output
    assert "line 5:" in result.output
    assert "line 6: unknown program(s): unknown" in result.output
    again = cli(db_url, "people", "import", str(write(tmp_path, "people2.csv", ROSTER.replace("Ann,", "Annie,"))))
    assert "0 created, 1 updated, 1 unchanged" in again.output
    history = json.loads(cli(db_url, "history", "ann", "--json").stdout)
    assert history["person"]["name"] == "Annie"


def test_imports_of_a_folder_or_a_clean_file(db_url: str, tmp_path: Path) -> None:
    folder = cli(db_url, "people", "import", str(tmp_path))
    assert folder.exit_code == 1
    assert "is a folder, not a CSV file" in folder.output
    assert "Traceback" not in folder.output
    clean = ROSTER.splitlines()[0] + "\n" + ROSTER.splitlines()[1] + "\n"
    first = cli(db_url, "people", "import", str(write(tmp_path, "clean.csv", clean)))
    assert first.exit_code == 0, first.output
    again = cli(db_url, "people", "import", str(write(tmp_path, "clean.csv", clean)))
    assert again.exit_code == 0
    assert "0 created, 0 updated, 1 unchanged, 0 rejected" in again.output


def test_people_import_without_id_column_fails_clearly(db_url: str, tmp_path: Path) -> None:
    result = cli(db_url, "people", "import", str(write(tmp_path, "p.csv", "name,email\nx,y\n")))
    assert result.exit_code == 2
    assert "missing column(s): id" in result.output


def test_answers_import_builds_history(db_url: str, tmp_path: Path) -> None:
    cli(db_url, "people", "import", str(write(tmp_path, "people.csv", ROSTER)))
    answers = """person,program,question,answered_at,rating,text
ann,customers,recommend,2025-09-01,9,
ann,customers,reason,2025-09-01,,Fast support and a clear roadmap.
ann,customers,recommend,2025-03-01,12,
ann,customers,recommend,not-a-date,5,
zed,customers,recommend,2025-09-01,5,
ann,customers,colour,2025-09-01,5,
"""
    result = cli(db_url, "answers", "import", str(write(tmp_path, "answers.csv", answers)))
    assert result.exit_code == 1, result.output  # rows were rejected
    assert "2 created" in result.output
    assert "line 4: rating 12 is outside 0–10" in result.output
    assert "line 5: answered_at" in result.output
    assert "line 6: unknown person 'zed'" in result.output
    assert "line 7: program 'customers' has no question 'colour'" in result.output
    again = cli(db_url, "answers", "import", str(write(tmp_path, "answers.csv", answers)))
    assert "0 created, 0 updated, 2 unchanged" in again.output
    data = json.loads(cli(db_url, "history", "ann", "--json").stdout)
    (checkin,) = data["checkins"]
    assert checkin["source"] == "import"
    assert [a["rating"] for a in checkin["answers"]] == [9, None]


def test_piped_chat_and_resume(db_url: str, tmp_path: Path) -> None:
    cli(db_url, "people", "import", str(write(tmp_path, "people.csv", ROSTER)))
    first = cli(db_url, "chat", "ann", "--at", "2026-03-02T10:00:00Z", input="8\n")
    assert first.exit_code == 0, first.output
    assert "How likely are you to recommend us" in first.output
    assert "What is the main reason" in first.output
    assert "still open" in first.output
    resumed = cli(db_url, "chat", "ann", "--at", "2026-03-02T11:00:00Z", input="Great support\n")
    assert "pick up where we left off" in resumed.output
    assert "everything" in resumed.output
    data = json.loads(cli(db_url, "history", "ann", "--json").stdout)
    (checkin,) = data["checkins"]
    assert checkin["status"] == "completed"
    assert [(a["question"], a["rating"], a["text"]) for a in checkin["answers"]] == [
        ("recommend", 8, None),
        ("reason", None, "Great support"),
    ]


def test_chat_errors_are_clear(db_url: str, tmp_path: Path) -> None:
    cli(db_url, "people", "import", str(write(tmp_path, "people.csv", ROSTER)))
    assert "person 'nobody' not found" in str(cli(db_url, "chat", "nobody", input="").exception)
    bad_at = cli(db_url, "chat", "ann", "--at", "last tuesday", input="")
    assert bad_at.exit_code == 2
    assert "--at 'last tuesday' is not a date or time" in bad_at.output
    bad_program = cli(db_url, "chat", "ann", "--program", "nope", input="")
    assert bad_program.exit_code == 2


def test_errors_exit_cleanly_from_the_real_command(tmp_path: Path) -> None:
    (tmp_path / "x.db").touch()  # as after `rapport init`
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--database", f"sqlite:///{tmp_path}/x.db", "history", "nobody"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "error: person 'nobody' not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_history_neither_shows_nor_counts_anonymous_checkins(db_url: str, tmp_path: Path) -> None:
    cli(db_url, "people", "import", str(write(tmp_path, "people.csv", ROSTER)))
    assert cli(db_url, "chat", "eve", "--at", "2026-03-02T10:00:00Z", input="7\nMy manager listens\n").exit_code == 0
    data = json.loads(cli(db_url, "history", "eve", "--json").stdout)
    assert data["checkins"] == []
    assert set(data) == {"person", "checkins"}  # nothing that says whether eve took part
    assert "My manager listens" not in cli(db_url, "history", "eve").stdout


def test_the_readme_tour_files_import_cleanly(db_url: str) -> None:
    people = cli(db_url, "people", "import", str(ROOT / "examples" / "people.csv"))
    assert people.exit_code == 0
    assert "3 created" in people.output
    assert "0 rejected" in people.output
    answers = cli(db_url, "answers", "import", str(ROOT / "examples" / "past-answers.csv"))
    assert answers.exit_code == 0
    assert "6 created" in answers.output
    assert "0 rejected" in answers.output


def test_chat_shows_an_ellipsis_while_the_model_is_still_loading() -> None:
    import threading

    from bot.cli.core import load_in_background, while_loading

    release = threading.Event()

    class SlowModel:
        def load(self) -> None:
            release.wait(10)

    loading = load_in_background(SlowModel())
    assert loading is not None
    shown: list[str] = []
    lines = while_loading(iter(["9", "Support is slow.", "Still slow."]), loading, shown.append)
    assert next(lines) == "9"
    assert shown == ["…"]  # the model is still loading: the person sees it is on its way
    release.set()
    loading.join(10)
    assert list(lines) == ["Support is slow.", "Still slow."]
    assert shown == ["…"]  # loaded: nothing more
    assert load_in_background(object()) is None  # an embedder without a model to load
