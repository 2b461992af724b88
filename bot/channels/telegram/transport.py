"""Telegram's one network seam: ``sendMessage`` and ``editMessageReplyMarkup`` through PTB's
``ExtBot``, under the shared pacer and retry policy (``bot.channels.pacing``).

* **Pacing.** About 30 messages a second overall, as an even pace, and about one a second to one
  chat, with a burst of three (an acknowledgement, a quote, the next question).
* **Timeouts.** Sends wait ``request_timeout`` (30 s by default: Telegram answers in well under a
  second, but takes 10-20 s when it is under load). A send that times out after it left may have
  arrived: it raises ``DeliveryUnknown`` and is not retried in place. A connect timeout is an
  ordinary network error.
* **Failures.** ``RetryAfter`` pauses that chat: waited out when short, raised as ``RetryLater``
  when long. Network errors and 5xx are retried a few times, then ``RetryLater``. 403 (blocked,
  deactivated) and "chat not found" mark the person unreachable on Telegram (through the engine)
  and raise ``Unreachable``; any other 400 is ``PermanentFailure``.
* **Keyboards.** Only the newest rating keyboard in a chat stays live, so an old button cannot
  answer a later question. Which message holds it is kept in the database (``bot.engine.marks``),
  so the next question closes it whichever process sends it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import ExtBot
from telegram.warnings import PTBDeprecationWarning

from bot.channels import pacing
from bot.channels.base import Outbound, Sent
from bot.channels.telegram.translate import NAME, STOP_DATA_PREFIX
from bot.engine.marks import Marks
from bot.engine.people import People
from memory.errors import DeliveryUnknown, PermanentFailure, RetryLater, Unreachable

log = logging.getLogger("bot.channels.telegram")

T = TypeVar("T")

#: Telegram's overall limit for a bot is about 30 messages a second.
OVERALL_RATE = 30.0
#: A chat's live keyboard is remembered this long (longer than any check-in stays open).
KEYBOARD_FOR = dt.timedelta(days=60)


def keyboard_key(chat_id: int) -> str:
    return f"{NAME}:keyboard:{chat_id}"


class TelegramTransport:
    def __init__(
        self,
        *,
        bot: ExtBot[Any],
        pacer: pacing.Pacer,
        policy: pacing.Policy,
        people: People,
        marks: Marks,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.bot = bot
        self.pacer = pacer
        self.policy = policy
        self.people = people
        self.marks = marks
        self.clock = clock

    async def send_all(self, chat_id: int, messages: Sequence[Outbound]) -> Sent:
        last: int | None = None
        key = keyboard_key(chat_id)
        for message in messages:
            if message.choices or message.confirm:
                live = await asyncio.to_thread(self.marks.pop, key, now=self.clock())
                await self.close_keyboard(chat_id, int(live) if live and live.isdigit() else None)
            sent = await self.call(chat_id, functools.partial(self._send_one, chat_id, message))
            last = sent.message_id
            if (message.choices or message.confirm) and isinstance(last, int):
                await asyncio.to_thread(self.marks.put, key, str(last), now=self.clock(), ttl=KEYBOARD_FOR)
        return Sent(external_ref=str(last) if last is not None else None)

    async def pressed(self, chat_id: int, message_id: int) -> None:
        """A button of ``message_id`` was pressed: close its keyboard, so the same question cannot
        be answered twice from old buttons."""
        await asyncio.to_thread(self.marks.drop, keyboard_key(chat_id), value=str(message_id))
        await self.close_keyboard(chat_id, message_id)

    async def close_keyboard(self, chat_id: int, message_id: int | None) -> None:
        if message_id is None:
            return
        await self.quietly(
            "editMessageReplyMarkup", self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
        )

    async def quietly(self, what: str, call: Awaitable[object]) -> None:
        """A courtesy call whose failure must not stop the answer from being handled."""
        try:
            await call
        except TelegramError as exc:
            log.info("telegram %s failed: %s", what, type(exc).__name__)

    def _send_one(self, chat_id: int, message: Outbound) -> Awaitable[Any]:
        return self.bot.send_message(
            chat_id=chat_id,
            text=message.text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(message),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def call(self, chat_id: int, op: Callable[[], Awaitable[T]]) -> T:
        """One API call to a chat under the shared pacer and retry policy."""

        async def classify(exc: Exception) -> Exception:
            if isinstance(exc, RetryAfter):
                return pacing.Transient("telegram rate limit", retry_after=retry_seconds(exc))
            if isinstance(exc, Forbidden):
                reason = "deactivated" if "deactivated" in str(exc).lower() else "blocked"
                await self._unreachable(chat_id, reason)
                return Unreachable(reason)
            if isinstance(exc, BadRequest):
                if "chat not found" in str(exc).lower():
                    await self._unreachable(chat_id, "chat not found")
                    return Unreachable("chat not found")
                return PermanentFailure(f"telegram refused the message: {exc}")
            if isinstance(exc, TimedOut) and not _not_sent(exc):
                # Telegram may have delivered it and only the answer is late: a second send could
                # be a duplicate (the Bot API has no idempotency key), so the outbox decides.
                return DeliveryUnknown("telegram did not answer in time")
            if isinstance(exc, NetworkError):  # includes 5xx and connect timeouts (BadRequest is above)
                return pacing.Transient(f"telegram unavailable: {type(exc).__name__}")
            if isinstance(exc, InvalidToken | Conflict):
                return RetryLater(f"telegram refused the bot: {type(exc).__name__}")
            if isinstance(exc, ChatMigrated):
                return PermanentFailure("chat migrated to a supergroup")
            if isinstance(exc, TelegramError):
                return PermanentFailure(f"telegram error: {type(exc).__name__}")
            return exc

        return await pacing.call(op, conversation=str(chat_id), pacer=self.pacer, policy=self.policy,
                                 classify=classify)  # fmt: skip

    async def _unreachable(self, chat_id: int, reason: str) -> None:
        await asyncio.to_thread(self.people.mark_unreachable, NAME, str(chat_id), "", reason, self.clock())


def keyboard(message: Outbound) -> InlineKeyboardMarkup | None:
    """Rating buttons, at most six to a row; each carries the check-in and its value. A last row
    holds "Stop check-ins" (the ``stop`` command, confirmed in the conversation as a typed one).
    "Stop?" gets Yes and No (the ``yes``/``no`` commands)."""
    if message.confirm and message.checkin_id is not None:
        yes_no = [InlineKeyboardButton(label, callback_data=f"c:{message.checkin_id}:{label.lower()}")
                  for label in ("Yes", "No")]  # fmt: skip
        return InlineKeyboardMarkup([yes_no])
    if not message.choices:
        return None
    checkin = message.checkin_id or 0
    buttons = [InlineKeyboardButton(c.label, callback_data=f"r:{checkin}:{c.value}") for c in message.choices]
    rows = [buttons[i : i + 6] for i in range(0, len(buttons), 6)]
    if message.checkin_id is not None:
        rows.append([InlineKeyboardButton("Stop check-ins", callback_data=f"{STOP_DATA_PREFIX}{checkin}")])
    return InlineKeyboardMarkup(rows)


def _not_sent(exc: TimedOut) -> bool:
    """A timeout before the request left (no connection, or none free in the pool): safe to retry."""
    return isinstance(exc.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout)


def retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns while it moves retry_after from int to timedelta.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
