"""Exactly one scheduler: the PostgreSQL advisory lock with takeover, and the SQLite lease."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from memory import db
from scheduler.leader import AdvisoryLockLeader, LeaseLeader, lock_id, make_leader

NOW = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    db.migrate(engine)
    yield engine
    engine.dispose()


def test_one_leader_and_takeover_when_it_dies(engine: Engine) -> None:
    sessions = db.make_sessionmaker(engine)
    a = make_leader(engine, sessions, holder="a", ttl=dt.timedelta(seconds=90))
    b = make_leader(engine, sessions, holder="b", ttl=dt.timedelta(seconds=90))
    assert a.acquire(NOW) is True
    assert b.acquire(NOW) is False
    assert a.acquire(NOW + dt.timedelta(seconds=30)) is True  # still the leader
    assert (a.is_leader, b.is_leader) == (True, False)
    if isinstance(a, AdvisoryLockLeader):
        # The leader's process dies: PostgreSQL closes its session and drops the lock with it,
        # once its server process has seen the connection go (a moment later, not at once): the
        # other process takes over at one of its next ticks.
        assert a._conn is not None
        a._conn.invalidate()
        later = NOW
        deadline = time.monotonic() + 20
        while not b.acquire(later) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        assert isinstance(a, LeaseLeader)
        later = NOW + dt.timedelta(seconds=200)  # the lease was not renewed
    assert b.acquire(later) is True
    assert a.acquire(later) is False
    assert a.is_leader is False
    b.release()
    assert a.acquire(later) is True
    a.release()


def test_a_released_lock_is_free_at_once(engine: Engine) -> None:
    sessions = db.make_sessionmaker(engine)
    a = make_leader(engine, sessions, holder="a", ttl=dt.timedelta(seconds=90))
    b = make_leader(engine, sessions, holder="b", ttl=dt.timedelta(seconds=90))
    assert a.acquire(NOW)
    a.release()
    assert b.acquire(NOW)
    b.release()


def test_lock_ids_are_stable_signed_64_bit() -> None:
    assert lock_id("rapport:scheduler") == lock_id("rapport:scheduler")
    assert -(2**63) <= lock_id("x") < 2**63


@pytest.mark.slow
def test_advisory_lock_is_released_when_the_holding_process_is_killed(db_url: str, engine: Engine) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time, datetime as dt\n"
            "from memory import db\n"
            "from scheduler.leader import AdvisoryLockLeader\n"
            "e = db.make_engine(sys.argv[1])\n"
            "assert AdvisoryLockLeader(e).acquire(dt.datetime.now(dt.UTC))\n"
            "print('leader', flush=True)\n"
            "time.sleep(600)\n"
        ), db_url],
        stdout=subprocess.PIPE, cwd=os.getcwd(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"leader"
        standby = AdvisoryLockLeader(engine)
        assert standby.acquire(NOW) is False
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 30
        while not standby.acquire(NOW) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert standby.is_leader
        standby.release()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_the_tick_and_a_job_asking_at_once_do_not_fail(engine: Engine) -> None:
    """At start the tick and leader-only jobs ask from two worker threads on an empty table."""
    from concurrent.futures import ThreadPoolExecutor

    sessions = db.make_sessionmaker(engine)
    for attempt in range(5):
        leader = make_leader(engine, sessions, holder=f"p{attempt}", ttl=dt.timedelta(seconds=90))
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: leader.acquire(NOW), range(2)))
        assert results == [True, True]
        leader.release()
