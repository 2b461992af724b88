"""Reaching people through the web channel: the shipped config reaches a roster with e-mail
addresses, the invitation goes out as an e-mail (a file on the defaults) with a working link."""

from __future__ import annotations

import datetime as dt
import email
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import App
from bot.channels.web import WebChannel
from bot.cli.people import import_people_text
from bot.delivery import Delivery
from bot.runner import schedules_from_config
from bot.web import make_web_app
from memory import store
from memory.db import transaction
from memory.models import OutboxMessage, Person
from scheduler.planner import Planner

ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)  # a Monday, 11:00 in Berlin
ROSTER = (
    "id,name,email,timezone,owner,programs\n"
    "ann,Ann,ann@example.com,Europe/Berlin,alex@example.com,customers\n"
    "bob,Bob,,Europe/Berlin,alex@example.com,customers\n"
)


@pytest.fixture
def app(make_app: Callable[..., App], tmp_path: Path) -> App:
    application = make_app()
    web = application.config.channels.web.model_copy(update={"directory": str(tmp_path / "mail")})
    channels = application.config.channels.model_copy(update={"web": web})
    application.config = application.config.model_copy(update={"channels": channels})
    import_people_text(application, ROSTER, NOW)
    return application


async def test_the_shipped_config_reaches_people_with_an_email_address_by_web(app: App, tmp_path: Path) -> None:
    planner = Planner(sessions=app.sessions, programs=schedules_from_config(app.config))
    _wave, report = planner.start_wave(program="customers", now=NOW)
    assert report.invitations == 1  # Ann, by e-mail
    assert report.unreachable == 1  # Bob: no chat identity, no e-mail address
    with app.sessions() as s:
        ann = s.scalars(select(Person.id).where(Person.key == "ann")).one()
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "invitation", OutboxMessage.person_id == ann)
        ).one()
        s.expunge(row)
    channel = WebChannel(
        service=app.service, config=app.config, key=b"k" * 32, clock=lambda: NOW, base="http://rapport.test"
    )
    delivery = Delivery(app=app, channels={"web": channel}, clock=lambda: NOW)
    path = Path(str(await delivery.invitation(row)))
    assert path.parent == tmp_path / "mail"
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == "ann@example.com"
    body = message.get_payload(decode=True).decode()
    assert "How likely are you to recommend us" in body
    link = re.search(r"http://rapport\.test(/c/[A-Za-z0-9_-]{55})", body)
    assert link
    async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as client:
        page = await client.get(link.group(1))
        assert page.status == 200
        assert 'name="rating"' in await page.text()


def test_invite_prints_a_web_link(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    roster = tmp_path / "people.csv"
    roster.write_text(ROSTER)
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    run = [sys.executable, "-m", "bot.cli", "--config", str(ROOT / "config.yaml"), "--database", db]
    subprocess.run([*run, "init"], cwd=tmp_path, env=env, check=True, capture_output=True)
    subprocess.run([*run, "people", "import", str(roster)], cwd=tmp_path, env=env, check=True, capture_output=True)
    refused = subprocess.run([*run, "invite", "ann", "--channel", "web"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, check=False)  # fmt: skip
    assert refused.returncode == 2
    assert "RAPPORT_INVITE_SECRET" in refused.stderr
    env["RAPPORT_INVITE_SECRET"] = "s3cret-for-tests"
    made = subprocess.run([*run, "invite", "ann", "--channel", "web", "--program", "customers"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, check=False)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:8080/c/[A-Za-z0-9_-]{55}\n", made.stdout)


async def test_delivery_never_routes_someone_without_an_email_address_to_web(app: App) -> None:
    """Bob has a Telegram chat but no e-mail address; Telegram does not run in this process: his
    invitation waits for it (NotNow) instead of failing on the web channel."""
    from scheduler.dispatch import NotNow

    with transaction(app.sessions) as s:
        bob = s.scalars(select(Person).where(Person.key == "bob")).one()
        store.link_identity(s, person=bob, channel="telegram", external_id="42", now=NOW)
    planner = Planner(sessions=app.sessions, programs=schedules_from_config(app.config))
    planner.start_wave(program="customers", now=NOW)
    with app.sessions() as s:
        bob_id = s.scalars(select(Person.id).where(Person.key == "bob")).one()
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.person_id == bob_id)).one()
        s.expunge(row)
    assert row.status == "pending"
    channel = WebChannel(service=app.service, config=app.config, key=b"k" * 32, clock=lambda: NOW)
    delivery = Delivery(app=app, channels={"web": channel}, clock=lambda: NOW)
    with pytest.raises(NotNow):
        await delivery.invitation(row)


def test_the_start_up_line_says_where_invitations_go(app: App, tmp_path: Path) -> None:
    channel = WebChannel(service=app.service, config=app.config, key=b"k" * 32, clock=lambda: NOW)
    assert channel.describe() == f"web: on (invitations are written as .eml files to {tmp_path / 'mail'}/, not sent)"
    email = app.config.email.model_copy(update={"host": "smtp.example.com"})
    smtp = WebChannel(service=app.service, config=app.config.model_copy(update={"email": email}), key=b"k" * 32,
                      clock=lambda: NOW)  # fmt: skip
    assert smtp.describe() == "web: on (invitations by e-mail through smtp.example.com)"
