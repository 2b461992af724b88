"""One-time login links that Rapport sends: by Slack, Telegram or e-mail, asked for from the
command line, in chat (``login``, ``/login``) or on the login page. Each path sends exactly one
message with a working link, through the outbox; the link logs in once; no token reaches a log.

The chat APIs and the mail server are the loopback fakes of ``tests/fakes``; the Slack and
Telegram adapters are the real ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import App
from bot.config import Config
from bot.dashboard import make_dashboard
from bot.dashboard.link_delivery import LoginLinkDelivery
from bot.engine import owner_login
from bot.web import make_web_app
from memory.db import transaction
from memory.errors import PermanentFailure
from memory.models import OutboxMessage, Owner
from memory.models_promises import OwnerIdentity
from memory.models_web import LoginToken
from scheduler.dispatch import Dispatcher, NotNow, SkipMessage
from tests.cli.test_cli import cli
from tests.fakes.smtp_server import SmtpServer, smtp_server  # noqa: F401  (fixture)
from tests.web.conftest import token_of

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
TOKEN = re.compile(r"/dashboard/login/link\?token=([A-Za-z0-9_-]+)")
TEAM = ""  # one Slack workspace: identities carry no team id


class Clock:
    def __init__(self, now: dt.datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _owner(app: App, key: str = "lee@example.com", *, slack: str | None = None, telegram: str | None = None,
           email: str | None = "lee@example.com") -> int:  # fmt: skip
    with transaction(app.sessions) as s:
        owner = Owner(key=key, name="Lee", email=email, created_at=NOW)
        s.add(owner)
        s.flush()
        for channel, external, workspace in (("slack", slack, TEAM), ("telegram", telegram, "")):
            if external:
                s.add(OwnerIdentity(owner_id=owner.id, channel=channel, workspace=workspace, external_id=external,
                                    created_at=NOW))  # fmt: skip
        return owner.id


def _with_smtp(config: Config, server: SmtpServer) -> Config:
    data = config.model_dump()
    data["email"] = {**data["email"], "host": server.host, "port": server.port, "starttls": False,
                     "from_address": "rapport@example.com"}  # fmt: skip
    return Config.model_validate(data)


def _rows(app: App) -> list[OutboxMessage]:
    with transaction(app.sessions) as s:
        rows = list(s.scalars(select(OutboxMessage).where(OutboxMessage.kind == owner_login.KIND)))
        s.expunge_all()
        return rows


async def _dispatch(app: App, deliver: LoginLinkDelivery, clock: Clock) -> None:
    """The outbox sends what is due, as ``rapport run`` does."""
    dispatcher = Dispatcher(sessions=app.sessions, handlers={owner_login.KIND: deliver}, worker_id="w", clock=clock)
    for _ in range(5):
        if not (await dispatcher.dispatch_once()).handled:
            break


@dataclasses.dataclass
class Site:
    app: App
    client: TestClient
    clock: Clock


@pytest.fixture
async def site(make_app: Callable[..., App]) -> AsyncIterator[Site]:
    app = make_app()
    clock = Clock()
    server = TestServer(make_web_app(dashboard=make_dashboard(sessions=app.sessions, config=app.config,
                                                              clock=clock)))  # fmt: skip
    async with TestClient(server) as client:
        yield Site(app=app, client=client, clock=clock)


async def _log_in_with(client: TestClient, token: str) -> int:
    csrf = await token_of(client, f"/dashboard/login/link?token={token}")
    r = await client.post("/dashboard/login/link", data={"token": token, "csrf_token": csrf}, allow_redirects=False)
    return r.status


async def _works_once(client: TestClient, token: str) -> None:
    assert await _log_in_with(client, token) == 303
    assert (await client.get("/dashboard/")).status == 200
    client.session.cookie_jar.clear()
    assert await _log_in_with(client, token) == 403  # a second use is refused
    assert (await client.get("/dashboard/", allow_redirects=False)).status == 303


#: Loggers of the test's own side: the fake mail server (the owner's mailbox) and the test web
#: server's access log (``rapport run`` serves without one).
THEIRS = ("mail.log", "aiohttp.access")


def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """``rapport run --log-level DEBUG``: Rapport's own lines at DEBUG, the chat and HTTP client
    libraries (which log request bodies at DEBUG) at INFO, as ``bot.logs.setup`` sets them."""
    caplog.set_level(logging.DEBUG)
    for library in ("httpx", "httpcore", "telegram", "slack_bolt", "slack_sdk"):
        caplog.set_level(logging.INFO, logger=library)


def _no_token_logged(caplog: pytest.LogCaptureFixture, token: str) -> None:
    ours = [r for r in caplog.records if not r.name.startswith(THEIRS)]
    assert any(r.name.startswith("scheduler.dispatch") for r in ours), "the flow's log lines were captured"
    for record in ours:
        assert token not in record.getMessage(), record.name
        assert token not in repr(record.__dict__), record.name


# E-mail, asked for from the command line --------------------------------------------------------


async def test_cli_sends_a_link_by_email_that_works_once(
    db_url: str, site: Site, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:  # fmt: skip
    _log_everything(caplog)
    app, client = site.app, site.client
    _owner(app)
    done = cli(db_url, "owner", "login-link", "lee@example.com", "--via", "email")
    assert done.exit_code == 0, done.output
    assert "goes out by email" in done.stdout
    assert "token=" not in done.output
    assert "no `rapport run` is running" in done.output
    (row,) = _rows(app)
    assert row.channel == "email"
    assert "token" not in str(row.payload)
    # The command line stamps the row with the wall clock; the service and the page follow it.
    clock = site.clock
    clock.now = row.created_at + dt.timedelta(seconds=2)
    deliver = LoginLinkDelivery(sessions=app.sessions, config=_with_smtp(app.config, smtp_server), clock=clock)
    await _dispatch(app, deliver, clock)
    (message,) = smtp_server.messages
    assert smtp_server.envelopes == [("rapport@example.com", ["lee@example.com"])]
    assert message["Subject"] == "Your Rapport login link"
    body = message.get_content()
    match = TOKEN.search(body)
    assert match
    assert body.count("token=") == 1
    (row,) = _rows(app)
    assert row.status == "sent"
    with transaction(app.sessions) as s:
        (stored,) = s.scalars(select(LoginToken)).all()
        assert match.group(1) not in stored.token_hash  # only its digest is kept
    clock.now += dt.timedelta(minutes=1)
    await _works_once(client, match.group(1))
    _no_token_logged(caplog, match.group(1))


async def test_cli_send_picks_a_linked_chat_account_and_says_when_it_cannot(db_url: str, make_app) -> None:
    app = make_app()
    _owner(app, slack="U0LEE")
    _owner(app, "nomail", email=None)
    assert cli(db_url, "owner", "login-link", "lee@example.com", "--send").exit_code == 0
    assert [r.channel for r in _rows(app)] == ["slack"]
    assert _rows(app)[0].payload == {"owner": "lee@example.com", "external_id": "U0LEE", "workspace": TEAM}
    assert cli(db_url, "owner", "login-link", "nomail", "--send").exit_code == 2
    unlinked = cli(db_url, "owner", "login-link", "lee@example.com", "--via", "telegram")
    assert unlinked.exit_code == 2
    assert "lee@example.com has no linked telegram account" in unlinked.output
    assert cli(db_url, "owner", "login-link", "lee@example.com", "--via", "fax").exit_code == 2
    assert cli(db_url, "owner", "login-link", "ghost@example.com", "--send").exit_code == 2
    assert len(_rows(app)) == 1


def test_a_login_link_in_a_library_s_log_line_is_redacted() -> None:
    from bot.redaction import redact

    line = '"GET /dashboard/login/link?token=ExYa-2MKHWZGzYJCMa_Rq65h8XFtX2ePzQbkfjlcl6E HTTP/1.1" 200'
    assert redact(line, secrets=[]) == '"GET /dashboard/login/link?token=[redacted] HTTP/1.1" 200'


# Slack: the owner writes "login" in a DM ------------------------------------------------------


async def test_slack_login_command_sends_one_dm_with_a_working_link(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.channels.slack_kit import Clock as SlackClock
    from tests.channels.slack_kit import SlackRig, dm_of, make_channel
    from tests.fakes.slack_api import FakeSlackAPI

    _log_everything(caplog)
    async with FakeSlackAPI() as api:
        app = make_app()
        clock = SlackClock(NOW)
        channel = make_channel(app, api, clock)
        async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as http:
            await channel.start()
            await channel.drain()
            rig = SlackRig(api=api, app=app, channel=channel, http=http, clock=clock)
            _owner(app, slack="U0LEE")
            await rig.dm("U0LEE", "login")
            assert rig.posted_texts(dm_of("U0LEE")) == []  # the link is the only message
            (row,) = _rows(app)
            assert (row.channel, row.status) == ("slack", "pending")
            await _dispatch(app, LoginLinkDelivery(sessions=app.sessions, config=app.config,
                                                   channels={"slack": channel}, clock=Clock()), Clock())  # fmt: skip
            (text,) = rig.posted_texts(dm_of("U0LEE"))
            await channel.stop()
    assert text.count("token=") == 1
    assert "|Log in to Rapport>" in text  # Slack's link syntax: the token is not mangled by escaping
    match = TOKEN.search(text)
    assert match
    dashboard = make_dashboard(sessions=app.sessions, config=app.config, clock=lambda: NOW)
    async with TestClient(TestServer(make_web_app(dashboard=dashboard))) as client:
        await _works_once(client, match.group(1))
    _no_token_logged(caplog, match.group(1))


# Telegram: the owner sends /login -------------------------------------------------------------


async def test_telegram_login_command_sends_one_message_with_a_working_link(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    from tests.channels.telegram_kit import Clock as TelegramClock
    from tests.channels.telegram_kit import make_channel, post_update, text_update, webhook_client
    from tests.fakes.telegram_api import FakeTelegramAPI

    _log_everything(caplog)
    app = make_app()
    _owner(app, telegram="5150")
    async with FakeTelegramAPI() as api:
        channel = make_channel(app, api, mode="webhook", clock=TelegramClock(NOW))
        await channel.start()
        client = await webhook_client(channel)
        try:
            assert await post_update(client, text_update("/login@RapportTestBot", chat_id=5150, update_id=7)) == 200
            assert await post_update(client, text_update("/login@RapportTestBot", chat_id=5150, update_id=7)) == 200
            assert api.sent_texts(5150) == []
            (row,) = _rows(app)  # the same update twice queued one link
            assert row.channel == "telegram"
            await _dispatch(app, LoginLinkDelivery(sessions=app.sessions, config=app.config,
                                                   channels={"telegram": channel}, clock=Clock()), Clock())  # fmt: skip
            (text,) = api.sent_texts(5150)
        finally:
            await client.close()
            await channel.stop()
    match = TOKEN.search(text)
    assert match
    dashboard = make_dashboard(sessions=app.sessions, config=app.config, clock=lambda: NOW)
    async with TestClient(TestServer(make_web_app(dashboard=dashboard))) as http:
        await _works_once(http, match.group(1))
    _no_token_logged(caplog, match.group(1))


def test_telegram_commands_that_are_not_the_engine_s_keep_their_text(make_app) -> None:
    from bot.channels.telegram.translate import Deliver, translate
    from memory import store
    from memory.models import Promise
    from tests.channels.telegram_kit import text_update

    typed = "/promise@RapportTestBot @ann a call back"
    action = translate(text_update(typed, chat_id=5150), now=NOW)
    assert isinstance(action, Deliver)
    inbound = action.inbound
    assert (inbound.kind, inbound.command, inbound.text) == ("command", "help", typed)
    app = make_app()
    _owner(app, telegram="5150")
    with transaction(app.sessions) as s:
        # Ann is Lee's: owners act only on their own people.
        store.upsert_person(s, key="ann", name="Ann", email=None, timezone="UTC", owner_key="lee@example.com",
                            programs=[], now=NOW)  # fmt: skip
    (reply,) = app.service.handle(inbound, markup="telegram_html")
    assert reply.text.startswith("Noted: the promise to Ann")
    with transaction(app.sessions) as s:
        assert [p.text for p in s.query(Promise)] == ["a call back"]


async def test_login_from_someone_who_is_not_an_owner_is_an_ordinary_message(make_app) -> None:
    from bot.engine.ports import Inbound

    app = make_app()
    _owner(app, slack="U0LEE")
    stranger = Inbound(channel="slack", workspace=TEAM, sender="U0NOBODY", kind="text", text="login", received_at=NOW)
    replies = app.service.handle(stranger, markup="slack_mrkdwn")
    assert replies  # "who are you" for a stranger, never a link
    assert _rows(app) == []


async def test_asking_too_often_queues_no_more_links(make_app) -> None:
    from bot.engine.ports import Inbound

    app = make_app()
    _owner(app, slack="U0LEE")
    for i in range(owner_login.MAX_PER_WINDOW + 1):
        ask = Inbound(channel="slack", workspace=TEAM, sender="U0LEE", kind="text", text="Login", event_key=f"e{i}",
                      received_at=NOW + dt.timedelta(minutes=i))  # fmt: skip
        replies = app.service.handle(ask, markup="slack_mrkdwn")
    assert "several login links" in replies[0].text
    assert len(_rows(app)) == owner_login.MAX_PER_WINDOW


# The login page: "E-mail me a login link" ------------------------------------------------------


async def _ask_by_mail(client: TestClient, address: str, csrf: str | None = "fetch") -> tuple[int, str]:
    data = {"email": address}
    if csrf == "fetch":
        data["csrf_token"] = await token_of(client, "/dashboard/login")
    r = await client.post("/dashboard/login/email", data=data)
    return r.status, await r.text()


async def test_login_page_mails_a_link_and_reveals_no_owner(
    site: Site, smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture,  # noqa: F811
) -> None:  # fmt: skip
    _log_everything(caplog)
    app, client = site.app, site.client
    _owner(app)
    known = await _ask_by_mail(client, " Lee@Example.com ")
    unknown = await _ask_by_mail(client, "nobody@example.com")
    assert known[0] == unknown[0] == 200
    assert known[1] == unknown[1]  # the same page, so the form tells nobody who is an owner
    assert "If that address belongs to an owner" in known[1]
    assert (await _ask_by_mail(client, "lee@example.com", csrf=None))[0] == 403  # no CSRF token
    (row,) = _rows(app)
    assert row.channel == "email"
    deliver = LoginLinkDelivery(sessions=app.sessions, config=_with_smtp(app.config, smtp_server), clock=Clock())
    await _dispatch(app, deliver, Clock())
    (message,) = smtp_server.messages
    assert message["To"] == "lee@example.com"
    match = TOKEN.search(message.get_content())
    assert match
    await _works_once(client, match.group(1))
    _no_token_logged(caplog, match.group(1))


async def test_login_page_link_requests_are_rate_limited(site: Site) -> None:
    app, client = site.app, site.client
    _owner(app)
    limit = app.config.web.dashboard.login_attempts
    statuses = [(await _ask_by_mail(client, f"someone{i}@example.com"))[0] for i in range(limit)]
    assert statuses == [200] * limit
    status, page = await _ask_by_mail(client, "lee@example.com")  # the same client, over the limit
    assert status == 429
    assert "Too many requests" in page
    assert _rows(app) == []


async def test_rapport_run_sends_queued_login_links(make_app, smtp_server: SmtpServer) -> None:  # noqa: F811
    from bot.runner import Runner

    app = make_app(config_override=_with_smtp(make_app().config, smtp_server))
    owner_id = _owner(app)
    with transaction(app.sessions) as s:
        owner = s.get(Owner, owner_id)
        assert owner is not None
        assert owner_login.request_login_link(s, owner=owner, now=NOW).via == "email"
    runner = Runner(app=app, channels={}, serve_web=False, clock=Clock(NOW + dt.timedelta(seconds=1)))
    await runner.run_until_idle()
    (message,) = smtp_server.messages
    assert TOKEN.search(message.get_content())
    assert [r.status for r in _rows(app)] == ["sent"]


# What the handler does with odd rows ---------------------------------------------------------


async def test_odd_rows_are_skipped_or_wait_without_making_a_link(make_app) -> None:
    app = make_app()
    owner_id = _owner(app, slack="U0LEE", email=None)
    with transaction(app.sessions) as s:
        owner = s.get(Owner, owner_id)
        assert owner is not None
        slack = owner_login.request_login_link(s, owner=owner, now=NOW, via="slack")
        assert owner_login.request_login_link(s, owner=owner, now=NOW, via="email").outcome == "no_route"
    (row,) = _rows(app)
    assert slack.outbox_id == row.id
    deliver = LoginLinkDelivery(sessions=app.sessions, config=app.config, clock=Clock())
    with pytest.raises(NotNow):  # Slack does not run in this process: wait, and make no link
        await deliver(row)
    sent: list[Any] = []

    class Recorder:
        markup = "slack_mrkdwn"

        async def send(self, address: Any, messages: Any) -> Any:
            sent.append(address)
            return None

    late = LoginLinkDelivery(sessions=app.sessions, config=app.config, channels={"slack": Recorder()},
                             clock=Clock(NOW + dt.timedelta(minutes=16)))  # fmt: skip
    with pytest.raises(SkipMessage):  # asked for longer ago than a link lives
        await late(row)
    with transaction(app.sessions) as s:
        s.query(OwnerIdentity).delete()
    on_time = LoginLinkDelivery(sessions=app.sessions, config=app.config, channels={"slack": Recorder()},
                                clock=Clock())  # fmt: skip
    with pytest.raises(SkipMessage):  # the account was unlinked meanwhile
        await on_time(row)
    row.channel = "email"
    with pytest.raises(PermanentFailure):  # no e-mail address
        await on_time(row)
    assert sent == []
    with transaction(app.sessions) as s:
        assert s.scalars(select(LoginToken)).all() == []
