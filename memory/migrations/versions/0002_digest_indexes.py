"""index people.owner_id: a digest reads one owner's people (a full scan per owner before)

Revision ID: 0002_digest_indexes
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002_digest_indexes"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_people_owner_id", "people", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_people_owner_id", table_name="people")
