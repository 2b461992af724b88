"""A database Rapport cannot use is one clear line (exit code 2), never a driver traceback, and
never shows the password; a wrong SQLite path is refused outside ``rapport init``."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from memory import db
from memory.errors import DatabaseMissing, DatabaseUnavailable, DatabaseUrlInvalid
from tests.conftest import ROOT

runner = CliRunner()
PASSWORD = "s3cret-pw-for-tests"


def refused_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(url: str, *args: str):
    return runner.invoke(app, ["--config", str(ROOT / "config.yaml"), "--database", url, *args])


def test_refused_postgres_port_is_one_line_without_the_password() -> None:
    url = f"postgresql://rapport:{PASSWORD}@127.0.0.1:{refused_port()}/rapport"
    with pytest.raises(DatabaseUnavailable) as caught:
        db.make_engine(url)
    message = str(caught.value)
    assert "\n" not in message
    assert PASSWORD not in message
    assert "127.0.0.1" in message
    assert "refused" in message.lower()


@pytest.mark.parametrize("url", ["mysql://u:pw@h/d", "foo://x/y", "not a url at all"])
def test_unknown_url_schemes_are_named(url: str) -> None:
    with pytest.raises(DatabaseUrlInvalid) as caught:
        db.make_engine(url)
    assert "\n" not in str(caught.value)
    assert "postgresql://" in str(caught.value), "the message says what would work"
    assert "pw" not in str(caught.value).replace("postgresql", "")


def test_cli_prints_one_line_and_exits_2_for_a_refused_port() -> None:
    url = f"postgresql://rapport:{PASSWORD}@127.0.0.1:{refused_port()}/rapport"
    result = cli(url, "status")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: database postgresql")
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output


def test_real_command_prints_no_traceback_for_an_unknown_scheme(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(ROOT / "config.yaml"), "--database", "foo://x/y", "history",
         "ann"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_wrong_sqlite_path_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "nested" / "rapport.db"
    result = cli(f"sqlite:///{missing}", "history", "ann")
    assert result.exit_code == 2, result.output
    assert "rapport init" in result.output
    assert not (tmp_path / "typo").exists(), "no folders were created"
    with pytest.raises(DatabaseMissing):
        db.require_database(f"sqlite:///{missing}")


def test_init_creates_the_sqlite_file_then_other_commands_use_it(tmp_path: Path) -> None:
    path = tmp_path / "new" / "rapport.db"
    assert cli(f"sqlite:///{path}", "init").exit_code == 0
    assert path.is_file()
    result = cli(f"sqlite:///{path}", "history", "nobody")
    assert "rapport init" not in result.output


def test_in_memory_and_postgres_urls_need_no_file() -> None:
    db.require_database("sqlite:///:memory:")
    db.require_database("postgresql://u@h/d")
