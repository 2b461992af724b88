"""Merge the three 0002 branches (promises, scheduler, slack) into one head.

They were written side by side and touch different tables, so the merge changes nothing: it
only gives the database one revision, which `rapport init` reports and later migrations build on.

Revision ID: 0003_merge
Revises: 0002_promises, 0002_scheduler, 0002_slack
"""

from __future__ import annotations

revision = "0003_merge"
down_revision = ("0002_promises", "0002_scheduler", "0002_slack")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
