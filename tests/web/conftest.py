"""Dashboard fixtures: the real composition root, a small history, and the web app on a test
server (in-process) for the route tests."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.dashboard import make_dashboard
from bot.web import make_web_app
from tests.web.world import NOW, PASSWORD, World, build_world

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


@pytest.fixture
def web_app(make_app: Callable[..., App]) -> App:
    return make_app()


@pytest.fixture
def world(web_app: App) -> World:
    return build_world(web_app)


@pytest.fixture
async def client(web_app: App, world: World) -> AsyncIterator[TestClient]:
    dashboard = make_dashboard(sessions=web_app.sessions, config=web_app.config, clock=lambda: NOW)
    server = TestServer(make_web_app(dashboard=dashboard))
    async with TestClient(server) as c:
        yield c


async def token_of(client: TestClient, path: str) -> str:
    page = await client.get(path)
    match = CSRF.search(await page.text())
    assert match, f"no CSRF token on {path}"
    return match.group(1)


async def log_in(client: TestClient, owner: str = "alice@example.com", password: str = PASSWORD) -> None:
    token = await token_of(client, "/dashboard/login")
    response = await client.post("/dashboard/login", data={"owner": owner, "password": password, "csrf_token": token},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 303, await response.text()
