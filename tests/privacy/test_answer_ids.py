"""An answer's number names that answer for good: after the newest answer is deleted, the next
answer gets a fresh number, and the migration that made it so keeps every index, foreign key and
follow-up of ``answers`` (SQLite; PostgreSQL sequences never reuse a number)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from bot.app import App
from memory import db
from memory.db import transaction
from memory.models import Answer, FollowUp, Person
from tests.privacy.test_mydata_engine import NOW, say, world
from tests.privacy.world import build_world

__all__ = ["world"]


def test_a_deleted_answers_number_never_names_another_answer(world: tuple[App, Path]) -> None:
    app, _ = world
    with transaction(app.sessions) as s:
        newest = s.scalars(select(Answer).order_by(Answer.id.desc()).limit(1)).one()
        target, owner = newest.id, s.get_one(Person, newest.person_id).key
        fields = {"checkin_id": newest.checkin_id, "person_id": newest.person_id, "program_id": newest.program_id,
                  "question": newest.question, "kind": newest.kind, "rating": newest.rating}  # fmt: skip
    assert f"#{target} is deleted" in say(app, f"delete {target} yes", person=owner)
    with transaction(app.sessions) as s:
        s.add(Answer(**fields, text="a new answer", skipped=False, answered_at=NOW))
    with transaction(app.sessions) as s:
        fresh = s.scalar(select(func.max(Answer.id)))
    assert fresh is not None
    assert fresh > target, "the deleted answer's number was handed out again"
    assert "There is no answer" in say(app, f"delete {target} yes", person=owner)


def _shape(conn: Connection) -> dict[str, object]:
    indexes = {
        row[1]: (row[2], [c[2] for c in conn.exec_driver_sql(f"PRAGMA index_info('{row[1]}')")])
        for row in conn.exec_driver_sql("PRAGMA index_list('answers')")
    }
    keys = sorted(tuple(row[2:]) for row in conn.exec_driver_sql("PRAGMA foreign_key_list('answers')"))
    columns = [tuple(row[1:]) for row in conn.exec_driver_sql("PRAGMA table_info('answers')")]
    return {"indexes": indexes, "foreign_keys": keys, "columns": columns}


def _sql(conn: Connection) -> str:
    return conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'answers'")).scalar_one()


def test_the_rebuild_keeps_every_index_key_row_and_follow_up(make_app: Callable[..., App], tmp_path: Path) -> None:
    app = make_app()
    if app.engine.dialect.name != "sqlite":
        pytest.skip("the rebuild is SQLite's alone")
    build_world(app, tmp_path / "digests")
    cfg = db.alembic_config(app.engine)

    def counts() -> tuple[int, int, int]:
        with transaction(app.sessions) as s:
            answers = s.scalar(select(func.count()).select_from(Answer)) or 0
            followups = s.scalar(select(func.count()).select_from(FollowUp)) or 0
            linked = s.scalar(
                select(func.count()).select_from(FollowUp).where(FollowUp.previous_answer_id.is_not(None))
            )
            return answers, followups, linked or 0

    before = counts()
    assert before[1] > 0
    with app.engine.connect() as conn:
        at_head = _shape(conn)
        assert "AUTOINCREMENT" in _sql(conn)
    command.downgrade(cfg, "0007_event_replies")
    with app.engine.connect() as conn:
        assert "AUTOINCREMENT" not in _sql(conn)
        assert _shape(conn) == at_head
    assert counts() == before, "rebuilding answers must not cascade into the follow-ups"
    command.upgrade(cfg, "heads")
    with app.engine.connect() as conn:
        assert "AUTOINCREMENT" in _sql(conn)
        assert _shape(conn) == at_head
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1, "foreign keys are back on"
        assert not conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    assert counts() == before
    assert db.current_revisions(app.engine) == db.head_revisions(app.engine)
