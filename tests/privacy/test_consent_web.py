"""Consent on the web link: the invitation e-mail and the page's help say who sees the answers,
and the page's stop button goes through the conversation's confirmation."""

from __future__ import annotations

import email
import html
from collections.abc import Callable
from pathlib import Path

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import App
from bot.channels.web import WebChannel
from bot.cli.people import import_people_text
from bot.delivery import Delivery
from bot.runner import schedules_from_config
from memory import store
from memory.db import transaction
from memory.models import OutboxMessage, Person
from scheduler.planner import Planner
from tests.channels.test_web import link, post
from tests.channels.test_web_invitations import NOW, ROSTER
from tests.privacy.test_consent_telegram import ANONYMOUS, ATTRIBUTED


async def test_the_invitation_e_mail_says_who_sees_the_answers(make_app: Callable[..., App], tmp_path: Path) -> None:
    app = make_app()
    web = app.config.channels.web.model_copy(update={"directory": str(tmp_path / "mail")})
    app.config = app.config.model_copy(update={"channels": app.config.channels.model_copy(update={"web": web})})
    import_people_text(app, ROSTER, NOW)
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config)).start_wave(program="customers", now=NOW)
    with app.sessions() as s:
        ann = s.scalars(select(Person.id).where(Person.key == "ann")).one()
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.person_id == ann)).one()
        s.expunge(row)
    channel = WebChannel(service=app.service, config=app.config, key=b"k" * 32, clock=lambda: NOW,
                         base="http://rapport.test")  # fmt: skip
    path = Path(str(await Delivery(app=app, channels={"web": channel}, clock=lambda: NOW).invitation(row)))
    body = email.message_from_bytes(path.read_bytes()).get_payload(decode=True).decode()
    assert ATTRIBUTED in body
    assert ANONYMOUS not in body


async def test_help_on_the_page_says_who_sees_the_answers(client: TestClient, web_app: App) -> None:
    body = await post(client, link(web_app), text="help")
    assert html.escape(ATTRIBUTED) in body


async def test_the_page_stop_button_asks_first_and_no_carries_on(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    body = await post(client, path, action="stop")
    assert "Reply &#34;yes&#34; to confirm" in body  # the conversation asks first
    body = await post(client, path, text="no")
    assert 'name="rating"' in body, "the rating question is back"
    with transaction(web_app.sessions) as s:
        assert store.require_person(s, "demo-dana").opted_out_at is None
    await post(client, path, action="stop")
    body = await post(client, path, text="yes")
    assert "You will not get more check-ins" in body
    with transaction(web_app.sessions) as s:
        assert store.require_person(s, "demo-dana").opted_out_at is not None
