"""A fake chat channel for delivery tests: records what it sends, and can fail on purpose.

Usage::

    channel = RecordingChannel(name="telegram")
    channel.fail_with = [RetryLater("429", retry_after=3), None, ...]   # scripted outcomes, or
    channel.flaky = Flaky(rate=0.2, seed=1)                              # 20 % random failures
    runner = Runner(app=app, channels={"telegram": channel}, ...)
    channel.sent        # [(Address, [Outbound, ...]), ...] in order

``FileRecordingChannel`` appends one line per accepted send to a file (fsync'd), for tests that
kill a process and count deliveries afterwards.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from bot.channels.base import Address, Outbound, Sent
from memory.errors import DeliveryError, RetryLater
from prompts import Markup


@dataclass
class Flaky:
    """Fails ``rate`` of the sends: 429 with retry_after, 5xx, or a timeout, in equal parts."""

    rate: float = 0.2
    seed: int = 0
    retry_after: float = 7.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def outcome(self) -> DeliveryError | None:
        if self.rng.random() >= self.rate:
            return None
        kind = self.rng.choice(("429", "5xx", "timeout"))
        if kind == "429":
            return RetryLater("429 Too Many Requests", retry_after=self.retry_after)
        if kind == "5xx":
            return RetryLater("502 Bad Gateway")
        return RetryLater("timed out")


class RecordingChannel:
    markup: Markup = "plain"

    def __init__(self, *, name: str = "telegram") -> None:
        self.name = name
        self.sent: list[tuple[Address, list[Outbound]]] = []
        self.attempts: list[Address] = []
        self.failures: list[DeliveryError] = []
        self.fail_with: list[DeliveryError | None] = []
        self.flaky: Flaky | None = None
        self.started = False
        self.stopped = False

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        self.attempts.append(address)
        error = self.fail_with.pop(0) if self.fail_with else (self.flaky.outcome() if self.flaky else None)
        if error is not None:
            self.failures.append(error)
            raise error
        self.sent.append((address, list(messages)))
        return Sent(external_ref=f"m{len(self.sent)}")

    def recipients(self) -> list[str]:
        return [address.external_id for address, _ in self.sent]


class FileRecordingChannel(RecordingChannel):
    """Each send waits ``delay`` seconds (the API at work), then is recorded durably."""

    def __init__(self, *, path: Path, delay: float = 0.05, name: str = "telegram") -> None:
        super().__init__(name=name)
        self.path = path
        self.delay = delay

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        await asyncio.sleep(self.delay)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{address.external_id} {os.getpid()}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return Sent(external_ref=f"{os.getpid()}-{address.external_id}")
