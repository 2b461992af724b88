"""The Telegram channel, on python-telegram-bot v22.

Thin on purpose: :func:`translate` turns one raw update (a JSON object, whatever its shape) into
one :data:`Action`; :class:`TelegramChannel` carries the action out (the check-in service decides
what to say) and sends the replies.

* **Receiving.** Long polling (PTB's ``Updater``: ``deleteWebhook``, then ``getUpdates`` with
  offsets) or a webhook served by Rapport's own web server (:meth:`TelegramChannel.routes`), which
  refuses requests without Telegram's ``X-Telegram-Bot-Api-Secret-Token``. Both paths hand the
  update's raw JSON to the same code. PTB does not parse updates here: one malformed update must
  not stop polling (PTB would fetch the same batch forever), and unknown or partial payloads must
  still get their defined behaviour.
* **Idempotency.** ``update_id`` is the event key, so an update delivered twice is processed once.
* **Sending.** ``sendMessage`` with HTML parse mode (prompts escape people's words for
  ``telegram_html``), inline 0-10 keyboards for ratings, PTB's ``AIORateLimiter`` for the overall
  limit and a per-chat limiter for private chats. Network errors and 5xx are retried a few times;
  ``RetryAfter`` pauses that chat: waited out when short, raised as ``RetryLater`` when long; 403
  marks the person unreachable on Telegram and raises ``Unreachable``; 400 is ``PermanentFailure``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import re
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiolimiter import AsyncLimiter
from sqlalchemy.orm import Session, sessionmaker
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions, Update
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
)
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder, ContextTypes, ExtBot, TypeHandler
from telegram.request import HTTPXRequest
from telegram.warnings import PTBDeprecationWarning

import prompts
from bot.channels import safe_json
from bot.channels.base import Address, Inbound, Outbound, Sent
from bot.config import TelegramConfig, resolve_secret, secret_name
from bot.engine.flow import COMMANDS
from bot.engine.service import CheckinService
from bot.invites import InvalidInvite, derive_key, read_token
from memory import store
from memory.db import transaction
from memory.errors import PermanentFailure, RetryLater, Unreachable
from memory.models import Person

if TYPE_CHECKING:
    from bot.app import App

__all__ = [
    "ALLOWED_UPDATES",
    "SECRET_HEADER",
    "WEBHOOK_PATH",
    "Action",
    "Deliver",
    "Explain",
    "Ignore",
    "Link",
    "Membership",
    "Press",
    "TelegramChannel",
    "fetch_bot_username",
    "translate",
]

log = logging.getLogger(__name__)

NAME = "telegram"
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
# Rating buttons: "r:<checkin id>:<value>". Callback data comes back from the client untrusted.
CALLBACK_DATA = re.compile(r"^r:(\d{1,12}):(-?\d{1,3})$")
# What Telegram accepts as a webhook secret_token.
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_RAW = "rapport_raw"
_PRIVATE = "private"
# Messages Telegram itself writes into a chat (pins, joins, payments...): nothing to answer.
SERVICE_KEYS = frozenset({
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "channel_chat_created", "message_auto_delete_timer_changed",
    "migrate_to_chat_id", "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
    "users_shared", "chat_shared", "connected_website", "write_access_allowed", "proximity_alert_triggered",
    "boost_added", "chat_background_set", "forum_topic_created", "forum_topic_edited", "forum_topic_closed",
    "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden", "giveaway_created",
    "giveaway_completed", "video_chat_scheduled", "video_chat_started", "video_chat_ended",
    "video_chat_participants_invited", "web_app_data", "passport_data", "gift", "unique_gift",
    "paid_message_price_changed", "checklist_tasks_done", "checklist_tasks_added",
})  # fmt: skip
_GONE = frozenset({"kicked", "left"})
_PRESENT = frozenset({"member", "administrator", "creator", "restricted"})

T = TypeVar("T")


# Translation: raw update -> action (pure) ---------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Ignore:
    """Nothing to do (unknown kinds, service messages, channel posts); logged at debug."""

    kind: str
    why: str


@dataclass(frozen=True, kw_only=True)
class Explain:
    """A polite fixed reply that reveals and stores nothing (groups, channels)."""

    chat_id: int
    template: str
    event_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Deliver:
    """Something a person did in their private chat, for the check-in service."""

    chat_id: int
    inbound: Inbound


@dataclass(frozen=True, kw_only=True)
class Link:
    """``/start <token>``: bind this private chat to the person the invite names."""

    chat_id: int
    token: str
    event_key: str | None
    received_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Press:
    """A button press: always answered; the keyboard closed; a valid rating handled."""

    callback_id: str
    chat_id: int | None
    message_id: int | None
    inbound: Inbound | None


@dataclass(frozen=True, kw_only=True)
class Membership:
    """The person blocked (kicked) the bot in their private chat, or unblocked it."""

    chat_id: int
    reachable: bool
    event_key: str | None
    received_at: dt.datetime


Action = Ignore | Explain | Deliver | Link | Press | Membership


def _int(value: object) -> int | None:
    # bool is an int in Python; a JSON true is not an id.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_private(chat: Mapping[str, Any], chat_id: int) -> bool:
    kind = chat.get("type")
    # Legacy or partial payloads may lack the type; private chat ids are the user's (positive) id.
    return kind == _PRIVATE if isinstance(kind, str) else chat_id > 0


def update_kind(update: Mapping[str, Any]) -> str:
    kinds = [k for k in update if k != "update_id"]
    return kinds[0] if kinds else "empty"


def content_key(update: Mapping[str, Any]) -> str:
    """An idempotency key for an update that lacks ``update_id`` (legacy or hand-made payloads):
    the same payload delivered again is still processed once."""
    canonical = json.dumps(update, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def translate(update: Mapping[str, Any], *, now: dt.datetime) -> Action:
    """What one raw update asks for. Never raises on odd shapes: anything unreadable is Ignore."""
    if not isinstance(update, Mapping):
        return Ignore(kind="invalid", why="not a JSON object")
    update_id = _int(update.get("update_id"))
    key = str(update_id) if update_id is not None else content_key(update)
    if isinstance(update.get("message"), Mapping):
        return _message(update["message"], key, now, edited=False)
    if isinstance(update.get("edited_message"), Mapping):
        return _message(update["edited_message"], key, now, edited=True)
    if isinstance(update.get("callback_query"), Mapping):
        return _callback(update["callback_query"], key, now)
    if isinstance(update.get("my_chat_member"), Mapping):
        return _membership(update["my_chat_member"], key, now)
    return Ignore(kind=update_kind(update), why="update kind not handled")


def _message(msg: Mapping[str, Any], key: str | None, now: dt.datetime, *, edited: bool) -> Action:
    kind = "edited_message" if edited else "message"
    chat = _dict(msg.get("chat"))
    chat_id = _int(chat.get("id"))
    if chat_id is None:
        return Ignore(kind=kind, why="no chat id")
    text = msg.get("text")
    text = text if isinstance(text, str) else None
    if not _is_private(chat, chat_id):
        if edited or chat.get("type") == "channel" or text is None:
            return Ignore(kind=kind, why="not a private chat")
        return Explain(chat_id=chat_id, template="telegram/group_chat", event_key=key)
    if _dict(msg.get("from")).get("is_bot") is True:
        return Ignore(kind=kind, why="sent by a bot")
    message_id = _int(msg.get("message_id"))
    ref = str(message_id) if message_id is not None else None
    base = functools.partial(Inbound, channel=NAME, sender=str(chat_id), received_at=now, event_key=key, ref=ref)
    if edited:
        if text is None:
            return Ignore(kind=kind, why="edit without text")
        return Deliver(chat_id=chat_id, inbound=base(kind="edit", text=text))
    if text is None:
        if any(k in msg for k in SERVICE_KEYS):
            return Ignore(kind=kind, why="service message")
        # Stickers, photos, voice, dice, contacts, polls, kinds not invented yet, even an empty message.
        return Deliver(chat_id=chat_id, inbound=base(kind="non_text"))
    command = _command(text)
    if command is not None:
        name, argument = command
        if name == "start" and argument:
            return Link(chat_id=chat_id, token=argument, event_key=key, received_at=now)
        # Unknown commands get the help text rather than being stored as an answer.
        name = name if name in COMMANDS else "help"
        return Deliver(chat_id=chat_id, inbound=base(kind="command", command=name))
    return Deliver(chat_id=chat_id, inbound=base(kind="text", text=text))


def _command(text: str) -> tuple[str, str] | None:
    """``/name@Bot argument`` -> (name, argument); None when the text is not a command."""
    if not text.startswith("/"):
        return None
    parts = text.strip().split(maxsplit=1)
    name = parts[0][1:].split("@", 1)[0].lower()
    if not name:
        return None
    return name, parts[1].strip() if len(parts) > 1 else ""


def _callback(query: Mapping[str, Any], key: str | None, now: dt.datetime) -> Action:
    callback_id = query.get("id")
    if not isinstance(callback_id, str) or not callback_id:
        return Ignore(kind="callback_query", why="no callback id")
    msg = _dict(query.get("message"))
    chat = _dict(msg.get("chat"))
    chat_id = _int(chat.get("id"))
    message_id = _int(msg.get("message_id"))
    if chat_id is None or not _is_private(chat, chat_id):
        # An inline message (no chat) or a group: answer the press so the client stops spinning.
        return Press(callback_id=callback_id, chat_id=None, message_id=None, inbound=None)
    data = query.get("data")
    match = CALLBACK_DATA.match(data) if isinstance(data, str) and len(data) <= 64 else None
    inbound = None
    if match is not None:
        checkin_id, value = int(match.group(1)), int(match.group(2))
        inbound = Inbound(
            channel=NAME, sender=str(chat_id), kind="choice", value=value, checkin_id=checkin_id or None,
            received_at=now, event_key=key,
        )  # fmt: skip
    return Press(callback_id=callback_id, chat_id=chat_id, message_id=message_id, inbound=inbound)


def _membership(change: Mapping[str, Any], key: str | None, now: dt.datetime) -> Action:
    chat = _dict(change.get("chat"))
    chat_id = _int(chat.get("id"))
    status = _dict(change.get("new_chat_member")).get("status")
    if chat_id is None or not isinstance(status, str):
        return Ignore(kind="my_chat_member", why="no chat or status")
    if _is_private(chat, chat_id):
        if status in _GONE:
            return Membership(chat_id=chat_id, reachable=False, event_key=key, received_at=now)
        if status in _PRESENT:
            return Membership(chat_id=chat_id, reachable=True, event_key=key, received_at=now)
        return Ignore(kind="my_chat_member", why=f"status {status}")
    if chat.get("type") in ("group", "supergroup") and status in _PRESENT:
        # Added to a group: say once that this is not a place for check-ins.
        return Explain(chat_id=chat_id, template="telegram/group_chat", event_key=key)
    return Ignore(kind="my_chat_member", why="not a private chat")


# PTB seams -------------------------------------------------------------------------------------


class _RawUpdatesBot(ExtBot[int]):
    """An ExtBot whose ``getUpdates`` hands each update's raw JSON on, unparsed.

    PTB's own ``get_updates`` parses the whole batch at once; one update it cannot parse makes it
    skip the batch without moving the offset, so polling would fetch that batch forever.
    """

    async def get_updates(
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: dt.timedelta | int | None = None,
        allowed_updates: Sequence[str] | None = None,
        *,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
        api_kwargs: dict[str, Any] | None = None,
    ) -> tuple[Update, ...]:
        data: dict[str, Any] = {
            "timeout": timeout,
            "offset": offset,
            "limit": limit,
            "allowed_updates": allowed_updates,
        }
        wait = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else float(timeout or 0)
        base = read_timeout if isinstance(read_timeout, int | float) else (self._request[0].read_timeout or 0)
        result = await self._post("getUpdates", data, read_timeout=base + wait, api_kwargs=api_kwargs)
        updates = []
        # The Updater confirms up to the last update's id. One without an id (never from Telegram
        # itself) borrows the highest id so far, so the offset never moves backwards; translate()
        # gives it a content-based idempotency key instead.
        last = offset - 1 if isinstance(offset, int) else -1
        for item in result if isinstance(result, list) else []:
            if not isinstance(item, dict):
                log.warning("telegram getUpdates returned a non-object; skipped")
                continue
            update_id = _int(item.get("update_id"))
            if update_id is None:
                log.debug("telegram update without update_id")
            last = max(last, update_id) if update_id is not None else last
            updates.append(Update(update_id=last, api_kwargs={_RAW: item}))
        if updates:
            log.debug("telegram updates received", extra={"count": len(updates)})
        return tuple(updates)


def _retry_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns while it moves retry_after from int to timedelta.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _file_url(api_base_url: str) -> str:
    if api_base_url.rstrip("/").endswith("/bot"):
        return api_base_url.rstrip("/")[: -len("/bot")] + "/file/bot"
    return api_base_url


def _make_bot(token: str, config: TelegramConfig, *, request_timeout: float = 10.0) -> _RawUpdatesBot:
    return _RawUpdatesBot(
        token=token,
        base_url=config.api_base_url,
        base_file_url=_file_url(config.api_base_url),
        request=HTTPXRequest(connection_pool_size=16, read_timeout=request_timeout, connect_timeout=request_timeout),
        get_updates_request=HTTPXRequest(connect_timeout=request_timeout, read_timeout=request_timeout),
        # 30 messages/s overall, as an even pace (a bucket of one refilled every 1/30 s: a bucket of
        # 30 would let ~60 through in the first second). 20/min in groups. max_retries=0: RetryAfter
        # reaches us, so a send decides between waiting briefly and handing the message back.
        rate_limiter=AIORateLimiter(overall_max_rate=1, overall_time_period=1 / 30, max_retries=0),
    )


async def fetch_bot_username(*, config: TelegramConfig, token: str) -> str:
    """The bot's @username from getMe (for invite links)."""
    try:
        async with _make_bot(token, config) as bot:
            username = bot.username
    except TelegramError as exc:
        raise RetryLater(f"Telegram getMe failed ({type(exc).__name__}); check the bot token") from exc
    if not username:
        raise PermanentFailure("getMe returned no username")
    return username


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# The channel -----------------------------------------------------------------------------------


