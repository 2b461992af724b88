"""Merge the 0002 branches added beside 0003 (channel marks, digest indexes, outbox contents, web)
into one head.

They were written side by side and touch different tables, so the merge changes nothing: it only
gives the database one revision, which `rapport init` reports and later migrations build on.

Revision ID: 0004_merge
Revises: 0003_merge, 0002_channel_marks, 0002_digest_indexes, 0002_outbox_contents, 0002_web
"""

from __future__ import annotations

revision = "0004_merge"
down_revision = ("0003_merge", "0002_channel_marks", "0002_digest_indexes", "0002_outbox_contents", "0002_web")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
