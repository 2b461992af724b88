"""``rapport run``: the runner end to end in-process, its health endpoint, extensions, the CLI,
and a clean exit on SIGTERM in a real process."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.runner import PeriodicJob, Runner, RunnerExtension, WebServerError, load_channels, schedules_from_config
from memory.db import transaction
from memory.models import OutboxMessage
from scheduler.planner import Planner
from tests.clock import now
from tests.conftest import ROOT
from tests.fakes.channel import RecordingChannel
from tests.scheduler.conftest import add_people, make_config

ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def wave(app: App, n: int) -> list[str]:
    keys = add_people(app, n, now=now() - dt.timedelta(days=1))
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config)).start_wave(program="pulse", now=now())
    return keys


async def test_run_until_idle_sends_the_wave_once(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(config_override=make_config(window=ALL_DAY))
    wave(app, 5)
    channel = RecordingChannel()
    with caplog.at_level(logging.DEBUG):
        await Runner(app=app, channels={"telegram": channel}, serve_web=False, clock=now).run_until_idle()
    # Logs carry ids and counts, never people's names or the words sent to them.
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "sent" in logged
    assert "Person 1" not in logged
    assert "check-in" not in logged
    assert sorted(channel.recipients()) == [f"chat-p{i:04d}" for i in range(5)]
    assert channel.started
    assert channel.stopped
    # A second run finds nothing to do.
    again = RecordingChannel()
    await Runner(app=app, channels={"telegram": again}, serve_web=False, clock=now).run_until_idle()
    assert again.sent == []


async def test_service_serves_health_and_stops_cleanly(make_app: Callable[..., App]) -> None:
    app = make_app(config_override=make_config(window=ALL_DAY))
    wave(app, 3)
    channel = RecordingChannel()
    runner = Runner(app=app, channels={"telegram": channel}, host="127.0.0.1", port=0, clock=now)
    await runner.start()
    try:
        deadline = time.monotonic() + 30
        while (runner.last_tick is None or len(channel.sent) < 3) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        # A row is marked sent just after the channel accepted it: ask until the outbox is drained.
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.get(f"http://127.0.0.1:{runner.bound_port}/healthz") as resp:
                    body = await resp.json()
                    assert resp.status == 200
                if body["outbox_due"] == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
    finally:
        await runner.stop()
    assert body["database"] == "ok"
    assert body["scheduler"]["leader"] is True
    assert body["scheduler"]["last_tick"] is not None
    assert body["channels"] == ["telegram"]
    assert body["outbox_due"] == 0
    assert len(channel.sent) == 3
    assert channel.stopped
    assert runner.leader.is_leader is False  # released on stop


async def test_extensions_add_handlers_and_periodic_jobs(make_app: Callable[..., App]) -> None:
    app = make_app(config_override=make_config(window=ALL_DAY))
    handled: list[str] = []

    def plan(moment: dt.datetime) -> None:
        with transaction(app.sessions) as s:
            if s.scalar(select(OutboxMessage).where(OutboxMessage.key == "digest:owner-1:2026-06")) is None:
                s.add(OutboxMessage(key="digest:owner-1:2026-06", kind="digest", payload={}, status="pending",
                                    not_before=moment, attempts=0, created_at=moment))  # fmt: skip

    async def send_digest(row: OutboxMessage) -> str | None:
        handled.append(row.key)
        return "digest-ref"

    extension = RunnerExtension(
        handlers={"digest": send_digest}, jobs=[PeriodicJob(name="digests", seconds=60, run=plan)]
    )
    runner = Runner(app=app, channels={}, extensions=[extension], serve_web=False)
    await runner.run_until_idle()
    assert handled == ["digest:owner-1:2026-06"]
    with transaction(app.sessions) as s:
        row = s.scalars(select(OutboxMessage)).one()
        assert (row.status, row.external_ref) == ("sent", "digest-ref")


def test_without_tokens_it_says_what_is_missing(make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    channels, notes = load_channels(make_app(config_override=make_config()))
    assert channels == {}
    assert "telegram: off — set TELEGRAM_BOT_TOKEN" in notes
    assert "slack: off — set SLACK_BOT_TOKEN" in notes


def _terminal_config(tmp_path: Path, db_url: str) -> Path:
    config = make_config(window=ALL_DAY, channels=["terminal"]).model_dump(mode="json")
    config["database"]["url"] = db_url
    config["web"]["port"] = 0
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_cli_wave_start_run_until_idle_and_status(tmp_path: Path, db_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for name in ("TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    config = _terminal_config(tmp_path, db_url)
    roster = tmp_path / "people.csv"
    roster.write_text("id,name,email,timezone,owner,programs\nann,Ann <b>,,Europe/Berlin,,pulse\n"
                      "ben,Ben,,America/New_York,,pulse\n", encoding="utf-8")  # fmt: skip
    runner = CliRunner()

    def invoke(*args: str, stdout: bool = False) -> str:
        result = runner.invoke(cli, ["--config", str(config), *args])
        assert result.exit_code == 0, result.output
        return result.stdout if stdout else result.output

    invoke("people", "import", str(roster))
    assert "2 invitation(s) queued" in invoke("wave", "start", "pulse")
    out = invoke("run", "--until-idle", "--no-web")
    assert "telegram: off — set TELEGRAM_BOT_TOKEN" in out
    assert "[to ann] Hi Ann <b>! It's time for your pulse check-in." in out
    assert "[to ben]" in out
    report = json.loads(invoke("status", "--json", stdout=True))
    (line,) = report["waves"]
    assert (line["due"], line["sent"], line["completed"], line["response_rate"]) == (2, 2, 0, 0.0)
    table = invoke("status")
    assert "pulse" in table
    assert "rate" in table
    # Nothing is sent twice by a second run.
    assert "[to ann]" not in invoke("run", "--until-idle", "--no-web")


def test_cli_errors(tmp_path: Path, db_url: str) -> None:
    config = _terminal_config(tmp_path, db_url)
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(config), "wave", "start", "nope"])
    assert result.exit_code == 2
    assert "no program named 'nope'" in result.output
    result = runner.invoke(cli, ["--config", str(config), "wave", "start", "pulse", "--people", "ghost"])
    assert result.exit_code == 2
    assert "unknown people: ghost" in result.output
    result = runner.invoke(cli, ["--config", str(config), "away", "add", "ghost", "2026-06-10", "2026-06-01"])
    assert result.exit_code == 2
    assert "LAST (2026-06-01) is before FIRST (2026-06-10)" in result.output


@pytest.mark.slow
def test_sigterm_stops_the_service_with_exit_code_0(tmp_path: Path) -> None:
    config = _terminal_config(tmp_path, f"sqlite:///{tmp_path / 'r.db'}")
    (tmp_path / "r.db").touch()  # as after `rapport init`: only init creates a SQLite file
    env = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN")}
    log = tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "--config", str(config), "run"],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "scheduler leader" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "stopping: finishing in-flight sends" in text
    assert "stopped" in text
    assert "telegram: off — set TELEGRAM_BOT_TOKEN" in text


def test_a_taken_port_is_a_clear_error(tmp_path: Path, db_url: str) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _terminal_config(tmp_path, db_url)
        result = CliRunner().invoke(cli, ["--config", str(config), "run", "--port", str(port)])
    # `rapport` (bot.cli.main) prints a RapportError as one "error:" line and exits 1.
    assert isinstance(result.exception, WebServerError)
    assert f"the web server cannot listen on 127.0.0.1:{port}" in str(result.exception)
    assert "stopped" in result.output  # what had started was shut down


def test_slack_can_run_on_an_oauth_app_alone(make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch) -> None:
    """Several workspaces install Rapport themselves: no bot token, only the app's credentials."""
    for name in ("TELEGRAM_BOT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RAPPORT_TEST_SLACK_CLIENT_ID", "111.222")
    monkeypatch.setenv("RAPPORT_TEST_SLACK_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("RAPPORT_TEST_SLACK_SIGNING", "signing")
    base = make_config()
    slack = base.channels.slack.model_copy(
        update={
            "mode": "http",
            "client_id": "${RAPPORT_TEST_SLACK_CLIENT_ID}",
            "client_secret": "${RAPPORT_TEST_SLACK_CLIENT_SECRET}",
            "signing_secret": "${RAPPORT_TEST_SLACK_SIGNING}",
        }
    )
    config = base.model_copy(update={"channels": base.channels.model_copy(update={"slack": slack})})
    channels, notes = load_channels(make_app(config_override=config))
    assert "slack: on" in notes
    assert "slack" in channels
