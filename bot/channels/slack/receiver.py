"""How Slack's payloads reach Rapport: Bolt's ``AsyncApp``, over Socket Mode or the HTTP Events
API on Rapport's own web server (``/slack/events``, every request signature-checked by Bolt),
plus the OAuth install routes when the install flow is on.

A payload that carries a person's words or choice (a DM, an edit, a rating, *Yes*/*No*, *Stop
check-ins*, the App Home buttons) is stored before it is acknowledged, within a bound under Slack's
3 seconds, and the replies follow the acknowledgement (``intake``); anything else is handed to a
task and acknowledged at once. Every payload type Rapport does not use is acknowledged and ignored.

An event whose answer was not stored within the bound is not acknowledged (HTTP 503; in Socket
Mode, no envelope acknowledgement): Slack delivers it again, and the redelivery finds the answer
stored, or, after a crash, stores it.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Protocol

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.slack.blocks import (
    CONFIRM_ACTION,
    HOME_DELETE_ACTION,
    HOME_RESUME_ACTION,
    HOME_STOP_ACTION,
    JSON,
    PROMISE_SHORTCUT,
    RATING_ACTION,
    STOP_ACTION,
)
from bot.channels.slack.intake import Then
from bot.channels.slack.translate import obj

log = logging.getLogger("bot.channels.slack")

BOLT_LOGGER = "bot.channels.slack.bolt"
Ack = Callable[..., Awaitable[Any]]

#: Set for each delivery before Bolt dispatches it (an empty set); a listener adds to it when the
#: delivery must not be acknowledged (its answer was not stored within the bound), so that Slack
#: retries it.
_UNSTORED: ContextVar[set[bool] | None] = ContextVar("slack_unstored", default=None)


def _leave_unacknowledged() -> None:
    marks = _UNSTORED.get()
    if marks is not None:
        marks.add(True)


async def _dispatched(dispatch: Coroutine[Any, Any, BoltResponse]) -> tuple[BoltResponse, bool]:
    """Bolt's response to one delivery, and whether Slack should hear it (see ``_UNSTORED``)."""
    marks: set[bool] = set()
    token = _UNSTORED.set(marks)
    try:
        response = await dispatch
    finally:
        _UNSTORED.reset(token)
    if marks:
        log.info("slack: an event was not stored within the bound; left unacknowledged, so Slack delivers it again")
    return response, not marks


class Listener(Protocol):
    """What the receiver hands payloads to (the channel)."""

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...
    async def take(self, store: Coroutine[Any, Any, Then | None]) -> bool: ...
    async def on_message(self, body: JSON, client: AsyncWebClient) -> Then | None: ...
    async def on_rating(self, body: JSON, client: AsyncWebClient) -> Then | None: ...
    async def on_stop(self, body: JSON, client: AsyncWebClient) -> Then | None: ...
    async def on_mention(self, body: JSON, client: AsyncWebClient) -> None: ...
    async def on_revoked(self, body: JSON, *, uninstalled: bool) -> None: ...
    async def on_home_opened(self, body: JSON, client: AsyncWebClient) -> None: ...
    async def on_home_button(self, body: JSON, client: AsyncWebClient) -> Then | None: ...
    async def on_promise_shortcut(self, body: JSON, client: AsyncWebClient) -> None: ...
    async def on_promise_form(self, ack: Ack, body: JSON) -> None: ...


