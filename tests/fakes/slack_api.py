"""A loopback fake of the Slack Web API, for pointing the real slack-sdk ``AsyncWebClient`` (and
slack-bolt's ``AsyncApp``) at.

Usage::

    async with FakeSlackAPI() as api:
        client = AsyncWebClient(token=api.bot_token, base_url=api.base_url)
        api.users_by_email["ada@example.com"] = "U0ADA"
        api.fail("chat.postMessage", status=429, retry_after=3)       # the next call answers 429
        api.fail("chat.postMessage", error="account_inactive")        # ... or a Slack error
        api.fail("chat.postMessage", status=503, times=2)             # ... or a 5xx, twice
        api.fail("chat.postMessage", disconnect=True)                 # ... or drops the connection
        envelope = await api.socket_send(event_callback)              # Socket Mode: push an event
        await api.socket_ack(envelope)                                # ... and wait for its ack
        ...
        assert api.calls_to("chat.postMessage")[0]["text"] == "..."

It binds to port 0 on 127.0.0.1 and records every call with its parameters merged from the query
string (slack-sdk sends ``conversations.open`` and ``users.lookupByEmail`` parameters there), a
form body or a JSON body. It answers like Slack: ``{"ok": true, ...}`` or ``{"ok": false,
"error": "..."}``. Methods it does not know answer ``unknown_method``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

JSON = dict[str, Any]


@dataclass
class Call:
    method: str
    params: JSON
    token: str | None
    # What the fake answered (for chat.postMessage, the message's ``ts``).
    result: JSON | None = None


@dataclass(frozen=True)
class Post:
    """One chat.postMessage request as the fake saw it (``status`` 200: accepted)."""

    at: float
    channel: str
    status: int
    retry_after: int | None
    # Posted to a conversation before the Retry-After it was given had passed.
    early: bool


@dataclass
class _Failure:
    status: int
    error: str | None
    retry_after: int | None
    disconnect: bool
    remaining: int


@dataclass
class FakeSlackAPI:
    bot_token: str = "xoxb-T111-test"
    team_id: str = "T111"
    bot_user_id: str = "UBOT"
    bot_id: str = "BBOT"
    calls: list[Call] = field(default_factory=list)
    # users.lookupByEmail answers from here (email -> user id).
    users_by_email: dict[str, str] = field(default_factory=dict)
    # Users whose DM cannot be opened (conversations.open answers this error).
    dm_errors: dict[str, str] = field(default_factory=dict)
    # What oauth.v2.access answers for a code (the multi-workspace install flow).
    oauth_team: JSON = field(default_factory=lambda: {"id": "T222", "name": "Other Co"})

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._failures: dict[str, list[_Failure]] = {}
        self._slow: dict[str, list[float]] = {}
        # Per-conversation pacing (``enforce_pacing``): seconds between two posts, Retry-After.
        self._pacing: tuple[float, int] | None = None
        self._last_post: dict[str, float] = {}
        self._wait_until: dict[str, float] = {}
        # Every chat.postMessage request and what it was answered.
        self.posts: list[Post] = []
        self._server: TestServer | None = None
        self._sockets: list[web.WebSocketResponse] = []
        self._envelopes = itertools.count(1)
        self.socket_acks: dict[str, JSON] = {}
        # Called as each Socket Mode acknowledgement arrives; what it returns is kept by envelope
        # id (what was true when Slack heard back).
        self.on_socket_ack: Callable[[], Any] | None = None
        self.seen_at_ack: dict[str, Any] = {}
        self._acked = asyncio.Condition()
        self.handlers: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self._auth_test,
            "conversations.open": self._conversations_open,
            "chat.postMessage": self._post_message,
            "chat.postEphemeral": lambda p: {"message_ts": self._next_ts()},
            "chat.update": lambda p: {"channel": p.get("channel"), "ts": p.get("ts"), "text": p.get("text")},
            "users.lookupByEmail": self._lookup_by_email,
            "views.publish": lambda p: {"view": {"id": "V1", **_as_json(p.get("view"))}},
            "views.open": self._views_open,
            "oauth.v2.access": self._oauth_access,
            "apps.connections.open": self._connections_open,
            "users.info": self._users_info,
        }

    # Lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> FakeSlackAPI:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        app.router.add_get("/link", self._socket)
        self._server = TestServer(app, host="127.0.0.1", port=0)
        await self._server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._server is not None:
            await self._server.close()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "use `async with FakeSlackAPI() as api`"
        return f"http://127.0.0.1:{self._server.port}/api/"

    # Test controls ----------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        disconnect: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to ``method`` fail in the given way."""
        if status == 429 and error is None:
            error = "ratelimited"
        self._failures.setdefault(method, []).append(_Failure(status, error, retry_after, disconnect, times))

    def slow(self, method: str, *, seconds: float, times: int = 1) -> None:
        """Carry out the next ``times`` calls to ``method`` at once, but answer them ``seconds``
        late: a client that gives up first cannot know the message went out."""
        self._slow[method] = [seconds, float(times)]

    def calls_to(self, method: str) -> list[JSON]:
        return [c.params for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        return [c.method for c in self.calls]

    # Socket Mode ------------------------------------------------------------------------------

    async def socket_send(
        self, payload: JSON, *, kind: str = "events_api", retry_attempt: int = 0, retry_reason: str = ""
    ) -> str:
        """Push an envelope to the connected Socket Mode client; returns its envelope id. A
        redelivery carries ``retry_attempt`` and ``retry_reason`` (``timeout``), as Slack's do."""
        envelope_id = f"env-{next(self._envelopes)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": False}
        if retry_attempt:
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason or "timeout")
        assert self._sockets, "no Socket Mode client is connected"
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    async def socket_ack(self, envelope_id: str, timeout: float = 10.0) -> JSON:
        """Wait until the client acknowledges the envelope (as Slack waits for it)."""
        async with self._acked:
            await asyncio.wait_for(self._acked.wait_for(lambda: envelope_id in self.socket_acks), timeout)
        return self.socket_acks[envelope_id]

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A111"}})
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                if isinstance(data, dict) and "envelope_id" in data:
                    if self.on_socket_ack is not None:
                        self.seen_at_ack[str(data["envelope_id"])] = self.on_socket_ack()
                    async with self._acked:
                        self.socket_acks[str(data["envelope_id"])] = data
                        self._acked.notify_all()
        return ws

    def _connections_open(self, p: JSON) -> JSON:
        assert self._server is not None
        return {"url": f"ws://127.0.0.1:{self._server.port}/link"}

    # Handlers ---------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params: JSON = dict(request.query)
        body = await request.read()
        if body:
            ctype = request.content_type
            if ctype == "application/json":
                params.update(json.loads(body))
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                params.update(dict(await request.post()))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")
        call = Call(method, params, token)
        self.calls.append(call)

        paced = self._pace(method, params)
        if paced is not None:
            return paced
        failure = self._take_failure(method)
        if failure is not None:
            if failure.disconnect:
                assert request.transport is not None
                request.transport.close()
                raise ConnectionResetError("fake disconnect")
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
            return web.json_response(
                {"ok": False, "error": failure.error or "fatal_error"}, status=failure.status, headers=headers
            )
        handler = self.handlers.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            result = handler(params)
        except _SlackError as exc:
            return web.json_response({"ok": False, "error": exc.error})
        call.result = result
        slow = self._slow.get(method)
        if slow is not None and slow[1] > 0:
            slow[1] -= 1
            await asyncio.sleep(slow[0])
        return web.json_response({"ok": True, **result})

    def enforce_pacing(self, per_conversation: float = 1.0, *, retry_after: int = 1) -> None:
        """Slack's chat.postMessage limit: about one message a second per conversation. A post
        sooner than ``1 / per_conversation`` s after the last one delivered to that conversation
        is answered 429 with ``Retry-After``."""
        self._pacing = (1.0 / per_conversation, retry_after)

    def _pace(self, method: str, params: JSON) -> web.Response | None:
        if method != "chat.postMessage":
            return None
        now, channel = time.monotonic(), str(params.get("channel") or "")
        early = now < self._wait_until.get(channel, 0.0)
        status, wait = 200, None
        if self._pacing is not None:
            gap, retry_after = self._pacing
            if early:
                status, wait = 429, max(1, round(self._wait_until[channel] - now + 0.5))
            elif now - self._last_post.get(channel, -1e9) < gap:
                status, wait = 429, retry_after
        self.posts.append(Post(at=now, channel=channel, status=status, retry_after=wait, early=early))
        if wait is None:
            self._last_post[channel] = now
            return None
        self._wait_until[channel] = max(self._wait_until.get(channel, 0.0), now + wait)
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                 headers={"Retry-After": str(wait)})  # fmt: skip

    def _take_failure(self, method: str) -> _Failure | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.remaining -= 1
        if failure.remaining <= 0:
            queue.pop(0)
        return failure

    def _next_ts(self) -> str:
        return f"1700000000.{next(self._ts):06d}"

    def _auth_test(self, _p: JSON) -> JSON:
        return {
            "url": "https://test.slack.com/",
            "team": "Test Co",
            "user": "rapport",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
        }

    def _conversations_open(self, p: JSON) -> JSON:
        user = str(p.get("users") or "")
        if not user:
            raise _SlackError("users_list_not_supplied")
        if user in self.dm_errors:
            raise _SlackError(self.dm_errors[user])
        return {"channel": {"id": "D" + user.lstrip("UW")}}

    def _post_message(self, p: JSON) -> JSON:
        if not p.get("channel"):
            raise _SlackError("channel_not_found")
        if not p.get("text") and not p.get("blocks"):
            raise _SlackError("no_text")
        ts = self._next_ts()
        return {"channel": p["channel"], "ts": ts, "message": {"text": p.get("text"), "ts": ts}}

    def _views_open(self, p: JSON) -> JSON:
        view = _as_json(p.get("view"))
        if not p.get("trigger_id"):
            raise _SlackError("invalid_arguments")
        if view.get("type") != "modal" or not view.get("title") or not isinstance(view.get("blocks"), list):
            raise _SlackError("invalid_arguments")
        return {"view": {"id": f"V{next(self._ts):06d}", **view}}

    def _lookup_by_email(self, p: JSON) -> JSON:
        user = self.users_by_email.get(str(p.get("email", "")).lower())
        if user is None:
            raise _SlackError("users_not_found")
        return {"user": {"id": user, "team_id": self.team_id}}

    def _users_info(self, p: JSON) -> JSON:
        user = str(p.get("user") or "")
        email = next((e for e, u in self.users_by_email.items() if u == user), None)
        if not user.startswith(("U", "W")):
            raise _SlackError("user_not_found")
        profile = {"email": email} if email else {}
        return {"user": {"id": user, "team_id": self.team_id, "is_bot": False, "profile": profile}}

    def _oauth_access(self, p: JSON) -> JSON:
        if not p.get("code"):
            raise _SlackError("invalid_code")
        return {
            "app_id": "A111",
            "authed_user": {"id": "U0INSTALLER"},
            "scope": "chat:write,commands,im:history,im:read,im:write,users:read,users:read.email",
            "token_type": "bot",
            "access_token": f"xoxb-{self.oauth_team['id']}-installed",
            "bot_user_id": "UBOT2",
            "team": self.oauth_team,
            "enterprise": None,
            "is_enterprise_install": False,
        }


class _SlackError(Exception):
    def __init__(self, error: str) -> None:
        self.error = error
        super().__init__(error)


def _as_json(value: Any) -> JSON:
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    return value if isinstance(value, dict) else {}
