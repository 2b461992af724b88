"""Tables of the scheduler: people's time away, and the scheduling lease on SQLite.

The outbox, waves and check-ins themselves live in :mod:`memory.models`; these add what the
scheduler needs to decide *when* (see ``docs/scheduler.md``).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from memory.models import Base


class Absence(Base):
    """A person's out-of-office dates (inclusive, in their own calendar): nothing is sent then."""

    __tablename__ = "absences"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime]


class SchedulerLease(Base):
    """Who schedules, on databases without advisory locks (SQLite: one process is assumed)."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    until: Mapped[dt.datetime]
