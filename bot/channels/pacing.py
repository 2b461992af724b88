"""The one pacer and the one retry policy every chat transport uses.

**Pacing** (:class:`Pacer`): an overall rate for the whole bot (:class:`EvenPace`, never more
than the rate within any second), and a rate per conversation (a Slack DM, a Telegram chat; on
``aiolimiter``) with a small burst, so an acknowledgement, a quote and the next question go out
together and a wave of invitations never trips the platform's limit.
Messages to one conversation also go out one at a time, in order. When the platform answers 429
with a ``retry_after``, that conversation is paused until then (:meth:`Pacer.pause`); sends to
other conversations go on.

**Retrying** (:func:`call`, on ``tenacity``): a transport classifies each failure. A
:class:`Transient` failure (network, 5xx, 429) is retried in place, up to ``Policy.attempts``
tries, after the platform's ``retry_after`` or an exponential backoff, as long as the total wait
stays within ``Policy.max_wait``; after that the call raises ``RetryLater`` and the outbox tries
again later. Any other failure is the transport's own ``DeliveryError`` and is raised at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from memory.errors import RetryLater

T = TypeVar("T")

#: Per-conversation state is forgotten past this many conversations (it is only a pace).
MAX_CONVERSATIONS = 4096


class Transient(Exception):
    """A failure worth retrying in place: ``retry_after`` when the platform said how long."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class Policy:
    """How hard one call tries before handing the message back to the outbox."""

    attempts: int = 3
    # Network errors and 5xx wait backoff, 2 x backoff, ... between tries.
    backoff: float = 1.0
    # The longest a call waits in all (rate-limit pauses included) before raising RetryLater.
    max_wait: float = 5.0


class EvenPace:
    """About ``rate`` messages a second, evenly spaced, and never more than ``rate`` within any
    second (the platform's limit, with ``margin`` seconds to spare for network jitter).

    Each caller reserves the next slot (in the order they ask) and sleeps until it. A caller
    woken late does not push the later slots back, and a stall of the event loop (a busy CPU) is
    made up afterwards when shorter than ``catch_up``, within the one-second limit. A bucket
    of one (``AsyncLimiter(1, 1 / rate)``) lost every wake-up's delay and every stall: a
    10,000-message wave ran at 0.88 of 30/s on a loaded machine. Nothing is saved up while idle.
    """

    def __init__(
        self,
        rate: float,
        *,
        catch_up: float = 0.5,
        margin: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.clock, self.sleep = clock, sleep
        # Even slots at the pace the one-second limit allows, so the limit binds only after a stall.
        self.period = (1.0 + margin) / rate
        self.catch_up = catch_up
        self.margin = margin
        self._next = 0.0
        # When the last ``rate`` messages go (or went) out.
        self._times: deque[list[float]] = deque(maxlen=max(1, math.floor(rate)))

    async def acquire(self) -> None:
        now = self.clock()
        # Behind by less than catch_up: a stall, made up; by more: the pace was idle, start now.
        slot = self._next if self._next >= now - self.catch_up else now
        self._next = slot + self.period
        at = max(slot, now)
        if len(self._times) == self._times.maxlen:
            at = max(at, self._times[0][0] + 1.0 + self.margin)
        sent = [at]
        self._times.append(sent)
        if at > now:
            await self.sleep(at - now)
            # Woken late: the message leaves now, and the one-second limit counts from then.
            sent[0] = max(at, self.clock())


class Pacer:
    """Rates per conversation and overall (messages per second; 0 turns one off)."""

    def __init__(self, *, per_conversation: float = 1.0, burst: int = 1, overall: float = 0.0) -> None:
        self.per_conversation = per_conversation
        self.burst = max(1, burst)
        # An even pace, one message each 1/overall s (a bucket of N would let ~2N through in the
        # first second).
        self._overall = EvenPace(overall) if overall > 0 else None
        self._limiters: dict[str, AsyncLimiter] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._paused_until: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def slot(self, conversation: str) -> AsyncIterator[None]:
        """Hold the conversation's turn: one message at a time, within both rates."""
        lock = self._locks.get(conversation)
        if lock is None:
            if len(self._locks) > MAX_CONVERSATIONS:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[conversation] = asyncio.Lock()
        async with lock:
            limiter = self._limiter(conversation)
            if limiter is not None:
                await limiter.acquire()
            if self._overall is not None:
                await self._overall.acquire()
            yield

    def _limiter(self, conversation: str) -> AsyncLimiter | None:
        if self.per_conversation <= 0:
            return None
        limiter = self._limiters.get(conversation)
        if limiter is None:
            if len(self._limiters) > MAX_CONVERSATIONS:
                self._limiters.clear()
            limiter = AsyncLimiter(max_rate=self.burst, time_period=self.burst / self.per_conversation)
            self._limiters[conversation] = limiter
        return limiter

    def pause(self, conversation: str, seconds: float) -> None:
        """The platform asked us to wait ``seconds`` before writing to this conversation again."""
        if len(self._paused_until) > MAX_CONVERSATIONS:
            now = time.monotonic()
            self._paused_until = {k: v for k, v in self._paused_until.items() if v > now}
        until = time.monotonic() + max(0.0, seconds)
        self._paused_until[conversation] = max(self._paused_until.get(conversation, 0.0), until)

    def paused_for(self, conversation: str) -> float:
        return max(0.0, self._paused_until.get(conversation, 0.0) - time.monotonic())


async def call(
    op: Callable[[], Awaitable[T]],
    *,
    conversation: str | None,
    pacer: Pacer,
    policy: Policy,
    classify: Callable[[Exception], Awaitable[Exception]],
) -> T:
    """Run ``op`` in the conversation's slot with the retry policy.

    ``classify`` maps a failure to :class:`Transient` (retried) or to the ``DeliveryError`` to
    raise. A rate-limited conversation that stays paused longer than ``policy.max_wait`` raises
    ``RetryLater`` without calling the platform at all. ``conversation=None`` is a call that
    writes to no conversation (a lookup): it is not paced, only retried.
    """

    paused_total = 0.0

    async def once() -> T:
        nonlocal paused_total
        paused = pacer.paused_for(conversation) if conversation is not None else 0.0
        if paused > policy.max_wait:
            raise RetryLater("rate limit", retry_after=paused)
        if paused > 0:
            paused_total += paused
            await asyncio.sleep(paused)
        try:
            if conversation is None:
                return await op()
            async with pacer.slot(conversation):
                return await op()
        except Exception as exc:
            verdict = await classify(exc)
            if isinstance(verdict, Transient) and verdict.retry_after is not None and conversation is not None:
                pacer.pause(conversation, verdict.retry_after)
            raise verdict from exc

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, Transient) and exc.retry_after is not None:
            # A paced call waits out the conversation's pause at the start of the next try.
            return exc.retry_after if conversation is None else 0.0
        return policy.backoff * 2 ** (state.attempt_number - 1)

    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome is not None else None
        if state.attempt_number >= policy.attempts or not isinstance(exc, Transient):
            return True
        upcoming = exc.retry_after if exc.retry_after is not None else wait(state)
        if conversation is None and exc.retry_after is not None:
            # Nothing paces an unpaced call: its rate-limit wait is a sleep of the policy's own.
            upcoming = exc.retry_after
        return paused_total + state.idle_for + upcoming > policy.max_wait

    try:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(Transient), wait=wait, stop=stop, reraise=True
        ):
            with attempt:
                return await once()
    except Transient as exc:
        raise RetryLater(exc.reason, retry_after=exc.retry_after) from None
    raise AssertionError("unreachable")  # pragma: no cover (AsyncRetrying returns or raises)
