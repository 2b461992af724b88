"""waves remember whether an operator cancelled them

``rapport wave close`` and ``rapport wave cancel`` both set ``closed_at``, so a cancelled wave was
listed as closed. ``cancelled_at`` tells them apart. A wave cancelled before this revision is
recognised by the messages its cancel dropped (``last_error`` "wave cancelled"); one whose cancel
dropped nothing left no mark and stays listed as closed.

Revision ID: 0009_wave_cancelled
Revises: 0008_answers_autoincrement
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_wave_cancelled"
down_revision = "0008_answers_autoincrement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE waves SET cancelled_at = closed_at WHERE closed_at IS NOT NULL AND id IN "
        "(SELECT wave_id FROM outbox WHERE last_error = 'wave cancelled')"
    )


def downgrade() -> None:
    with op.batch_alter_table("waves", schema=None) as batch_op:
        batch_op.drop_column("cancelled_at")
