"""`rapport run` serves the dashboard beside /healthz, and leaves it out when disabled."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from bot.app import App
from bot.runner import Runner


async def _get(runner: Runner, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{runner.bound_port}{path}", allow_redirects=False) as resp:
            return resp.status, await resp.text()


async def test_the_service_serves_the_dashboard(make_app: Callable[..., App]) -> None:
    app = make_app()
    runner = Runner(app=app, channels={}, host="127.0.0.1", port=0)
    await runner.start(background=False)
    try:
        status, page = await _get(runner, "/dashboard/login")
        assert status == 200
        assert 'name="csrf_token"' in page
        assert (await _get(runner, "/"))[0] == 302
        assert (await _get(runner, "/healthz"))[0] == 200
    finally:
        await runner.stop()


async def test_the_dashboard_can_be_switched_off(make_app: Callable[..., App]) -> None:
    base = make_app().config
    web = base.web.model_copy(update={"dashboard": base.web.dashboard.model_copy(update={"enabled": False})})
    app = make_app(config_override=base.model_copy(update={"web": web}))
    runner = Runner(app=app, channels={}, host="127.0.0.1", port=0)
    await runner.start(background=False)
    try:
        assert (await _get(runner, "/dashboard/login"))[0] == 404
        assert (await _get(runner, "/"))[0] == 404
    finally:
        await runner.stop()
