"""Digests out of the outbox: planning (never twice), SMTP delivery to a real local server,
files, and clear permanent failures for channels that are not set up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from bot.config import Config
from bot.digests import DigestDelivery, digest_schedule
from memory import db
from memory.errors import PermanentFailure, RetryLater
from memory.models import OutboxMessage, Owner
from memory.models_scheduler import OutboxContent
from scheduler.digests import DigestSchedule, fires_before, plan_digests
from tests.fakes.smtp_server import SmtpServer, smtp_server  # noqa: F401  (fixture)
from tests.history_builder import T0, History, months

MONDAY_9 = dt.datetime(2025, 9, 1, 9, 0, tzinfo=dt.UTC)  # a Monday, an hour after the 08:00 fire


def _with(config: Config, **sections: dict) -> Config:
    data = config.model_dump()
    for key, value in sections.items():
        data[key] = {**data[key], **value}
    return Config.model_validate(data)


def _history(app) -> None:
    with db.transaction(app.sessions) as s:
        h = History(s)
        dana = h.person("dana", owner="lead@example.com", name="Dana <script>")
        h.checkin(dana, "customers", T0, rating=9, text="Support answers within the hour.")
        h.checkin(dana, "customers", MONDAY_9 - dt.timedelta(days=3), rating=3, text="<!channel> *Support* is slow.",
                  followup="=HYPERLINK(\"http://x\",\"y\") our manager left")  # fmt: skip


def test_fires_before_finds_the_last_two_fire_times() -> None:
    assert fires_before("0 8 * * mon", "UTC", MONDAY_9) == (
        dt.datetime(2025, 8, 25, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2025, 9, 1, 8, 0, tzinfo=dt.UTC),
    )
    yearly = fires_before("0 8 1 1 *", "UTC", MONDAY_9)
    assert yearly is not None
    assert yearly[1] == dt.datetime(2025, 1, 1, 8, 0, tzinfo=dt.UTC)
    assert yearly[1] - yearly[0] == dt.timedelta(days=370)
    assert fires_before("0 8 29 2 *", "UTC", dt.datetime(2026, 9, 1, tzinfo=dt.UTC)) is None  # no 29 Feb in a year
    berlin = fires_before("0 8 * * mon", "Europe/Berlin", MONDAY_9)
    assert berlin is not None
    assert berlin[1] == dt.datetime(2025, 9, 1, 6, 0, tzinfo=dt.UTC)


def test_planning_twice_or_in_two_processes_plans_once(make_app) -> None:
    app = make_app()
    _history(app)
    schedule = DigestSchedule()
    with db.transaction(app.sessions) as s:
        first = plan_digests(s, schedule=schedule, now=MONDAY_9)
    with db.transaction(app.sessions) as s:
        again = plan_digests(s, schedule=schedule, now=MONDAY_9 + dt.timedelta(minutes=5))
    assert len(first) == 1
    assert again == []
    with db.transaction(app.sessions) as s:
        (row,) = s.scalars(select(OutboxMessage)).all()
        assert row.kind == "digest"
        assert row.key == "digest:lead@example.com:2025-08-25T08:00:00+00:00"
        assert row.channel == "email"
        assert row.payload["until"] == "2025-09-01T08:00:00+00:00"
    # A week later the next period starts where the last one ended.
    with db.transaction(app.sessions) as s:
        (nxt,) = plan_digests(s, schedule=schedule, now=MONDAY_9 + dt.timedelta(days=7))
        assert nxt.payload["since"] == "2025-09-01T08:00:00+00:00"
    # Three weeks down: one digest covering the whole gap.
    with db.transaction(app.sessions) as s:
        (gap,) = plan_digests(s, schedule=schedule, now=MONDAY_9 + dt.timedelta(days=28))
        assert gap.payload["since"] == "2025-09-08T08:00:00+00:00"
        assert gap.payload["until"] == "2025-09-29T08:00:00+00:00"


def test_owner_and_program_schedules_override_the_default(make_app) -> None:
    app = make_app()
    _history(app)
    schedule = DigestSchedule(owners={"lead@example.com": ("0 7 * * *", "file")})
    with db.transaction(app.sessions) as s:
        (row,) = plan_digests(s, schedule=schedule, now=MONDAY_9)
        assert row.channel == "file"
        assert row.payload["until"] == "2025-09-01T07:00:00+00:00"
    config = _with(app.config, digests={"schedules": [{"program": "customers", "cron": "0 6 * * *",
                                                       "channel": "slack"}]})  # fmt: skip
    plain = digest_schedule(config)
    assert plain.programs == {"customers": ("0 6 * * *", "slack")}


def test_a_closed_wave_plans_a_digest_for_each_owner_once(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        for owner in ("a", "b"):
            h.person(f"{owner}1", owner=owner, programs=("employees",))
        h.wave("employees", "Q3", MONDAY_9 - dt.timedelta(days=14), MONDAY_9 - dt.timedelta(days=1))
        h.wave("employees", "Q1", T0 - months(6), T0 - months(5))  # long closed: not planned
    schedule = DigestSchedule(cron="0 8 1 1 *")
    with db.transaction(app.sessions) as s:
        rows = plan_digests(s, schedule=schedule, now=MONDAY_9)
        keys = sorted(r.key for r in rows if r.payload["trigger"] == "wave_close")
    assert len(keys) == 2
    assert keys[0].startswith("digest:a:wave:")
    with db.transaction(app.sessions) as s:
        assert [
            r for r in plan_digests(s, schedule=schedule, now=MONDAY_9) if r.payload["trigger"] == "wave_close"
        ] == []


def _row(app, channel: str) -> OutboxMessage:
    with db.transaction(app.sessions) as s:
        (row,) = plan_digests(s, schedule=DigestSchedule(channel=channel), now=MONDAY_9)
        s.flush()
        s.expunge(row)
        return row


async def test_email_delivery_through_a_local_smtp_server(make_app, smtp_server: SmtpServer) -> None:  # noqa: F811
    app = make_app()
    _history(app)
    config = _with(app.config, email={"host": smtp_server.host, "port": smtp_server.port, "starttls": False,
                                      "from_address": "rapport@example.com"})  # fmt: skip
    deliver = DigestDelivery(sessions=app.sessions, config=config)
    ref = await deliver(_row(app, "email"))
    assert ref
    assert ref.startswith("<")
    (message,) = smtp_server.messages
    assert smtp_server.envelopes == [("rapport@example.com", ["lead@example.com"])]
    assert message["To"] == "lead@example.com"
    assert message["Subject"].startswith("Rapport digest: 1 person changed")
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "Support answers within the hour" in text
    assert "<!channel> *Support* is slow" in text  # plain text: as typed
    assert "<script>" not in html
    assert "<!channel>" not in html
    assert "&lt;!channel&gt; *Support* is slow" in html
    assert "Dana &lt;script&gt;" in html


async def test_smtp_refusals_are_permanent_and_outages_temporary(make_app, smtp_server: SmtpServer) -> None:  # noqa: F811
    app = make_app()
    _history(app)
    config = _with(app.config, email={"host": smtp_server.host, "port": smtp_server.port, "starttls": False})
    smtp_server.refuse = "550"
    with pytest.raises(PermanentFailure):
        await DigestDelivery(sessions=app.sessions, config=config)(_row(app, "email"))
    closed = _with(app.config, email={"host": "127.0.0.1", "port": 1, "starttls": False, "timeout_seconds": 5})
    with db.transaction(app.sessions) as s:
        row = s.scalar(select(OutboxMessage))
        assert row is not None
        s.expunge(row)
    with pytest.raises(RetryLater):
        await DigestDelivery(sessions=app.sessions, config=closed)(row)


async def test_unconfigured_channels_fail_permanently_with_a_reason(make_app) -> None:
    app = make_app()
    _history(app)
    deliver = DigestDelivery(sessions=app.sessions, config=app.config)
    row = _row(app, "email")
    with pytest.raises(PermanentFailure, match=r"email\.host"):
        await deliver(row)
    for channel, reason in (("slack", "not running"), ("telegram", "not running")):
        row.channel = channel
        with pytest.raises(PermanentFailure, match=reason):
            await deliver(row)
    row.payload = {}
    with pytest.raises(PermanentFailure, match="owner"):
        await deliver(row)
    with db.transaction(app.sessions) as s:
        owner = s.scalar(select(Owner))
        assert owner is not None
        owner.email = None
        # The row stored its rendered e-mail on the first try (a retry would send that); this
        # scenario is a new row prepared after the address was removed.
        s.execute(delete(OutboxContent))
    configured = _with(app.config, email={"host": "127.0.0.1"})
    row.payload = {"owner": "lead@example.com", "since": T0.isoformat(), "until": MONDAY_9.isoformat()}
    row.channel = "email"
    with pytest.raises(PermanentFailure, match="no e-mail"):
        await DigestDelivery(sessions=app.sessions, config=configured)(row)


async def test_file_digests_are_written_as_markdown_and_html(make_app, tmp_path: Path) -> None:
    app = make_app()
    _history(app)
    config = _with(app.config, digests={"directory": str(tmp_path / "out")})
    ref = await DigestDelivery(sessions=app.sessions, config=config)(_row(app, "file"))
    assert ref is not None
    md = Path(ref).read_text()
    html = Path(ref).with_suffix(".html").read_text()
    assert "Dana" in md
    assert "\\*Support\\*" in md
    assert "<script>" not in html


class _FakeChannel:
    name = "telegram"
    markup = "telegram_html"

    def __init__(self) -> None:
        self.sent: list[tuple[object, list[object]]] = []

    async def send(self, address, messages):
        self.sent.append((address, list(messages)))

        class Sent:
            external_ref = "m1"

        return Sent()


async def test_chat_digests_go_to_the_owner_s_linked_account(make_app) -> None:
    from bot.engine.owners import link_owner

    app = make_app()
    _history(app)
    channel = _FakeChannel()
    deliver = DigestDelivery(sessions=app.sessions, config=app.config, channels={"telegram": channel})
    row = _row(app, "telegram")
    with pytest.raises(PermanentFailure, match="no linked telegram"):
        await deliver(row)
    with db.transaction(app.sessions) as s:
        owner = s.scalar(select(Owner))
        assert owner is not None
        link_owner(s, owner=owner, channel="telegram", external_id="4242", now=T0)
    assert await deliver(row) == "m1"
    ((address, messages),) = channel.sent
    assert address.external_id == "4242"
    assert "&lt;!channel&gt;" in messages[0].text
    assert "<!channel>" not in messages[0].text


async def test_rapport_run_plans_and_sends_digests(make_app, tmp_path: Path) -> None:
    from bot.runner import Runner

    base = make_app()
    config = _with(base.config, digests={"channel": "file", "directory": str(tmp_path / "digests")})
    app = make_app(config_override=config)
    _history(app)
    # The runner wires digests itself: no extension list to load.
    runner = Runner(app=app, channels={}, clock=lambda: MONDAY_9, serve_web=False)
    assert "digest" in runner.dispatcher.handlers
    await runner.run_until_idle()
    await Runner(app=app, channels={}, clock=lambda: MONDAY_9, serve_web=False).run_until_idle()
    (md,) = (tmp_path / "digests").glob("*.md")
    assert "Dana" in md.read_text()
    with db.transaction(app.sessions) as s:
        (row,) = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest")).all()
        assert row.status == "sent"
        assert row.external_ref == str(md)
