"""Linking roster entries to Slack users by e-mail: ``users.lookupByEmail`` for everyone with an
e-mail and no Slack identity (when the channel starts, then every ``every_seconds``), and
``users.info`` when someone Rapport does not know yet writes first. The rule (an e-mail never
moves an existing link) is the engine's (``People.link_by_email``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.channels.slack.translate import NAME, dig, text_of
from bot.channels.slack.transport import SlackTransport
from bot.engine.people import People
from memory.errors import PermanentFailure, RetryLater, Unreachable

log = logging.getLogger("bot.channels.slack")

#: An unknown sender already looked up with users.info is not looked up again for this long.
SENDER_CHECK_SECONDS = 3600.0


@dataclass
class LinkReport:
    """What ``link_people`` did: people linked by e-mail, and the ones it could not link."""

    linked: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class RosterLinker:
    def __init__(
        self, *, people: People, transport: SlackTransport, clock: Callable[[], dt.datetime], every_seconds: float
    ) -> None:
        self.people = people
        self.transport = transport
        self.clock = clock
        self.every_seconds = every_seconds
        self.task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()
        # Unknown senders already looked up with users.info: a cache (another process looking
        # again costs one API call, nothing else).
        self._checked: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        # Linking a large roster takes a while (Slack paces users.lookupByEmail), so it runs beside
        # the channel: now, then every ``every_seconds`` for people imported while Rapport runs.
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def first_round(self) -> None:
        """Wait for the first round after ``start`` (nothing to wait for when not started)."""
        if self.task is not None:
            await self._first.wait()

    async def _loop(self) -> None:
        await self._round()
        self._first.set()
        while self.every_seconds > 0:
            await asyncio.sleep(self.every_seconds)
            await self._round()

    async def _round(self) -> None:
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

    async def link_people(self) -> LinkReport:
        """Link roster entries that have an e-mail but no Slack identity, via users.lookupByEmail."""
        report = LinkReport()
        teams = await self.transport.installations.teams() if self.transport.installations is not None else [""]
        for team in teams:
            workspace = team if self.transport.multi_workspace else ""
            pending = await asyncio.to_thread(self.people.to_link, NAME, workspace)
            if not pending:
                continue
            client = await self.transport.client_for(workspace)
            for index, (key, email) in enumerate(pending):
                try:
                    user = await self.transport.lookup_email(client, workspace, email)
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
                await asyncio.to_thread(self.people.link_by_key, NAME, key, user, workspace, self.clock())
                report.linked.append(key)
        if report.not_found or report.failed:
            log.warning(
                "slack: some people could not be linked by e-mail",
                extra={"not_found": len(report.not_found), "failed": len(report.failed)},
            )
        return report

    async def link_sender(self, client: AsyncWebClient, user: str, workspace: str) -> None:
        """Someone on the roster by e-mail but not yet linked writes first: link them (users.info)."""
        key = (workspace, user)
        loop = asyncio.get_running_loop()
        if self._checked.get(key, 0.0) > loop.time():
            return
        if await asyncio.to_thread(self.people.has_identity, NAME, user, workspace):
            return
        if len(self._checked) > 100_000:
            self._checked.clear()
        self._checked[key] = loop.time() + SENDER_CHECK_SECONDS
        try:
            response = await client.users_info(user=user)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("slack: users.info failed for a new sender", extra={"error": type(exc).__name__})
            return
        data = response.data if isinstance(response.data, dict) else {}
        if dig(data, "user", "is_bot"):
            return
        email = text_of(dig(data, "user", "profile", "email"))
        if not email:
            return
        if await asyncio.to_thread(self.people.link_by_email, NAME, email, user, workspace, self.clock()):
            self._checked.pop(key, None)
            log.info("slack: a roster entry was linked by e-mail when they wrote first")
