"""Real processes: kill -9 in the middle of a wave, restart, and two dispatchers on PostgreSQL.

Each test runs the real runner (``tests/scheduler/service_main.py``) in a subprocess whose fake
Telegram channel appends every accepted send to a file. The only way to send twice is the
documented crash window (killed after the API accepted a message and before the row's commit),
so the kill test allows a duplicate only for a row that was in flight at the moment of the kill.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from bot.app import App
from bot.runner import schedules_from_config
from memory.db import transaction
from memory.models import OutboxMessage, Person
from scheduler.planner import Planner
from tests.clock import EPOCH, START, now
from tests.conftest import ROOT
from tests.scheduler.conftest import add_people

pytestmark = pytest.mark.slow

ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
FAST = {"lease_seconds": 5, "batch_size": 4, "concurrency": 4, "rate_per_second": {"telegram": 1000}}


def write_config(app: App, path: Path) -> Path:
    path.write_text(yaml.safe_dump(app.config.model_dump(mode="json")), encoding="utf-8")
    return path


def spawn(config: Path, database: str, record: Path, delay: float, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scheduler.service_main", "--config", str(config), "--database", database,
         "--record", str(record), "--delay", str(delay), "--clock", START.isoformat(), "--epoch", repr(EPOCH)],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def lines(record: Path) -> list[str]:
    if not record.exists():
        return []
    return [line.split()[0] for line in record.read_text().splitlines() if line.strip()]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def outbox(app: App) -> list[tuple[str, str, int]]:
    with transaction(app.sessions) as s:
        return [
            (key, status, attempts)
            for key, status, attempts in s.execute(
                select(Person.key, OutboxMessage.status, OutboxMessage.attempts)
                .join(Person, Person.id == OutboxMessage.person_id)
                .order_by(Person.key)
            )
        ]


def start_wave(app: App, n: int) -> list[str]:
    keys = add_people(app, n, now=now() - dt.timedelta(days=1))
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config)).start_wave(program="pulse", now=now())
    return keys


def test_kill_9_mid_wave_then_restart_reaches_everyone_once(
    scheduled_app: Callable[..., App], db_url: str, tmp_path: Path
) -> None:
    app = scheduled_app(window=ALL_DAY, scheduler=FAST)
    keys = start_wave(app, 40)
    config = write_config(app, tmp_path / "config.yaml")
    record, log = tmp_path / "sends.txt", tmp_path / "service.log"

    first = spawn(config, db_url, record, 0.1, log)
    try:
        wait_for(lambda: len(lines(record)) >= 8, 60, "the first sends")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    before = Counter(lines(record))
    in_flight = {key for key, status, _ in outbox(app) if status == "claimed"}
    assert 8 <= sum(before.values()) < 40, "the kill must land in the middle of the wave"

    second = spawn(config, db_url, record, 0.01, log)
    assert second.wait(120) == 0, log.read_text()[-3000:]

    delivered = Counter(lines(record))
    assert set(delivered) == {f"chat-{k}" for k in keys}  # nobody skipped
    twice = {chat for chat, n in delivered.items() if n > 1}
    # A second send can only be a row that was in flight at the kill (the documented window).
    assert twice <= {f"chat-{k}" for k in in_flight}
    assert max(delivered.values()) <= 2
    rows = outbox(app)
    assert {status for _, status, _ in rows} == {"sent"}
    assert len(rows) == 40


@pytest.mark.postgres
def test_two_processes_on_postgresql_share_a_wave_without_duplicates(
    scheduled_app: Callable[..., App], db_url: str, tmp_path: Path
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("the shared-dispatch test needs PostgreSQL")
    app = scheduled_app(window=ALL_DAY, scheduler=FAST)
    keys = start_wave(app, 60)
    config = write_config(app, tmp_path / "config.yaml")
    record, log = tmp_path / "sends.txt", tmp_path / "service.log"
    procs = [spawn(config, db_url, record, 0.25, log) for _ in range(2)]
    try:
        codes = [p.wait(120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0, 0], log.read_text()[-3000:]
    delivered = Counter(lines(record))
    assert set(delivered) == {f"chat-{k}" for k in keys}
    assert set(delivered.values()) == {1}  # 0 duplicates
    # Both processes did part of the work.
    pids = Counter(line.split()[1] for line in record.read_text().splitlines())
    assert len(pids) == 2, pids
    assert {status for _, status, _ in outbox(app)} == {"sent"}
