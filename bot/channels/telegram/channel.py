"""``TelegramChannel``: Rapport on Telegram. It composes the parts of this folder and carries out
what an update asks for; the engine decides what to say.

* a person's private chat (text, commands, edits, stickers and photos as ``non_text``) -> the
  check-in service; ``update_id`` is the event key, so an update delivered twice counts once;
* ``/start <token>`` -> the engine links the chat from the invite (``People.link_from_invite``);
* a button press -> always answered, its keyboard closed, a valid rating handled;
* the person blocking or unblocking the bot -> the engine's reachability rule;
* groups and channels -> a polite notice, at most once an hour per group, and nothing stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from telegram import BotCommand
from telegram.ext import ExtBot

import prompts
from bot.channels import pacing
from bot.channels.base import Address, Inbound, Outbound, Sent
from bot.channels.telegram.receiver import DEFAULT_API_BASE_URL, WEBHOOK_PATH, TelegramReceiver, make_bot
from bot.channels.telegram.translate import (
    NAME,
    Action,
    Deliver,
    Explain,
    Ignore,
    Link,
    Membership,
    Press,
    as_int,
    translate,
)
from bot.channels.telegram.transport import OVERALL_RATE, TelegramTransport
from bot.engine.marks import Marks
from bot.engine.people import People
from bot.engine.service import CheckinService
from memory.errors import PermanentFailure, RetryLater, Unreachable

log = logging.getLogger("bot.channels.telegram")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class TelegramSettings:
    """What the channel needs from the config, resolved (secrets read) by the composition root."""

    token: str
    # The invite signing key (``bot.invites.derive_key``).
    invite_key: bytes
    mode: Literal["polling", "webhook"] = "polling"
    api_base_url: str = DEFAULT_API_BASE_URL
    webhook_url: str | None = None
    secret_token: str | None = None
    poll_timeout: float = 10.0
    # Seconds a send waits for Telegram's answer (see ``transport``: a late answer is "unknown").
    request_timeout: float = 30.0
    send_attempts: int = 3
    retry_backoff: float = 1.0
    # The longest a send waits in all for Telegram's RetryAfter before raising RetryLater.
    max_inline_wait: float = 5.0
    # Messages per second to one chat (0 turns the per-chat limit off), and for the whole bot
    # (``scheduler.rate_per_second.telegram``; Telegram allows about 30).
    per_chat_rate: float = 1.0
    overall_rate: float = OVERALL_RATE
    group_notice_every: dt.timedelta = dt.timedelta(hours=1)
    # Polling: the first wait before fetching an update again whose processing failed.
    poll_retry_seconds: float = 1.0
    # How long ``stop`` waits for the updates in hand (their replies included).
    drain_seconds: float = 30.0


class TelegramChannel:
    """Rapport on Telegram. Implements :class:`bot.channels.base.Channel`."""

    name = NAME
    markup: prompts.Markup = "telegram_html"

    def __init__(
        self,
        *,
        settings: TelegramSettings,
        service: CheckinService,
        people: People | None = None,
        marks: Marks | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.service = service
        self.people = people or People(service=service)
        self.marks = marks or Marks(service.sessions)
        self.clock = clock
        self.invite_key = settings.invite_key
        self.username: str | None = None
        bot = make_bot(settings.token, api_base_url=settings.api_base_url, timeout=settings.request_timeout)
        self.transport = TelegramTransport(
            bot=bot,
            pacer=pacing.Pacer(per_conversation=settings.per_chat_rate, burst=3, overall=settings.overall_rate),
            policy=pacing.Policy(
                attempts=max(1, settings.send_attempts), backoff=settings.retry_backoff,
                max_wait=settings.max_inline_wait,
            ),
            people=self.people, marks=self.marks, clock=clock,
        )  # fmt: skip
        self.receiver = TelegramReceiver(
            bot=bot, mode=settings.mode, webhook_url=settings.webhook_url, secret_token=settings.secret_token,
            poll_timeout=settings.poll_timeout, process=self.process_update, retry_seconds=settings.poll_retry_seconds,
        )  # fmt: skip
        self._chat_locks: dict[int, asyncio.Lock] = {}
        # Tasks processing an update right now: ``stop`` lets them finish (and reply).
        self._inflight: set[asyncio.Task[Any]] = set()
        # When the group notice was last sent to a group: only a courtesy, so per process.
        self._group_notices: dict[int, dt.datetime] = {}

    @property
    def bot(self) -> ExtBot[Any]:
        return self.transport.bot

    @bot.setter
    def bot(self, bot: Any) -> None:
        self.transport.bot = self.receiver.bot = bot

    @property
    def running(self) -> bool:
        return self.receiver.running

    # Lifecycle --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return self.receiver.routes()

    async def start(self) -> None:
        await self.receiver.start()
        self.username = self.bot.username
        # The commands people can send, in Telegram's "/" menu: /stop is always one tap away.
        await self.transport.quietly("setMyCommands", self.bot.set_my_commands(list(COMMAND_MENU)))

    async def stop(self) -> None:
        """Take no new updates, finish the ones in hand (replies included), then disconnect."""
        await self.receiver.stop_receiving()
        current = asyncio.current_task()
        pending = [t for t in self._inflight if t is not current]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.settings.drain_seconds)
            if late:
                log.warning("telegram updates still in hand at shutdown", extra={"count": len(late)})
        await self.receiver.shutdown()

    # Receiving --------------------------------------------------------------------------------

    async def process_update(self, update: Mapping[str, Any]) -> None:
        """Carry out one raw update (from polling, the webhook, or a replayed file)."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._process(update)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _process(self, update: Mapping[str, Any]) -> None:
        try:
            action = translate(update, now=self.clock())
        except Exception:
            log.exception("telegram update could not be read", extra={"update_id": _safe_id(update)})
            return
        if isinstance(action, Ignore):
            log.debug("telegram update ignored", extra={"kind": action.kind, "why": action.why})
            return
        chat_id = action.chat_id
        if chat_id is None:
            await self._act(action)
            return
        # One chat's updates in order, even when webhook requests arrive concurrently.
        lock = self._chat_locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            await self._act(action)
        if not lock.locked() and len(self._chat_locks) > 1024:
            self._chat_locks.pop(chat_id, None)

    async def _act(self, action: Action) -> None:
        if isinstance(action, Deliver):
            await self._answer(action.chat_id, action.inbound)
        elif isinstance(action, Press):
            await self._press(action)
        elif isinstance(action, Link):
            replies = await asyncio.to_thread(
                lambda: self.people.link_from_invite(
                    channel=NAME, external_id=str(action.chat_id), token=action.token, key=self.invite_key,
                    event_key=action.event_key, now=action.received_at, markup=self.markup,
                )
            )  # fmt: skip
            await self._reply(action.chat_id, replies)
        elif isinstance(action, Membership):
            await asyncio.to_thread(
                lambda: self.people.membership(
                    NAME, str(action.chat_id), reachable=action.reachable, event_key=action.event_key,
                    now=action.received_at,
                )
            )  # fmt: skip
        elif isinstance(action, Explain):
            await self._explain(action)

    async def _press(self, action: Press) -> None:
        text = None if action.inbound is not None else prompts.render("telegram/button_expired", "plain")
        await self.transport.quietly(
            "answerCallbackQuery", self.bot.answer_callback_query(action.callback_id, text=text)
        )
        if action.chat_id is None:
            return
        if action.message_id is not None:
            await self.transport.pressed(action.chat_id, action.message_id)
        if action.inbound is not None:
            await self._answer(action.chat_id, action.inbound)

    async def _answer(self, chat_id: int, inbound: Inbound) -> None:
        """The engine, then the replies, then the engine hears they are out: an update redelivered
        after a crash in between (its answer stored, its reply never sent) is answered with the
        question the conversation waits on."""
        replies = await asyncio.to_thread(self.service.handle, inbound, markup=self.markup, confirm=True)
        await self._reply(chat_id, replies)
        await asyncio.to_thread(self.service.replied, inbound)

    async def _explain(self, action: Explain) -> None:
        now = self.clock()
        last = self._group_notices.get(action.chat_id)
        if last is not None and now - last < self.settings.group_notice_every:
            log.debug("group notice suppressed", extra={"chat_id": action.chat_id})
            return
        if len(self._group_notices) > 4096:
            self._group_notices.clear()
        self._group_notices[action.chat_id] = now
        await self._reply(action.chat_id, [Outbound(text=prompts.render(action.template, self.markup))])

    async def _reply(self, chat_id: int, replies: Sequence[Outbound]) -> None:
        if not replies:
            return
        try:
            await self._send_all(chat_id, replies)
        except (RetryLater, PermanentFailure, Unreachable) as exc:
            # The answer is stored; only the reply is lost. The person sees the next question when
            # they write again (or the scheduler's reminder).
            log.warning("telegram reply not delivered: %s", exc.reason, extra={"chat_id": chat_id})

    # Sending ----------------------------------------------------------------------------------

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """Deliver messages in order, or raise RetryLater / Unreachable / PermanentFailure."""
        try:
            chat_id = int(address.conversation or address.external_id)
        except ValueError:
            raise PermanentFailure("not a Telegram chat id") from None
        return await self._send_all(chat_id, messages)

    async def _send_all(self, chat_id: int, messages: Sequence[Outbound]) -> Sent:
        if not self.receiver.started:
            raise RetryLater("telegram channel is not started")
        return await self.transport.send_all(chat_id, messages)


#: The "/" menu of the private chat (``setMyCommands``): the person's commands, never the owners'.
COMMAND_MENU = (
    BotCommand("help", "How check-ins work and who sees your answers"),
    BotCommand("skip", "Pass the current question"),
    BotCommand("stop", "Stop hearing from us"),
    BotCommand("start", "Take part again after stopping"),
    BotCommand("mydata", "What you have told us: see, correct or delete it"),
)


def _safe_id(update: object) -> int | None:
    return as_int(update.get("update_id")) if isinstance(update, Mapping) else None


__all__ = ["WEBHOOK_PATH", "TelegramChannel", "TelegramSettings"]
