"""Tables of the scheduler: time away, the SQLite scheduling lease, heartbeats, outbox contents.

The outbox, waves and check-ins themselves live in :mod:`memory.models`; these add what the
scheduler needs to decide *when* (see ``docs/scheduler.md``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from memory.crypto import EncryptedJSON
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


class WorkerHeartbeat(Base):
    """One row per running dispatcher process, refreshed every few seconds.

    A claim whose holder's heartbeat is older than ``dead_after`` belongs to a dead process and is
    taken back at once, instead of waiting for the claim's lease (see ``scheduler.dispatch``).
    """

    __tablename__ = "worker_heartbeats"

    worker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    seen_at: Mapped[dt.datetime]


class OutboxSend(Base):
    """A send of an outbox row has started (and may have reached the person).

    Written just before the handler runs, removed when the attempt's outcome is recorded. A claimed
    row without one was never tried: taking it back costs no attempt and means no duplicate.
    """

    __tablename__ = "outbox_sends"

    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[dt.datetime]


class OutboxContent(Base):
    """The message an outbox row carries, stored the first time it is prepared.

    A retry sends exactly this, never a re-rendering from later state. ``body`` holds the address
    and the rendered messages (``bot.delivery``), or the rendered digest (``bot.digests``).
    """

    __tablename__ = "outbox_contents"

    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)
    prepared_at: Mapped[dt.datetime]
