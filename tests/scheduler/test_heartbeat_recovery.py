"""After kill -9, the restarted process sends the dead one's claimed rows within ~30 s, not after
the 300 s lease: the dead process's heartbeat stops, and its claims are taken back.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.app import App
from scheduler.leader import DEAD_AFTER
from tests.scheduler.test_processes import ALL_DAY, lines, outbox, spawn, start_wave, wait_for, write_config

pytestmark = pytest.mark.slow

# The default 300 s lease: recovery must not wait for it.
SLOW_LEASE = {"lease_seconds": 300, "batch_size": 10, "concurrency": 2, "rate_per_second": {"telegram": 1000}}


def test_a_killed_process_claims_are_sent_by_the_restarted_one_within_30_s_not_the_lease(
    scheduled_app: Callable[..., App], db_url: str, tmp_path: Path
) -> None:
    app = scheduled_app(window=ALL_DAY, scheduler=SLOW_LEASE)
    keys = start_wave(app, 24)
    config = write_config(app, tmp_path / "config.yaml")
    record, log = tmp_path / "sends.txt", tmp_path / "service.log"

    first = spawn(config, db_url, record, 0.3, log)
    try:
        wait_for(lambda: len(lines(record)) >= 3, 60, "the first sends")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    claimed = [key for key, status, _ in outbox(app) if status == "claimed"]
    assert claimed, "the kill must leave claimed rows behind"

    restarted = time.monotonic()
    second = spawn(config, db_url, record, 0.01, log)
    assert second.wait(200) == 0, log.read_text()[-3000:]
    took = time.monotonic() - restarted
    print(f"restart to everyone sent: {took:.1f} s ({len(claimed)} rows were claimed by the dead process)")

    delivered = Counter(lines(record))
    assert set(delivered) == {f"chat-{k}" for k in keys}
    assert max(delivered.values()) <= 2  # only a send in flight at the kill may repeat
    rows = outbox(app)
    assert {status for _, status, _ in rows} == {"sent"}
    # Rows the dead process claimed but never tried used no attempt; at most its in-flight sends
    # (concurrency 2) counted one more.
    assert sum(attempts for _, _, attempts in rows) <= len(rows) + 2
    # Recovered after the heartbeat went stale (30 s), far before the 300 s lease.
    assert took < DEAD_AFTER.total_seconds() + 45, f"restart took {took:.1f} s"
