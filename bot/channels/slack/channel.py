"""``SlackChannel``: check-ins in Slack DMs. It composes the parts of this folder and carries out
what a payload asks for; the engine decides what to say.

* a person's DM (text, a typed number, ``help``/``skip``/``stop``/``start``) -> an answer;
* a rating button -> the choice is the answer; the message is updated to show it (once, whichever
  process sees the click first);
* "Stop check-ins" under a question -> the ``stop`` command (the conversation asks to confirm);
* an edited DM corrects that answer, a deleted one changes nothing, a file is a ``non_text``;
* the App Home (``home``), the *Record a promise* shortcut (``shortcut``);
* roster entries with an e-mail are linked to Slack users (``users.lookupByEmail``), now and
  every ``link_every_seconds``, and when they write first (``linking``).

A person's words or choice are stored before Slack is told they arrived (``intake``): Slack retries
an event it thinks we missed, and the engine processes each ``event_id`` once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from aiohttp import web
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

import prompts
from bot.channels import pacing
from bot.channels.base import Address, Inbound, Markup, Outbound, Sent
from bot.channels.slack import home, shortcut
from bot.channels.slack.blocks import JSON
from bot.channels.slack.install import BOT_SCOPES, ThreadedInstallationStore, ThreadedStateStore
from bot.channels.slack.intake import AGAIN, STORE_WITHIN_SECONDS, Intake, Then
from bot.channels.slack.linking import LinkReport, RosterLinker
from bot.channels.slack.receiver import Ack, SlackReceiver
from bot.channels.slack.translate import (
    NAME,
    chosen_view,
    is_bot,
    obj,
    text_of,
    translate_message,
    translate_rating,
    translate_stop,
    workspace_of,
)
from bot.channels.slack.transport import DEFAULT_API_BASE_URL, SlackTransport
from bot.engine.marks import Marks
from bot.engine.owners import OwnerCommands
from bot.engine.people import People
from bot.engine.ports import RepliesPending
from bot.engine.service import CheckinService

log = logging.getLogger("bot.channels.slack")

#: A rating message answered once stays answered (in every process) this long.
CLICKED_FOR = dt.timedelta(days=60)
#: A DM redelivered this soon after another process stored it is left for Slack's next retry
#: (1 and 5 minutes later): that process is most likely still posting its replies.
REPLIES_PENDING_FOR = dt.timedelta(seconds=30)

#: What became of an event in the engine: ``done`` (stored, or known as a duplicate), ``raced``
#: (another process committed it a moment ago), ``failed`` (nothing stored; "try again" is said),
#: ``pending`` (another process stored it moments ago and is most likely still replying).
Outcome = Literal["done", "raced", "failed", "pending"]
#: Posts the replies of an answered event (after the acknowledgement).
Send = Callable[[list[Outbound], Outcome], Awaitable[None]]


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
        people: People | None = None,
        owners: OwnerCommands | None = None,
        marks: Marks | None = None,
        pace_seconds: float = 1.0,
        overall_rate: float = 0.0,
        max_wait_seconds: float = 5.0,
        retries: int = 2,
        retry_backoff: float = 0.5,
        timeout_seconds: float = 30.0,
        link_every_seconds: float = 3600.0,
        store_within_seconds: float = STORE_WITHIN_SECONDS,
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
        self.people = people or People(service=service)
        self.owners = owners or OwnerCommands(sessions=service.sessions)
        self.marks = marks or Marks(service.sessions)
        self.mode = mode
        self.clock = clock
        self.link_every_seconds = link_every_seconds
        self.multi_workspace = oauth is not None
        self.installations: ThreadedInstallationStore | None = None
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
        self.transport = SlackTransport(
            bot_token=bot_token, api_base_url=api_base_url, installations=self.installations,
            pacer=pacing.Pacer(per_conversation=1 / pace_seconds if pace_seconds > 0 else 0.0, overall=overall_rate),
            policy=pacing.Policy(attempts=retries + 1, backoff=retry_backoff, max_wait=max_wait_seconds),
            people=self.people, marks=self.marks, clock=clock, timeout=timeout_seconds,
        )  # fmt: skip
        self.receiver = SlackReceiver(
            client=self.transport.client, mode=mode, signing_secret=signing_secret, app_token=app_token,
            oauth_settings=settings,
        )  # fmt: skip
        self.receiver.register(self)
        self.bolt = self.receiver.bolt
        self.intake = Intake(store_within=store_within_seconds)
        self.linker = RosterLinker(
            people=self.people, transport=self.transport, clock=clock, every_seconds=link_every_seconds
        )

    @property
    def team_id(self) -> str | None:
        return self.transport.team_id

    # Channel protocol -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return self.receiver.routes()

    async def start(self) -> None:
        """Check the token (``auth.test``), connect Socket Mode, and start linking the roster by
        e-mail in the background."""
        if not self.multi_workspace:
            auth = await self.transport.client.auth_test()
            self.transport.team_id = str(auth.get("team_id") or "") or None
            log.info("slack connected", extra={"team": self.team_id, "mode": self.mode})
        self.linker.start()
        await self.receiver.connect()

    async def stop(self) -> None:
        await self.linker.stop()
        await self.receiver.close()
        await self.drain()

    async def drain(self) -> None:
        """Wait until the work started so far is done: acknowledged events, and the first round of
        linking the roster after ``start``."""
        await self.linker.first_round()
        await self.intake.drain()

    async def link_people(self) -> LinkReport:
        """Link roster entries that have an e-mail but no Slack identity (``rapport slack link``)."""
        return await self.linker.link_people()

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """Post messages in the person's DM, in order and at Slack's pace, or raise DeliveryError."""
        return await self.transport.send(address, messages)

    # Handing payloads to work -----------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.intake.spawn(work)

    async def take(self, store: Coroutine[Any, Any, Then | None]) -> bool:
        return await self.intake.take(store)

    def workspace(self, body: JSON) -> str:
        return workspace_of(body, multi_workspace=self.multi_workspace)

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        return (await self._engine(inbound, confirm=False))[0]

    async def _engine(
        self, inbound: Inbound, *, confirm: bool, redelivered_later: bool = False
    ) -> tuple[list[Outbound], Outcome]:
        pending_for = REPLIES_PENDING_FOR if redelivered_later else None
        try:
            replies = await asyncio.to_thread(
                self.service.handle, inbound, markup=self.markup, confirm=confirm, replies_pending_for=pending_for
            )
        except RepliesPending:
            return [], "pending"
        except IntegrityError:
            # The same event committed by another worker a moment ago: it is done, say nothing.
            log.info("slack: concurrent duplicate event ignored")
            return [], "raced"
        except Exception:
            log.exception("slack: the engine failed on an inbound event", extra={"kind": inbound.kind})
            return [Outbound(text=prompts.render("person/try_again", self.markup))], "failed"
        return replies, "done"

    async def answer(self, inbound: Inbound, send: Send, *, redelivered_later: bool = False) -> Then | None:
        """Store ``inbound`` (the listener awaits this, before the acknowledgement) and return the
        rest: ``send`` the replies, then tell the engine they are out. A delivery of an event this
        process is answering already waits until that one is stored and does nothing more.

        ``redelivered_later``: Slack delivers this payload again if it is not acknowledged (an
        event, not a click). Then a delivery of an event another process stored moments ago, and
        is most likely still replying to, returns ``AGAIN`` (not acknowledged: Slack's next retry
        comes a minute later) instead of showing the person the question a second time."""
        key = inbound.event_key
        first = self.intake.answering(key)
        if first is not None:
            log.info("slack: a redelivered event is being answered here already")
            await first.wait()
            return None
        stored = self.intake.begin(key)
        try:
            replies, outcome = await self._engine(inbound, confirm=True, redelivered_later=redelivered_later)
        except BaseException:
            self.intake.end(key, stored)
            raise
        stored.set()
        if outcome == "pending":
            self.intake.end(key, stored)
            log.info("slack: an event another process stored moments ago is left for Slack's next retry")
            return AGAIN

        async def then() -> None:
            try:
                await send(replies, outcome)
                if outcome == "done":
                    await asyncio.to_thread(self.service.replied, inbound)
            finally:
                self.intake.end(key, stored)

        return then

    async def reply(
        self, client: AsyncWebClient, channel: str, replies: Sequence[Outbound], thread: str | None
    ) -> None:
        for message in replies:
            try:
                await self.transport.post(client, channel, message, thread=thread)
            except Exception:
                log.exception("slack: a reply could not be posted", extra={"conversation": channel})
                return

    # Payloads ---------------------------------------------------------------------------------

    async def on_message(self, body: JSON, client: AsyncWebClient) -> Then | None:
        translated = translate_message(body, workspace=self.workspace(body), now=self.clock())
        if translated is None:
            event = obj(body.get("event"))
            log.debug(
                "slack message ignored",
                extra={"subtype": str(event.get("subtype"))[:50], "channel_type": str(event.get("channel_type"))[:20]},
            )
            return None
        inbound, channel, thread = translated
        if inbound.kind in ("text", "non_text"):
            await self.linker.link_sender(client, inbound.sender, inbound.workspace)

        async def send(replies: list[Outbound], _outcome: Outcome) -> None:
            await self.reply(client, channel, replies, thread)

        return await self.answer(inbound, send, redelivered_later=True)

    async def on_rating(self, body: JSON, client: AsyncWebClient) -> Then | None:
        translated = translate_rating(body, workspace=self.workspace(body), now=self.clock())
        if translated is None:
            return None
        inbound, channel, message_ts = translated
        mark = f"slack:clicked:{channel}:{message_ts}"
        # The first click on a message (in any process) has the message show its choice; a later
        # one still reaches the engine, which counts one answer per message (its event key), so a
        # click whose process died before storing it is not lost.
        first_click = await asyncio.to_thread(self.marks.claim, mark, now=self.clock(), ttl=CLICKED_FOR)
        if not first_click:
            log.info("slack: a second click on the same rating message")

        async def send(replies: list[Outbound], outcome: Outcome) -> None:
            if first_click and outcome == "failed":
                # Nothing was stored: the buttons stay, and the next click is a first one.
                await asyncio.to_thread(self.marks.drop, mark)
            elif first_click:
                await self.show_choice(client, channel, message_ts, chosen_view(body.get("message"), inbound))
            await self.reply(client, channel, replies, None)

        return await self.answer(inbound, send)

    async def show_choice(
        self, client: AsyncWebClient, channel: str, message_ts: str, view: tuple[str, list[JSON]] | None
    ) -> None:
        if view is None:
            return
        text, blocks = view
        try:
            await client.chat_update(channel=channel, ts=message_ts, text=text, blocks=blocks)
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.warning("slack: the rating message could not be updated", extra={"conversation": channel})

    async def on_stop(self, body: JSON, client: AsyncWebClient) -> Then | None:
        """The *Stop check-ins* button under a question: the conversation asks to confirm, as for a
        typed stop."""
        translated = translate_stop(body, workspace=self.workspace(body), now=self.clock())
        if translated is None:
            return None
        inbound, channel = translated

        async def send(replies: list[Outbound], _outcome: Outcome) -> None:
            await self.reply(client, channel, replies, None)

        return await self.answer(inbound, send)

    async def on_mention(self, body: JSON, client: AsyncWebClient) -> None:
        """@Rapport in a channel: tell the person, privately, that check-ins happen in the DM."""
        event = obj(body.get("event"))
        user, channel = text_of(event.get("user")), text_of(event.get("channel"))
        if not user or not channel or is_bot(event):
            return
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, text=prompts.render("person/slack_dm_only", self.markup)
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError):
            log.info("slack: could not answer a mention", extra={"conversation": channel})

    async def on_revoked(self, body: JSON, *, uninstalled: bool) -> None:
        team = str(body.get("team_id") or "")
        enterprise = body.get("enterprise_id") or None
        tokens = obj(obj(body.get("event")).get("tokens"))
        if self.installations is not None:
            if uninstalled:
                await self.installations.async_delete_all(enterprise_id=enterprise, team_id=team)
            else:
                if tokens.get("bot"):
                    await self.installations.async_delete_bot(enterprise_id=enterprise, team_id=team)
                for user in tokens.get("oauth") or []:
                    await self.installations.async_delete_installation(
                        enterprise_id=enterprise, team_id=team, user_id=str(user)
                    )
        elif not uninstalled and not tokens.get("bot"):
            return  # only user tokens went; the bot still works
        self.transport.disable(team)
        log.warning("slack installation disabled", extra={"team": team, "uninstalled": uninstalled})

    async def on_home_opened(self, body: JSON, client: AsyncWebClient) -> None:
        await home.opened(self, body, client)

    async def on_home_button(self, body: JSON, client: AsyncWebClient) -> Then | None:
        return await home.button(self, body, client)

    async def on_promise_shortcut(self, body: JSON, client: AsyncWebClient) -> None:
        await shortcut.open_form(self, body, client)

    async def on_promise_form(self, ack: Ack, body: JSON) -> None:
        await shortcut.submit(self, ack, body)
