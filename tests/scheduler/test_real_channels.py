"""The runner with the real Telegram adapter (python-telegram-bot) against the loopback fake
Bot API: invitations go out as real sendMessage calls, and the API's errors land in the outbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy import select

from bot.app import App
from bot.runner import Runner, schedules_from_config
from memory import store
from memory.db import transaction
from memory.models import ChannelIdentity, OutboxMessage, Person
from scheduler.planner import Planner
from tests.channels.telegram_kit import make_channel
from tests.clock import now as clock_now
from tests.fakes.telegram_api import FakeTelegramAPI

ALL_DAY = {"start": "00:00", "end": "23:59", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def three_people_and_a_wave(app: App) -> None:
    now = clock_now()
    with transaction(app.sessions) as s:
        program = store.program_by_name(s, "pulse")
        for key, name, chat in (("ann", "Ann <b>", 101), ("bob", "Bob", 102), ("cy", "Cy", 103)):
            person, _ = store.upsert_person(s, key=key, name=name, email=None, timezone="UTC", owner_key=None,
                                            programs=[program], now=now - dt.timedelta(days=1))  # fmt: skip
            store.link_identity(s, person=person, channel="telegram", external_id=str(chat), now=now)
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config)).start_wave(program="pulse", now=now)


async def test_a_wave_over_the_real_telegram_client(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    three_people_and_a_wave(app)
    async with FakeTelegramAPI() as api:
        channel = make_channel(app, api)
        runner = Runner(app=app, channels={"telegram": channel}, serve_web=False, clock=clock_now)
        await runner.run_until_idle()
        calls = api.calls_to("sendMessage")

    by_chat: dict[int, list[dict[str, object]]] = {}
    for call in calls:
        by_chat.setdefault(int(str(call["chat_id"])), []).append(call)
    assert sorted(by_chat) == [101, 102, 103]
    first = by_chat[101][0]
    assert str(first["text"]).startswith("Hi Ann &lt;b&gt;! It's time for your pulse check-in.")
    assert first["parse_mode"] == "HTML"
    assert len(by_chat[101]) == 1  # greeting and first question in one message
    assert "inline_keyboard" in str(first.get("reply_markup"))  # with the rating buttons
    with transaction(app.sessions) as s:
        rows = list(s.scalars(select(OutboxMessage)))
        assert {r.status for r in rows} == {"sent"}
        assert all(r.external_ref for r in rows)


async def test_telegram_errors_become_outbox_outcomes(scheduled_app: Callable[..., App]) -> None:
    app = scheduled_app(window=ALL_DAY)
    three_people_and_a_wave(app)
    started = clock_now()
    async with FakeTelegramAPI() as api:
        # Rows go in order (one at a time): ann has blocked the bot, bob's send meets a long 429.
        api.fail("sendMessage", status=403)
        api.fail("sendMessage", status=429, retry_after=30)
        runner = Runner(app=app, channels={"telegram": make_channel(app, api)}, serve_web=False, clock=clock_now)
        runner.dispatcher.settings = dataclasses.replace(runner.dispatcher.settings, concurrency=1)
        await runner.run_until_idle()
        chats = {int(str(c["chat_id"])) for c in api.calls_to("sendMessage")}
    assert chats == {101, 102, 103}
    with transaction(app.sessions) as s:
        rows = {p.key: r for r, p in s.execute(select(OutboxMessage, Person).join(Person))}
        ann = s.scalar(select(ChannelIdentity).where(ChannelIdentity.external_id == "101"))
        assert ann is not None
        assert ann.reachable is False
    assert rows["ann"].status == "skipped"
    assert rows["ann"].last_error is not None
    assert rows["ann"].last_error.startswith("unreachable")
    assert rows["bob"].status == "pending"  # retried after Telegram's retry_after, not before
    assert rows["bob"].not_before >= started + dt.timedelta(seconds=30)
    assert rows["cy"].status == "sent"


async def test_a_wave_over_the_real_slack_client(scheduled_app: Callable[..., App]) -> None:
    from memory.importing import import_people
    from tests.channels.slack_kit import Clock, dm_of
    from tests.channels.slack_kit import make_channel as make_slack_channel
    from tests.fakes.slack_api import FakeSlackAPI

    app = scheduled_app(window=ALL_DAY, channels=["slack"])
    now = clock_now()
    roster = "id,name,email,programs,slack_user\nada,Ada <!channel>,,pulse,U0ADA\nbo,Bo,,pulse,U0BO\n"
    report = import_people(app.sessions, roster, known_programs=app.config.programs, now=now - dt.timedelta(days=1))
    assert not report.problems
    Planner(sessions=app.sessions, programs=schedules_from_config(app.config)).start_wave(program="pulse", now=now)
    async with FakeSlackAPI() as api:
        channel = make_slack_channel(app, api, Clock(now))
        await Runner(app=app, channels={"slack": channel}, serve_web=False, clock=clock_now).run_until_idle()
        ada = [p["text"] for p in api_posts(api, dm_of("U0ADA"))]
        bo = [p["text"] for p in api_posts(api, dm_of("U0BO"))]
    assert ada[0].startswith("Hi Ada &lt;!channel&gt;! It's time for your pulse check-in.")  # no @channel ping
    assert bo
    with transaction(app.sessions) as s:
        assert {r.status for r in s.scalars(select(OutboxMessage))} == {"sent"}


def api_posts(api: object, conversation: str) -> list[dict[str, str]]:
    calls = api.calls_to("chat.postMessage")  # type: ignore[attr-defined]
    return [c for c in calls if c.get("channel") == conversation]
