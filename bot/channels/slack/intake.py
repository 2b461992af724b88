"""Stored before acknowledged: how the Slack channel takes a payload that carries a person's words or
choice (a DM, an edit, a rating, *Yes*/*No*, *Stop check-ins*, the App Home buttons).

Slack redelivers an event only when it was not acknowledged (within 3 s); an interaction is never
redelivered, the person sees an error and clicks again. So the acknowledgement must come after the
answer is committed: a process that dies before it leaves the event unacknowledged, and Slack's
retry (or the person's second click) finds it again. Each such payload is one task in two parts:

1. *store*: the engine's ``handle`` (``confirm=True``), which commits the answer with its event key,
   or knows the event is a duplicate. The listener awaits this part, for at most
   ``store_within`` seconds (2 s: Slack's deadline is 3 s), then returns, and Bolt acknowledges;
2. *then*: after the acknowledgement, the replies are posted and the engine hears they are out
   (``CheckinService.replied``).

A process that dies between the two leaves the event stored but unreplied: its redelivery (Slack's
retry, the same click again) stores nothing more and shows the person the question their
conversation waits on. A redelivery that reaches the process still answering the same event waits
for that answer instead of answering twice.

When storing takes longer than the bound, the task finishes on its own and ``take`` says so
(``False``). What Slack hears then depends on what it does next (``receiver``): an event (a DM or
an edit) is left unacknowledged, so Slack delivers it again (up to three retries over about five
minutes) and a crash in those seconds loses nothing: the retry finds the answer stored, or stores
it. An interaction is acknowledged anyway: Slack never redelivers one, and the person would see an
error for an answer that is about to be stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger("bot.channels.slack")

#: The part of a payload's work that runs after the acknowledgement (the replies).
Then = Callable[[], Awaitable[None]]


async def _nothing() -> None:
    return None


#: What ``store`` returns for a delivery that is not to be taken now, so that Slack delivers it
#: again later (the event was stored moments ago by another process, still sending its replies).
AGAIN: Then = _nothing

#: How long a listener waits for the answer to be stored before acknowledging anyway.
STORE_WITHIN_SECONDS = 2.0


class Intake:
    """The channel's tasks: stored-before-acknowledged work (``take``) and plain background work
    (``spawn``), and the event keys being answered in this process."""

    def __init__(self, *, store_within: float = STORE_WITHIN_SECONDS) -> None:
        self.store_within = store_within
        self._tasks: set[asyncio.Task[None]] = set()
        # Event key -> set once its answer is stored; removed once its replies are out.
        self._answering: dict[str, asyncio.Event] = {}

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background (acknowledged at once: nothing of a person's is stored)."""

        async def guarded() -> None:
            try:
                await work
            except Exception:
                log.exception("slack: handling an event failed")

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def take(self, store: Coroutine[Any, Any, Then | None]) -> bool:
        """Run ``store`` and then what it returns, as one task; return once ``store`` is done (or
        failed), or after ``store_within`` seconds, whichever comes first: ``True`` in the first
        case, ``False`` when the bound came first (the task goes on) or ``store`` returned
        ``AGAIN``."""
        stored = asyncio.Event()
        again = False

        async def run() -> None:
            nonlocal again
            try:
                then = await store
                again = then is AGAIN
            finally:
                stored.set()
            if then is not None:
                await then()

        self.spawn(run())
        try:
            await asyncio.wait_for(stored.wait(), self.store_within)
        except TimeoutError:
            log.warning("slack: storing took longer than the bound", extra={"bound_seconds": self.store_within})
            return False
        return not again

    def answering(self, key: str | None) -> asyncio.Event | None:
        """The "stored" event of ``key`` when another delivery of it is being answered here."""
        return self._answering.get(key) if key else None

    def begin(self, key: str | None) -> asyncio.Event:
        """This delivery answers ``key``: its "stored" event (set it when stored; call ``end``)."""
        stored = asyncio.Event()
        if key:
            self._answering[key] = stored
        return stored

    def end(self, key: str | None, stored: asyncio.Event) -> None:
        stored.set()
        if key and self._answering.get(key) is stored:
            del self._answering[key]

    async def drain(self) -> None:
        """Wait until every task started so far (and any they start) is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
