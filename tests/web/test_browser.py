"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

Skips when chromium or Playwright is missing, except under ``CI=true``, where a missing browser
is a failure: CI installs it (``.ci/run``). Playwright's own browser download is never used.
``RAPPORT_SCREENSHOTS=1`` also writes the screenshots in ``docs/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from bot.app import App, build
from bot.config import Config
from bot.dashboard import make_dashboard
from bot.web import make_web_app
from tests.fakes.embedder import HashingEmbedder
from tests.web.world import NOW, PASSWORD, XSS, World, build_world

CHROMIUM = os.environ.get("RAPPORT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = pytest.mark.slow


def _need_browser() -> None:
    missing = None
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        missing = f"no chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)


@pytest.fixture
def app(tmp_path: Path, config: Config) -> Iterator[App]:
    application = build(config, embedder=HashingEmbedder(), database_url=f"sqlite:///{tmp_path / 'r.db'}", migrate=True)
    yield application
    application.close()


@pytest.fixture
def world(app: App) -> World:
    return build_world(app)


@pytest.fixture
async def base_url(app: App, world: World) -> AsyncIterator[str]:
    dashboard = make_dashboard(sessions=app.sessions, config=app.config, clock=lambda: NOW)
    server = TestServer(make_web_app(dashboard=dashboard), host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


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


async def _page(browser: Any, dialogs: list[str], *, width: int = 1280) -> Any:
    context = await browser.new_context(viewport={"width": width, "height": 900})
    page = await context.new_page()
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return page


async def _login(page: Any, base_url: str, owner: str = "alice@example.com") -> None:
    await page.goto(f"{base_url}/dashboard/")
    await page.get_by_label("Owner (your e-mail or key)").fill(owner)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base_url}/dashboard/")


async def _shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_owner_logs_in_reads_the_portfolio_and_a_story(browser: Any, base_url: str, world: World) -> None:
    dialogs: list[str] = []
    page = await _page(browser, dialogs)
    await _login(page, base_url)
    await page.get_by_role("heading", name="Portfolio").wait_for()
    rows = page.locator("table.portfolio tbody tr")
    assert await rows.count() == 5  # ann, dan and alice's three employees; never bob's carl
    assert await page.locator("svg.sparkline").count() == 2  # the three employees have no attributed rating
    await page.get_by_role("link", name="Ann " + XSS).click()
    await page.get_by_role("heading", name="Ratings over time").wait_for()
    chart = page.locator("figure.chart svg[role=img]")
    assert await chart.count() == 1
    assert "2025-h2 rated 9, 2026-h1 rated 4" in (await chart.get_attribute("aria-label") or "")
    assert await page.locator("figure.chart table td", has_text="4").count() >= 1  # the text alternative
    for path in ("/dashboard/promises", "/dashboard/programs/customers", f"/dashboard/digests/{world.digest_id}"):
        assert (await page.goto(base_url + path)).status == 200, path


async def test_a_script_in_an_answer_shows_as_text_on_every_page(browser: Any, base_url: str, world: World) -> None:
    dialogs: list[str] = []
    page = await _page(browser, dialogs)
    await _login(page, base_url)
    paths = ["/dashboard/", "/dashboard/?filter=declining", "/dashboard/people/ann", "/dashboard/promises",
             f"/dashboard/promises/{world.ann_promise}/edit", "/dashboard/programs/customers",
             "/dashboard/programs/employees", f"/dashboard/digests/{world.digest_id}"]  # fmt: skip
    for path in paths:
        await page.goto(base_url + path)
        assert await page.locator("img").count() == 0, path
        if path not in ("/dashboard/programs/customers", "/dashboard/programs/employees"):
            assert XSS in await page.locator("main").inner_text(), path
    assert "<img src=x onerror=alert(1)>" in await page.locator("pre.digest").inner_text()
    assert dialogs == []


async def test_owner_b_cannot_open_owner_a_person_or_promise(browser: Any, base_url: str, world: World) -> None:
    page = await _page(browser, [])
    await _login(page, base_url, "bob@example.com")
    assert (await page.goto(f"{base_url}/dashboard/people/ann")).status == 404
    assert (await page.goto(f"{base_url}/dashboard/promises/{world.ann_promise}/edit")).status == 404
    assert (await page.goto(f"{base_url}/dashboard/people/carl")).status == 200


async def test_a_form_without_its_csrf_token_is_refused(browser: Any, base_url: str) -> None:
    page = await _page(browser, [])
    await _login(page, base_url)
    await page.goto(f"{base_url}/dashboard/people/ann")
    await page.get_by_label("What was promised").fill("Without a token")
    await page.locator("form[action$='/promises'] input[name=csrf_token]").evaluate("e => e.remove()")
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name="Record promise").click()
    assert (await posted.value).status == 403
    await page.goto(f"{base_url}/dashboard/people/ann")
    assert "Without a token" not in await page.locator("main").inner_text()
    await page.get_by_label("What was promised").fill("With the token")
    await page.get_by_role("button", name="Record promise").click()
    await page.locator("li", has_text="With the token").first.wait_for()


async def test_anonymous_program_cannot_be_sliced_below_k(browser: Any, base_url: str) -> None:
    page = await _page(browser, [])
    await _login(page, base_url)
    await page.goto(f"{base_url}/dashboard/programs/employees")
    text = await page.locator("main").inner_text()
    assert "fewer than 5 respondents" in text
    assert "anon words" not in text
    for query in ("person=emp0", "owner=bob@example.com", "since=2026-01-01"):
        response = await page.goto(f"{base_url}/dashboard/programs/employees?{query}")
        assert response.status == 400, query
        assert "anon words" not in await page.locator("main").inner_text()
    for name in ("declining", "silent", "changed", "broken"):
        await page.goto(f"{base_url}/dashboard/?filter={name}")
        assert "anon words" not in await page.content()


async def test_the_story_reads_on_a_phone(browser: Any, base_url: str) -> None:
    page = await _page(browser, [], width=375)
    await _login(page, base_url)
    await page.goto(f"{base_url}/dashboard/people/ann")
    overflow = await page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"


async def test_screenshots(browser: Any, tmp_path: Path, config: Config) -> None:
    """The pictures in README and docs/web.md, from a history without the script-like words."""
    if os.environ.get("RAPPORT_SCREENSHOTS") != "1":
        pytest.skip("set RAPPORT_SCREENSHOTS=1 to refresh docs/screenshots/")
    app = build(config, embedder=HashingEmbedder(), database_url=f"sqlite:///{tmp_path / 's.db'}", migrate=True)
    world = build_world(app, mark="", extra=4)
    server = TestServer(make_web_app(dashboard=make_dashboard(sessions=app.sessions, config=app.config,
                                                              clock=lambda: NOW)), host="127.0.0.1")  # fmt: skip
    await server.start_server()
    try:
        base = str(server.make_url("")).rstrip("/")
        page = await _page(browser, [])
        await _login(page, base)
        pages = {"portfolio": "/dashboard/", "story": "/dashboard/people/ann", "promises": "/dashboard/promises",
                 "program": "/dashboard/programs/customers", "program-anonymous": "/dashboard/programs/employees",
                 "digest": f"/dashboard/digests/{world.digest_id}"}  # fmt: skip
        for name, path in pages.items():
            assert (await page.goto(base + path)).status == 200, path
            await _shot(page, name)
        phone = await _page(browser, [], width=390)
        await _login(phone, base)
        await phone.goto(base + "/dashboard/people/ann")
        await _shot(phone, "story-phone")
    finally:
        await server.close()
        app.close()
