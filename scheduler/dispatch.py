"""Dispatch: claim due outbox rows, send them through injected handlers, record the result.

Nothing lost, nothing twice:

* **Claim atomically.** On PostgreSQL, ``SELECT … FOR UPDATE SKIP LOCKED`` picks rows no other
  dispatcher holds; on SQLite a conditional ``UPDATE … WHERE id = ? AND status = 'pending'``
  (or a dead holder) wins for exactly one claimer. A claim sets ``claimed_by`` and a lease
  (``claimed_until``) and commits before anything is sent.
* **Count what was tried.** Just before the handler runs, the attempt is counted and an
  ``outbox_sends`` marker is written; the marker goes when the outcome is recorded
  (:mod:`scheduler.outcomes`). A claimed row without a marker was never tried: taking it back
  costs no attempt and cannot duplicate.
* **Dead holders are noticed in seconds.** Every dispatcher refreshes a heartbeat row
  (``scheduler.leader.beat``). A claim whose holder's heartbeat is older than ``dead_after``
  (30 s), or whose lease ended, is taken back.
* **Send, then commit at once.** The handler returns the channel's message id; the row becomes
  ``sent`` in its own short transaction immediately after.
* **The one unavoidable window.** If the process dies after the channel's API accepted a message
  and before that commit (milliseconds), another attempt sends it again. Rapport prefers a rare
  duplicate to a lost invitation; such a reclaim (marker present) is logged with the row id.
* **Retry with backoff.** ``RetryLater`` (429, 5xx, timeouts) puts the row back with
  ``not_before`` after ``retry_after`` when the API said so, else exponential backoff with jitter,
  up to ``max_attempts``. ``PermanentFailure`` marks it ``failed``, ``Unreachable`` marks it
  ``skipped``, both with the reason. ``DeliveryUnknown`` (the platform took the request and did
  not answer in time) marks it ``unknown``: it may have arrived, so it is never sent again.
* **Pacing is the channel's.** Each channel transport keeps its platform's rate; the dispatcher
  hands rows over ``concurrency`` at a time and honours ``retry_after``.
* **A decent hour, even late.** A row is checked against the person's send window when it is
  claimed; outside it, it waits for the next opening; past ``not_after`` it is skipped. So after
  downtime each missed message goes out once, at a decent hour, or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from memory.db import transaction
from memory.errors import DeliveryError, DeliveryUnknown, PermanentFailure, RetryLater, Unreachable
from memory.models import OutboxMessage
from scheduler.claims import set_aside, take_back
from scheduler.handlers import Handler, NotNow, SkipMessage
from scheduler.leader import DEAD_AFTER, HEARTBEAT_EVERY, beat, live_workers
from scheduler.outcomes import Outcomes
from scheduler.plans import ProgramSchedule

log = logging.getLogger(__name__)

# The handler contract lives in scheduler.handlers; these names stay importable from here.
__all__ = ["DispatchReport", "DispatchSettings", "Dispatcher", "Handler", "NotNow", "SkipMessage"]


@dataclass(frozen=True, kw_only=True)
class DispatchSettings:
    batch_size: int = 50
    # Sends in flight at once per process (each channel's transport keeps its own rate).
    concurrency: int = 8
    # A claim is taken back when its lease ends, or sooner when its holder's heartbeat stops.
    lease: dt.timedelta = dt.timedelta(minutes=5)
    heartbeat_every: dt.timedelta = HEARTBEAT_EVERY
    dead_after: dt.timedelta = DEAD_AFTER
    max_attempts: int = 8
    retry_base: dt.timedelta = dt.timedelta(seconds=30)
    retry_max: dt.timedelta = dt.timedelta(hours=1)
    # A handler that takes longer counts as a timeout (RetryLater).
    send_timeout: float = 60.0


@dataclass
class DispatchReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0
    released: int = 0
    unknown: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.skipped + self.deferred + self.released + self.unknown


class Dispatcher:
    """Claims and sends outbox rows. Any number may run, in one process or many."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        worker_id: str,
        programs: Mapping[str, ProgramSchedule] | None = None,
        settings: DispatchSettings | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.worker_id = worker_id
        self.programs = dict(programs or {})
        self.settings = settings or DispatchSettings()
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.record = Outcomes(sessions=sessions, worker_id=worker_id)
        self._program_names: dict[int, str] = {}
        self.stopping = False
        # Rows the last claim rescheduled (outside the window) or skipped (too late) instead.
        self.last_claim_set_aside = 0

    def register(self, kind: str, handler: Handler) -> None:
        self.handlers[kind] = handler

    # Claiming ---------------------------------------------------------------------------------

    def claim(self, now: dt.datetime) -> list[OutboxMessage]:
        """Claim up to ``batch_size`` due rows (and rows of dead holders) for this worker."""
        abandoned = or_(
            OutboxMessage.claimed_until < now,
            OutboxMessage.claimed_by.not_in(live_workers(now, self.settings.dead_after)),
        )
        claimable = or_(
            and_(OutboxMessage.status == "pending", OutboxMessage.not_before <= now),
            and_(OutboxMessage.status == "claimed", abandoned),
        )
        kinds = list(self.handlers)
        claimed: list[int] = []
        self.last_claim_set_aside = 0
        with transaction(self.sessions) as s:
            beat(s, self.worker_id, now)
            query = (
                select(OutboxMessage)
                .where(claimable, OutboxMessage.kind.in_(kinds))
                .order_by(OutboxMessage.not_before, OutboxMessage.id)
                .limit(self.settings.batch_size)
            )
            if s.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for row in s.scalars(query).all():
                if row.status == "claimed":
                    take_back(s, row)
                if set_aside(s, row, now, self.programs, self._program_names):
                    self.last_claim_set_aside += 1
                    continue
                won = s.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, claimable)
                    .values(
                        status="claimed",
                        claimed_by=self.worker_id,
                        claimed_until=now + self.settings.lease,
                    )
                    .execution_options(synchronize_session=False)
                )
                if won.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(row.id)
        if not claimed:
            return []
        with self.sessions() as s:
            rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(claimed))))
            s.expunge_all()
        return sorted(rows, key=lambda r: (r.not_before, r.id))

    def heartbeat_now(self) -> None:
        with transaction(self.sessions) as s:
            beat(s, self.worker_id, self.clock())

    async def heartbeat(self, stop: asyncio.Event) -> None:
        """Refresh this worker's heartbeat until ``stop`` is set (a database hiccup is retried)."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.heartbeat_now)
            except Exception:
                log.warning("heartbeat failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.heartbeat_every.total_seconds())

    # Sending ----------------------------------------------------------------------------------

    async def dispatch_once(self) -> DispatchReport:
        """Claim one batch and send it. Returns what happened."""
        report = DispatchReport()
        now = self.clock()
        rows = await asyncio.to_thread(self.claim, now)
        report.deferred += self.last_claim_set_aside
        if not rows:
            return report
        gate = asyncio.Semaphore(self.settings.concurrency)

        async def one(row: OutboxMessage) -> None:
            async with gate:
                await self._send(row, report)

        await asyncio.gather(*(one(r) for r in rows))
        return report

    async def _send(self, row: OutboxMessage, report: DispatchReport) -> None:
        if self.stopping:
            await asyncio.to_thread(self.record.release, row)
            report.released += 1
            return
        handler = self.handlers[row.kind]
        if not await asyncio.to_thread(self.record.begin, row, self.clock()):
            log.warning("the claim was taken back before its send began", extra={"outbox_id": row.id})
            return
        try:
            ref = await asyncio.wait_for(handler(row), timeout=self.settings.send_timeout)
        except SkipMessage as exc:
            await asyncio.to_thread(self.record.finish, row, "skipped", exc.reason)
            report.skipped += 1
        except NotNow as exc:
            report.deferred += await asyncio.to_thread(self._retry, row, exc.reason, exc.retry_after, False)
        except DeliveryUnknown as exc:
            # The platform took the request and never answered: the message may have arrived.
            # Sending it again could deliver it twice, so it is recorded, not retried; the
            # check-in it opened stays open and its reminder follows as usual.
            await asyncio.to_thread(self.record.finish, row, "unknown", exc.reason)
            report.unknown += 1
        except RetryLater as exc:
            report.retried += await asyncio.to_thread(self._retry, row, exc.reason, exc.retry_after)
        except TimeoutError:
            report.retried += await asyncio.to_thread(self._retry, row, "timed out", None)
        except Unreachable as exc:
            await asyncio.to_thread(self.record.finish, row, "skipped", f"unreachable: {exc.reason}")
            report.skipped += 1
        except PermanentFailure as exc:
            await asyncio.to_thread(self.record.finish, row, "failed", exc.reason)
            report.failed += 1
        except DeliveryError as exc:
            report.retried += await asyncio.to_thread(self._retry, row, exc.reason, None)
        except Exception:
            log.exception("handler crashed; the row will be retried", extra={"outbox_id": row.id, "kind": row.kind})
            report.retried += await asyncio.to_thread(self._retry, row, "internal error (see logs)", None)
        else:
            await asyncio.to_thread(self.record.sent, row, ref, self.clock())
            report.sent += 1

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt: exponential, capped, with jitter (50-100 %)."""
        base = self.settings.retry_base.total_seconds() * 2 ** max(0, attempts - 1)
        return min(base, self.settings.retry_max.total_seconds()) * self.rng.uniform(0.5, 1.0)

    def _retry(self, row: OutboxMessage, reason: str, retry_after: float | None, counts: bool = True) -> int:
        """Put the row back for later; 1 if it will be retried, 0 if it gave up.

        ``counts=False`` gives the attempt back: nothing was tried (the channel is off here).
        """
        now = self.clock()
        if counts and row.attempts >= self.settings.max_attempts:
            self.record.finish(row, "failed", f"gave up after {row.attempts} attempts: {reason}")
            return 0
        delay = retry_after if retry_after is not None else self.backoff(row.attempts)
        when = now + dt.timedelta(seconds=max(0.0, delay))
        if row.not_after is not None and when >= row.not_after:
            self.record.finish(row, "skipped", f"no time left to retry before it expires: {reason}")
            return 0
        self.record.put_back(row, reason, when=when, counts=counts)
        log.info(
            "retry later",
            extra={"outbox_id": row.id, "attempts": row.attempts, "delay_s": round(delay, 3), "reason": reason},
        )
        return 1

    # Loop -------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, idle_seconds: float = 2.0) -> None:
        """Dispatch until ``stop`` is set; in-flight sends finish, unstarted claims go back.

        The next batch is claimed while the last one is still being sent (as soon as no more
        than ``concurrency`` of its rows are left), so the channel's pace never waits for a batch
        to drain: at a batch boundary the slowest send of the batch would otherwise hold up the
        rest (a 10,000-row wave at Telegram's 30/s ran at 0.8 of it).
        """
        gate = asyncio.Semaphore(self.settings.concurrency)
        in_hand: set[asyncio.Task[None]] = set()

        async def one(row: OutboxMessage, report: DispatchReport) -> None:
            async with gate:
                try:
                    await self._send(row, report)
                except Exception:
                    # A database error recording the outcome: the claim stays and is taken back later.
                    log.exception("dispatch failed for a row", extra={"outbox_id": row.id})

        while not stop.is_set():
            if len(in_hand) > self.settings.concurrency:
                await asyncio.wait(in_hand, return_when=asyncio.FIRST_COMPLETED)
                continue
            report = DispatchReport()
            try:
                rows = await asyncio.to_thread(self.claim, self.clock())
            except Exception:
                log.exception("dispatch failed; trying again shortly")
                rows = []
            for row in rows:
                task = asyncio.create_task(one(row, report))
                in_hand.add(task)
                task.add_done_callback(in_hand.discard)
            if rows or self.last_claim_set_aside:
                continue
            # Nothing due: wait for a send to finish (it may free a row) or for the idle pause.
            waiting = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiting, *in_hand}, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
        if in_hand:
            await asyncio.gather(*in_hand)

    def pending_now(self, now: dt.datetime) -> int:
        """Rows that are due or in flight now (what ``--until-idle`` waits for)."""
        with self.sessions() as s:
            return len(
                s.scalars(
                    select(OutboxMessage.id)
                    .where(
                        OutboxMessage.kind.in_(list(self.handlers)),
                        or_(
                            and_(OutboxMessage.status == "pending", OutboxMessage.not_before <= now),
                            OutboxMessage.status == "claimed",
                        ),
                    )
                    .limit(1000)
                ).all()
            )
