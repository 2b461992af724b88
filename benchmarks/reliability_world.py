"""The world the reliability harness runs in: a database with people and an open wave, a config
pointing the real ``rapport run`` at the loopback fakes, and the processes it starts and kills.

Used by ``benchmarks/reliability.py``; see its docstring.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.app import build  # noqa: E402
from bot.config import parse_config  # noqa: E402
from bot.runner import schedules_from_config  # noqa: E402
from memory import store  # noqa: E402
from memory.db import transaction  # noqa: E402
from memory.models import Answer, ChannelIdentity, OutboxMessage  # noqa: E402
from memory.models_scheduler import OutboxSend  # noqa: E402
from scheduler.planner import Planner  # noqa: E402
from tests.fakes.embedder import HashingEmbedder  # noqa: E402

TELEGRAM_TOKEN = "123456:TEST-token"
WEBHOOK_SECRET = "reliability-hook-secret"
SLACK_TOKEN = "xoxb-T111-test"
ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
QUESTIONS = [
    {"key": "score", "kind": "rating", "text": "How are we doing?", "min": 0, "max": 10},
    {"key": "why", "kind": "text", "text": "Why?"},
]
#: Telegram chat ids (and Slack user numbers) start here.
FIRST_CHAT = 500_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def database(kind: str, workdir: Path, pg_url: str | None) -> Iterator[str]:
    """A fresh database URL: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    if kind == "sqlite":
        path = workdir / f"rapport-{uuid.uuid4().hex[:6]}.db"
        path.touch()
        yield f"sqlite:///{path}"
        return
    assert pg_url, "PostgreSQL needs --postgres URL or RAPPORT_TEST_DATABASE_URL"
    schema = f"rel_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    try:
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class World:
    """One run's config file, database and web port."""

    workdir: Path
    db_url: str
    channel: str = "telegram"
    mode: str = "polling"
    api_url: str = ""
    port: int = field(default_factory=free_port)
    scheduler: dict[str, Any] = field(default_factory=dict)
    people: int = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    def config(self) -> dict[str, Any]:
        telegram: dict[str, Any] = {"enabled": self.channel == "telegram", "mode": self.mode,
                                    "api_base_url": self.api_url}  # fmt: skip
        if self.mode == "webhook":
            telegram["webhook_url"] = f"http://127.0.0.1:{self.port}/telegram/webhook"
        slack: dict[str, Any] = {"enabled": self.channel == "slack", "mode": "http", "api_base_url": self.api_url,
                                 "link_every_minutes": 0}  # fmt: skip
        return {
            "database": {"url": self.db_url, "migrate_on_start": True},
            # The fast backend: a restarted process is ready in about a second. Waves are the
            # harness's own (the cron wave, on 29 February, never falls inside a run).
            "embeddings": {"backend": "onnx-int8"},
            "programs": {"pulse": self.program()},
            "channels": {"telegram": telegram, "slack": slack, "web": {"enabled": False}},
            "scheduler": {"tick_seconds": 5, **self.scheduler},
            "web": {"host": "127.0.0.1", "port": self.port},
            "logging": {"level": "INFO", "format": "json"},
        }

    def program(self) -> dict[str, Any]:
        cadence = {"cron": "0 0 29 2 *", "open_for_days": 7, "reminders": 0}
        return {"title": "pulse", "questions": QUESTIONS, "window": ALL_DAY, "cadence": cadence,
                "channels": [self.channel]}  # fmt: skip

    def prepare(self, people: int) -> None:
        """Write the config, create the schema, enrol ``people`` and open a wave for them now."""
        data = self.config()
        self.config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
        config = parse_config(data)
        app = build(config, embedder=HashingEmbedder(), database_url=self.db_url, migrate=True)
        now = dt.datetime.now(dt.UTC)
        try:
            with transaction(app.sessions) as s:
                program = store.program_by_name(s, "pulse")
                for i in range(people):
                    person, _ = store.upsert_person(
                        s, key=f"p{i:05d}", name=f"Person {i}", email=None, timezone="UTC", owner_key=None,
                        programs=[program], now=now - dt.timedelta(days=1),
                    )  # fmt: skip
                    store.link_identity(s, person=person, channel=self.channel, external_id=self.address(i),
                                        now=now - dt.timedelta(days=1))  # fmt: skip
            Planner(sessions=app.sessions, programs=schedules_from_config(config)).start_wave(program="pulse", now=now)
        finally:
            app.close()
        self.people = people

    def address(self, i: int) -> str:
        return str(FIRST_CHAT + i) if self.channel == "telegram" else f"U{FIRST_CHAT + i}"

    # What the database says -----------------------------------------------------------------

    def _query(self, statement: Any) -> list[Any]:
        engine = create_engine(self.db_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(statement))
        finally:
            engine.dispose()

    def in_flight(self) -> set[str]:
        """Addresses whose row was being sent (claimed, send marker written): the crash window."""
        rows = self._query(
            select(ChannelIdentity.external_id)
            .join(OutboxMessage, OutboxMessage.person_id == ChannelIdentity.person_id)
            .join(OutboxSend, OutboxSend.outbox_id == OutboxMessage.id)
            .where(OutboxMessage.status == "claimed", ChannelIdentity.channel == self.channel)
        )
        return {r[0] for r in rows}

    def outbox_statuses(self) -> dict[str, int]:
        rows = self._query(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status))
        return {status: n for status, n in rows}

    def answers(self) -> dict[str, set[str]]:
        """Address -> the questions (rating, text) stored for it."""
        rows = self._query(
            select(ChannelIdentity.external_id, Answer.kind)
            .join(Answer, Answer.person_id == ChannelIdentity.person_id)
            .where(ChannelIdentity.channel == self.channel)
        )
        out: dict[str, set[str]] = {}
        for address, kind in rows:
            out.setdefault(address, set()).add(kind)
        return out


class Service:
    """The real ``rapport run`` in a subprocess, started, killed and restarted by the harness."""

    def __init__(self, world: World, log: Path) -> None:
        self.world = world
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TELEGRAM_"))}
        env.update(
            PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
            TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET, RAPPORT_INVITE_SECRET="reliability-invite-secret-0123456789",
            SLACK_BOT_TOKEN=SLACK_TOKEN, SLACK_SIGNING_SECRET="reliability-signing-secret",
        )  # fmt: skip
        command = [sys.executable, "-m", "bot.cli", "--config", str(self.world.config_path), "run",
                   "--port", str(self.world.port)]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.starts.append(time.monotonic())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM, as systemd stops it; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def tracebacks(self) -> int:
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("Traceback (most recent call last)")