class TelegramChannel:
    """Rapport on Telegram. Implements :class:`bot.channels.base.Channel`."""

    name = NAME
    markup: prompts.Markup = "telegram_html"

    def __init__(
        self,
        *,
        config: TelegramConfig,
        service: CheckinService,
        sessions: sessionmaker[Session],
        token: str,
        invite_secret: bytes,
        public_url: str | None = None,
        secret_token: str | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        poll_timeout: float = 10.0,
        send_attempts: int = 3,
        retry_backoff: float = 1.0,
        max_inline_wait: float = 5.0,
        per_chat_rate: float = 1.0,
        group_notice_every: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        """``invite_secret`` is the invite signing key (see ``bot.invites.derive_key``).

        ``send_attempts``/``retry_backoff`` bound retries of network errors and 5xx;
        ``max_inline_wait`` is the longest RetryAfter a send waits out before raising RetryLater;
        ``per_chat_rate`` is messages per second to one private chat (0 turns the limit off).
        """
        self.config = config
        self.service = service
        self.sessions = sessions
        self.invite_key = invite_secret
        self.secret_token = secret_token
        self.webhook_url = config.webhook_url or (public_url.rstrip("/") + WEBHOOK_PATH if public_url else None)
        self.clock = clock
        self.poll_timeout = poll_timeout
        self.send_attempts = max(1, send_attempts)
        self.retry_backoff = retry_backoff
        self.max_inline_wait = max_inline_wait
        self.per_chat_rate = per_chat_rate
        self.group_notice_every = group_notice_every
        self.bot = _make_bot(token, config)
        self.application: Application[Any, Any, Any, Any, Any, Any] | None = None
        self.username: str | None = None
        self._running = False
        self._chat_limiters: dict[int, AsyncLimiter] = {}
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._group_notices: dict[int, dt.datetime] = {}
        # Per chat: the message id of the live rating keyboard (sent by this process).
        self._keyboards: dict[int, int] = {}
        # Per chat: event-loop time until which Telegram asked us to pause (429 retry_after).
        self._paused_until: dict[int, float] = {}

    @classmethod
    def from_app(cls, app: App) -> TelegramChannel | None:
        """The channel as configured, or None (with the reason logged) when it cannot run."""
        config = app.config.channels.telegram
        if not config.enabled:
            log.info("telegram channel disabled in config (channels.telegram.enabled)")
            return None
        token = resolve_secret(config.token)
        if token is None:
            log.warning("telegram channel off: %s is not set", secret_name(config.token))
            return None
        secret = resolve_secret(config.secret_token)
        public_url = app.config.web.public_url
        if config.mode == "webhook":
            if secret is None:
                log.error(
                    "telegram webhook mode needs a secret token: set %s (channels.telegram.secret_token)",
                    secret_name(config.secret_token) or "channels.telegram.secret_token",
                )
                return None
            if not SECRET_TOKEN.match(secret):
                log.error("telegram secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
                return None
            if not config.webhook_url and not public_url:
                log.error("telegram webhook mode needs channels.telegram.webhook_url or web.public_url")
                return None
        key = derive_key(invite_secret=resolve_secret(config.invite_secret), bot_token=token)
        return cls(
            config=config, service=app.service, sessions=app.sessions, token=token, invite_secret=key,
            public_url=public_url, secret_token=secret,
        )  # fmt: skip

    # Lifecycle --------------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """The webhook route (webhook mode only: in polling mode nothing is served)."""
        if self.config.mode != "webhook":
            return []
        return [web.post(WEBHOOK_PATH, self._webhook)]

    async def start(self) -> None:
        """getMe; then deleteWebhook + polling, or setWebhook with the secret token."""
        builder = ApplicationBuilder().bot(self.bot)
        if self.config.mode == "webhook":
            builder = builder.updater(None)
        application = builder.build()
        application.add_handler(TypeHandler(Update, self._on_polled))
        application.add_error_handler(self._on_error)
        try:
            await self._start(application)
        except BaseException:
            # A wrong token (getMe 401) or an unreachable API: release the HTTP clients, then tell
            # the caller, which runs on without Telegram.
            log.error("telegram channel failed to start")
            await self._shutdown(application)
            raise
        self.application = application
        self._running = True

    async def _start(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await application.initialize()
        self.username = self.bot.username
        if self.config.mode == "webhook":
            assert self.webhook_url is not None, "webhook mode needs webhook_url or web.public_url"
            await self.bot.set_webhook(
                url=self.webhook_url, secret_token=self.secret_token, allowed_updates=list(ALLOWED_UPDATES)
            )
            log.info("telegram webhook set", extra={"bot": self.username})
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                poll_interval=0.0,
                timeout=dt.timedelta(seconds=self.poll_timeout),
                allowed_updates=list(ALLOWED_UPDATES),
                error_callback=self._on_polling_error,
            )
            log.info("telegram polling started", extra={"bot": self.username})
        await application.start()

    async def stop(self) -> None:
        """Stop polling and processing; the webhook (if any) stays set for other processes."""
        application, self.application = self.application, None
        self._running = False
        if application is not None:
            await self._shutdown(application)

    @staticmethod
    async def _shutdown(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()

    # Receiving --------------------------------------------------------------------------------

    async def _webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return web.Response(status=401, text="secret token missing")
        if not self.secret_token or not hmac.compare_digest(given.encode(), self.secret_token.encode()):
            return web.Response(status=403, text="secret token wrong")
        if not self._running:
            # Telegram retries later; the update is not lost.
            return web.Response(status=503, text="not ready")
        try:
            payload = await request.json(loads=safe_json.loads)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="not an update")
        # An exception here (the database is down) answers 500: Telegram delivers the update again,
        # and update_id keeps it from being processed twice.
        await self.process_update(payload)
        return web.Response(status=200)

    async def _on_polled(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        raw = update.api_kwargs.get(_RAW)
        await self.process_update(raw if isinstance(raw, Mapping) else update.to_dict())

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram update failed", exc_info=context.error, extra={"update_id": update_id})

    def _on_polling_error(self, exc: TelegramError) -> None:
        log.warning("telegram polling error, retrying: %s", type(exc).__name__)

    async def process_update(self, update: Mapping[str, Any]) -> None:
        """Carry out one raw update (from polling, the webhook, or a replayed file)."""
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
            replies = await asyncio.to_thread(self.service.handle, action.inbound, markup=self.markup)
            await self._reply(action.chat_id, replies)
        elif isinstance(action, Press):
            await self._press(action)
        elif isinstance(action, Link):
            replies = await asyncio.to_thread(self._link, action)
            await self._reply(action.chat_id, replies)
        elif isinstance(action, Membership):
            await asyncio.to_thread(self._membership, action)
        elif isinstance(action, Explain):
            await self._explain(action)

    async def _press(self, action: Press) -> None:
        text = None if action.inbound is not None else prompts.render("telegram/button_expired", "plain")
        await self._quietly("answerCallbackQuery", self.bot.answer_callback_query(action.callback_id, text=text))
        if action.chat_id is None:
            return
        if action.message_id is not None:
            # Close the keyboard, so the same question cannot be answered twice from old buttons.
            if self._keyboards.get(action.chat_id) == action.message_id:
                del self._keyboards[action.chat_id]
            await self._close_keyboard(action.chat_id, action.message_id)
        if action.inbound is not None:
            replies = await asyncio.to_thread(self.service.handle, action.inbound, markup=self.markup)
            await self._reply(action.chat_id, replies)

    async def _quietly(self, what: str, call: Awaitable[object]) -> None:
        """A courtesy call whose failure must not stop the answer from being handled."""
        try:
            await call
        except TelegramError as exc:
            log.info("telegram %s failed: %s", what, type(exc).__name__)

    async def _explain(self, action: Explain) -> None:
        now = self.clock()
        last = self._group_notices.get(action.chat_id)
        if last is not None and now - last < self.group_notice_every:
            log.debug("group notice suppressed", extra={"chat_id": action.chat_id})
            return
        if len(self._group_notices) > 4096:
            self._group_notices.clear()
        self._group_notices[action.chat_id] = now
        text = prompts.render(action.template, self.markup)
        await self._reply(action.chat_id, [Outbound(text=text)])

    async def _reply(self, chat_id: int, replies: Sequence[Outbound]) -> None:
        if not replies:
            return
        try:
            await self._send_all(chat_id, replies)
        except (RetryLater, PermanentFailure, Unreachable) as exc:
            # The answer is stored; only the reply is lost. The person sees the next question when
            # they write again (or the scheduler's reminder).
            log.warning("telegram reply not delivered: %s", exc.reason, extra={"chat_id": chat_id})

    def _link(self, action: Link) -> list[Outbound]:
        """``/start <token>``: one transaction binds the chat and spends the token."""
        chat = str(action.chat_id)
        now = action.received_at
        resume = False
        with transaction(self.sessions) as s:
            if action.event_key and not store.claim_event(s, f"{NAME}:{action.event_key}", now):
                return []
            try:
                invite = read_token(action.token, key=self.invite_key, now=now)
            except InvalidInvite as exc:
                log.info("telegram invite refused", extra={"reason": exc.reason})
                template = "telegram/invite_expired" if exc.reason == "expired" else "telegram/invite_invalid"
                return [Outbound(text=prompts.render(template, self.markup))]
            person = s.get(Person, invite.person_id)
            if person is None:
                log.info("telegram invite refused", extra={"reason": "unknown person"})
                return [Outbound(text=prompts.render("telegram/invite_invalid", self.markup))]
            if not store.claim_event(s, invite.event_key, now):
                identity = store.find_identity(s, channel=NAME, external_id=chat)
                if identity is None or identity.person_id != person.id:
                    log.info("telegram invite refused", extra={"reason": "used"})
                    return [Outbound(text=prompts.render("telegram/invite_used", self.markup))]
                # The same person tapping their own link again: already linked, just greet.
            store.link_identity(s, person=person, channel=NAME, external_id=chat, now=now)
            resume = person.opted_out_at is None and bool(store.open_checkins(s, person.id))
            greeting = prompts.render("telegram/linked", self.markup, name=person.name, resume=resume)
            log.info("telegram chat linked", extra={"person_id": person.id})
        out = [Outbound(text=greeting)]
        if resume:
            inbound = Inbound(channel=NAME, sender=chat, kind="command", command="start", received_at=now)
            out += self.service.handle(inbound, markup=self.markup)
        return out

    def _membership(self, action: Membership) -> None:
        with transaction(self.sessions) as s:
            if action.event_key and not store.claim_event(s, f"{NAME}:{action.event_key}", action.received_at):
                return
            identity = store.find_identity(s, channel=NAME, external_id=str(action.chat_id))
            if identity is None:
                return
            if action.reachable:
                identity.reachable, identity.unreachable_reason, identity.unreachable_at = True, None, None
            else:
                store.mark_unreachable(s, identity, "blocked", action.received_at)
            log.info("telegram reachability changed", extra={"person_id": identity.person_id,
                                                             "reachable": action.reachable})  # fmt: skip

    def _mark_unreachable(self, chat_id: int, reason: str) -> None:
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=NAME, external_id=str(chat_id))
            if identity is not None:
                store.mark_unreachable(s, identity, reason, self.clock())

    # Sending ----------------------------------------------------------------------------------

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        """Deliver messages in order, or raise RetryLater / Unreachable / PermanentFailure."""
        try:
            chat_id = int(address.conversation or address.external_id)
        except ValueError:
            raise PermanentFailure("not a Telegram chat id") from None
        return await self._send_all(chat_id, messages)

    async def _send_all(self, chat_id: int, messages: Sequence[Outbound]) -> Sent:
        if self.application is None:
            raise RetryLater("telegram channel is not started")
        last: int | None = None
        for message in messages:
            if message.choices:
                # Only the newest keyboard in a chat stays live, so an old button cannot answer a
                # later question.
                await self._close_keyboard(chat_id, self._keyboards.pop(chat_id, None))
            sent = await self._call(chat_id, functools.partial(self._send_one, chat_id, message))
            last = sent.message_id
            if message.choices and isinstance(last, int):
                if len(self._keyboards) > 4096:
                    self._keyboards.clear()
                self._keyboards[chat_id] = last
        return Sent(external_ref=str(last) if last is not None else None)

    async def _close_keyboard(self, chat_id: int, message_id: int | None) -> None:
        if message_id is None:
            return
        await self._quietly(
            "editMessageReplyMarkup", self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id)
        )

    def _send_one(self, chat_id: int, message: Outbound) -> Awaitable[Any]:
        return self.bot.send_message(
            chat_id=chat_id,
            text=message.text,
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(message),
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    async def _call(self, chat_id: int, op: Callable[[], Awaitable[T]]) -> T:
        """One API call with Rapport's delivery policy (see the module docstring)."""
        attempt = 0
        while True:
            attempt += 1
            # Sends to a chat that met a 429 wait until Telegram's retry_after is over, or hand
            # their message back when that is longer than a send should block. The pause is per
            # chat: the overall pace is already kept by the rate limiter, so a 429 here is almost
            # always about one chat, and other chats go on.
            paused = self._paused_until.get(chat_id, 0.0) - asyncio.get_running_loop().time()
            if paused > self.max_inline_wait:
                raise RetryLater("telegram rate limit", retry_after=paused)
            if paused > 0:
                await asyncio.sleep(paused)
            try:
                async with self._limiter(chat_id):
                    return await op()
            except RetryAfter as exc:
                wait = _retry_seconds(exc)
                until = asyncio.get_running_loop().time() + wait
                if len(self._paused_until) > 4096:
                    self._paused_until.clear()
                self._paused_until[chat_id] = max(self._paused_until.get(chat_id, 0.0), until)
                if wait > self.max_inline_wait or attempt >= self.send_attempts:
                    raise RetryLater("telegram rate limit", retry_after=wait) from exc
                log.info("telegram rate limit, waiting", extra={"seconds": wait})
            except Forbidden as exc:
                reason = "deactivated" if "deactivated" in str(exc).lower() else "blocked"
                await asyncio.to_thread(self._mark_unreachable, chat_id, reason)
                raise Unreachable(reason) from exc
            except BadRequest as exc:
                if "chat not found" in str(exc).lower():
                    await asyncio.to_thread(self._mark_unreachable, chat_id, "chat not found")
                    raise Unreachable("chat not found") from exc
                raise PermanentFailure(f"telegram refused the message: {exc}") from exc
            except NetworkError as exc:  # includes TimedOut and 5xx (BadRequest is handled above)
                if attempt >= self.send_attempts:
                    raise RetryLater(f"telegram unavailable: {type(exc).__name__}") from exc
                log.info("telegram network error, retrying", extra={"attempt": attempt})
                await asyncio.sleep(self.retry_backoff * 2 ** (attempt - 1))
            except (InvalidToken, Conflict) as exc:
                raise RetryLater(f"telegram refused the bot: {type(exc).__name__}") from exc
            except ChatMigrated as exc:
                raise PermanentFailure("chat migrated to a supergroup") from exc
            except TelegramError as exc:
                raise PermanentFailure(f"telegram error: {type(exc).__name__}") from exc

    def _limiter(self, chat_id: int) -> AsyncLimiter | _NoLimit:
        if self.per_chat_rate <= 0 or chat_id < 0:
            # Groups are limited by PTB's AIORateLimiter; a rate of 0 turns this off.
            return _NO_LIMIT
        limiter = self._chat_limiters.get(chat_id)
        if limiter is None:
            if len(self._chat_limiters) > 4096:
                self._chat_limiters.clear()
            # A burst of three (an acknowledgement, a quote, the next question), then ~1/s.
            limiter = AsyncLimiter(max_rate=3, time_period=3 / self.per_chat_rate)
            self._chat_limiters[chat_id] = limiter
        return limiter


class _NoLimit:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_NO_LIMIT = _NoLimit()


def keyboard(message: Outbound) -> InlineKeyboardMarkup | None:
    """Rating buttons, at most six to a row; each carries the check-in and its value."""
    if not message.choices:
        return None
    checkin = message.checkin_id or 0
    buttons = [InlineKeyboardButton(c.label, callback_data=f"r:{checkin}:{c.value}") for c in message.choices]
    return InlineKeyboardMarkup([buttons[i : i + 6] for i in range(0, len(buttons), 6)])


def _safe_id(update: object) -> int | None:
    return _int(update.get("update_id")) if isinstance(update, Mapping) else None
