"""Send hostile input to a running Rapport, on SQLite and on PostgreSQL; print JSON.

    .venv/bin/python benchmarks/hostile.py [POSTGRESQL_URL]

The PostgreSQL URL defaults to ``RAPPORT_TEST_DATABASE_URL``; without either, only SQLite runs.
Each backend gets a fresh database (PostgreSQL: a schema of its own, dropped afterwards).

The service is the real one, in process: the App from ``bot.app.build``, the Telegram channel in
webhook mode behind Rapport's web server, and the Slack channel (Bolt) behind it, both talking to
the loopback fakes of their APIs. The command line runs as a subprocess (``python -m bot.cli``).
Every log line of the run goes through ``bot.logs.setup`` at DEBUG into a buffer.

Per backend:

* ``cases``: each hostile input, what came back (HTTP status or exit code) and whether the person
  got a reply (or the operator a one-line message);
* ``tracebacks``: tracebacks in the service's log and in the commands' output (target 0);
* ``http_5xx``: 5xx answers to any request (target 0);
* ``unclear``: cases whose outcome was not the expected one (target 0).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from bot import logs  # noqa: E402
from bot.app import App, build  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.digests import TELEGRAM_LIMIT, render_digest  # noqa: E402
from bot.web import make_web_app  # noqa: E402
from memory.digests import Digest, Silent  # noqa: E402
from tests.channels.slack_kit import SIGNING_SECRET, sign  # noqa: E402
from tests.channels.slack_kit import make_channel as make_slack  # noqa: E402
from tests.channels.telegram_kit import SECRET, Clock, add_person, make_channel, text_update  # noqa: E402
from tests.fakes.embedder import HashingEmbedder  # noqa: E402
from tests.fakes.slack_api import FakeSlackAPI  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402

CONTROLS = "\x00\x1b[2J\x07\u202eexe.png\u202c"
WORDS = f"Support was slow {CONTROLS} *bold* _i_ `code` <b>x</b> &amp;"
DEEP_ARRAY = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 5000 + "1" + "}" * 5000


def units(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units); defined here so that the script also runs
    on a checkout from before ``prompts.split``, for a same-run baseline."""
    return len(text.encode("utf-16-le")) // 2


