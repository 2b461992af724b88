"""Nothing lost, nothing twice on Slack: a person's answer is stored before Slack hears it arrived
(HTTP response, Socket Mode envelope ack); a process that dies after storing and before replying
shows the person where their conversation stands on Slack's redelivery, without storing twice; an
event the engine could not store within the bound is left unacknowledged, so that Slack delivers it
again, and is answered once; a click is acknowledged anyway (Slack never redelivers one)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from sqlalchemy import select

from bot.app import App
from bot.channels.base import Inbound
from bot.channels.slack import SlackChannel
from bot.channels.slack.channel import Outcome
from memory.db import transaction
from memory.models import Answer, ProcessedEvent
from tests.channels.slack_kit import SlackRig, open_rig
from tests.fakes.slack_api import FakeSlackAPI
from tests.helpers import blocking_handle

ADA = "U0ADA"
ADA_DM = "D0ADA"
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


def stored(app: App) -> list[tuple[str, int | None, str | None]]:
    with transaction(app.sessions) as s:
        return [(a.question, a.rating, a.text) for a in s.scalars(select(Answer).order_by(Answer.id))]


def replied_at(app: App, key: str) -> Any:
    with transaction(app.sessions) as s:
        event = s.get(ProcessedEvent, key)
        assert event is not None, key
        return event.replied_at


def slow_engine(app: App, seconds: float) -> None:
    """The engine takes ``seconds`` (the model, a busy database) before it stores."""
    original = app.service.handle

    def handle(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return original(*args, **kwargs)

    app.service.handle = handle  # type: ignore[method-assign]


def hold_replies(channel: SlackChannel) -> asyncio.Event:
    """Replies wait until the returned event is set (what happens after the acknowledgement)."""
    gate = asyncio.Event()
    original = channel.reply

    async def reply(*args: Any, **kwargs: Any) -> None:
        await gate.wait()
        await original(*args, **kwargs)

    channel.reply = reply  # type: ignore[method-assign]
    return gate


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async def reached() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(reached(), timeout)


async def started(rig: SlackRig) -> None:
    await rig.roster("ada", slack_user=ADA)
    await rig.invite("ada")


# Stored before acknowledged ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rating_click", "text_dm"])
async def test_an_answer_is_stored_before_slack_hears_back(slack_rig: SlackRig, kind: str) -> None:
    await started(slack_rig)
    if kind == "text_dm":
        await slack_rig.click(ADA, value=8)
    slow_engine(slack_rig.app, 0.3)  # well under the 2 s bound
    gate = hold_replies(slack_rig.channel)
    posts = len(slack_rig.posted(ADA_DM))
    if kind == "rating_click":
        resp = await slack_rig.click(ADA, value=7, drain=False)
        expected = [("recommend", 7, None)]
    else:
        resp = await slack_rig.dm(ADA, "Fast support", event_id="EvTEXT", drain=False)
        expected = [("recommend", 8, None), ("reason", None, "Fast support")]
    # Slack has its 200: the answer is committed, the replies are not out yet.
    assert resp.status == 200
    assert stored(slack_rig.app) == expected
    assert len(slack_rig.posted(ADA_DM)) == posts
    gate.set()
    await slack_rig.channel.drain()
    assert len(slack_rig.posted(ADA_DM)) > posts
    if kind == "text_dm":
        assert replied_at(slack_rig.app, "slack:EvTEXT") is not None


async def test_a_socket_mode_envelope_is_acknowledged_after_the_answer_is_stored(make_app: Callable[..., App]) -> None:
    app = make_app()
    async with FakeSlackAPI() as api, open_rig(app, api, mode="socket", app_token="xapp-1-test") as rig:
        await started(rig)
        slow_engine(app, 0.3)
        gate = hold_replies(rig.channel)
        api.on_socket_ack = lambda: (stored(app), len(rig.posted(ADA_DM)))
        posts = len(rig.posted(ADA_DM))
        event = {"type": "message", "user": ADA, "text": "8", "ts": rig.next_ts(), "channel": ADA_DM,
                 "channel_type": "im"}  # fmt: skip
        envelope = await api.socket_send(rig.envelope(event, event_id="EvSOCK"))
        await api.socket_ack(envelope)
        answers_then, posts_then = api.seen_at_ack[envelope]
        assert answers_then == [("recommend", 8, None)]
        assert posts_then == posts
        gate.set()
        await rig.channel.drain()
        assert len(rig.posted(ADA_DM)) > posts
        # Slack redelivers it anyway (retry_attempt 1): acknowledged, nothing stored or said twice.
        posts = len(rig.posted(ADA_DM))
        await api.socket_ack(await api.socket_send(rig.envelope(event, event_id="EvSOCK"), retry_attempt=1))
        await rig.channel.drain()
        assert len(stored(app)) == 1
        assert len(rig.posted(ADA_DM)) == posts


# A crash between storing and replying -----------------------------------------------------------


def die_after_storing(channel: SlackChannel) -> asyncio.Event:
    """The process is killed right after the engine committed: no acknowledgement, no reply."""
    committed = asyncio.Event()
    original = channel._engine

    async def engine(inbound: Inbound, **kwargs: Any) -> tuple[list[Any], Outcome]:
        result = await original(inbound, **kwargs)
        committed.set()
        await asyncio.Event().wait()
        return result

    channel._engine = engine  # type: ignore[method-assign]
    return committed


async def killed(rig: SlackRig, delivery: Coroutine[Any, Any, Any], committed: asyncio.Event) -> None:
    sent = asyncio.create_task(delivery)
    await asyncio.wait_for(committed.wait(), 20)
    sent.cancel()  # Slack never hears back
    for task in list(rig.channel.intake._tasks):
        task.cancel()
    await rig.channel.drain()


@pytest.mark.parametrize("kind", ["text_dm", "rating_click"])
async def test_a_process_dying_after_storing_shows_the_person_where_they_are_on_redelivery(
    make_app: Callable[..., App], kind: str
) -> None:
    """Slack retries the event it never heard back about (a click: the person sees Slack's error
    and clicks again); the restarted process stores nothing more and shows the question the
    conversation waits on, once."""
    app = make_app()
    async with FakeSlackAPI() as api, open_rig(app, api) as first:
        await started(first)
        question = first.last_rating_message(ADA_DM)
        posts = len(first.posted(ADA_DM))
        ts = first.next_ts()

        def deliver(rig: SlackRig, **kw: Any) -> Coroutine[Any, Any, Any]:
            if kind == "text_dm":
                return rig.dm(ADA, "9", event_id="EvCRASH", ts=ts, **kw)
            return rig.click(ADA, value=9, message=question, **kw)

        await killed(first, deliver(first, drain=False), die_after_storing(first.channel))
        assert stored(app) == [("recommend", 9, None)]
        assert len(first.posted(ADA_DM)) == posts

        async with open_rig(app, api, first.clock) as second:
            if kind == "text_dm":
                # Slack's first retry comes at once: moments after the commit, the other process
                # may still be posting its replies, so it is left for the next retry.
                resp = await deliver(second, headers=RETRY)
                assert resp.status == 503
                assert first.posted_texts(ADA_DM)[posts:] == []
                first.clock.now += dt.timedelta(minutes=1)  # Slack's next retry
            resp = await deliver(second, **({"headers": RETRY} if kind == "text_dm" else {}))
            assert resp.status == 200
            assert stored(app) == [("recommend", 9, None)]
            where = first.posted_texts(ADA_DM)[posts:]
            assert "pick up where we left off" in where[0]
            assert "main reason" in where[-1]
            key = "slack:EvCRASH" if kind == "text_dm" else f"slack:rating:{ADA_DM}:{question['ts']}"
            assert replied_at(app, key) is not None
            # Slack's next retry (or a third click) changes nothing.
            await deliver(second, **({"headers": RETRY} if kind == "text_dm" else {}))
            assert stored(app) == [("recommend", 9, None)]
            assert first.posted_texts(ADA_DM)[posts:] == where


async def test_a_retry_reaching_another_process_while_the_first_replies_is_answered_once(
    make_app: Callable[..., App],
) -> None:
    """The first process stored the DM and is posting its replies (slowly) when Slack's retry
    reaches a second process: that one leaves it for a later retry instead of asking the person
    the question again, and the later retry, once the replies are out, is a plain duplicate."""
    app = make_app()
    async with FakeSlackAPI() as api, open_rig(app, api) as first:
        await started(first)
        posts = len(first.posted(ADA_DM))
        gate = hold_replies(first.channel)
        ts = first.next_ts()
        try:
            resp = await first.dm(ADA, "9", event_id="EvBUSY", ts=ts, drain=False)
            assert resp.status == 200
            assert stored(app) == [("recommend", 9, None)]
            async with open_rig(make_app(), api, first.clock) as second:
                # (Bounded: were the question posted again, it would queue behind the held replies.)
                resp = await asyncio.wait_for(second.dm(ADA, "9", event_id="EvBUSY", ts=ts, headers=RETRY), 20)
                assert resp.status == 503
                assert first.posted_texts(ADA_DM)[posts:] == []
                gate.set()
                await first.channel.drain()
                replies = first.posted_texts(ADA_DM)[posts:]
                assert replies
                assert "main reason" in replies[-1]
                first.clock.now += dt.timedelta(minutes=1)  # Slack's next retry
                resp = await second.dm(ADA, "9", event_id="EvBUSY", ts=ts, headers=RETRY)
                assert resp.status == 200
                assert first.posted_texts(ADA_DM)[posts:] == replies
                assert stored(app) == [("recommend", 9, None)]
        finally:
            gate.set()


async def test_a_click_whose_process_died_before_storing_counts_when_clicked_again(slack_rig: SlackRig) -> None:
    """The click was claimed (its message would show it) but never stored: the person sees Slack's
    error and clicks again; the second click is the answer."""
    await started(slack_rig)
    question = slack_rig.last_rating_message(ADA_DM)
    mark = f"slack:clicked:{ADA_DM}:{question['ts']}"
    assert slack_rig.channel.marks.claim(mark, now=slack_rig.clock(), ttl=dt.timedelta(days=1))
    await slack_rig.click(ADA, value=6, message=question)
    assert stored(slack_rig.app) == [("recommend", 6, None)]
    assert "main reason" in slack_rig.posted_texts(ADA_DM)[-1]


async def test_a_click_the_engine_failed_on_leaves_the_buttons_for_the_next_click(slack_rig: SlackRig) -> None:
    await started(slack_rig)
    question = slack_rig.last_rating_message(ADA_DM)
    original, failed = slack_rig.app.service.handle, []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(1)
            raise RuntimeError("the database is restarting")
        return original(*args, **kwargs)

    slack_rig.app.service.handle = flaky  # type: ignore[method-assign]
    await slack_rig.click(ADA, value=4, message=question)
    assert stored(slack_rig.app) == []
    assert slack_rig.api.calls_to("chat.update") == []  # the buttons stay
    await slack_rig.click(ADA, value=5, message=question)
    assert stored(slack_rig.app) == [("recommend", 5, None)]
    assert len(slack_rig.api.calls_to("chat.update")) == 1


# Slower than the bound --------------------------------------------------------------------------


async def test_a_dm_slower_than_the_bound_is_left_unacknowledged_and_its_redelivery_answered_once(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    async with FakeSlackAPI() as api, open_rig(app, api, store_within_seconds=0.2) as rig:
        await started(rig)
        await rig.click(ADA, value=8)
        posts = len(rig.posted(ADA_DM))
        entered, release = blocking_handle(app)
        try:
            ts = rig.next_ts()
            # The engine cannot store while blocked: Slack hears, in time, that it must retry.
            resp = await rig.dm(ADA, "Fast support", event_id="EvSLOW", ts=ts, drain=False)
            assert resp.status == 503
            await until(entered.is_set)
            assert len(stored(app)) == 1
            # Slack's retry while the first delivery is still being answered: it waits for that
            # one, is not acknowledged either (still not stored), and answers nothing itself.
            resp = await rig.dm(ADA, "Fast support", event_id="EvSLOW", ts=ts, headers=RETRY, drain=False)
            assert resp.status == 503
        finally:
            release.set()
        await rig.channel.drain()
        assert [a for a in stored(app) if a[0] == "reason"] == [("reason", None, "Fast support")]
        replies = rig.posted_texts(ADA_DM)[posts:]
        assert len(replies) == 1, replies
        assert replied_at(app, "slack:EvSLOW") is not None
        # Slack's next retry, now that it is stored: acknowledged, a duplicate, nothing said.
        resp = await rig.dm(ADA, "Fast support", event_id="EvSLOW", ts=ts, headers=RETRY)
        assert resp.status == 200
        assert rig.posted_texts(ADA_DM)[posts:] == replies


async def test_a_dm_slower_than_the_bound_whose_process_then_died_is_stored_from_slacks_retry(
    make_app: Callable[..., App],
) -> None:
    """The case an acknowledgement before storing would lose: the engine was still busy when the
    bound came, then the process died. Slack, not having heard back, delivers the event again."""
    app = make_app()
    original = app.service.handle
    async with FakeSlackAPI() as api, open_rig(app, api, store_within_seconds=0.2) as first:
        await started(first)
        await first.click(ADA, value=8)
        posts = len(first.posted(ADA_DM))
        dead = threading.Event()

        def dies(*args: Any, **kwargs: Any) -> Any:
            dead.wait(30)
            raise RuntimeError("the process is gone")

        app.service.handle = dies  # type: ignore[method-assign]
        ts = first.next_ts()
        resp = await first.dm(ADA, "Fast support", event_id="EvLOST", ts=ts, drain=False)
        assert resp.status == 503
        for task in list(first.channel.intake._tasks):  # killed: nothing of it goes on
            task.cancel()
        dead.set()
        await first.channel.drain()
        assert [a for a in stored(app) if a[0] == "reason"] == []

        app.service.handle = original  # type: ignore[method-assign]
        async with open_rig(app, api, first.clock) as second:
            resp = await second.dm(ADA, "Fast support", event_id="EvLOST", ts=ts, headers=RETRY)
            assert resp.status == 200
        assert [a for a in stored(app) if a[0] == "reason"] == [("reason", None, "Fast support")]
        assert replied_at(app, "slack:EvLOST") is not None
        assert len(first.posted_texts(ADA_DM)[posts:]) == 1


async def test_a_click_slower_than_the_bound_is_acknowledged_and_stored_once(make_app: Callable[..., App]) -> None:
    """Slack never redelivers a click: left unacknowledged, the person would only see an error."""
    app = make_app()
    async with FakeSlackAPI() as api, open_rig(app, api, store_within_seconds=0.2) as rig:
        await started(rig)
        entered, release = blocking_handle(app)
        try:
            resp = await rig.click(ADA, value=6, drain=False)
            assert resp.status == 200
            await until(entered.is_set)
            assert stored(app) == []
        finally:
            release.set()
        await rig.channel.drain()
        assert stored(app) == [("recommend", 6, None)]
        assert "main reason" in rig.posted_texts(ADA_DM)[-1]


async def test_a_socket_mode_event_slower_than_the_bound_is_not_acknowledged(make_app: Callable[..., App]) -> None:
    app = make_app()
    async with FakeSlackAPI() as api, open_rig(app, api, mode="socket", app_token="xapp-1-test",
                                               store_within_seconds=0.2) as rig:  # fmt: skip
        await started(rig)
        entered, release = blocking_handle(app)
        event = {"type": "message", "user": ADA, "text": "8", "ts": rig.next_ts(), "channel": ADA_DM,
                 "channel_type": "im"}  # fmt: skip
        try:
            envelope = await api.socket_send(rig.envelope(event, event_id="EvSOCKSLOW"))
            await until(entered.is_set)
            with pytest.raises(TimeoutError):
                await api.socket_ack(envelope, timeout=1.0)
        finally:
            release.set()
        await rig.channel.drain()
        assert stored(app) == [("recommend", 8, None)]
        assert envelope not in api.socket_acks
        posts = len(rig.posted(ADA_DM))
        # Slack delivers it again: acknowledged now, nothing stored or said twice.
        await api.socket_ack(await api.socket_send(rig.envelope(event, event_id="EvSOCKSLOW"), retry_attempt=1))
        await rig.channel.drain()
        assert stored(app) == [("recommend", 8, None)]
        assert len(rig.posted(ADA_DM)) == posts
