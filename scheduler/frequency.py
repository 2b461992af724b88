"""How often one person may be invited, across all their programs (a contact-frequency rule).

Someone in the customer program and the beta panel should not get two invitations in one week
because each program's own cadence happened to fall there. ``scheduler.contact_gap_days``
(default 14, 0 turns it off) is the least time between two invitations to one person from
different programs. Reminders do not count, and a program's own cadence is its own business.

The planner asks :func:`earliest_allowed` before it writes a scheduled invitation: a person
invited elsewhere too recently (or with an invitation elsewhere still waiting to go out) is
*held back*. Their invitation waits until the gap has passed if that is still inside the wave;
otherwise it is skipped with :data:`HELD_BACK`. ``rapport status`` shows both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.models import OutboxMessage

#: The reason on an invitation the contact limit delayed (pending) or skipped.
HELD_BACK = "held back: invited by another program too recently"
_COUNTED = ("pending", "claimed", "sent")


def earliest_allowed(
    s: Session, *, person_ids: Sequence[int], program_id: int, gap: dt.timedelta, now: dt.datetime
) -> dict[int, dt.datetime]:
    """Per person with an invitation from another program within ``gap`` of now (or planned
    later), the first moment a new invitation may go out. People not listed are free."""
    if gap <= dt.timedelta(0) or not person_ids:
        return {}
    rows = s.execute(
        select(OutboxMessage.person_id, func.max(OutboxMessage.not_before))
        .where(
            OutboxMessage.kind == "invitation",
            OutboxMessage.person_id.in_(person_ids),
            OutboxMessage.program_id != program_id,
            OutboxMessage.status.in_(_COUNTED),
            OutboxMessage.not_before > now - gap,
        )
        .group_by(OutboxMessage.person_id)
    )
    return {person_id: last + gap for person_id, last in rows if person_id is not None and last is not None}
