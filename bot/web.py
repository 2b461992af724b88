"""Rapport's own web server (aiohttp): health, the routes channels contribute (webhooks), and the
owners' dashboard under ``/dashboard/``.

Webhook receivers are stateless, so any number of ``rapport run`` processes can serve them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

HealthCheck = Callable[[], Awaitable[dict[str, object]]]


def make_web_app(
    *,
    routes: Iterable[web.RouteDef] = (),
    health: HealthCheck | None = None,
    dashboard: web.Application | None = None,
) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        body: dict[str, object] = {"status": "ok"}
        if health is not None:
            body.update(await health())
        status = 200 if body.get("status") == "ok" else 503
        return web.json_response(body, status=status)

    app.router.add_get("/healthz", healthz)
    app.router.add_routes(list(routes))
    if dashboard is not None:
        # The owners' web app (bot.dashboard) has its own sessions and middlewares; mounted as a
        # sub-application, they never touch the webhooks.
        app.add_subapp("/dashboard", dashboard)

        async def home(_request: web.Request) -> web.Response:
            raise web.HTTPFound("/dashboard/")

        app.router.add_get("/", home)
    return app
