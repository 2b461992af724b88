"""owner identities (owners record promises from chat)

Revision ID: 0002_promises
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_promises"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owner_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["owners.id"], name=op.f("fk_owner_identities_owner_id_owners"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_identities")),
        sa.UniqueConstraint("channel", "workspace", "external_id", name="uq_owner_identity_external"),
    )
    with op.batch_alter_table("owner_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_owner_identities_owner_id"), ["owner_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("owner_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_owner_identities_owner_id"))
    op.drop_table("owner_identities")
