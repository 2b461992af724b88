"""Exactly one scheduler at a time, and which dispatching processes are alive.

On PostgreSQL the leader holds a session-level advisory lock (``pg_try_advisory_lock``) on a
connection of its own. Nothing else runs on that connection, so the lock lives exactly as long
as the process (or its connection): when the leader dies, PostgreSQL releases the lock and the
next process to try takes over, within one tick.

On SQLite one process is assumed; a lease row (``scheduler_leases``) still keeps an accidental
second process from planning at the same time, and is taken over when it is not renewed.

Either way, correctness does not rest on the lock: every planned row has a unique key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Select, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from memory.db import transaction
from memory.models_scheduler import SchedulerLease, WorkerHeartbeat

log = logging.getLogger(__name__)

LOCK_NAME = "rapport:scheduler"


def lock_id(name: str = LOCK_NAME) -> int:
    """A stable signed 64-bit advisory lock id for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Leadership(Protocol):
    is_leader: bool

    def acquire(self, now: dt.datetime) -> bool:
        """Become or stay leader; True while this process may schedule. Blocking (use a thread)."""
        ...

    def release(self) -> None: ...


class AdvisoryLockLeader:
    """PostgreSQL: a session advisory lock held on a dedicated connection."""

    def __init__(self, engine: Engine, *, name: str = LOCK_NAME) -> None:
        self.engine = engine
        self.key = lock_id(name)
        self._conn: Connection | None = None
        self.is_leader = False
        # The tick and leader-only jobs ask from worker threads; a connection serves one at a time.
        self._lock = threading.Lock()

    def acquire(self, now: dt.datetime) -> bool:
        with self._lock:
            return self._acquire()

    def _acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("lost the scheduler lock connection; standing by")
                self._drop()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        except Exception:
            conn.close()
            raise
        if got:
            self._conn = conn
            self.is_leader = True
            log.info("scheduler leader: this process schedules")
        else:
            conn.close()
        return got

    def _drop(self) -> None:
        conn, self._conn, self.is_leader = self._conn, None, False
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                log.debug("closing a dead lock connection failed", exc_info=True)

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.close()
            except Exception:
                log.warning("releasing the scheduler lock failed; it goes with the connection")
            self._conn, self.is_leader = None, False


class LeaseLeader:
    """Other databases (SQLite): a lease row renewed on every tick."""

    def __init__(
        self, sessions: sessionmaker[Session], *, holder: str, ttl: dt.timedelta, name: str = LOCK_NAME
    ) -> None:
        self.sessions = sessions
        self.holder = holder
        self.ttl = ttl
        self.name = name
        self.is_leader = False
        self._lock = threading.Lock()

    def acquire(self, now: dt.datetime) -> bool:
        # The tick and leader-only jobs ask from worker threads at the same moment; one at a time.
        with self._lock:
            try:
                got = self._acquire(now)
            except IntegrityError:
                # Another process created the lease row between our read and our insert.
                got = self._acquire(now)
        if got and not self.is_leader:
            log.info("scheduler leader: this process schedules")
        self.is_leader = got
        return got

    def _acquire(self, now: dt.datetime) -> bool:
        with transaction(self.sessions) as s:
            lease = s.scalar(select(SchedulerLease).where(SchedulerLease.name == self.name))
            if lease is None:
                s.add(SchedulerLease(name=self.name, holder=self.holder, until=now + self.ttl))
                return True
            if lease.holder == self.holder or lease.until < now:
                lease.holder, lease.until = self.holder, now + self.ttl
                return True
            return False

    def release(self) -> None:
        if not self.is_leader:
            return
        with transaction(self.sessions) as s:
            lease = s.get(SchedulerLease, self.name)
            if lease is not None and lease.holder == self.holder:
                s.delete(lease)
        self.is_leader = False


def make_leader(
    engine: Engine, sessions: sessionmaker[Session], *, holder: str, ttl: dt.timedelta
) -> AdvisoryLockLeader | LeaseLeader:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeader(engine)
    return LeaseLeader(sessions, holder=holder, ttl=ttl)


# Heartbeats -----------------------------------------------------------------------------------
# Every dispatching process refreshes its row every few seconds. A claim held by a process whose
# heartbeat is older than ``dead_after`` is taken back at once (``scheduler.dispatch``): after a
# kill -9 the restarted process, or any other, sends the dead one's rows within ~30 s instead of
# waiting for their lease.

HEARTBEAT_EVERY = dt.timedelta(seconds=5)
DEAD_AFTER = dt.timedelta(seconds=30)


def beat(s: Session, worker_id: str, now: dt.datetime) -> None:
    """Record that ``worker_id`` is alive (inside the caller's transaction); an upsert, because
    one process's claim and heartbeat threads may both write it at once."""
    insert = postgresql.insert if s.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(WorkerHeartbeat).values(worker_id=worker_id, seen_at=now)
    s.execute(stmt.on_conflict_do_update(index_elements=["worker_id"], set_={"seen_at": stmt.excluded.seen_at}))


def live_workers(now: dt.datetime, dead_after: dt.timedelta = DEAD_AFTER) -> Select[Any]:
    """The workers whose heartbeat is fresh, as a subquery for claims."""
    return select(WorkerHeartbeat.worker_id).where(WorkerHeartbeat.seen_at >= now - dead_after)


def forget(sessions: sessionmaker[Session], worker_id: str) -> None:
    """A clean stop: drop the heartbeat row (its unstarted claims were already given back)."""
    with transaction(sessions) as s:
        s.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.worker_id == worker_id))
