"""``forget``: a person's words are found nowhere afterwards; everyone else's are intact."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import JSON, LargeBinary, String, Text, inspect, select, text

from bot.app import App
from memory import audit, erasure
from memory.db import sqlite_path, transaction
from memory.errors import NotFound
from memory.export import export_person
from memory.models import Answer, Person, Promise
from memory.models_channels import ChannelMark
from tests.privacy.world import ANN_MARK, BOB_MARK, T0, build_world

NOW = T0 + dt.timedelta(days=30)


def table_text(app: App) -> str:
    """Every text, JSON and binary value of every table in the database, as one string.

    Rows are sorted within each table: PostgreSQL returns an unordered SELECT in whatever order
    its pages hold (an UPDATE moves a row), so two snapshots compare by content, not by order."""
    chunks: list[str] = []
    with app.engine.connect() as conn:
        for table_name in sorted(inspect(conn).get_table_names()):
            columns = inspect(conn).get_columns(table_name)
            wanted = [c["name"] for c in columns if isinstance(c["type"], String | Text | JSON | LargeBinary)
                      or "JSON" in str(c["type"]).upper()]  # fmt: skip
            if not wanted:
                continue
            cols = ", ".join(f'"{c}"' for c in wanted)
            rows: list[str] = []
            for row in conn.execute(text(f'SELECT {cols} FROM "{table_name}"')):
                values: list[str] = []
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        values.append(bytes(value).decode("utf-8", "replace"))
                    elif value is not None:
                        values.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                rows.append("\n".join(values))
            chunks += sorted(rows)
    return "\n".join(chunks)


def file_bytes(app: App) -> bytes:
    path = sqlite_path(str(app.engine.url))
    assert path is not None
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.fixture
def world(make_app: Callable[..., App], tmp_path: Path) -> tuple[App, Path]:
    app = make_app()
    folder = tmp_path / "digests"
    build_world(app, folder)
    return app, folder


def test_forget_leaves_the_words_nowhere(world: tuple[App, Path]) -> None:
    app, folder = world
    assert ANN_MARK in table_text(app)
    bob_lines = {
        p.name: [x for x in p.read_text(encoding="utf-8").splitlines() if "Bob" in x] for p in folder.iterdir()
    }
    report = erasure.forget(app.sessions, "ann", actor="cli:dpo", now=NOW, digest_folder=folder)

    assert ANN_MARK not in table_text(app)
    assert BOB_MARK in table_text(app)
    for path in folder.iterdir():
        body = path.read_text(encoding="utf-8")
        assert ANN_MARK not in body, path.name
        assert BOB_MARK in body, f"{path.name} lost Bob's lines"
        assert erasure.REDACTED in body
        assert [x for x in body.splitlines() if "Bob" in x] == bob_lines[path.name], "a line about Bob was lost"
    assert sorted(report.digest_files) == sorted(str(p) for p in folder.iterdir())
    if app.engine.dialect.name == "sqlite":
        raw = file_bytes(app)
        assert ANN_MARK.encode() not in raw
        assert BOB_MARK.encode() in raw
    assert report.counts["answers"] == 4
    assert report.counts["promises"] == 1
    assert report.counts["stored_digests"] == 1
    with transaction(app.sessions) as s:
        assert s.scalars(select(ChannelMark.key)).all() == ["slack:clicked:DBOB:1700.1"]


def test_other_people_stay_intact(world: tuple[App, Path]) -> None:
    app, folder = world
    with transaction(app.sessions) as s:
        before = export_person(s, "bob", now=NOW)
    erasure.forget(app.sessions, "ann", actor="cli:dpo", now=NOW, digest_folder=folder)
    with transaction(app.sessions) as s:
        after = export_person(s, "bob", now=NOW)
        assert s.scalar(select(Person).where(Person.key == "ann")) is None
        assert s.scalars(select(Answer.person_id).distinct()).all() == [after["person"]["id"]]
        assert len(s.scalars(select(Promise)).all()) == 1
    before.pop("exported_at"), after.pop("exported_at")
    assert before == after


def test_erasure_record_names_nobody_but_can_be_checked(world: tuple[App, Path]) -> None:
    app, folder = world
    report = erasure.forget(app.sessions, "ann", actor="cli:dpo", now=NOW, digest_folder=folder)
    with transaction(app.sessions) as s:
        rows = [e for e in audit.entries(s) if e.action == "person.erase"]
        assert len(rows) == 1
        entry = rows[0]
        assert entry.actor == "cli:dpo"
        assert entry.person_id is None
        assert entry.at == NOW
        values = json.dumps(entry.detail).replace(entry.detail["reference"], "")
        assert '"ann' not in values
        assert "example.com" not in values
        assert entry.detail["reference"] == report.reference
        # The access made before the erasure is still on record, without the person.
        views = [e for e in audit.entries(s) if e.action == "story.view"]
        assert len(views) == 2
        assert sum(e.person_id is None for e in views) == 1
    assert erasure.matches(report.reference, "ann")
    assert not erasure.matches(report.reference, "bob")


def test_forget_unknown_person_changes_nothing(world: tuple[App, Path]) -> None:
    app, folder = world
    before = table_text(app)
    with pytest.raises(NotFound):
        erasure.forget(app.sessions, "nobody", actor="cli:dpo", now=NOW, digest_folder=folder)
    assert table_text(app) == before


def test_forget_twice_is_refused_the_second_time(world: tuple[App, Path]) -> None:
    app, folder = world
    erasure.forget(app.sessions, "ann@example.com", actor="cli:dpo", now=NOW, digest_folder=folder)
    with pytest.raises(NotFound):
        erasure.forget(app.sessions, "ann", actor="cli:dpo", now=NOW, digest_folder=folder)


def test_missing_digest_folder_is_not_an_error(world: tuple[App, Path], tmp_path: Path) -> None:
    app, _ = world
    report = erasure.forget(app.sessions, "ann", actor="cli:dpo", now=NOW, digest_folder=tmp_path / "absent")
    assert report.digest_files == []
    assert ANN_MARK not in table_text(app)


def test_a_reader_in_another_process_is_reported(world: tuple[App, Path]) -> None:
    app, folder = world
    if app.engine.dialect.name != "sqlite":
        pytest.skip("the WAL is SQLite's")
    import sqlite3

    path = sqlite_path(str(app.engine.url))
    reader = sqlite3.connect(str(path), isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM answers").fetchone()
        report = erasure.forget(app.sessions, "ann", actor="cli:dpo", now=NOW, digest_folder=folder)
    finally:
        reader.close()
    assert report.wal_truncated is False
    assert ANN_MARK not in table_text(app)
    assert erasure.scrub_sqlite(app.sessions) is True
    assert ANN_MARK.encode() not in file_bytes(app)


def test_every_table_has_an_erasure_decision(make_app: Callable[..., App]) -> None:
    app = make_app()
    with app.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    missing = sorted(tables - set(erasure.TABLES))
    assert not missing, f"say in memory.erasure.TABLES how these are erased: {missing}"


def test_names_count_as_whole_words_only() -> None:
    import re

    marks = re.compile(r"(?<!\w)ann(?!\w)")
    text = "ann said no\nthe channel was slow\nplanning: ann"
    assert erasure.redact_text(text, marks) == f"{erasure.REDACTED}\nthe channel was slow\n{erasure.REDACTED}"
