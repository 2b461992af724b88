"""How Telegram updates reach Rapport: long polling (PTB's ``Updater``: ``deleteWebhook``, then
``getUpdates`` with offsets) or a webhook on Rapport's own web server, which refuses requests
without Telegram's ``X-Telegram-Bot-Api-Secret-Token``. Both hand each update's raw JSON to the
channel's ``process_update``.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, ExtBot, TypeHandler
from telegram.request import HTTPXRequest

from bot.channels.telegram.translate import ALLOWED_UPDATES, as_int
from memory.errors import PermanentFailure, RetryLater

log = logging.getLogger("bot.channels.telegram")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
# What Telegram accepts as a webhook secret_token.
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
DEFAULT_API_BASE_URL = "https://api.telegram.org/bot"
_RAW = "rapport_raw"

Process = Callable[[Mapping[str, Any]], Awaitable[None]]


class RawUpdatesBot(ExtBot[int]):
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
            update_id = as_int(item.get("update_id"))
            if update_id is None:
                log.debug("telegram update without update_id")
            last = max(last, update_id) if update_id is not None else last
            updates.append(Update(update_id=last, api_kwargs={_RAW: item}))
        if updates:
            log.debug("telegram updates received", extra={"count": len(updates)})
        return tuple(updates)


def _file_url(api_base_url: str) -> str:
    if api_base_url.rstrip("/").endswith("/bot"):
        return api_base_url.rstrip("/")[: -len("/bot")] + "/file/bot"
    return api_base_url


def make_bot(token: str, *, api_base_url: str = DEFAULT_API_BASE_URL, timeout: float = 10.0) -> RawUpdatesBot:
    """PTB's bot without a rate limiter of its own: sends are paced by ``bot.channels.pacing``."""
    return RawUpdatesBot(
        token=token,
        base_url=api_base_url,
        base_file_url=_file_url(api_base_url),
        request=HTTPXRequest(connection_pool_size=16, read_timeout=timeout, connect_timeout=timeout),
        get_updates_request=HTTPXRequest(connect_timeout=timeout, read_timeout=timeout),
    )


async def fetch_bot_username(*, token: str, api_base_url: str = DEFAULT_API_BASE_URL) -> str:
    """The bot's @username from getMe (for invite links)."""
    try:
        async with make_bot(token, api_base_url=api_base_url) as bot:
            username = bot.username
    except TelegramError as exc:
        raise RetryLater(f"Telegram getMe failed ({type(exc).__name__}); check the bot token") from exc
    if not username:
        raise PermanentFailure("getMe returned no username")
    return username


class TelegramReceiver:
    """Polling or the webhook, started and stopped with the channel."""

    def __init__(
        self, *, bot: RawUpdatesBot, mode: str, webhook_url: str | None, secret_token: str | None,
        poll_timeout: float, process: Process,
    ) -> None:  # fmt: skip
        self.bot = bot
        self.mode = mode
        self.webhook_url = webhook_url
        self.secret_token = secret_token
        self.poll_timeout = poll_timeout
        self.process = process
        self.application: Application[Any, Any, Any, Any, Any, Any] | None = None
        self.running = False

    def routes(self) -> list[web.RouteDef]:
        """The webhook route (webhook mode only: in polling mode nothing is served)."""
        return [web.post(WEBHOOK_PATH, self._webhook)] if self.mode == "webhook" else []

    async def start(self) -> None:
        """getMe; then deleteWebhook + polling, or setWebhook with the secret token."""
        builder = ApplicationBuilder().bot(self.bot)
        if self.mode == "webhook":
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
            await _shutdown(application)
            raise
        self.application = application
        self.running = True

    async def _start(self, application: Application[Any, Any, Any, Any, Any, Any]) -> None:
        await application.initialize()
        if self.mode == "webhook":
            assert self.webhook_url is not None, "webhook mode needs webhook_url or web.public_url"
            await self.bot.set_webhook(
                url=self.webhook_url, secret_token=self.secret_token, allowed_updates=list(ALLOWED_UPDATES)
            )
            log.info("telegram webhook set", extra={"bot": self.bot.username})
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                poll_interval=0.0,
                timeout=dt.timedelta(seconds=self.poll_timeout),
                allowed_updates=list(ALLOWED_UPDATES),
                error_callback=self._on_polling_error,
            )
            log.info("telegram polling started", extra={"bot": self.bot.username})
        await application.start()

    async def stop(self) -> None:
        """Stop polling and processing; the webhook (if any) stays set for other processes."""
        application, self.application = self.application, None
        self.running = False
        if application is not None:
            await _shutdown(application)

    async def _webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return web.Response(status=401, text="secret token missing")
        if not self.secret_token or not hmac.compare_digest(given.encode(), self.secret_token.encode()):
            return web.Response(status=403, text="secret token wrong")
        if not self.running:
            # Telegram retries later; the update is not lost.
            return web.Response(status=503, text="not ready")
        try:
            payload = await request.json(loads=json.loads)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="not an update")
        # An exception here (the database is down) answers 500: Telegram delivers the update again,
        # and update_id keeps it from being processed twice.
        await self.process(payload)
        return web.Response(status=200)

    async def _on_polled(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        raw = update.api_kwargs.get(_RAW)
        await self.process(raw if isinstance(raw, Mapping) else update.to_dict())

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("telegram update failed", exc_info=context.error, extra={"update_id": update_id})

    def _on_polling_error(self, exc: TelegramError) -> None:
        log.warning("telegram polling error, retrying: %s", type(exc).__name__)


async def _shutdown(application: Application[Any, Any, Any, Any, Any, Any]) -> None:
    if application.updater is not None and application.updater.running:
        await application.updater.stop()
    if application.running:
        await application.stop()
    await application.shutdown()
