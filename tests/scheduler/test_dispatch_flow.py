"""The dispatcher's loop keeps the channel busy: a slow send never holds up the rows after it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Sequence

from bot.app import App
from bot.channels.base import Address, Outbound, Sent
from scheduler.dispatch import Dispatcher
from tests.fakes.channel import RecordingChannel
from tests.scheduler.conftest import Clock
from tests.scheduler.test_dispatch import ALL_DAY, outbox, setup

UTC = dt.UTC


class OneSlowSend(RecordingChannel):
    """The first person's send takes until everyone else has theirs (a slow platform answer)."""

    def __init__(self, others: int) -> None:
        super().__init__()
        self.others = others
        self.others_sent = asyncio.Event()

    async def send(self, address: Address, messages: Sequence[Outbound]) -> Sent:
        if address.external_id == "chat-p0000":
            await asyncio.wait_for(self.others_sent.wait(), timeout=20)
        sent = await super().send(address, messages)
        if sum(1 for chat in self.recipients() if chat != "chat-p0000") >= self.others:
            self.others_sent.set()
        return sent


async def test_the_next_batch_is_claimed_while_a_slow_send_of_the_last_one_is_still_going(
    scheduled_app: Callable[..., App],
) -> None:
    # Before, each batch waited for its slowest send before the next claim: at every batch
    # boundary the channel sat idle (a 10,000-invitation wave ran at 0.8 of Telegram's 30/s).
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = OneSlowSend(others=11)
    dispatcher: Dispatcher = setup(app, clock, 12, channel, batch_size=4, concurrency=2)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop, idle_seconds=0.05))
    try:
        await asyncio.wait_for(channel.others_sent.wait(), timeout=10)
        for _ in range(200):
            if {r.status for r in outbox(app)} == {"sent"}:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert sorted(channel.recipients()) == [f"chat-p{i:04d}" for i in range(12)]
    assert channel.recipients()[-1] == "chat-p0000"  # the slow one finished last, the rest did not wait
    rows = outbox(app)
    assert {r.status for r in rows} == {"sent"}
    assert all(r.attempts == 1 for r in rows)


async def test_stopping_finishes_sends_in_flight_and_gives_the_rest_back(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    clock = Clock(dt.datetime(2026, 6, 2, 10, tzinfo=UTC))
    channel = OneSlowSend(others=10_000)  # the first send never finishes by itself
    dispatcher = setup(app, clock, 6, channel, batch_size=6, concurrency=1)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop, idle_seconds=0.05))
    await asyncio.sleep(0.5)
    dispatcher.stopping = True
    stop.set()
    channel.others_sent.set()  # the send in flight is answered now
    await asyncio.wait_for(task, timeout=30)
    statuses = sorted(r.status for r in outbox(app))
    assert statuses.count("sent") >= 1
    assert set(statuses) <= {"sent", "pending"}  # nothing left claimed