@contextmanager
def database(kind: str, pg_url: str | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "hostile.db"
            path.touch()  # as after `rapport init`
            yield f"sqlite:///{path}"
        return
    assert pg_url
    schema = f"h_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg_url}{'&' if '?' in pg_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


class Run:
    def __init__(self) -> None:
        self.cases: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.cli_tracebacks = 0

    def case(self, name: str, outcome: Any, ok: bool, **extra: Any) -> None:
        self.cases.append({"case": name, "outcome": outcome, "clear": ok, **extra})


async def telegram_cases(app: App, run: Run) -> None:
    async with FakeTelegramAPI() as api:
        add_person(app, "tg", chat_id=4242)
        channel = make_channel(app, api, mode="webhook", clock=Clock())
        await channel.start()
        client: TestClient[Any, Any] = TestClient(TestServer(make_web_app(routes=channel.routes())))
        await client.start_server()
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        try:
            app.service.start(person_ref="tg", program="customers", now=Clock()(), channel="telegram",
                              markup="telegram_html")  # fmt: skip

            async def post(name: str, body: str, expect: int, *, replies: bool) -> None:
                before = len(api.calls_to("sendMessage"))
                resp = await client.post("/telegram/webhook", data=body.encode(),
                                         headers={**headers, "Content-Type": "application/json"})  # fmt: skip
                run.statuses.append(resp.status)
                replied = len(api.calls_to("sendMessage")) > before
                run.case(f"telegram: {name}", resp.status, resp.status == expect and replied == replies,
                         replied=replied)  # fmt: skip

            await post("NUL in a rating", json.dumps(text_update("8\x00", update_id=1)), 200, replies=True)
            answer = json.dumps(text_update(WORDS, update_id=2))
            await post("NUL, ESC, BEL, U+202E in an answer", answer, 200, replies=True)
            await post("the same update redelivered", answer, 200, replies=False)
            await post("lone surrogate", json.dumps(text_update("\ud800 hi", update_id=3)), 200, replies=True)
            await post("5,000-deep array, valid secret", DEEP_ARRAY, 400, replies=False)
            await post("5,000-deep object, valid secret", DEEP_OBJECT, 400, replies=False)
            await post("not JSON", "{nope", 400, replies=False)
        finally:
            await client.close()
            await channel.stop()


async def slack_cases(app: App, run: Run) -> None:
    from memory.importing import import_people

    async with FakeSlackAPI() as api:
        report = import_people(app.sessions, "id,name,email,programs,slack_user\nada,Ada\u202e,,customers,U0ADA\n",
                               known_programs=app.config.programs, now=Clock()())  # fmt: skip
        assert not report.problems, report.problems
        channel = make_slack(app, api, Clock())
        async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as http:
            await channel.start()
            await channel.drain()
            try:
                started = app.service.start(person_ref="ada", program="customers", now=Clock()(), channel="slack",
                                            markup="slack_mrkdwn")  # fmt: skip
                from bot.channels.base import Address

                await channel.send(Address(channel="slack", external_id="U0ADA"), started.messages)

                async def dm(name: str, words: str, *, secret: str = SIGNING_SECRET, ts: int | None = None,
                             expect: int = 200, replies: bool = True) -> None:  # fmt: skip
                    event = {"type": "message", "user": "U0ADA", "text": words, "ts": f"1800000000.{len(run.cases)}",
                             "channel": "D0ADA", "channel_type": "im"}  # fmt: skip
                    body = json.dumps({"team_id": "T111", "api_app_id": "A111", "type": "event_callback",
                                       "event_id": f"Ev{uuid.uuid4().hex[:8]}", "event": event})  # fmt: skip
                    before = len(api.calls_to("chat.postMessage"))
                    resp = await http.post("/slack/events", data=body.encode(), headers={
                        "Content-Type": "application/json", **sign(body, secret=secret, timestamp=ts)})  # fmt: skip
                    await resp.read()
                    await channel.drain()
                    run.statuses.append(resp.status)
                    replied = len(api.calls_to("chat.postMessage")) > before
                    run.case(f"slack: {name}", resp.status, resp.status == expect and replied == replies,
                             replied=replied)  # fmt: skip

                await dm("NUL in a rating", "7\x00")
                await dm("controls, U+202E and *bold* in an answer", WORDS)
                await dm("forged signature", WORDS, secret="forged", expect=401, replies=False)
                await dm("stale timestamp", WORDS, ts=int(time.time()) - 3600, expect=401, replies=False)
            finally:
                await channel.stop()


def cli(
    db_url: str, *args: str, stdin: str = "", config: Path = ROOT / "config.yaml"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", "--config", str(config), "--database", db_url, *args],
                          input=stdin, capture_output=True, text=True, cwd=ROOT, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"})  # fmt: skip


def cli_cases(db_url: str, run: Run, tmp: Path) -> None:
    roster = tmp / "people.csv"
    roster.write_text(f"id,name,email,timezone,owner,programs\nbea,Bea {CONTROLS},bea@example.com,UTC,,customers\n"
                      f"nul\x00,Nul,nul@example.com,UTC,,customers\n", encoding="utf-8")  # fmt: skip
    imported = cli(db_url, "people", "import", str(roster))
    run.cli_tracebacks += ("Traceback" in imported.stderr) + ("Traceback" in imported.stdout)
    run.case("people import: NUL and controls in rows", imported.returncode, "Traceback" not in imported.stderr,
             stderr_lines=len(imported.stderr.splitlines()))  # fmt: skip
    chat = cli(db_url, "chat", "ann", "--at", "2026-03-02T10:00:00Z", stdin=f"8\x00\n{WORDS}\n")
    run.cli_tracebacks += "Traceback" in chat.stderr
    raw = any(c in chat.stdout for c in "\x00\x1b\x07\u202e")
    run.case("rapport chat: NUL, ESC, BEL, U+202E piped", chat.returncode,
             chat.returncode == 0 and not raw and "Traceback" not in chat.stderr, raw_controls_printed=raw)  # fmt: skip
    history = cli(db_url, "history", "ann")
    raw = any(c in history.stdout for c in "\x00\x1b\x07\u202e")
    run.cli_tracebacks += "Traceback" in history.stderr
    run.case("rapport history: controls in name and answers", history.returncode,
             history.returncode == 0 and not raw, raw_controls_printed=raw)  # fmt: skip


def error_cases(run: Run, tmp: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, url in (
        ("refused PostgreSQL port", f"postgresql://rapport:pw-hidden@127.0.0.1:{port}/rapport"),
        ("unknown URL scheme", "foo://x/y"),
        ("wrong SQLite path", f"sqlite:///{tmp}/typo/rapport.db"),
    ):
        result = cli(url, "status")
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        run.cli_tracebacks += "Traceback" in result.stderr
        clear = result.returncode == 2 and len(lines) == 1 and "pw-hidden" not in result.stderr
        run.case(f"errors: {name}", result.returncode, clear, message=lines[0] if lines else "")
    run.case("errors: wrong SQLite path created nothing", not (tmp / "typo").exists(), not (tmp / "typo").exists())


def digest_case(run: Run) -> None:
    import datetime as dt

    now = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    silent = tuple(Silent(person=f"p{i}", name=f"Ann & Bob {i}", program="customers", status="expired",
                          invited_at=now) for i in range(400))  # fmt: skip
    d = Digest(owner="o", owner_name="Owen", since=now - dt.timedelta(days=7), until=now, summary="s", changes=(),
               outcomes=(), due=(), silent=silent, aggregates=())  # fmt: skip
    body = render_digest(d, "telegram").body
    import re

    broken = bool(re.search(r"&(?!(?:amp|lt|gt|quot|#\d+);)", body))
    shown = body.count("• Ann &amp; Bob")
    more = re.search(r"and (\d+) more", body)
    counted = shown + (int(more.group(1)) if more else 0)
    run.case("telegram digest: 400 silent people", units(body),
             units(body) <= TELEGRAM_LIMIT and not broken and counted == 400, shown=shown, counted=counted)  # fmt: skip


async def backend(kind: str, pg_url: str | None) -> dict[str, Any]:
    run = Run()
    stream = io.StringIO()
    handler_target = sys.stderr
    sys.stderr = stream
    try:
        logs.setup("DEBUG", "text")
    finally:
        sys.stderr = handler_target
    with database(kind, pg_url) as url, tempfile.TemporaryDirectory() as tmp:
        app = build(load_config(ROOT / "config.yaml"), embedder=HashingEmbedder(), database_url=url, migrate=True)
        try:
            await telegram_cases(app, run)
            await slack_cases(app, run)
            # The terminal cases' person, with ESC, BEL and U+202E in the name, as data stored before the
            # boundary rule may hold them (PostgreSQL never held NUL). The import is a case of its own.
            add_person(app, "ann", name=f"Ann {CONTROLS.replace(chr(0), '')}", chat_id=None)
        finally:
            app.close()
        cli_cases(url, run, Path(tmp))
        if kind == "sqlite":
            error_cases(run, Path(tmp))
            digest_case(run)
    log_text = stream.getvalue()
    logging.getLogger().handlers.clear()
    return {
        "backend": kind,
        "requests": len(run.statuses),
        "http_5xx": sum(1 for s in run.statuses if s >= 500),
        "tracebacks": log_text.count("Traceback") + run.cli_tracebacks,
        "unclear": sum(1 for c in run.cases if not c["clear"]),
        "cases": run.cases,
    }


async def main() -> list[dict[str, Any]]:
    pg_url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("RAPPORT_TEST_DATABASE_URL")
    results = [await backend("sqlite", None)]
    if pg_url:
        results.append(await backend("postgresql", pg_url))
    return results


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(asyncio.run(main()), indent=2, ensure_ascii=True))
