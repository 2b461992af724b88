"""answer ids are never reused on SQLite

A person deletes one of their answers by its number (``my data`` then ``delete N``). Without
AUTOINCREMENT, SQLite gives the next answer the largest id in use plus one, so after the newest
answer is deleted its number would name a different answer later. The ``answers`` table is rebuilt
with AUTOINCREMENT (every column, index and foreign key kept; env.py turns SQLite's foreign keys
off around the migration so the rebuild does not cascade into the follow-ups that refer to it).
PostgreSQL sequences never hand a number out twice: nothing to do there.

Revision ID: 0008_answers_autoincrement
Revises: 0007_event_replies
"""

from __future__ import annotations

from alembic import op

revision = "0008_answers_autoincrement"
down_revision = "0007_event_replies"
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "answers", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass  # the rebuild itself is the change


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