class SlackReceiver:
    def __init__(
        self,
        *,
        client: AsyncWebClient,
        mode: str,
        signing_secret: str | None,
        app_token: str | None,
        oauth_settings: AsyncOAuthSettings | None,
    ) -> None:
        self.mode = mode
        self.app_token = app_token
        for name in (BOLT_LOGGER, "bot.channels.slack.api"):
            # Their DEBUG lines carry request bodies (people's words): never below INFO.
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.level, logging.INFO))
        self.bolt = AsyncApp(
            name="rapport",
            logger=logging.getLogger(BOLT_LOGGER),
            client=client,
            # The response (the acknowledgement) goes out when the listener returns: after a
            # person's answer is stored (``take``, bounded under Slack's 3 s), at once otherwise.
            process_before_response=True,
            # Bolt falls back to SLACK_SIGNING_SECRET when given None; the config decides here.
            signing_secret=signing_secret or "",
            oauth_settings=oauth_settings,
            installation_store_bot_only=True if oauth_settings is not None else None,
            # Slack's own "url_verification" and "ssl_check" are answered by Bolt's middleware.
        )
        self._socket: Any = None

    def routes(self) -> list[web.RouteDef]:
        """``/slack/events`` in HTTP mode; ``/slack/install`` and ``/slack/oauth_redirect`` with
        the install flow. Socket Mode needs no route."""
        out: list[web.RouteDef] = []
        if self.mode == "http":
            out.append(web.post("/slack/events", self._http_events))
        if self.bolt.oauth_flow is not None:
            out.append(web.get(self.bolt.oauth_flow.install_path, self._http_install))
            out.append(web.get(self.bolt.oauth_flow.redirect_uri_path, self._http_oauth_redirect))
        return out

    async def connect(self) -> None:
        if self.mode == "socket":
            self._socket = _SocketModeHandler(self.bolt, self.app_token)
            await self._socket.connect_async()

    async def close(self) -> None:
        if self._socket is not None:
            try:
                await self._socket.close_async()
            except Exception:
                log.exception("slack: closing the Socket Mode connection failed")
            self._socket = None

    def register(self, to: Listener) -> None:
        app = self.bolt

        @app.event("message")
        async def on_message(body: JSON, client: AsyncWebClient) -> None:
            if not await to.take(to.on_message(body, client)):
                _leave_unacknowledged()

        @app.event("app_home_opened")
        async def on_home(body: JSON, client: AsyncWebClient) -> None:
            to.spawn(to.on_home_opened(body, client))

        @app.event("app_mention")
        async def on_mention(body: JSON, client: AsyncWebClient) -> None:
            to.spawn(to.on_mention(body, client))

        @app.event("tokens_revoked")
        async def on_tokens_revoked(body: JSON) -> None:
            to.spawn(to.on_revoked(body, uninstalled=False))

        @app.event("app_uninstalled")
        async def on_uninstalled(body: JSON) -> None:
            to.spawn(to.on_revoked(body, uninstalled=True))

        @app.event(re.compile(".*"))
        async def on_other_event(body: JSON) -> None:
            log.debug("slack event ignored", extra={"event_type": str(obj(body.get("event")).get("type"))[:50]})

        @app.action(re.compile(f"^({RATING_ACTION}|{CONFIRM_ACTION}_)"))
        async def on_rating(ack: Ack, body: JSON, client: AsyncWebClient) -> None:
            await ack()  # recorded now, sent when the listener returns
            await to.take(to.on_rating(body, client))

        @app.action(STOP_ACTION)
        async def on_stop(ack: Ack, body: JSON, client: AsyncWebClient) -> None:
            await ack()  # recorded now, sent when the listener returns
            await to.take(to.on_stop(body, client))

        @app.action(re.compile(f"^({HOME_STOP_ACTION}|{HOME_RESUME_ACTION}|{HOME_DELETE_ACTION})$"))
        async def on_home_button(ack: Ack, body: JSON, client: AsyncWebClient) -> None:
            await ack()  # recorded now, sent when the listener returns
            await to.take(to.on_home_button(body, client))

        @app.shortcut(PROMISE_SHORTCUT)
        async def on_promise_shortcut(ack: Ack, body: JSON, client: AsyncWebClient) -> None:
            await ack()
            to.spawn(to.on_promise_shortcut(body, client))

        @app.view(PROMISE_SHORTCUT)
        async def on_promise_form(ack: Ack, body: JSON) -> None:
            # Answered in the acknowledgement itself (errors under the fields, or the outcome),
            # so the work runs before it: one short transaction.
            await to.on_promise_form(ack, body)

        async def ack_and_ignore(ack: Ack, body: JSON) -> None:
            await ack()
            log.debug("slack interaction ignored", extra={"payload_type": str(body.get("type"))[:50]})

        anything = re.compile(".*")
        app.action(anything)(ack_and_ignore)
        app.view(anything)(ack_and_ignore)
        app.shortcut(anything)(ack_and_ignore)
        app.options(anything)(ack_and_ignore)
        app.command(anything)(ack_and_ignore)

    async def _http_events(self, request: web.Request) -> web.StreamResponse:
        """``POST /slack/events``: Bolt verifies the signature and timestamp (401 otherwise)."""
        try:
            bolt_request = await to_bolt_request(request)
        except Exception:
            log.warning("slack: unreadable events request")
            return web.Response(status=400, text="unreadable request")
        try:
            response, acknowledge = await _dispatched(self.bolt.async_dispatch(bolt_request))
        except Exception:
            # A payload Bolt cannot even route: acknowledge, so Slack does not retry it forever.
            log.exception("slack: dispatching an events request failed")
            return web.Response(status=200)
        if not acknowledge:
            return web.Response(status=503)
        return await to_aiohttp_response(acknowledgeable(response))

    async def _http_install(self, request: web.Request) -> web.StreamResponse:
        assert self.bolt.oauth_flow is not None
        response = await self.bolt.oauth_flow.handle_installation(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _http_oauth_redirect(self, request: web.Request) -> web.StreamResponse:
        assert self.bolt.oauth_flow is not None
        response = await self.bolt.oauth_flow.handle_callback(await to_bolt_request(request))
        return await to_aiohttp_response(response)


def acknowledgeable(response: BoltResponse) -> BoltResponse:
    """What Slack should hear back: Bolt's own answer, except for payloads no listener can take.

    A 404 is Bolt's "unhandled request" (a payload type with no listener at all) and a 5xx is Bolt
    failing on a malformed payload (Rapport's listeners catch their own failures: an answer the
    engine failed on is answered with "try again"). A retry would end the same way, so both are acknowledged instead.
    """
    if response.status == 404 or response.status >= 500:
        log.debug("slack: a payload no listener could take was acknowledged", extra={"status": response.status})
        return BoltResponse(status=200, body="")
    return response


class _SocketModeHandler(AsyncSocketModeHandler):
    """Bolt's aiohttp Socket Mode handler, acknowledging every envelope (see ``acknowledgeable``):
    an envelope left unacknowledged is delivered again. All but one: an event whose answer was not
    stored within the bound, which is to be delivered again (``_UNSTORED``)."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        start = time.time()
        try:
            response, acknowledge = await _dispatched(run_async_bolt_app(self.app, req))
            response = acknowledgeable(response)
        except Exception:
            log.exception("slack: dispatching a Socket Mode envelope failed")
            response, acknowledge = BoltResponse(status=200, body=""), True
        if acknowledge:
            await send_async_response(client, req, response, start)
