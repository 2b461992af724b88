"""What every channel adapter shares: the engine's ports and the adapter protocol.

An adapter is thin. Inbound, it translates an update or event into :class:`Inbound`, hands it to
``CheckinService.handle`` (in a worker thread, via ``asyncio.to_thread``) and sends the replies;
the few payloads that are not a person's answer (an invite link, a blocked bot, a stop button, an
owner's form) go to the engine calls passed to its constructor (``bot.engine.people.People``,
``bot.engine.owners.OwnerCommands``), and what other processes must see goes to
``bot.engine.marks.Marks``. Adapters never open a transaction themselves.
Outbound, ``send`` delivers rendered messages to one address and raises a
``memory.errors.DeliveryError`` subclass when it cannot: ``RetryLater`` (429/5xx/network, with
``retry_after``), ``Unreachable`` (blocked, account gone) or ``PermanentFailure``.

**Worker threads.** ``asyncio.to_thread`` runs on the event loop's default executor, which Python
sizes at ``min(32, cpus + 4)`` threads: six on two cores, so at most six answers could wait for the
model together and share one encode call. ``rapport run`` replaces it with
:func:`use_engine_threads`, sized by ``conversation.concurrent_answers`` for people waiting at
once (a waiting thread costs little; the model is the shared part).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from bot.engine.ports import Choice, Inbound, Outbound
from prompts import Markup

__all__ = ["Address", "Channel", "Choice", "Inbound", "Markup", "Outbound", "Sent", "use_engine_threads"]


def use_engine_threads(loop: asyncio.AbstractEventLoop, workers: int) -> ThreadPoolExecutor:
    """Give ``loop`` a default executor of ``workers`` threads, which every adapter's
    ``asyncio.to_thread`` call (``CheckinService.handle`` among them) runs on."""
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rapport-engine")
    loop.set_default_executor(executor)
    return executor


@dataclass(frozen=True, kw_only=True)
class Address:
    """Where to write to one person on one channel (from ``memory.models.ChannelIdentity``)."""

    channel: str
    external_id: str
    workspace: str = ""
    # A conversation id when it differs from the user id (a Slack DM channel).
    conversation: str | None = None


@dataclass(frozen=True, kw_only=True)
class Sent:
    """What the API accepted: the id of the last message, for edits and the outbox record."""

    external_ref: str | None = None


class Channel(Protocol):
    """A way to reach people. Adapters translate; the engine decides."""

    name: str
    markup: Markup

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes this channel serves on Rapport's web server (webhooks); may be empty."""
        ...

    async def start(self) -> None:
        """Connect and begin receiving (polling, Socket Mode). Returns once running."""
        ...

    async def stop(self) -> None:
        """Stop receiving; finish or abandon in-flight work cleanly."""
        ...

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """Deliver messages in order, within the channel's rate limits, or raise DeliveryError."""
        ...
