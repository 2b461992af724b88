"""wave views: what owners may see of a closed anonymous wave, fixed at close; comment threshold

Revision ID: 0005_wave_views
Revises: 0004_merge
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_wave_views"
down_revision = "0004_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wave_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wave_id", sa.Integer(), nullable=False),
        sa.Column("slice", sa.String(length=120), nullable=False),
        sa.Column("view", sa.JSON(), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["wave_id"], ["waves.id"], name=op.f("fk_wave_views_wave_id_waves"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wave_views")),
        sa.UniqueConstraint("wave_id", "slice", name="uq_wave_view"),
    )
    with op.batch_alter_table("wave_views", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_wave_views_wave_id"), ["wave_id"], unique=False)
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("k_comments", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("programs", schema=None) as batch_op:
        batch_op.drop_column("k_comments")
    with op.batch_alter_table("wave_views", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_wave_views_wave_id"))
    op.drop_table("wave_views")
