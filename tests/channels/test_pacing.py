"""The one pacer and retry policy every transport uses (``bot.channels.pacing``)."""

from __future__ import annotations

import asyncio

import pytest

from bot.channels.pacing import Pacer, Policy, Transient, call
from memory.errors import PermanentFailure, RetryLater

FAST = Policy(attempts=3, backoff=0.001, max_wait=1.0)


class Flaky:
    """An API call that fails with the given exceptions, then answers."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


async def classify(exc: Exception) -> Exception:
    if isinstance(exc, ConnectionError):
        return Transient("network")
    if isinstance(exc, TimeoutError):
        return Transient("rate limit", retry_after=float(str(exc) or 0.01))
    return PermanentFailure(str(exc))


async def run(op: Flaky, *, pacer: Pacer | None = None, conversation: str | None = "C1", policy: Policy = FAST) -> str:
    return await call(op, conversation=conversation, pacer=pacer or Pacer(per_conversation=0), policy=policy,
                      classify=classify)  # fmt: skip


async def test_transient_failures_are_retried_in_place() -> None:
    op = Flaky(ConnectionError(), ConnectionError())
    assert await run(op) == "ok"
    assert op.calls == 3


async def test_after_the_last_attempt_the_message_goes_back_to_the_outbox() -> None:
    op = Flaky(ConnectionError(), ConnectionError(), ConnectionError(), ConnectionError())
    with pytest.raises(RetryLater) as caught:
        await run(op)
    assert caught.value.reason == "network"
    assert op.calls == 3


async def test_other_failures_are_not_retried() -> None:
    op = Flaky(ValueError("invalid_blocks"))
    with pytest.raises(PermanentFailure):
        await run(op)
    assert op.calls == 1


async def test_a_long_rate_limit_pauses_only_that_conversation() -> None:
    pacer = Pacer(per_conversation=0)
    op = Flaky(TimeoutError("60"))
    with pytest.raises(RetryLater) as caught:
        await run(op, pacer=pacer)
    assert caught.value.retry_after == 60
    assert op.calls == 1, "a wait longer than max_wait is not waited out"
    # The paused conversation is not even tried until the pause is over ...
    again = Flaky()
    with pytest.raises(RetryLater):
        await run(again, pacer=pacer)
    assert again.calls == 0
    # ... while other conversations go on.
    assert await run(Flaky(), pacer=pacer, conversation="C2") == "ok"


async def test_a_short_rate_limit_is_waited_out() -> None:
    op = Flaky(TimeoutError("0.01"))
    assert await run(op) == "ok"
    assert op.calls == 2


async def test_rate_limits_within_one_call_share_the_wait_budget() -> None:
    op = Flaky(TimeoutError("0.3"), TimeoutError("0.3"))
    with pytest.raises(RetryLater):
        await run(op, policy=Policy(attempts=5, backoff=0.001, max_wait=0.5))
    assert op.calls == 2


async def test_calls_outside_a_conversation_are_retried_but_not_paced() -> None:
    pacer = Pacer(per_conversation=0)
    assert await run(Flaky(TimeoutError("0.01")), pacer=pacer, conversation=None) == "ok"
    assert pacer.paused_for("") == 0


async def test_one_conversation_gets_its_messages_in_order() -> None:
    pacer = Pacer(per_conversation=1000, burst=1)
    seen: list[int] = []

    async def send(i: int) -> None:
        async def op() -> None:
            await asyncio.sleep(0.001 * (5 - i))  # later messages would finish first if unordered
            seen.append(i)

        await call(op, conversation="C", pacer=pacer, policy=FAST, classify=classify)

    await asyncio.gather(*(send(i) for i in range(5)))
    assert seen == [0, 1, 2, 3, 4]
