"""What became of a claimed outbox row, written only while this worker still holds the claim.

Used by :class:`scheduler.dispatch.Dispatcher`, which decides the outcome (from what its handler
returned or raised, and its retry rules); this module writes it, each in its own short
transaction:

* **begin**: just before the handler runs, the attempt is counted and an ``outbox_sends`` marker is
  written. A claimed row without a marker was never tried: taking it back
  (:func:`scheduler.claims.take_back`) costs no attempt and cannot duplicate.
* **sent**, **finish** (``failed``, ``skipped``, ``unknown``), **put back** (a retry later): the
  outcome is recorded and the marker goes, in one transaction.
* **release**: an unstarted claim goes back on shutdown; nothing was attempted.

Every write is conditional on the claim still being this worker's (:meth:`Outcomes.mine`): a
claim taken back meanwhile is someone else's now, and their record wins.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import ColumnElement, and_, delete, update
from sqlalchemy.orm import Session, sessionmaker

from memory.db import transaction
from memory.models import Checkin, OutboxMessage
from memory.models_scheduler import OutboxSend

# The dispatcher's log: these lines are part of its story (as in scheduler.claims).
log = logging.getLogger("scheduler.dispatch")


class Outcomes:
    """Records outcomes of the rows ``worker_id`` claimed."""

    def __init__(self, *, sessions: sessionmaker[Session], worker_id: str) -> None:
        self.sessions = sessions
        self.worker_id = worker_id

    def mine(self, row: OutboxMessage) -> ColumnElement[bool]:
        """The row, while it is still claimed by this worker."""
        return and_(
            OutboxMessage.id == row.id, OutboxMessage.status == "claimed", OutboxMessage.claimed_by == self.worker_id
        )

    def begin(self, row: OutboxMessage, now: dt.datetime) -> bool:
        """Count the attempt and mark that a send has started; False if the claim was lost."""
        with transaction(self.sessions) as s:
            won = s.execute(
                update(OutboxMessage)
                .where(self.mine(row))
                .values(attempts=OutboxMessage.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if won.rowcount != 1:  # type: ignore[attr-defined]
                return False
            s.execute(delete(OutboxSend).where(OutboxSend.outbox_id == row.id))
            s.add(OutboxSend(outbox_id=row.id, worker_id=self.worker_id, started_at=now))
        row.attempts += 1
        return True

    @staticmethod
    def _ended(s: Session, row: OutboxMessage) -> None:
        """The attempt's outcome is recorded: it is no longer a send that may be under way."""
        s.execute(delete(OutboxSend).where(OutboxSend.outbox_id == row.id))

    def sent(self, row: OutboxMessage, ref: str | None, now: dt.datetime) -> None:
        with transaction(self.sessions) as s:
            done = s.execute(
                update(OutboxMessage)
                .where(self.mine(row))
                .values(status="sent", sent_at=now, external_ref=ref, claimed_until=None, last_error=None)
                .execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                log.warning("sent, but the lease was lost meanwhile", extra={"outbox_id": row.id})
                return
            self._ended(s, row)
            if row.kind == "reminder" and row.checkin_id is not None:
                n = int(row.payload.get("n", 0)) if isinstance(row.payload, dict) else 0
                checkin = s.get(Checkin, row.checkin_id)
                if checkin is not None:
                    checkin.reminders_sent = max(checkin.reminders_sent, n or checkin.reminders_sent + 1)
        log.info("sent", extra={"outbox_id": row.id, "kind": row.kind, "channel": row.channel})

    def finish(self, row: OutboxMessage, status: str, reason: str) -> None:
        """Not delivered, and not to be tried again: ``failed``, ``skipped`` or ``unknown``."""
        with transaction(self.sessions) as s:
            s.execute(
                update(OutboxMessage)
                .where(self.mine(row))
                .values(status=status, last_error=reason[:500], claimed_until=None)
                .execution_options(synchronize_session=False)
            )
            self._ended(s, row)
        log.warning("not delivered", extra={"outbox_id": row.id, "kind": row.kind, "status": status, "reason": reason})

    def put_back(self, row: OutboxMessage, reason: str, *, when: dt.datetime, counts: bool) -> None:
        """Pending again from ``when``; ``counts=False`` gives the attempt back (nothing was tried)."""
        with transaction(self.sessions) as s:
            s.execute(
                update(OutboxMessage)
                .where(self.mine(row))
                .values(
                    status="pending",
                    not_before=when,
                    claimed_by=None,
                    claimed_until=None,
                    last_error=reason[:500],
                    attempts=OutboxMessage.attempts - (0 if counts else 1),
                )
                .execution_options(synchronize_session=False)
            )
            self._ended(s, row)

    def release(self, row: OutboxMessage) -> None:
        """Give an unstarted claim back (shutting down): nothing was attempted."""
        with transaction(self.sessions) as s:
            s.execute(
                update(OutboxMessage)
                .where(self.mine(row))
                .values(status="pending", claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)
            )
