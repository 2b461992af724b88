"""How Telegram updates reach Rapport: long polling (PTB's ``Updater``: ``deleteWebhook``, then
``getUpdates`` with offsets) or a webhook on Rapport's own web server, which refuses requests
without Telegram's ``X-Telegram-Bot-Api-Secret-Token``. Both hand each update's raw JSON to the
channel's ``process_update``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.error import TelegramError
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.channels import safe_json
from bot.channels.telegram.translate import ALLOWED_UPDATES, as_int
from memory.errors import PermanentFailure, RetryLater

log = logging.getLogger("bot.channels.telegram")

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)
# What Telegram accepts as a webhook secret_token.
SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
DEFAULT_API_BASE_URL = "https://api.telegram.org/bot"
_RAW = "rapport_raw"
#: Seconds a call waits for Telegram's answer, and for a connection.
SEND_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
#: An update that fails this many times in a row is skipped (about eight minutes with the default
#: one-second first retry, doubling up to a minute): long enough to ride out a database restart.
MAX_UPDATE_ATTEMPTS = 12
MAX_RETRY_SECONDS = 60.0

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


def make_bot(token: str, *, api_base_url: str = DEFAULT_API_BASE_URL, timeout: float = SEND_TIMEOUT) -> RawUpdatesBot:
    """PTB's bot without a rate limiter of its own: sends are paced by ``bot.channels.pacing``.

    ``timeout`` is how long a call waits for Telegram's answer (reading and writing; connecting
    waits at most ``CONNECT_TIMEOUT``). PTB's own default of 5 s gives up on sends that Telegram
    completes a little later, and the retry then delivers the message twice.
    """
    connect = min(timeout, CONNECT_TIMEOUT)
    return RawUpdatesBot(
        token=token,
        base_url=api_base_url,
        base_file_url=_file_url(api_base_url),
        request=HTTPXRequest(
            connection_pool_size=16,
            read_timeout=timeout,
            write_timeout=timeout,
            connect_timeout=connect,
            pool_timeout=connect,
        ),
        get_updates_request=HTTPXRequest(connect_timeout=connect, read_timeout=timeout),
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
    """Polling or the webhook, started and stopped with the channel.

    **Polling confirms after processing.** Telegram forgets the updates below the ``offset`` of
    the next ``getUpdates``. Rapport asks for the next batch only once every update of the current
    one is durably processed (its answer committed with its ``update_id``), so a process killed
    mid-batch gets the same updates again after the restart, and ``update_id`` keeps each one from
    counting twice. An update whose processing fails (the database is away) is fetched again, from
    it onwards, after ``retry_seconds``.

    **Stopping drains.** ``stop_receiving`` stops asking for updates (and answers webhook requests
    503, so Telegram delivers them again later); the channel then waits for the updates in hand,
    replies included, before ``shutdown``.
    """

    def __init__(
        self, *, bot: RawUpdatesBot, mode: str, webhook_url: str | None, secret_token: str | None,
        poll_timeout: float, process: Process, retry_seconds: float = 1.0,
    ) -> None:  # fmt: skip
        self.bot = bot
        self.mode = mode
        self.webhook_url = webhook_url
        self.secret_token = secret_token
        self.poll_timeout = poll_timeout
        self.process = process
        self.retry_seconds = retry_seconds
        self.started = False
        self.running = False
        self._poller: asyncio.Task[None] | None = None
        self._fetching = False
        self._offset: int | None = None
        # Failed attempts per update id: one that keeps failing is skipped in the end, so a
        # single unprocessable update cannot hold back every later one.
        self._failures: dict[int, int] = {}

    def routes(self) -> list[web.RouteDef]:
        """The webhook route (webhook mode only: in polling mode nothing is served)."""
        return [web.post(WEBHOOK_PATH, self._webhook)] if self.mode == "webhook" else []

    async def start(self) -> None:
        """getMe; then deleteWebhook + polling, or setWebhook with the secret token."""
        try:
            await self.bot.initialize()
            if self.mode == "webhook":
                assert self.webhook_url is not None, "webhook mode needs webhook_url or web.public_url"
                await self.bot.set_webhook(
                    url=self.webhook_url, secret_token=self.secret_token, allowed_updates=list(ALLOWED_UPDATES)
                )
                log.info("telegram webhook set", extra={"bot": self.bot.username})
            else:
                await self.bot.delete_webhook(drop_pending_updates=False)
                self._poller = asyncio.get_running_loop().create_task(self._poll(), name="telegram-polling")
                log.info("telegram polling started", extra={"bot": self.bot.username})
        except BaseException:
            # A wrong token (getMe 401) or an unreachable API: release the HTTP clients, then tell
            # the caller, which runs on without Telegram.
            log.error("telegram channel failed to start")
            await self.bot.shutdown()
            raise
        self.started = self.running = True

    async def stop_receiving(self) -> None:
        """Take no new updates; the batch being processed is finished first."""
        self.running = False
        poller, self._poller = self._poller, None
        if poller is None:
            return
        if self._fetching:
            poller.cancel()  # an unanswered getUpdates confirms nothing
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        if self._offset is not None:
            # Confirm the last processed batch now, so a restart does not fetch it again.
            with contextlib.suppress(TelegramError):
                await self.bot.get_updates(offset=self._offset, limit=1, timeout=0)

    async def shutdown(self) -> None:
        """Release the HTTP clients; the webhook (if any) stays set for other processes."""
        await self.stop_receiving()
        if self.started:
            self.started = False
            await self.bot.shutdown()

    async def _poll(self) -> None:
        while self.running:
            self._fetching = True
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset, timeout=dt.timedelta(seconds=self.poll_timeout),
                    allowed_updates=list(ALLOWED_UPDATES),
                )  # fmt: skip
            except TelegramError as exc:
                log.warning("telegram polling error, retrying: %s", type(exc).__name__)
                await asyncio.sleep(self.retry_seconds)
                continue
            finally:
                self._fetching = False
            if not updates:
                continue
            failed = await self._process_batch(updates)
            if failed is None:
                self._offset = max(u.update_id for u in updates) + 1
                self._failures.clear()
                continue
            # Fetched again from the first failure on; the ones before it are confirmed.
            attempts = self._failures[failed] = self._failures.get(failed, 0) + 1
            self._offset = failed
            if attempts >= MAX_UPDATE_ATTEMPTS:
                log.error("telegram update skipped after %d failed attempts", attempts, extra={"update_id": failed})
                self._offset = failed + 1
                self._failures.pop(failed, None)
            await asyncio.sleep(min(MAX_RETRY_SECONDS, self.retry_seconds * 2 ** (attempts - 1)))

    async def _process_batch(self, updates: Sequence[Update]) -> int | None:
        """Process a batch (chats in parallel, each chat in order): the first failed update id."""

        async def one(update: Update) -> None:
            raw = update.api_kwargs.get(_RAW)
            await self.process(raw if isinstance(raw, Mapping) else update.to_dict())

        results = await asyncio.gather(*(one(u) for u in updates), return_exceptions=True)
        failed = [u.update_id for u, r in zip(updates, results, strict=True) if isinstance(r, BaseException)]
        for update, result in zip(updates, results, strict=True):
            if isinstance(result, BaseException):
                log.error("telegram update failed; it will be fetched again", exc_info=result,
                          extra={"update_id": update.update_id})  # fmt: skip
        return min(failed) if failed else None

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
            payload = await request.json(loads=safe_json.loads)
        except (ValueError, UnicodeDecodeError):
            return web.Response(status=400, text="not JSON")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="not an update")
        # An exception here (the database is down) answers 500: Telegram delivers the update again,
        # and update_id keeps it from being processed twice.
        await self.process(payload)
        return web.Response(status=200)
