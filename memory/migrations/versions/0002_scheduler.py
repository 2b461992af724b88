"""scheduler: absences (out of office), the SQLite scheduling lease, an index for expiry

Revision ID: 0002_scheduler
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_scheduler"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "absences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_absences_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_absences")),
    )
    op.create_index(op.f("ix_absences_person_id"), "absences", ["person_id"], unique=False)
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )
    # Reminders and expiry look for open check-ins by their deadline.
    op.create_index("ix_checkins_expires", "checkins", ["status", "expires_at"], unique=False)
    # Status reports count the outbox per wave.
    op.create_index("ix_outbox_wave", "outbox", ["wave_id", "kind", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_wave", table_name="outbox")
    op.drop_index("ix_checkins_expires", table_name="checkins")
    op.drop_table("scheduler_leases")
    op.drop_index(op.f("ix_absences_person_id"), table_name="absences")
    op.drop_table("absences")
