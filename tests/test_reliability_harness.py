"""The reliability harness (``benchmarks/reliability.py``) at its smoke size: it runs, and what it
measures holds the promises (nothing lost, nothing twice, retry_after honoured, no traceback).

The full sizes and their figures are in ``docs/deployment.md`` ("Reliability harness"); this
only checks, in a few minutes, that every scenario still runs against the real ``rapport run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.conftest import PG_URL, ROOT

pytestmark = pytest.mark.slow


def harness(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "reliability.py"), "--smoke", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def backends() -> list[Any]:
    return ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", backends())
def test_kills_lose_no_answer_and_duplicate_nothing_outside_the_crash_window(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("RAPPORT_TEST_DATABASE_URL is not set")
    result = harness("kills", "--db", backend)
    for mode in ("polling", "webhook"):
        run = result["kills"][f"{backend}:{mode}"]
        assert run["invited"] == run["people"], run
        assert run["answers_lost"] == 0, run
        assert run["outside_crash_window"] == 0, run
        # Everyone's rating was taken; a reason only from people whose next question arrived.
        assert run["answers_taken_by_telegram"] == 2 * run["people"] - run["replies_missing"], run
        assert run["tracebacks"] == 0, run
        assert run["settled"], run


def test_faults_and_rate_limits_deliver_everything_once_and_honour_retry_after() -> None:
    result = harness("faults", "wave", "slack", "--db", "sqlite")
    faults = result["faults"]["sqlite:once"]
    assert faults["delivered_share"] == 1.0, faults
    assert faults["sent_before_retry_after"] == 0, faults
    assert faults["invitations_duplicated"] == 0, faults
    assert set(faults["outbox"]) <= {"sent", "unknown"}, faults  # nothing failed, nothing left behind
    for variant in ("straight", "kill"):
        wave = result["wave"][f"sqlite:{variant}"]
        assert wave["lost"] == 0, wave
        assert wave["outside_crash_window"] == 0, wave
        assert wave["sent_before_retry_after"] == 0, wave
        assert wave["tracebacks"] == 0, wave
    slack = result["slack"]["sqlite:once"]
    assert slack["lost"] == 0, slack
    assert slack["duplicated"] == 0, slack
    assert slack["sent_before_retry_after"] == 0, slack
