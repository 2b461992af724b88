"""In a real headless Chromium: "E-mail me a login link" on the login page, the e-mail arriving at
a local SMTP server, and its link logging the owner in once (the browser kit of
``test_browser.py``: Debian's chromium through Playwright; skips without it outside CI)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.app import App
from bot.config import Config
from bot.dashboard.link_delivery import LoginLinkDelivery
from bot.engine import owner_login
from memory.db import transaction
from memory.models import Owner
from scheduler.dispatch import Dispatcher
from tests.fakes.smtp_server import SmtpServer, smtp_server  # noqa: F401  (fixture)
from tests.web.test_browser import _page, app, base_url, browser, world  # noqa: F401  (fixtures)
from tests.web.world import NOW, World

pytestmark = pytest.mark.slow


async def test_an_owner_asks_for_a_link_by_e_mail_and_logs_in_with_it(
    browser: Any, base_url: str, app: App, world: World, smtp_server: SmtpServer,  # noqa: F811
) -> None:  # fmt: skip
    with transaction(app.sessions) as s:
        s.query(Owner).filter_by(key="alice@example.com").one().email = "alice@example.com"
    dialogs: list[str] = []
    page = await _page(browser, dialogs, width=390)
    await page.goto(f"{base_url}/dashboard/")
    await page.get_by_label("Your e-mail address").fill("alice@example.com")
    await page.get_by_role("button", name="E-mail me a login link").click()
    await page.get_by_role("heading", name="Check your e-mail").wait_for()

    data = app.config.model_dump()
    data["email"] = {**data["email"], "host": smtp_server.host, "port": smtp_server.port, "starttls": False}
    config = Config.model_validate(data)
    deliver = LoginLinkDelivery(sessions=app.sessions, config=config, clock=lambda: NOW)
    await Dispatcher(sessions=app.sessions, handlers={owner_login.KIND: deliver}, worker_id="w",
                     clock=lambda: NOW).dispatch_once()  # fmt: skip
    (message,) = smtp_server.messages
    match = re.search(r"http://\S+/dashboard/login/link\?token=([A-Za-z0-9_-]+)", message.get_content())
    assert match
    link = f"{base_url}/dashboard/login/link?token={match.group(1)}"

    await page.goto(link)
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="Portfolio").wait_for()
    await page.context.clear_cookies()
    await page.goto(link)  # the same link again, in a browser without the session
    await page.get_by_role("button", name="Log in").click()
    await page.get_by_role("heading", name="This login link cannot be used").wait_for()
    assert dialogs == []
