"""index check-ins and answers for digests over all owners: completed in a period, each person's
last completed check-in per program before it, and each check-in's rating

``(status, completed_at)`` turns "completed in the period" into a range instead of a scan of every
completed check-in; ``(person_id, program_id, completed_at, status)`` covers "the last one
before the period" of every person and program, read from the index alone; and
``answers (checkin_id, kind, skipped, rating)`` gives each check-in's first rating without reading
the answer rows (which carry the embeddings).

Revision ID: 0006_digest_indexes
Revises: 0005_wave_views
"""

from __future__ import annotations

from alembic import op

revision = "0006_digest_indexes"
down_revision = "0005_wave_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_checkins_completed", "checkins", ["status", "completed_at"], unique=False)
    op.create_index("ix_answers_rating", "answers", ["checkin_id", "kind", "skipped", "rating"], unique=False)
    op.create_index("ix_checkins_person_completed", "checkins", ["person_id", "program_id", "completed_at", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_answers_rating", table_name="answers")
    op.drop_index("ix_checkins_person_completed", table_name="checkins")
    op.drop_index("ix_checkins_completed", table_name="checkins")
