"""A web-link check-in in a real headless Chromium on a phone-sized screen: the rating by
keyboard, the reason, the follow-up quoting earlier words, a promise question, the end.

Uses the browser kit of ``test_browser.py`` (Debian's chromium, Playwright; skips without them
outside CI). ``RAPPORT_SCREENSHOTS=1`` also writes ``docs/screenshots/web-checkin.png``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import App
from bot.channels.web import WebChannel
from bot.cli.people import seed_demo
from bot.web import make_web_app
from memory import promises, store
from memory.db import transaction
from memory.models import Promise
from tests.web.test_browser import ARGS, CHROMIUM, SHOTS, _need_browser

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)

pytestmark = [pytest.mark.slow, pytest.mark.model]


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


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    application = make_app(real_model=True)
    seed_demo(application, NOW)
    with transaction(application.sessions) as s:
        dana = store.require_person(s, "demo-dana")
        promises.add_promise(s, person=dana, owner=None, text="A named contact for support tickets", now=NOW
                             - dt.timedelta(days=60), due_at=NOW - dt.timedelta(days=1))  # fmt: skip
    application.service.start(person_ref="demo-dana", program="customers", channel="web", now=NOW)
    return application


async def test_a_web_checkin_with_a_follow_up_and_a_promise_question(browser: Any, app: App) -> None:
    channel = WebChannel(service=app.service, config=app.config, key=b"k" * 32, clock=lambda: NOW)
    server = TestServer(make_web_app(routes=channel.routes()), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        with transaction(app.sessions) as s:
            link = channel.link_for(store.require_person(s, "demo-dana").id).replace(channel.base, base)
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        await page.goto(link)
        assert await page.get_attribute("html", "lang") == "en"
        legend = page.locator("fieldset legend")
        assert "0 = not at all likely" in await legend.inner_text()
        # Keyboard: Tab to the buttons (no mouse), Enter on "4".
        four = page.get_by_role("button", name="4", exact=True)
        for _ in range(12):
            await page.keyboard.press("Tab")
            if await four.evaluate("b => b === document.activeElement"):
                break
        await page.keyboard.press("Enter")
        await page.get_by_label(re.compile("What is the main reason for your score")).fill(
            "Support now takes days to reply, and the last two releases broke our exports."
        )
        await page.get_by_role("button", name="Send").click()
        followup = page.locator("textarea#text")
        label = await page.locator("label[for=text]").inner_text()
        assert "Support answered within an hour" in label  # her words of six months ago
        if os.environ.get("RAPPORT_SCREENSHOTS") == "1":
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "web-checkin.png"), full_page=True)
        await followup.fill("A new account manager, and nobody picked up our tickets.")
        await page.get_by_role("button", name="Send").click()
        question = await page.locator("form.answer").inner_text()
        assert "A named contact for support tickets" in question  # the promise question
        buttons = page.locator("form.answer button")
        if await buttons.count() > 1:
            await buttons.first.click()
        else:
            await page.locator("textarea#text").fill("yes")
            await page.get_by_role("button", name="Send").click()
        await page.wait_for_selector("p.note")
        assert "That is all for now" in await page.locator("p.note").inner_text()
        assert dialogs == []
    finally:
        await server.close()
    with transaction(app.sessions) as s:
        promise = s.query(Promise).one()
        assert promise.outcomes or promise.status != "open"
