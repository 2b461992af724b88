"""processed events remember when their replies went out

A Telegram update whose answer was stored but whose reply was never sent (the process died in
between) is delivered again after a restart; ``replied_at`` NULL lets the engine show that
person where the conversation stands instead of ignoring the redelivery. Events processed
before this revision count as replied.

Revision ID: 0007_event_replies
Revises: 0006_digest_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_event_replies"
down_revision = "0006_digest_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE processed_events SET replied_at = processed_at")


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_column("replied_at")
