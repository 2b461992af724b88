"""Slack's one network seam: every Web API call Rapport makes for delivery goes through here.

* **Clients.** One ``AsyncWebClient`` with one workspace; one per installed workspace with the
  install flow (tokens from ``bot.channels.slack.install``).
* **Policy.** Calls run in the conversation's slot of the shared pacer (about one message per
  second in a conversation) and under the shared retry policy (``bot.channels.pacing``): 429 is
  waited out when short and raised as ``RetryLater`` when long; 5xx and network errors are retried
  a few times, then ``RetryLater``; errors that mean the person cannot be written to mark the
  identity unreachable (through the engine) and raise ``Unreachable``; the rest is
  ``PermanentFailure``.
* **Timeouts.** A call waits ``timeout`` seconds (30 by default) for Slack's answer. A post that
  times out may have gone out: it raises ``DeliveryUnknown`` and is not retried in place.
* **Batches.** A batch that failed part-way is retried whole by the outbox; what did go out is
  remembered in the database for a while (``bot.engine.marks``), so a retry from any process
  skips it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels import pacing
from bot.channels.base import Address, Outbound, Sent
from bot.channels.slack.blocks import message_payload
from bot.channels.slack.install import ThreadedInstallationStore
from bot.channels.slack.translate import dig, text_of
from bot.engine.marks import Marks
from bot.engine.people import People
from memory.errors import DeliveryUnknown, PermanentFailure, RetryLater, Unreachable

log = logging.getLogger("bot.channels.slack")

NAME = "slack"
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
#: How long the part of a failed batch that did go out is remembered, so a retry skips it.
PARTIAL_BATCH = dt.timedelta(hours=6)
#: How long a users.lookupByEmail answer (also "not found") is reused.
EMAIL_CACHE_SECONDS = 3600.0


class SlackTransport:
    def __init__(
        self,
        *,
        bot_token: str | None,
        api_base_url: str,
        installations: ThreadedInstallationStore | None,
        pacer: pacing.Pacer,
        policy: pacing.Policy,
        people: People,
        marks: Marks,
        clock: Callable[[], dt.datetime],
        timeout: float = 30.0,
    ) -> None:
        self.api_base_url = api_base_url
        self.installations = installations
        self.multi_workspace = installations is not None
        self.pacer = pacer
        self.policy = policy
        self.people = people
        self.marks = marks
        self.clock = clock
        self.timeout = timeout
        self.client = self.make_client(None if self.multi_workspace else bot_token)
        self.team_id: str | None = None
        self._clients: dict[str, AsyncWebClient] = {}
        # Teams whose installation was revoked or uninstalled (single workspace; the install flow
        # deletes the installation itself, in the database).
        self._disabled_teams: set[str] = set()
        self._email_cache: dict[tuple[str, str], tuple[str | None, float]] = {}

    def make_client(self, token: str | None) -> AsyncWebClient:
        # No retry handlers of its own: retries follow the shared policy (``_call``).
        return AsyncWebClient(
            token=token, base_url=self.api_base_url, timeout=int(self.timeout), logger=logging.getLogger(API_LOGGER)
        )

    # Installations ----------------------------------------------------------------------------

    async def client_for(self, workspace: str) -> AsyncWebClient:
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
            client = self._clients[workspace] = self.make_client(bot.bot_token)
        return client

    def disable(self, team: str) -> None:
        """The installation of ``team`` is gone: forget its client (and, with one workspace, stop)."""
        self._clients.pop(team, None)
        if not self.multi_workspace:
            self._disabled_teams.add(team)

    # Sending ----------------------------------------------------------------------------------

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        if address.channel != NAME:
            raise PermanentFailure(f"not a Slack address: {address.channel}")
        client = await self.client_for(address.workspace)
        conversation = address.conversation or await self.open_dm(client, address)
        digest = hashlib.sha256("\x00".join(m.text for m in messages).encode()).hexdigest()[:32]
        key = f"slack:partial:{address.workspace}:{conversation}:{digest}"
        done = int(await asyncio.to_thread(self.marks.pop, key, now=self.clock()) or 0)
        last: str | None = None
        for index, message in enumerate(messages):
            if index < done:
                continue
            try:
                last = await self.post(client, conversation, message, address=address)
            except RetryLater:
                if index > 0:
                    await asyncio.to_thread(self.marks.put, key, str(index), now=self.clock(), ttl=PARTIAL_BATCH)
                raise
        return Sent(external_ref=last)

    async def open_dm(self, client: AsyncWebClient, address: Address) -> str:
        response = await self.call(lambda: client.conversations_open(users=address.external_id), address=address)
        conversation = text_of(dig(_data(response), "channel", "id"))
        if not conversation:
            raise PermanentFailure("conversations.open returned no channel")
        await asyncio.to_thread(
            self.people.remember_address, NAME, address.external_id, address.workspace, conversation
        )
        return conversation

    async def post(
        self, client: AsyncWebClient, conversation: str, message: Outbound, *, address: Address | None = None,
        thread: str | None = None,
    ) -> str | None:  # fmt: skip
        payload = message_payload(message)
        response = await self.call(
            lambda: client.chat_postMessage(
                channel=conversation, thread_ts=thread, unfurl_links=False, unfurl_media=False, **payload
            ),
            address=address, conversation=conversation,
        )  # fmt: skip
        return text_of(response.get("ts"))

    async def lookup_email(self, client: AsyncWebClient, workspace: str, email: str) -> str | None:
        """users.lookupByEmail, cached for an hour (also "not found", so a roster refresh is cheap)."""
        cached = self._email_cache.get((workspace, email))
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            response = await self.call(lambda: client.users_lookupByEmail(email=email), address=None)
            user = text_of(dig(_data(response), "user", "id"))
        except PermanentFailure as exc:
            if exc.reason != "users_not_found":
                raise
            user = None
        if len(self._email_cache) > 100_000:
            self._email_cache.clear()
        self._email_cache[(workspace, email)] = (user, time.monotonic() + EMAIL_CACHE_SECONDS)
        return user

    async def call(
        self, request: Callable[[], Awaitable[Any]], *, address: Address | None, conversation: str | None = None
    ) -> Any:
        """One Web API call under the shared pacer and retry policy. A call to a ``conversation``
        posts a message: one that times out is not retried in place (``DeliveryUnknown``)."""
        posts = conversation is not None

        async def classify(exc: Exception) -> Exception:
            if isinstance(exc, SlackApiError):
                status = exc.response.status_code
                error = str(exc.response.get("error") or "")
                if status == 429 or error == "ratelimited":
                    return pacing.Transient("slack rate limit", retry_after=retry_after(exc.response.headers))
                if status >= 500:
                    return pacing.Transient(f"slack server error {status}")
                if error in UNREACHABLE_ERRORS and address is not None:
                    await asyncio.to_thread(
                        self.people.mark_unreachable, NAME, address.external_id, address.workspace, error, self.clock()
                    )
                    return Unreachable(error)
                if error in INSTALLATION_ERRORS:
                    return PermanentFailure(f"slack installation unusable: {error}")
                return PermanentFailure(error or f"slack http {status}")
            if posts and isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ConnectionTimeoutError):
                # The message may have been posted and only the answer is late: posting it again
                # could show it twice, so the outbox decides.
                return DeliveryUnknown("slack did not answer in time")
            if isinstance(exc, aiohttp.ClientError | TimeoutError):
                return pacing.Transient(f"network: {type(exc).__name__}")
            return exc

        return await pacing.call(request, conversation=conversation, pacer=self.pacer, policy=self.policy,
                                 classify=classify)  # fmt: skip


def _data(response: Any) -> dict[str, Any]:
    data = getattr(response, "data", None)
    return data if isinstance(data, dict) else {}


def retry_after(headers: Any) -> float:
    try:
        items = dict(headers or {}).items()
        value = next((v for k, v in items if str(k).lower() == "retry-after"), None)
        if isinstance(value, list):
            value = value[0] if value else None
        return max(0.0, float(value)) if value is not None else 1.0
    except (TypeError, ValueError):
        return 1.0
