"""The Slack channel: check-ins in direct messages, on slack-bolt's ``AsyncApp``.

Thin on purpose: every Slack event or button click is translated into an ``Inbound`` for the
engine (``CheckinService.handle``, in a worker thread), and the replies are posted back in the
person's DM. What each kind of event does is listed in ``docs/slack.md``; in short:

* a person's DM (text, a typed number, ``help``/``skip``/``stop``/``start``) -> an answer;
* a rating button -> acknowledged at once, the message is updated to show the choice, then the
  choice is the answer;
* an edited DM (``message_changed``) corrects that answer while the check-in is open, a deleted
  one (``message_deleted``) is acknowledged and changes nothing;
* the App Home tab shows the person's own history and a stop/resume button;
* the *Record a promise* message shortcut opens a form for owners and records the promise
  (``bot.channels.slack_promises``);
* everything else (bots, channels, reactions, unknown events) is acknowledged and ignored.

Slack retries an event it thinks we missed, and the engine processes each ``event_id`` once (the
idempotency key travels as ``Inbound.event_key``). Work happens *after* the acknowledgement, so
Slack always hears back within its 3 seconds.

Modes: Socket Mode (default; an app-level ``xapp-`` token, no public URL) or the HTTP Events API
on Rapport's own web server at ``/slack/events`` (every request signature-checked by Bolt).
With ``client_id``/``client_secret`` set, Rapport serves the OAuth install flow and keeps each
workspace's installation in its database (``bot.channels.slack_install``).

Block Kit payloads are built in ``bot.channels.slack_blocks`` (pure), and the roster work in the
database (linking by e-mail, the App Home's history, stops) is in ``bot.channels.slack_people``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

import prompts
from bot.channels.base import Address, Inbound, Markup, Outbound, Sent
from bot.channels.slack_blocks import (
    HOME_RESUME_ACTION,
    HOME_STOP_ACTION,
    JSON,
    RATING_ACTION,
    message_payload,
)
from bot.channels.slack_blocks import HomeEntry as HomeEntry  # re-exported (moved to slack_blocks)
from bot.channels.slack_blocks import home_view as home_view
from bot.channels.slack_install import BOT_SCOPES, ThreadedInstallationStore, ThreadedStateStore
from bot.channels.slack_people import HOME_CHECKINS as HOME_CHECKINS
from bot.channels.slack_people import SlackPeople
from bot.channels.slack_promises import (
    PROMISE_SHORTCUT,
    TEXT_BLOCK,
    SlackPromises,
    errors_for,
    notice_modal,
    promise_modal,
    read_form,
)
from bot.engine.service import CheckinService
from memory.errors import PermanentFailure, RetryLater, Unreachable

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

NAME = "slack"
BOLT_LOGGER = "bot.channels.slack.bolt"
API_LOGGER = "bot.channels.slack.api"
DEFAULT_API_BASE_URL = "https://slack.com/api/"

#: Slack errors that mean this person cannot be written to on Slack (the identity is marked).
UNREACHABLE_ERRORS = frozenset(
    {
        "account_inactive",
        "user_not_found",
        "users_not_found",
        "user_disabled",
        "channel_not_found",
        "cannot_dm_bot",
        "is_archived",
        "user_is_restricted",
        "not_in_channel",
    }
)
#: Slack errors that mean the installation itself is gone (the whole workspace is off).
INSTALLATION_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "team_access_revoked", "app_uninstalled"}
)

# "<check-in id>:<value>": both whole numbers; anything else is refused (the value is untrusted).
_RATING_VALUE = re.compile(r"^(\d{1,12}):(-?\d{1,3})$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
# Message subtypes that carry a person's own words. Other subtypes are Slack's notices
# (channel_join, pinned_item, ...) and are not answers.
_TEXT_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})
# How long the part of a failed batch that did go out is remembered, so a retry skips it.
PARTIAL_BATCH_SECONDS = 6 * 3600


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class SlackOAuth:
    """The optional multi-workspace install flow (``/slack/install``, ``/slack/oauth_redirect``)."""

    client_id: str
    client_secret: str
    engine: Engine
    # Where Slack sends people back after the install; Slack's app settings decide when None.
    redirect_uri: str | None = None
    state_expiration_seconds: int = 600


@dataclass
class LinkReport:
    """What ``link_people`` did: people linked by e-mail, and the ones it could not link."""

    linked: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class SlackChannel:
    """Check-ins in Slack DMs. Implements ``bot.channels.base.Channel``."""

    name = NAME
    markup: Markup = "slack_mrkdwn"

    def __init__(
        self,
        *,
        service: CheckinService,
        bot_token: str | None,
        signing_secret: str | None = None,
        mode: str = "socket",
        app_token: str | None = None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        oauth: SlackOAuth | None = None,
        pace_seconds: float = 1.0,
        max_wait_seconds: float = 5.0,
        retries: int = 2,
        retry_backoff: float = 0.5,
        link_every_seconds: float = 3600.0,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        if mode not in ("socket", "http"):
            raise ValueError(f"unknown Slack mode {mode!r}")
        if mode == "socket" and not app_token:
            raise ValueError("Socket Mode needs an app-level token")
        if mode == "http" and not signing_secret:
            raise ValueError("HTTP mode needs the signing secret")
        if oauth is None and not bot_token:
            raise ValueError("a bot token is needed unless the multi-workspace install flow is on")
        self.service = service
        self.people = SlackPeople(service.sessions)
        self.promises = SlackPromises(service.sessions)
        self.mode = mode
        self.api_base_url = api_base_url
        self.app_token = app_token
        self.pace_seconds = pace_seconds
        self.max_wait_seconds = max_wait_seconds
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.link_every_seconds = link_every_seconds
        self.clock = clock
        self.multi_workspace = oauth is not None
        self.installations: ThreadedInstallationStore | None = None
        self._bot_token = None if oauth is not None else bot_token
        self.client = self._make_client(self._bot_token)
        self._clients: dict[str, AsyncWebClient] = {}
        # Teams whose installation was revoked or uninstalled in this process (single workspace).
        self._disabled_teams: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._last_post: dict[str, float] = {}
        self._email_cache: dict[tuple[str, str], tuple[str | None, float]] = {}
        # Rating messages clicked in this process (oldest first), so a double click shows once.
        self._clicked: dict[tuple[str, str], None] = {}
        # Batches that failed part-way: (conversation, texts) -> (messages sent, until when).
        self._partial: dict[tuple[str, tuple[str, ...]], tuple[int, float]] = {}
        # Unknown senders already looked up with users.info (workspace, user) -> until when.
        self._checked_senders: dict[tuple[str, str], float] = {}
        self._socket: Any = None
        self._linker: asyncio.Task[None] | None = None
        self._first_link = asyncio.Event()
        self.team_id: str | None = None

        settings: AsyncOAuthSettings | None = None
        if oauth is not None:
            self.installations = ThreadedInstallationStore.on(oauth.engine, client_id=oauth.client_id)
            settings = AsyncOAuthSettings(
                client_id=oauth.client_id,
                client_secret=oauth.client_secret,
                scopes=list(BOT_SCOPES),
                redirect_uri=oauth.redirect_uri,
                installation_store=self.installations,
                installation_store_bot_only=True,
                state_store=ThreadedStateStore.on(oauth.engine, expiration_seconds=oauth.state_expiration_seconds),
            )
        for name in (BOLT_LOGGER, API_LOGGER):
            # Their DEBUG lines carry request bodies (people's words): never below INFO.
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.level, logging.INFO))
        self.bolt = AsyncApp(
            name="rapport",
            logger=logging.getLogger(BOLT_LOGGER),
            client=self.client,
            # Listeners only acknowledge and hand the work to a task of this channel, so they
            # return at once; running them before the response makes the hand-over certain
            # (``drain`` then sees every task) without delaying the acknowledgement.
            process_before_response=True,
            # Bolt falls back to SLACK_SIGNING_SECRET when given None; the config decides here.
            signing_secret=signing_secret or "",
            oauth_settings=settings,
            installation_store_bot_only=True if settings is not None else None,
            # Slack's own "url_verification" and "ssl_check" are answered by Bolt's middleware.
        )
        self._register()

    # Construction from config ----------------------------------------------------------------

    @classmethod
    def from_app(cls, app: App) -> SlackChannel | None:
        """The channel as configured, or None (with the reason logged) when it cannot run."""
        from bot.config import resolve_secret, secret_name

        config = app.config.channels.slack
        if not config.enabled:
            log.info("slack channel disabled in config (channels.slack.enabled: false)")
            return None
        client_id = resolve_secret(config.client_id)
        client_secret = resolve_secret(config.client_secret)
        bot_token = resolve_secret(config.bot_token)
        app_token = resolve_secret(config.app_token)
        signing_secret = resolve_secret(config.signing_secret)
        oauth = None
        if client_id and client_secret:
            public = app.config.web.public_url
            oauth = SlackOAuth(
                client_id=client_id,
                client_secret=client_secret,
                engine=app.engine,
                redirect_uri=f"{public.rstrip('/')}/slack/oauth_redirect" if public else None,
            )
        elif os.environ.get("SLACK_CLIENT_ID") and os.environ.get("SLACK_CLIENT_SECRET"):
            # slack-bolt reads these two by itself and would switch to its own install flow with
            # a file store: Rapport's choice must be explicit in the config.
            log.warning(
                "slack channel off: SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set but "
                "channels.slack.client_id/client_secret do not reference them; reference them "
                "(several workspaces) or unset them (one workspace)"
            )
            return None
        elif not bot_token:
            log.warning(
                "slack channel off: %s is not set (and no multi-workspace client_id/client_secret)",
                secret_name(config.bot_token),
            )
            return None
        if config.mode == "socket" and not app_token:
            log.warning("slack channel off: Socket Mode needs %s (an xapp- token)", secret_name(config.app_token))
            return None
        if config.mode == "http" and not signing_secret:
            log.warning("slack channel off: HTTP mode needs %s", secret_name(config.signing_secret))
            return None
        return cls(
            service=app.service,
            bot_token=bot_token,
            signing_secret=signing_secret,
            mode=config.mode,
            app_token=app_token,
            api_base_url=config.api_base_url,
            oauth=oauth,
            pace_seconds=config.pace_seconds,
            max_wait_seconds=config.max_wait_seconds,
            retries=config.retries,
            link_every_seconds=config.link_every_minutes * 60.0,
        )

    def _make_client(self, token: str | None) -> AsyncWebClient:
        interval = BackoffRetryIntervalCalculator(backoff_factor=self.retry_backoff)
        return AsyncWebClient(
            token=token,
            base_url=self.api_base_url,
            logger=logging.getLogger(API_LOGGER),
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=self.retries, interval_calculator=interval),
                AsyncServerErrorRetryHandler(max_retry_count=self.retries, interval_calculator=interval),
            ],
        )

    # Channel protocol -------------------------------------------------------------------------

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

    async def start(self) -> None:
        """Check the token (``auth.test``), connect Socket Mode, and start linking the roster by
        e-mail in the background."""
        if not self.multi_workspace:
            auth = await self.client.auth_test()
            self.team_id = str(auth.get("team_id") or "") or None
            log.info("slack connected", extra={"team": self.team_id, "mode": self.mode})
        # Linking a large roster takes a while (Slack paces users.lookupByEmail), so it runs beside
        # the channel: now, then every link_every_seconds for people imported while Rapport runs.
        self._linker = asyncio.get_running_loop().create_task(self._link_loop())
        if self.mode == "socket":
            self._socket = _SocketModeHandler(self.bolt, self.app_token)
            await self._socket.connect_async()

    async def _link_roster(self) -> None:
        try:
            report = await self.link_people()
        except Exception:
            log.exception("slack: linking the roster by e-mail failed; people can still be linked by slack_user")
            return
        if report.linked or report.not_found or report.failed:
            log.info(
                "slack roster linked by e-mail",
                extra={"linked": len(report.linked), "not_found": len(report.not_found), "failed": len(report.failed)},
            )

    async def _link_loop(self) -> None:
        await self._link_roster()
        self._first_link.set()
        while self.link_every_seconds > 0:
            await asyncio.sleep(self.link_every_seconds)
            await self._link_roster()

    async def stop(self) -> None:
        if self._linker is not None:
            self._linker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._linker
            self._linker = None
        if self._socket is not None:
            try:
                await self._socket.close_async()
            except Exception:
                log.exception("slack: closing the Socket Mode connection failed")
            self._socket = None
        await self.drain()

    async def drain(self) -> None:
        """Wait until the work started so far is done: acknowledged events, and the first round of
        linking the roster after ``start``."""
        if self._linker is not None:
            await self._first_link.wait()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """Post messages in the person's DM, in order and at Slack's pace, or raise DeliveryError."""
        if address.channel != NAME:
            raise PermanentFailure(f"not a Slack address: {address.channel}")
        client = await self._client_for(address.workspace)
        conversation = address.conversation or await self._open_dm(client, address)
        # A batch that failed part-way is retried whole by the dispatcher; what already went out
        # (remembered here for a while) is not posted twice.
        batch = (conversation, tuple(m.text for m in messages))
        done, until = self._partial.pop(batch, (0, 0.0))
        if until < time.monotonic():
            done = 0
        last: str | None = None
        for index, message in enumerate(messages):
            if index < done:
                continue
            try:
                last = await self._post(client, conversation, message, address=address)
            except RetryLater:
                if index > 0:
                    self._partial[batch] = (index, time.monotonic() + PARTIAL_BATCH_SECONDS)
                raise
        return Sent(external_ref=last)

    # Bolt wiring ------------------------------------------------------------------------------

    def _register(self) -> None:
        app = self.bolt

        @app.event("message")
        async def on_message(body: JSON, client: AsyncWebClient) -> None:
            self._spawn(self._on_message(body, client))

        @app.event("app_home_opened")
        async def on_home(body: JSON, client: AsyncWebClient) -> None:
            self._spawn(self._on_home_opened(body, client))

        @app.event("app_mention")
        async def on_mention(body: JSON, client: AsyncWebClient) -> None:
            self._spawn(self._on_mention(body, client))

        @app.event("tokens_revoked")
        async def on_tokens_revoked(body: JSON) -> None:
            self._spawn(self._on_revoked(body, uninstalled=False))

        @app.event("app_uninstalled")
        async def on_uninstalled(body: JSON) -> None:
            self._spawn(self._on_revoked(body, uninstalled=True))

        @app.event(re.compile(".*"))
        async def on_other_event(body: JSON) -> None:
            event = _obj(body.get("event"))
            log.debug("slack event ignored", extra={"event_type": str(event.get("type"))[:50]})

        @app.action(re.compile(f"^{RATING_ACTION}"))
        async def on_rating(ack: Callable[[], Awaitable[Any]], body: JSON, client: AsyncWebClient) -> None:
            await ack()
            self._spawn(self._on_rating(body, client))

        @app.action(re.compile(f"^({HOME_STOP_ACTION}|{HOME_RESUME_ACTION})$"))
        async def on_home_button(ack: Callable[[], Awaitable[Any]], body: JSON, client: AsyncWebClient) -> None:
            await ack()
            self._spawn(self._on_home_button(body, client))

        @app.shortcut(PROMISE_SHORTCUT)
        async def on_promise_shortcut(ack: Callable[[], Awaitable[Any]], body: JSON, client: AsyncWebClient) -> None:
            await ack()
            self._spawn(self._on_promise_shortcut(body, client))

        @app.view(PROMISE_SHORTCUT)
        async def on_promise_form(ack: Callable[..., Awaitable[Any]], body: JSON) -> None:
            # Answered in the acknowledgement itself (errors under the fields, or the outcome),
            # so the work runs before it: one short transaction.
            await self._on_promise_form(ack, body)

        async def ack_and_ignore(ack: Callable[[], Awaitable[Any]], body: JSON) -> None:
            await ack()
            log.debug("slack interaction ignored", extra={"payload_type": str(body.get("type"))[:50]})

        anything = re.compile(".*")
        app.action(anything)(ack_and_ignore)
        app.view(anything)(ack_and_ignore)
        app.shortcut(anything)(ack_and_ignore)
        app.options(anything)(ack_and_ignore)
        app.command(anything)(ack_and_ignore)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("slack: handling an event failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _http_events(self, request: web.Request) -> web.StreamResponse:
        """``POST /slack/events``: Bolt verifies the signature and timestamp (401 otherwise)."""
        try:
            bolt_request = await to_bolt_request(request)
        except Exception:
            log.warning("slack: unreadable events request")
            return web.Response(status=400, text="unreadable request")
        try:
            response = await self.bolt.async_dispatch(bolt_request)
        except Exception:
            # A payload Bolt cannot even route: acknowledge, so Slack does not retry it forever.
            log.exception("slack: dispatching an events request failed")
            return web.Response(status=200)
        return await to_aiohttp_response(acknowledgeable(response))

    async def _http_install(self, request: web.Request) -> web.StreamResponse:
        assert self.bolt.oauth_flow is not None
        response = await self.bolt.oauth_flow.handle_installation(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _http_oauth_redirect(self, request: web.Request) -> web.StreamResponse:
        assert self.bolt.oauth_flow is not None
        response = await self.bolt.oauth_flow.handle_callback(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    # Inbound: translation ---------------------------------------------------------------------

    def _workspace(self, body: JSON) -> str:
        """The identity's workspace: the team id with several workspaces, "" with one."""
        if not self.multi_workspace:
            return ""
        team = body.get("team_id") or _dig(body, "team", "id") or _dig(body, "user", "team_id")
        return str(team or "")

    def translate_message(self, body: JSON) -> tuple[Inbound, str, str | None] | None:
        """A ``message`` event as (Inbound, DM channel, thread), or None when it is not for us.

        Pure: shared by HTTP and Socket Mode, and tested on every recorded payload.
        """
        event = body.get("event")
        if not isinstance(event, dict):
            return None
        if event.get("channel_type") != "im" or not isinstance(event.get("channel"), str):
            return None  # channels, group DMs: Rapport talks to people one to one
        subtype = event.get("subtype")
        common: JSON = {
            "channel": NAME,
            "workspace": self._workspace(body),
            "received_at": self.clock(),
            "event_key": _str(body.get("event_id")),
        }
        channel = event["channel"]
        if subtype == "message_changed":
            message = event.get("message")
            previous = event.get("previous_message")
            if not isinstance(message, dict) or _is_bot(message):
                return None
            user, ts = _str(message.get("user")), _str(message.get("ts"))
            text = _str(message.get("text")) or ""
            if not user or not ts:
                return None
            if isinstance(previous, dict) and previous.get("text") == text:
                return None  # a link preview or a thread reply count changed, not the words
            inbound = Inbound(sender=user, kind="edit", ref=ts, text=unescape_slack(text), **common)
            return inbound, channel, None
        if subtype == "message_deleted":
            previous = event.get("previous_message")
            user = _str(previous.get("user")) if isinstance(previous, dict) else None
            ts = _str(event.get("deleted_ts")) or (_str(previous.get("ts")) if isinstance(previous, dict) else None)
            if not user or not ts or (isinstance(previous, dict) and _is_bot(previous)):
                return None
            return Inbound(sender=user, kind="delete", ref=ts, **common), channel, None
        if _is_bot(event) or subtype not in _TEXT_SUBTYPES:
            return None
        user = _str(event.get("user"))
        if not user:
            return None
        text = _str(event.get("text")) or ""
        thread = _str(event.get("thread_ts"))
        if not text.strip():
            if event.get("files") or subtype == "file_share":
                return Inbound(sender=user, kind="non_text", ref=_str(event.get("ts")), **common), channel, thread
            return None
        inbound = Inbound(sender=user, kind="text", text=unescape_slack(text), ref=_str(event.get("ts")), **common)
        return inbound, channel, thread

    def translate_rating(self, body: JSON) -> tuple[Inbound, str, str] | None:
        """A rating button click as (Inbound, channel, message ts), or None when it is not valid."""
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else None
        user = _str(_dig(body, "user", "id"))
        channel = _str(_dig(body, "container", "channel_id")) or _str(_dig(body, "channel", "id"))
        message_ts = _str(_dig(body, "container", "message_ts")) or _str(_dig(body, "message", "ts"))
        if action is None or not user or not channel or not message_ts:
            return None
        match = _RATING_VALUE.match(str(action.get("value") or ""))
        if match is None:
            log.warning("slack: rating button with an invalid value refused")
            return None
        checkin_id, value = int(match.group(1)), int(match.group(2))
        inbound = Inbound(
            channel=NAME,
            sender=user,
            workspace=self._workspace(body),
            kind="choice",
            value=value,
            checkin_id=checkin_id,
            ref=message_ts,
            received_at=self.clock(),
            # One answer per rating message: a second click on the same buttons is a duplicate.
            event_key=f"rating:{channel}:{message_ts}",
        )
        return inbound, channel, message_ts

    # Inbound: handling ------------------------------------------------------------------------

    async def _on_message(self, body: JSON, client: AsyncWebClient) -> None:
        translated = self.translate_message(body)
        if translated is None:
            event = _obj(body.get("event"))
            log.debug(
                "slack message ignored",
                extra={"subtype": str(event.get("subtype"))[:50], "channel_type": str(event.get("channel_type"))[:20]},
            )
            return
        inbound, channel, thread = translated
        if inbound.kind in ("text", "non_text"):
            await self._link_sender(client, inbound.sender, inbound.workspace)
        await self._converse(client, inbound, channel, thread)

    async def _link_sender(self, client: AsyncWebClient, user: str, workspace: str) -> None:
        """Someone on the roster by e-mail but not yet linked writes first: link them (users.info)."""
        key = (workspace, user)
        if self._checked_senders.get(key, 0.0) > time.monotonic():
            return
        if await asyncio.to_thread(self.people.has_identity, user, workspace):
            return
        self._checked_senders[key] = time.monotonic() + 3600
        try:
            response = await client.users_info(user=user)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("slack: users.info failed for a new sender", extra={"error": type(exc).__name__})
            return
        data = response.data if isinstance(response.data, dict) else {}
        if _dig(data, "user", "is_bot"):
            return
        email = _str(_dig(data, "user", "profile", "email"))
        if not email:
            return
        linked: bool = await asyncio.to_thread(self.people.link_by_email, email, user, workspace, self.clock())
        if linked:
            self._checked_senders.pop(key, None)
            log.info("slack: a roster entry was linked by e-mail when they wrote first")

    async def _converse(self, client: AsyncWebClient, inbound: Inbound, channel: str, thread: str | None) -> None:
        replies = await self._handle(inbound)
        await self._reply(client, channel, replies, thread)

    async def _handle(self, inbound: Inbound) -> list[Outbound]:
        try:
            return await asyncio.to_thread(self.service.handle, inbound, markup=self.markup)
        except IntegrityError:
            # The same event committed by another worker a moment ago: it is done, say nothing.
            log.info("slack: concurrent duplicate event ignored")
            return []
        except Exception:
            log.exception("slack: the engine failed on an inbound event", extra={"kind": inbound.kind})
            return [Outbound(text=prompts.render("person/try_again", self.markup))]

    async def _reply(
        self, client: AsyncWebClient, channel: str, replies: Sequence[Outbound], thread: str | None
    ) -> None:
        for reply in replies:
            try:
                await self._post(client, channel, reply, thread=thread)
            except Exception:
                log.exception("slack: a reply could not be posted", extra={"conversation": channel})
                return

    async def _on_rating(self, body: JSON, client: AsyncWebClient) -> None:
        translated = self.translate_rating(body)
        if translated is None:
            return
        inbound, channel, message_ts = translated
        if (channel, message_ts) in self._clicked:
            # A second click before the buttons were replaced: the first one is the answer (the
            # engine's idempotency key says so too), so the message must not show this one.
            log.info("slack: a second click on the same rating message ignored")
            return
        self._clicked[(channel, message_ts)] = None
        while len(self._clicked) > 10_000:
            self._clicked.pop(next(iter(self._clicked)))
        await self._show_choice(client, body, channel, message_ts, inbound.value)
        await self._converse(client, inbound, channel, None)

    async def _show_choice(
        self, client: AsyncWebClient, body: JSON, channel: str, message_ts: str, value: int | None
    ) -> None:
        """Replace the buttons of the rating message with the choice made."""
        message = body.get("message")
        if not isinstance(message, dict):
            return
        blocks = [b for b in (message.get("blocks") or []) if isinstance(b, dict) and b.get("type") not in ("actions",)]
        chosen = f"Your answer: *{int(value or 0)}*"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": chosen}]})
        text = _str(message.get("text")) or ""
        try:
            await client.chat_update(channel=channel, ts=message_ts, text=f"{text}\n{chosen}", blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.warning("slack: the rating message could not be updated", extra={"conversation": channel})

    async def _on_mention(self, body: JSON, client: AsyncWebClient) -> None:
        """@Rapport in a channel: tell the person, privately, that check-ins happen in the DM."""
        event = _obj(body.get("event"))
        user, channel = _str(event.get("user")), _str(event.get("channel"))
        if not user or not channel or _is_bot(event):
            return
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, text=prompts.render("person/slack_dm_only", self.markup)
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.info("slack: could not answer a mention", extra={"conversation": channel})

    async def _on_revoked(self, body: JSON, *, uninstalled: bool) -> None:
        team = str(body.get("team_id") or "")
        enterprise = body.get("enterprise_id") or None
        event = _obj(body.get("event"))
        if self.installations is not None:
            if uninstalled:
                await self.installations.async_delete_all(enterprise_id=enterprise, team_id=team)
            else:
                tokens = _obj(event.get("tokens"))
                if tokens.get("bot"):
                    await self.installations.async_delete_bot(enterprise_id=enterprise, team_id=team)
                for user in tokens.get("oauth") or []:
                    await self.installations.async_delete_installation(
                        enterprise_id=enterprise, team_id=team, user_id=str(user)
                    )
            self._clients.pop(team, None)
        else:
            tokens = _obj(event.get("tokens"))
            if not uninstalled and not tokens.get("bot"):
                return  # only user tokens went; the bot still works
            self._disabled_teams.add(team)
        log.warning("slack installation disabled", extra={"team": team, "uninstalled": uninstalled})

    # Promise shortcut -------------------------------------------------------------------------

    async def _on_promise_shortcut(self, body: JSON, client: AsyncWebClient) -> None:
        """An owner picked "Record a promise" on a message: open the form (anyone else: a notice)."""
        user, trigger = _str(_dig(body, "user", "id")), _str(body.get("trigger_id"))
        if not user or not trigger:
            return
        message = _obj(body.get("message"))
        text = unescape_slack(_str(message.get("text")) or "")
        workspace = self._workspace(body)
        person = await asyncio.to_thread(
            self.promises.prefill, user, workspace, _str(message.get("user")), self.clock()
        )
        if person is None:
            log.info("slack: the promise shortcut was refused to someone who is not an owner")
            view = notice_modal(prompts.render("owner/promise_not_owner", "plain"))
        else:
            view = promise_modal(text=text, person=person)
        try:
            await client.views_open(trigger_id=trigger, view=view)
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.warning("slack: the promise form could not be opened")

    async def _on_promise_form(self, ack: Callable[..., Awaitable[Any]], body: JSON) -> None:
        form, user = read_form(body.get("view")), _str(_dig(body, "user", "id"))
        if form is None or not user:
            log.warning("slack: an unreadable promise form was closed")
            await ack()
            return
        try:
            outcome, message = await asyncio.to_thread(
                self.promises.record, form, user=user, workspace=self._workspace(body), now=self.clock(),
                key=_str(_dig(body, "view", "id")),
            )  # fmt: skip
        except IntegrityError:
            outcome, message = "duplicate", ""  # the same form, recorded by a racing submission
        except Exception:
            log.exception("slack: recording a promise from the form failed")
            await ack(response_action="errors", errors={TEXT_BLOCK: prompts.render("person/try_again", "plain")})
            return
        log.info("slack: promise form handled", extra={"outcome": outcome})
        if outcome in ("unknown_person", "usage"):
            await ack(response_action="errors", errors=errors_for(outcome, message))
        elif outcome == "duplicate":
            await ack(response_action="clear")
        else:
            await ack(response_action="update", view=notice_modal(message))

    # App Home ---------------------------------------------------------------------------------

    async def _on_home_opened(self, body: JSON, client: AsyncWebClient) -> None:
        event = _obj(body.get("event"))
        user = _str(event.get("user"))
        if not user or event.get("tab", "home") != "home":
            return
        await self._publish_home(client, user, self._workspace(body))

    async def _publish_home(self, client: AsyncWebClient, user: str, workspace: str) -> None:
        view = await asyncio.to_thread(self.people.home_view, user, workspace, self.service.programs)
        try:
            await client.views_publish(user_id=user, view=view)
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.warning("slack: the App Home could not be published")

    async def _on_home_button(self, body: JSON, client: AsyncWebClient) -> None:
        actions = body.get("actions")
        action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
        user = _str(_dig(body, "user", "id"))
        if not user:
            return
        workspace = self._workspace(body)
        now = self.clock()
        if action.get("action_id") == HOME_STOP_ACTION:
            # The button carries Slack's own confirmation dialog, so one click here is a decision.
            stopped = await asyncio.to_thread(self.people.opt_out, user, workspace, now)
            replies = [Outbound(text=prompts.render("person/opted_out", self.markup))] if stopped else []
        else:
            replies = await self._handle(
                Inbound(channel=NAME, sender=user, workspace=workspace, kind="command", command="start",
                        received_at=now)
            )  # fmt: skip
        if replies:
            try:
                dm = await self._open_dm(client, Address(channel=NAME, external_id=user, workspace=workspace))
            except (PermanentFailure, RetryLater, Unreachable):
                dm = None
            if dm is not None:
                await self._reply(client, dm, replies, None)
        await self._publish_home(client, user, workspace)

    # People -----------------------------------------------------------------------------------

    async def link_people(self) -> LinkReport:
        """Link roster entries that have an e-mail but no Slack identity, via users.lookupByEmail."""
        report = LinkReport()
        teams = await self.installations.teams() if self.installations is not None else [""]
        for team in teams:
            workspace = team if self.multi_workspace else ""
            pending = await asyncio.to_thread(self.people.people_to_link, workspace)
            if not pending:
                continue
            client = await self._client_for(workspace)
            for index, (key, email) in enumerate(pending):
                try:
                    user = await self._lookup_email(client, workspace, email)
                except RetryLater as exc:
                    # Slack asks for a long pause: the rest of this workspace waits for the next round.
                    report.failed.update({k: exc.reason for k, _ in pending[index:]})
                    break
                except (PermanentFailure, Unreachable) as exc:
                    report.failed[key] = exc.reason
                    continue
                if user is None:
                    report.not_found.append(key)
                    continue
                await asyncio.to_thread(self.people.link, key, user, workspace, self.clock())
                report.linked.append(key)
        if report.not_found or report.failed:
            log.warning(
                "slack: some people could not be linked by e-mail",
                extra={"not_found": len(report.not_found), "failed": len(report.failed)},
            )
        return report

    async def _lookup_email(self, client: AsyncWebClient, workspace: str, email: str) -> str | None:
        """users.lookupByEmail, cached for an hour (also "not found", so a roster refresh is cheap)."""
        cached = self._email_cache.get((workspace, email))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            # Rapport's call policy: short 429s waited out, 5xx and network errors retried.
            response = await self._call(lambda: client.users_lookupByEmail(email=email), address=None)
            user = _str(_dig(response.data if isinstance(response.data, dict) else {}, "user", "id"))
        except PermanentFailure as exc:
            if exc.reason != "users_not_found":
                raise
            user = None
        self._email_cache[(workspace, email)] = (user, time.monotonic() + 3600)
        return user

    # Delivery ---------------------------------------------------------------------------------

    async def _client_for(self, workspace: str) -> AsyncWebClient:
        if not self.multi_workspace:
            if self.team_id is not None and self.team_id in self._disabled_teams:
                raise PermanentFailure("slack installation revoked")
            return self.client
        assert self.installations is not None
        if not workspace:
            raise PermanentFailure("a Slack workspace is needed with several installations")
        client = self._clients.get(workspace)
        if client is None:
            bot = await self.installations.bot_for_team(workspace)
            if bot is None or not bot.bot_token:
                raise PermanentFailure("slack app not installed in that workspace")
            client = self._clients[workspace] = self._make_client(bot.bot_token)
        return client

    async def _open_dm(self, client: AsyncWebClient, address: Address) -> str:
        response = await self._call(lambda: client.conversations_open(users=address.external_id), address=address)
        data = response.data if isinstance(response.data, dict) else {}
        conversation = _str(_dig(data, "channel", "id"))
        if not conversation:
            raise PermanentFailure("conversations.open returned no channel")
        await asyncio.to_thread(self.people.remember_dm, address, conversation)
        return conversation

    async def _post(
        self,
        client: AsyncWebClient,
        conversation: str,
        message: Outbound,
        *,
        address: Address | None = None,
        thread: str | None = None,
    ) -> str | None:
        payload = message_payload(message)
        lock = self._locks.setdefault(conversation, asyncio.Lock())
        async with lock:
            # Slack allows about one message per second in a conversation.
            wait = self._last_post.get(conversation, 0.0) + self.pace_seconds - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            response = await self._call(
                lambda: client.chat_postMessage(
                    channel=conversation, thread_ts=thread, unfurl_links=False, unfurl_media=False, **payload
                ),
                address=address,
            )
            self._last_post[conversation] = time.monotonic()
        return _str(response.get("ts"))

    async def _call(self, request: Callable[[], Awaitable[Any]], *, address: Address | None) -> Any:
        """One Web API call with Rapport's error policy (see ``send``)."""
        waited = 0.0
        while True:
            try:
                return await request()
            except SlackApiError as exc:
                status = exc.response.status_code
                error = str(exc.response.get("error") or "")
                if status == 429 or error == "ratelimited":
                    retry_after = _retry_after(exc.response.headers)
                    if waited + retry_after <= self.max_wait_seconds:
                        waited += retry_after
                        await asyncio.sleep(retry_after)
                        continue
                    raise RetryLater("slack rate limit", retry_after=retry_after) from None
                if status >= 500:
                    raise RetryLater(f"slack server error {status}") from None
                if error in UNREACHABLE_ERRORS and address is not None:
                    await asyncio.to_thread(self.people.mark_unreachable, address, error, self.clock())
                    raise Unreachable(error) from None
                if error in INSTALLATION_ERRORS:
                    raise PermanentFailure(f"slack installation unusable: {error}") from None
                raise PermanentFailure(error or f"slack http {status}") from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise RetryLater(f"network: {type(exc).__name__}") from None


def acknowledgeable(response: BoltResponse) -> BoltResponse:
    """What Slack should hear back: Bolt's own answer, except for payloads no listener can take.

    A 404 is Bolt's "unhandled request" (a payload type with no listener at all) and a 5xx is Bolt
    failing on a malformed payload (Rapport's listeners only acknowledge and hand work to tasks,
    so they do not fail). A retry would end the same way, so both are acknowledged instead.
    """
    if response.status == 404 or response.status >= 500:
        log.debug("slack: a payload no listener could take was acknowledged", extra={"status": response.status})
        return BoltResponse(status=200, body="")
    return response


class _SocketModeHandler(AsyncSocketModeHandler):
    """Bolt's aiohttp Socket Mode handler, acknowledging every envelope (see ``acknowledgeable``):
    an envelope left unacknowledged is delivered again and again."""

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        start = time.time()
        try:
            response = acknowledgeable(await run_async_bolt_app(self.app, req))
        except Exception:
            log.exception("slack: dispatching a Socket Mode envelope failed")
            response = BoltResponse(status=200, body="")
        await send_async_response(client, req, response, start)


# Small helpers for partial payloads ------------------------------------------------------------


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def unescape_slack(text: str) -> str:
    """The words as the person typed them: Slack sends ``&``, ``<`` and ``>`` escaped in message
    text. (Mentions and links stay in Slack's ``<…>`` form; they are escaped again whenever shown.)"""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _is_bot(event: JSON) -> bool:
    return (
        bool(event.get("bot_id"))
        or event.get("subtype") == "bot_message"
        or bool(event.get("bot_profile"))
        or event.get("user") == "USLACKBOT"
    )


def _retry_after(headers: Any) -> float:
    try:
        items = dict(headers or {}).items()
        value = next((v for k, v in items if str(k).lower() == "retry-after"), None)
        if isinstance(value, list):
            value = value[0] if value else None
        return max(0.0, float(value)) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0
