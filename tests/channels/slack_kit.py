"""A Slack test rig: the real ``SlackChannel`` (Bolt ``AsyncApp`` + slack-sdk ``AsyncWebClient``)
against the loopback ``FakeSlackAPI``, with Rapport's own web server in front of it.

Usage::

    from tests.channels.slack_kit import SlackRig, slack_rig  # noqa: F401  (fixture)

    async def test_x(slack_rig: SlackRig):
        await slack_rig.roster("ada", slack_user="U0ADA")
        sent = await slack_rig.invite("ada")                 # service.start + channel.send
        resp = await slack_rig.dm("U0ADA", "8")              # a signed message.im event
        assert slack_rig.posted_texts("D0ADA")[-1] == ...

Every inbound request is signed with ``SIGNING_SECRET`` the way Slack signs (HMAC-SHA256 of
``v0:<timestamp>:<body>``), computed here independently of Bolt and slack-sdk, and goes over real
HTTP to ``/slack/events``. After each request the rig waits for the work the channel started
after its acknowledgement (``SlackChannel.drain``), unless told not to (``drain=False``: what Slack
has when the acknowledgement arrives).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.channels.base import Address, Sent
from bot.channels.slack import SlackChannel
from bot.channels.slack.blocks import RATING_ACTION
from bot.web import make_web_app
from memory.importing import import_people
from tests.fakes.slack_api import FakeSlackAPI

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T111"
NOW = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)

JSON = dict[str, Any]


def sign(body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


@dataclass
class Clock:
    now: dt.datetime = NOW

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class SlackRig:
    api: FakeSlackAPI
    app: App
    channel: SlackChannel
    http: TestClient[Any, Any]
    clock: Clock
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # Roster and invitations -------------------------------------------------------------------

    async def roster(self, key: str, *, slack_user: str = "", email: str = "", program: str = "customers") -> None:
        csv = f"id,name,email,programs,slack_user\n{key},{key.title()},{email},{program},{slack_user}\n"
        report = import_people(self.app.sessions, csv, known_programs=self.app.config.programs, now=self.clock())
        assert not report.problems, report.problems

    async def invite(self, key: str, *, program: str = "customers", user: str | None = None) -> Sent:
        started = self.app.service.start(
            person_ref=key, program=program, now=self.clock(), channel="slack", markup="slack_mrkdwn"
        )
        address = Address(channel="slack", external_id=user or f"U0{key.upper()}")
        return await self.channel.send(address, started.messages)

    # Inbound ----------------------------------------------------------------------------------

    async def post_raw(self, body: str, headers: dict[str, str], *, drain: bool = True) -> ClientResponse:
        resp = await self.http.post("/slack/events", data=body.encode(), headers=headers)
        await resp.read()
        if drain:
            await self.channel.drain()
        return resp

    async def post(
        self, payload: JSON, *, form: bool = False, headers: dict[str, str] | None = None, drain: bool = True
    ) -> ClientResponse:
        if form:
            body = urllib.parse.urlencode({"payload": json.dumps(payload)})
            ctype = "application/x-www-form-urlencoded"
        else:
            body = json.dumps(payload)
            ctype = "application/json"
        return await self.post_raw(body, {"Content-Type": ctype, **sign(body), **(headers or {})}, drain=drain)

    def envelope(self, event: JSON, *, event_id: str | None = None, team: str = TEAM) -> JSON:
        return {
            "token": "verification_token",
            "team_id": team,
            "api_app_id": "A111",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._ids):06d}",
            "event_time": int(self.clock().timestamp()),
        }

    def next_ts(self) -> str:
        return f"1800000000.{next(self._ts):06d}"

    async def dm(
        self,
        user: str,
        text: str,
        *,
        ts: str | None = None,
        event_id: str | None = None,
        headers: dict[str, str] | None = None,
        markup: bool = False,
        drain: bool = True,
        **extra: Any,
    ) -> ClientResponse:
        """A DM as Slack sends it: typed ``&``, ``<``, ``>`` arrive escaped, unless ``markup``
        (the text is Slack's own markup, such as a ``<@U…>`` mention the person picked)."""
        event = {
            "type": "message",
            "user": user,
            "text": text if markup else slack_escape(text),
            "ts": ts or self.next_ts(),
            "channel": dm_of(user),
            "channel_type": "im",
            **extra,
        }
        return await self.post(self.envelope(event, event_id=event_id), headers=headers, drain=drain)

    async def click(self, user: str, *, value: int, message: JSON | None = None, drain: bool = True) -> ClientResponse:
        """Click the rating button ``value`` on the latest rating message posted to the user."""
        message = message or self.last_rating_message(dm_of(user))
        button = next(
            e
            for b in message["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["value"].endswith(f":{value}")
        )
        return await self.post(self.block_actions(user, message, button), form=True, drain=drain)

    def block_actions(self, user: str, message: JSON, button: JSON) -> JSON:
        return {
            "type": "block_actions",
            "user": {"id": user, "team_id": TEAM},
            "api_app_id": "A111",
            "team": {"id": TEAM, "domain": "test"},
            "container": {"type": "message", "message_ts": message["ts"], "channel_id": message["channel"]},
            "channel": {"id": message["channel"], "name": "directmessage"},
            "message": {"type": "message", "ts": message["ts"], "text": message["text"], "blocks": message["blocks"]},
            "trigger_id": "1.2.3",
            "actions": [
                {
                    "type": "button",
                    "action_id": button["action_id"],
                    "block_id": "b",
                    "value": button["value"],
                    "text": button["text"],
                    "action_ts": "1800000000.5",
                }
            ],
        }

    # What Slack received ----------------------------------------------------------------------

    def posted(self, channel: str | None = None) -> list[JSON]:
        """chat.postMessage calls (optionally to one conversation), each with the ``ts`` it got."""
        out = []
        for call in self.api.calls:
            if call.method == "chat.postMessage" and (channel is None or call.params.get("channel") == channel):
                params = dict(call.params)
                if isinstance(params.get("blocks"), str):
                    params["blocks"] = json.loads(params["blocks"])
                params["ts"] = (call.result or {}).get("ts")
                out.append(params)
        return out

    def posted_texts(self, channel: str | None = None) -> list[str]:
        return [p["text"] for p in self.posted(channel) if p.get("ts")]

    def last_rating_message(self, channel: str) -> JSON:
        """The latest message with rating buttons (other messages carry buttons too: "stop?",
        "Stop check-ins" under a text question)."""
        posts = [p for p in self.posted(channel) if p.get("ts") and has_action(p, RATING_ACTION)]
        assert posts, f"no rating message in {channel}"
        return posts[-1]

    def last_message_with(self, channel: str, action: str) -> JSON:
        """The latest message carrying a button whose action id starts with ``action``."""
        posts = [p for p in self.posted(channel) if p.get("ts") and has_action(p, action)]
        assert posts, f"no message with {action} in {channel}"
        return posts[-1]


def has_action(message: JSON, action: str) -> bool:
    return any(
        str(e.get("action_id", "")).startswith(action)
        for b in message.get("blocks") or []
        if b.get("type") == "actions"
        for e in b.get("elements", [])
    )


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def dm_of(user: str) -> str:
    return "D" + user.lstrip("UW")


def make_channel(app: App, api: FakeSlackAPI, clock: Callable[[], dt.datetime], **kwargs: Any) -> SlackChannel:
    options: JSON = {
        "service": app.service,
        "bot_token": api.bot_token,
        "signing_secret": SIGNING_SECRET,
        "mode": "http",
        "api_base_url": api.base_url,
        "pace_seconds": 0.0,
        "max_wait_seconds": 0.5,
        "retries": 2,
        "retry_backoff": 0.01,
        "clock": clock,
    }
    options.update(kwargs)
    return SlackChannel(**options)


@asynccontextmanager
async def open_rig(app: App, api: FakeSlackAPI, clock: Clock | None = None, **channel: Any) -> AsyncIterator[SlackRig]:
    """A started channel (``make_channel`` with ``channel`` options) behind its own web server.
    Two rigs on the same app and fake are two ``rapport run`` processes."""
    clock = clock or Clock()
    slack = make_channel(app, api, clock, **channel)
    async with TestClient(TestServer(make_web_app(routes=slack.routes()))) as http:
        await slack.start()
        await slack.drain()  # the first round of linking the roster by e-mail
        try:
            yield SlackRig(api=api, app=app, channel=slack, http=http, clock=clock)
        finally:
            await slack.stop()


@pytest.fixture
async def slack_rig(make_app: Callable[..., App]) -> AsyncIterator[SlackRig]:
    async with FakeSlackAPI() as api, open_rig(make_app(), api) as rig:
        yield rig
