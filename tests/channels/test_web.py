"""The web-link check-in channel, in process: the page, answers, follow-ups, bad links, refresh."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.channels.web import WebChannel
from bot.cli.people import seed_demo
from bot.invites import make_token
from bot.web import make_web_app
from memory import store
from memory.db import transaction
from memory.models import Answer, Person

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
KEY = b"k" * 32
FIELDS = re.compile(r'name="(nonce|csrf)" value="([^"]+)"')


def _person_id(app: App, key: str) -> int:
    with transaction(app.sessions) as s:
        return store.require_person(s, key).id


@pytest.fixture
def web_app(make_app: Callable[..., App], request: pytest.FixtureRequest) -> App:
    real = request.node.get_closest_marker("model") is not None
    app = make_app(real_model=real)
    seed_demo(app, NOW)
    app.service.start(person_ref="demo-dana", program="customers", channel="web", now=NOW)
    return app


@pytest.fixture
async def client(web_app: App) -> AsyncIterator[TestClient]:
    channel = WebChannel(
        service=web_app.service, config=web_app.config, key=KEY, clock=lambda: NOW, base="http://rapport.test"
    )
    async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as c:
        yield c


def link(app: App, person: str = "demo-dana", *, now: dt.datetime = NOW, key: bytes = KEY) -> str:
    return f"/c/{make_token(person_id=_person_id(app, person), key=key, now=now, ttl=dt.timedelta(days=1))}"


async def form_of(client: TestClient, path: str) -> tuple[str, dict[str, str]]:
    page = await client.get(path)
    assert page.status == 200
    body = await page.text()
    return body, dict(FIELDS.findall(body))


async def post(client: TestClient, path: str, **data: str) -> str:
    _, fields = await form_of(client, path)
    response = await client.post(path, data={**fields, **data}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return await (await client.get(path)).text()


async def test_the_page_asks_the_rating_with_buttons(client: TestClient, web_app: App) -> None:
    body, fields = await form_of(client, link(web_app))
    assert '<html lang="en">' in body
    assert "<fieldset>" in body
    assert "<legend" in body
    assert body.count('name="rating"') == 11  # 0..10, real buttons
    assert {"nonce", "csrf"} <= fields.keys()


async def test_a_rating_then_a_reason_are_stored(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    body = await post(client, path, rating="8")
    assert "main reason" in body
    await post(client, path, text="Still quick support, thanks.")
    with transaction(web_app.sessions) as s:
        answers = s.query(Answer).join(Person).filter(Person.key == "demo-dana").order_by(Answer.id).all()
        assert [a.rating for a in answers][-2] == 8
        assert answers[-1].text == "Still quick support, thanks."


async def test_a_double_post_answers_once(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    _, fields = await form_of(client, path)
    for _ in range(2):
        response = await client.post(path, data={**fields, "rating": "8"}, allow_redirects=False)
        assert response.status == 303
    with transaction(web_app.sessions) as s:
        ratings = [a.rating for a in s.query(Answer).join(Person).filter(Person.key == "demo-dana") if a.rating]
    assert ratings == [9, 8]


async def test_words_are_text_not_markup(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    await post(client, path, rating="8")
    body = await post(client, path, text="<img src=x onerror=alert(1)>")
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(1)&gt;" in body


async def test_tampered_and_expired_links_get_a_kind_page(client: TestClient, web_app: App) -> None:
    good = link(web_app)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    response = await client.get(tampered)
    assert response.status == 404
    assert "does not work" in await response.text()
    old = link(web_app, now=NOW - dt.timedelta(days=3))
    response = await client.get(old)
    assert response.status == 410
    assert "expired" in await response.text()
    response = await client.get("/c/short")
    assert response.status == 404
    forged = link(web_app, key=b"x" * 32)
    response = await client.post(forged, data={"nonce": "n" * 20, "csrf": "x", "rating": "1"})
    assert response.status == 404


async def test_a_form_without_its_csrf_value_is_refused(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    _, fields = await form_of(client, path)
    for csrf in ("0" * 64, "", "é" * 64):
        response = await client.post(path, data={"nonce": fields["nonce"], "csrf": csrf, "rating": "3"})
        assert response.status == 403
    with transaction(web_app.sessions) as s:
        assert [a.rating for a in s.query(Answer) if a.rating is not None].count(3) == 0


async def test_stop_opts_out(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    body = await post(client, path, action="stop")
    assert '<textarea id="text"' in body  # asked to confirm
    body = await post(client, path, text="yes")
    assert "You will not get more check-ins" in body
    with transaction(web_app.sessions) as s:
        assert store.require_person(s, "demo-dana").opted_out_at is not None


@pytest.mark.model
async def test_a_changed_view_gets_a_follow_up_quoting_earlier_words(client: TestClient, web_app: App) -> None:
    path = link(web_app)
    await post(client, path, rating="4")
    body = await post(
        client, path, text="Support now takes days to reply, and the last two releases broke our exports."
    )
    assert "Support answered within an hour" in body  # her words from six months ago
    body = await post(client, path, text="A new account manager; nobody picked up our tickets.")
    assert "Thank you" in body or "thank" in body.lower()
