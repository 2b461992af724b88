"""README command 1 without a terminal (CI): `rapport demo </dev/null` starts the service, answers
Dana's web check-in over HTTP (a follow-up quoting her earlier words) and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_the_demo_without_a_terminal_runs_a_web_checkin_and_exits_0(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAPPORT_", "SLACK_", "TELEGRAM_"))}
    env.update({"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(ROOT / "config.yaml"), "demo", "--port", "0",
         "--database", f"sqlite:///{tmp_path / 'demo.db'}"],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"Dana's check-in: +http://127\.0\.0\.1:\d+/c/[A-Za-z0-9_-]{55}", out)
    assert re.search(r"The owners' dashboard: http://127\.0\.0\.1:\d+/dashboard/login/link\?token=", out)
    assert "Support answered within an hour" in out.split("answered over HTTP")[1]  # the follow-up quoted her
    assert "follow-up quoted her earlier words: yes; check-in completed: yes" in out
    assert "Traceback" not in result.stderr
