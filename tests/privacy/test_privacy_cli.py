"""``rapport export``, ``forget`` and ``audit`` as an operator uses them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli_app
from tests.conftest import ROOT
from tests.privacy.world import ANN_MARK, BOB_MARK, build_world

runner = CliRunner()


def setup(make_app: Callable[..., App], tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "digests"
    build_world(make_app(), folder)
    config = tmp_path / "config.yaml"
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "  directory: data/digests\n" in text
    config.write_text(text.replace("  directory: data/digests\n", f"  directory: {folder}\n"), encoding="utf-8")
    return config, folder


def cli(config: Path, db_url: str, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(cli_app, ["--config", str(config), "--database", db_url, *args], input=input)


def test_export_holds_everything_but_embedding_bytes(db_url: str, make_app, tmp_path: Path) -> None:
    config, _ = setup(make_app, tmp_path)
    out = tmp_path / "ann.json"
    result = cli(config, db_url, "export", "ann", "--out", str(out), "--by", "dpo")
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o077 == 0, "the export is readable by the operator only"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["person"]["key"] == "ann"
    texts = [a["text"] for a in data["answers"] if a["text"]]
    assert len(texts) == 2
    assert all(ANN_MARK in t for t in texts)
    assert all(a["embedding"] in (None, {"stored": True, "bytes": 384}) for a in data["answers"])
    assert any(a["embedding"] for a in data["answers"])
    assert ANN_MARK in data["promises"][0]["text"]
    assert ANN_MARK in data["outcomes"][0]["comment"]
    assert ANN_MARK in data["followups"][0]["answer_text"]
    assert ANN_MARK in json.dumps(data["outbox"][0]["content"])
    assert data["enrollments"]
    assert [e["action"] for e in data["audit"]] == ["story.view"]
    assert BOB_MARK not in out.read_text(encoding="utf-8")
    logged = cli(config, db_url, "audit", "--person", "ann", "--json")
    assert [e["action"] for e in json.loads(logged.output)] == ["person.export", "story.view"]
    assert json.loads(logged.output)[0]["actor"] == "cli:dpo"


def test_forget_asks_and_erases(db_url: str, make_app, tmp_path: Path) -> None:
    config, folder = setup(make_app, tmp_path)
    declined = cli(config, db_url, "forget", "ann", input="n\n")
    assert declined.exit_code == 1
    assert "nothing erased" in declined.output
    assert cli(config, db_url, "export", "ann").exit_code == 0
    result = cli(config, db_url, "forget", "ann", "--yes", "--by", "dpo")
    assert result.exit_code == 0, result.output
    assert "4 answers" in result.output
    assert "digest files rewritten: 2" in result.output
    assert "erasure reference: " in result.output
    assert all(ANN_MARK not in p.read_text(encoding="utf-8") for p in folder.iterdir())
    assert cli(config, db_url, "export", "ann").exit_code != 0
    assert cli(config, db_url, "forget", "ann", "--yes").exit_code != 0
    listing = cli(config, db_url, "audit")
    assert "cli:dpo  person.erase  person=-" in listing.output
    assert ANN_MARK not in listing.output
    assert "Ann" not in listing.output


def test_audit_of_unknown_person_fails_cleanly(db_url: str, make_app, tmp_path: Path) -> None:
    config, _ = setup(make_app, tmp_path)
    result = cli(config, db_url, "audit", "--person", "ghost")
    # main() prints RapportErrors as one line; the test runner sees the error itself.
    assert result.exit_code != 0
    assert "person 'ghost' not found" in str(result.exception)


def test_retention_run_dry_run_then_for_real(db_url: str, make_app, tmp_path: Path) -> None:
    config, _ = setup(make_app, tmp_path)
    off = cli(config, db_url, "retention", "run")
    assert off.exit_code == 2
    assert "free_text_months is not set" in off.output
    # The world's answers are from 2025-09 and 2026-03: a one-month rule reaches all of them.
    text = config.read_text(encoding="utf-8").replace("free_text_months: null", "free_text_months: 1")
    config.write_text(text, encoding="utf-8")
    dry = cli(config, db_url, "retention", "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete free text older than" in dry.output
    assert "6 answer(s), 2 follow-up answer(s), 2 outcome comment(s)" in dry.output
    done = cli(config, db_url, "retention", "run", "--by", "dpo")
    assert "deleted free text" in done.output
    assert "0 answer(s)" in cli(config, db_url, "retention", "run").output
    logged = json.loads(cli(config, db_url, "audit", "--json").output)
    assert [e["actor"] for e in logged if e["action"] == "retention.run"] == ["cli:dpo"]
