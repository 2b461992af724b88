"""After "stop" on the web check-in page: a clear page saying Rapport will not write, with a
button to take part again that goes through the engine's opt-in rule. Over HTTP, and in a real
headless Chromium (the browser kit of ``test_browser.py``)."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.channels.web import WebChannel
from bot.cli.people import seed_demo
from bot.invites import make_token
from bot.web import make_web_app
from memory import store
from memory.db import transaction
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS, _need_browser

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
KEY = b"k" * 32
FIELDS = re.compile(r'name="(nonce|csrf)" value="([^"]+)"')


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    application = make_app()
    seed_demo(application, NOW)
    application.service.start(person_ref="demo-dana", program="customers", channel="web", now=NOW)
    return application


def _channel(app: App) -> WebChannel:
    return WebChannel(service=app.service, config=app.config, key=KEY, clock=lambda: NOW, base="http://rapport.test")


def _path(app: App) -> str:
    with transaction(app.sessions) as s:
        person_id = store.require_person(s, "demo-dana").id
    return f"/c/{make_token(person_id=person_id, key=KEY, now=NOW, ttl=dt.timedelta(days=1))}"


def _opted_out(app: App) -> bool:
    with transaction(app.sessions) as s:
        return store.require_person(s, "demo-dana").opted_out_at is not None


@pytest.fixture
async def client(app: App) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_web_app(routes=_channel(app).routes()))) as c:
        yield c


async def _post(client: TestClient, path: str, **data: str) -> str:
    page = await client.get(path)
    fields = dict(FIELDS.findall(await page.text()))
    response = await client.post(path, data={**fields, **data}, allow_redirects=False)
    assert response.status == 303, await response.text()
    return await (await client.get(path)).text()


async def test_after_stop_the_page_says_so_and_start_again_opts_back_in(client: TestClient, app: App) -> None:
    path = _path(app)
    await _post(client, path, action="stop")
    body = await _post(client, path, text="yes")
    assert _opted_out(app)
    assert "You will not be contacted" in body
    assert "You will not get more check-ins" in body
    assert 'value="start"' in body
    assert "Stop these check-ins" not in body
    # A fresh browser (the link opened again later) sees the same page.
    client.session.cookie_jar.clear()
    assert "You will not be contacted" in await (await client.get(path)).text()
    fields = dict(FIELDS.findall(await (await client.get(path)).text()))
    for _ in range(2):  # the same form posted twice (a refresh): one event
        response = await client.post(path, data={**fields, "action": "start"}, allow_redirects=False)
        assert response.status == 303
    body = await (await client.get(path)).text()
    assert not _opted_out(app)
    assert body.count("Welcome back! You will receive check-ins again.") == 1
    assert "You will get check-ins again" in body
    assert "You will not be contacted" not in body


async def test_start_again_needs_its_csrf_value(client: TestClient, app: App) -> None:
    path = _path(app)
    await _post(client, path, action="stop")
    await _post(client, path, text="yes")
    fields = dict(FIELDS.findall(await (await client.get(path)).text()))
    forged = await client.post(path, data={"nonce": fields["nonce"], "csrf": "0" * 64, "action": "start"})
    assert forged.status == 403
    assert _opted_out(app)


async def test_start_again_while_taking_part_changes_nothing(client: TestClient, app: App) -> None:
    path = _path(app)
    body = await _post(client, path, action="start")
    assert not _opted_out(app)
    assert "You will not be contacted" not in body


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    _need_browser()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.mark.slow
async def test_stop_and_start_again_in_chromium(browser: Any, app: App) -> None:
    server = TestServer(make_web_app(routes=_channel(app).routes()), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        page = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
        await page.goto(base + _path(app))
        await page.get_by_role("button", name="Stop these check-ins").click()
        await page.locator("textarea#text").fill("yes")
        await page.get_by_role("button", name="Send").click()
        heading = page.get_by_role("heading", name="You will not be contacted")
        assert await heading.is_visible()
        assert _opted_out(app)
        if os.environ.get("RAPPORT_SCREENSHOTS") == "1":
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "web-opted-out.png"), full_page=True)
        start = page.get_by_role("button", name="Start check-ins again")
        # Keyboard only: Tab to the button, Enter.
        for _ in range(8):
            await page.keyboard.press("Tab")
            if await start.evaluate("b => b === document.activeElement"):
                break
        await page.keyboard.press("Enter")
        await page.wait_for_selector("text=You will get check-ins again")
        assert not _opted_out(app)
        assert await page.get_by_role("heading", name="You will not be contacted").count() == 0
    finally:
        await server.close()
