"""Sending to Slack: pace, 429s, retries, unreachable people, e-mail linking, App Home."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from bot.channels.base import Address, Choice, Outbound
from bot.channels.pacing import Pacer
from bot.channels.slack import message_payload
from memory.db import transaction
from memory.errors import PermanentFailure, RetryLater, Unreachable
from memory.models import ChannelIdentity, Person
from tests.channels.slack_kit import SlackRig, make_channel

ADA = "U0ADA"
ADA_DM = "D0ADA"
TO_ADA = Address(channel="slack", external_id=ADA, conversation=ADA_DM)
HELLO = [Outbound(text="hello")]


def identity(rig: SlackRig) -> ChannelIdentity:
    with transaction(rig.app.sessions) as s:
        found = s.scalar(select(ChannelIdentity))
        assert found is not None
        return found


async def test_short_429_is_waited_out_within_the_send(slack_rig: SlackRig) -> None:
    slack_rig.api.fail("chat.postMessage", status=429, retry_after=0)
    sent = await slack_rig.channel.send(TO_ADA, HELLO)
    assert sent.external_ref is not None
    assert slack_rig.api.methods().count("chat.postMessage") == 2


async def test_long_429_is_handed_back_with_retry_after(slack_rig: SlackRig) -> None:
    slack_rig.api.fail("chat.postMessage", status=429, retry_after=30)
    with pytest.raises(RetryLater) as caught:
        await slack_rig.channel.send(TO_ADA, HELLO)
    assert caught.value.retry_after == 30
    assert slack_rig.api.methods().count("chat.postMessage") == 1


async def test_5xx_and_dropped_connections_are_retried(slack_rig: SlackRig) -> None:
    slack_rig.api.fail("chat.postMessage", status=503, error="service_unavailable", times=2)
    assert (await slack_rig.channel.send(TO_ADA, HELLO)).external_ref
    slack_rig.api.fail("chat.postMessage", disconnect=True)
    assert (await slack_rig.channel.send(TO_ADA, HELLO)).external_ref
    assert slack_rig.api.methods().count("chat.postMessage") == 5


async def test_persistent_5xx_is_retry_later(slack_rig: SlackRig) -> None:
    slack_rig.api.fail("chat.postMessage", status=500, times=10)
    with pytest.raises(RetryLater):
        await slack_rig.channel.send(TO_ADA, HELLO)
    assert slack_rig.api.methods().count("chat.postMessage") == 3  # the call and 2 retries


@pytest.mark.parametrize("error", ["account_inactive", "user_not_found", "channel_not_found", "cannot_dm_bot"])
async def test_gone_accounts_mark_the_person_unreachable(slack_rig: SlackRig, error: str) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    slack_rig.api.fail("chat.postMessage", error=error)
    with pytest.raises(Unreachable) as caught:
        await slack_rig.channel.send(TO_ADA, HELLO)
    assert caught.value.reason == error
    found = identity(slack_rig)
    assert not found.reachable
    assert found.unreachable_reason == error
    # Writing to Rapport again makes them reachable (the engine does this on any inbound).
    await slack_rig.dm(ADA, "help")
    assert identity(slack_rig).reachable


async def test_dm_that_cannot_be_opened_is_unreachable(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    slack_rig.api.dm_errors[ADA] = "user_not_found"
    with pytest.raises(Unreachable):
        await slack_rig.channel.send(Address(channel="slack", external_id=ADA), HELLO)
    assert not identity(slack_rig).reachable


async def test_other_errors_are_permanent(slack_rig: SlackRig) -> None:
    slack_rig.api.fail("chat.postMessage", error="invalid_blocks")
    with pytest.raises(PermanentFailure):
        await slack_rig.channel.send(TO_ADA, HELLO)
    with pytest.raises(PermanentFailure):
        await slack_rig.channel.send(Address(channel="telegram", external_id="1"), HELLO)


async def test_messages_keep_their_order_and_pace(slack_rig: SlackRig) -> None:
    slack_rig.channel.transport.pacer = Pacer(per_conversation=20)  # one message each 0.05 s
    await slack_rig.channel.send(TO_ADA, [Outbound(text=f"m{i}") for i in range(3)])
    assert slack_rig.posted_texts(ADA_DM) == ["m0", "m1", "m2"]


def test_rating_buttons_carry_checkin_and_value_and_text_stays_escaped() -> None:
    text = "In March you said “&lt;!channel&gt; slow”. What changed?"
    payload = message_payload(
        Outbound(text=text, choices=tuple(Choice(str(v), v) for v in range(11)), checkin_id=42, kind="question")
    )
    assert payload["text"] == text
    section, actions, stop = payload["blocks"]
    assert section["text"] == {"type": "mrkdwn", "text": text}
    assert stop["elements"][0]["value"] == "42"  # the stop button names the check-in it stops
    assert [e["value"] for e in actions["elements"]] == [f"42:{v}" for v in range(11)]
    assert len({e["action_id"] for e in actions["elements"]}) == 11
    assert "<!channel>" not in json.dumps(payload)
    assert message_payload(Outbound(text="plain")) == {"text": "plain"}


# People -----------------------------------------------------------------------------------------


async def test_roster_is_linked_by_email_with_failures_reported(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", email="ada@example.com")
    await slack_rig.roster("bob", email="bob@example.com")
    await slack_rig.roster("cy", email="cy@example.com")
    slack_rig.api.users_by_email["bob@example.com"] = "U0BOB"
    slack_rig.api.fail("users.lookupByEmail", error="missing_scope")  # the first lookup: ada
    report = await slack_rig.channel.link_people()
    # One lookup failed with an error, one was not found, one was linked; all three are reported.
    assert sorted([*report.linked, *report.not_found, *report.failed]) == ["ada", "bob", "cy"]
    assert report.linked == ["bob"]
    assert report.failed == {"ada": "missing_scope"}
    assert report.not_found == ["cy"]
    with transaction(slack_rig.app.sessions) as s:
        linked = s.execute(select(Person.key, ChannelIdentity.external_id).join(ChannelIdentity.person)).all()
    assert linked == [("bob", "U0BOB")]
    # Lookups are cached: "not found" is not asked again, the failed one is.
    lookups = len(slack_rig.api.calls_to("users.lookupByEmail"))
    again = await slack_rig.channel.link_people()
    assert len(slack_rig.api.calls_to("users.lookupByEmail")) == lookups + 1
    assert again.linked == []
    assert again.not_found == ["ada", "cy"]


# App Home ---------------------------------------------------------------------------------------


async def test_app_home_shows_own_history_escaped_and_stop_resume(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.dm(ADA, "9")
    words = "<!channel> ping <@U0BOSS> see <https://evil.example|docs> & more"
    await slack_rig.dm(ADA, words)
    home = {"type": "app_home_opened", "user": ADA, "channel": ADA_DM, "tab": "home", "event_ts": "1.1"}
    await slack_rig.post(slack_rig.envelope(home))
    view = slack_rig.api.calls_to("views.publish")[-1]
    assert view["user_id"] == ADA
    rendered = json.dumps(view["view"])
    assert "&lt;!channel&gt; ping &lt;@U0BOSS&gt; see &lt;https://evil.example|docs&gt; &amp; more" in rendered
    assert "<!channel>" not in rendered
    assert "<@U0BOSS>" not in rendered
    assert "<https://" not in rendered
    assert "rapport_home_stop" in rendered
    assert '"confirm"' in rendered

    # Stop (Slack's confirmation dialog is on the button): opted out, told so in the DM.
    view_blocks = view["view"]["blocks"] if isinstance(view["view"], dict) else json.loads(view["view"])["blocks"]
    stop = next(b["accessory"] for b in view_blocks if b.get("accessory", {}).get("action_id") == "rapport_home_stop")
    click = {
        "type": "block_actions",
        "user": {"id": ADA, "team_id": "T111"},
        "team": {"id": "T111"},
        "container": {"type": "view", "view_id": "V1"},
        "view": {"id": "V1", "type": "home"},
        "actions": [{"type": "button", "action_id": stop["action_id"], "action_ts": "2.2"}],
    }
    await slack_rig.post(click, form=True)
    with transaction(slack_rig.app.sessions) as s:
        assert s.scalar(select(Person.opted_out_at)) is not None
    assert "will not hear from us" in slack_rig.posted_texts(ADA_DM)[-1]
    assert "rapport_home_resume" in json.dumps(slack_rig.api.calls_to("views.publish")[-1])

    resume = {**click, "actions": [{"type": "button", "action_id": "rapport_home_resume", "action_ts": "3.3"}]}
    await slack_rig.post(resume, form=True)
    with transaction(slack_rig.app.sessions) as s:
        assert s.scalar(select(Person.opted_out_at)) is None
    assert "Welcome back" in slack_rig.posted_texts(ADA_DM)[-1]


async def test_app_home_for_someone_not_on_the_roster(slack_rig: SlackRig) -> None:
    home = {"type": "app_home_opened", "user": "U0NOBODY", "tab": "home"}
    await slack_rig.post(slack_rig.envelope(home))
    view = json.dumps(slack_rig.api.calls_to("views.publish")[-1])
    assert "know who you are" in view
    assert "rapport_home_stop" not in view
    # The Messages tab opening is not a reason to publish anything.
    await slack_rig.post(slack_rig.envelope({**home, "tab": "messages"}))
    assert len(slack_rig.api.calls_to("views.publish")) == 1


async def test_a_roster_entry_known_by_email_is_linked_when_they_write_first(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", email="Ada@Example.com")
    slack_rig.api.users_by_email["ada@example.com"] = ADA
    await slack_rig.dm(ADA, "help")
    assert "know who you are" not in slack_rig.posted_texts(ADA_DM)[-1]
    assert identity(slack_rig).external_id == ADA
    # A stranger is looked up once, then remembered as a stranger for a while.
    await slack_rig.dm("U0NOBODY", "hello")
    await slack_rig.dm("U0NOBODY", "hello again")
    assert [c["user"] for c in slack_rig.api.calls_to("users.info")] == [ADA, "U0NOBODY"]
    assert "know who you are" in slack_rig.posted_texts("D0NOBODY")[-1]


async def test_people_imported_while_running_are_linked_without_a_restart(slack_rig: SlackRig) -> None:
    channel = make_channel(slack_rig.app, slack_rig.api, slack_rig.clock, link_every_seconds=0.01)
    await channel.start()
    try:
        slack_rig.api.users_by_email["ada@example.com"] = ADA
        await slack_rig.roster("ada", email="ada@example.com")
        for _ in range(1000):  # wait for the next linking round (no timing is asserted)
            with transaction(slack_rig.app.sessions) as s:
                if s.scalar(select(ChannelIdentity.id)) is not None:
                    break
            await asyncio.sleep(0.01)
        assert identity(slack_rig).external_id == ADA
    finally:
        await channel.stop()
    assert channel.linker.task is None


async def test_a_long_rate_limit_ends_the_linking_round(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", email="ada@example.com")
    slack_rig.api.users_by_email["ada@example.com"] = ADA
    slack_rig.api.fail("users.lookupByEmail", status=503)  # retried within the call
    report = await slack_rig.channel.link_people()
    assert report.linked == ["ada"]
    for key in ("bob", "cy"):
        await slack_rig.roster(key, email=f"{key}@example.com")
    slack_rig.api.users_by_email["bob@example.com"] = "U0BOB"
    slack_rig.api.fail("users.lookupByEmail", status=429, retry_after=120)
    calls = len(slack_rig.api.calls_to("users.lookupByEmail"))
    report = await slack_rig.channel.link_people()
    # bob was asked once (429); cy was not asked at all; both are reported for the next round.
    assert len(slack_rig.api.calls_to("users.lookupByEmail")) == calls + 1
    assert report.failed == {"bob": "slack rate limit", "cy": "slack rate limit"}


async def test_a_batch_retried_after_failing_part_way_sends_nothing_twice(slack_rig: SlackRig) -> None:
    batch = [Outbound(text="invitation"), Outbound(text="first question")]
    # The first message goes out; the second meets a long rate limit.
    original = slack_rig.api.handlers["chat.postMessage"]
    answered = 0

    def second_is_rate_limited(params: dict) -> dict:
        nonlocal answered
        answered += 1
        if answered == 1:
            slack_rig.api.fail("chat.postMessage", status=429, retry_after=60)
        return original(params)

    slack_rig.api.handlers["chat.postMessage"] = second_is_rate_limited
    with pytest.raises(RetryLater):
        await slack_rig.channel.send(TO_ADA, batch)
    assert slack_rig.posted_texts(ADA_DM) == ["invitation"]
    # The conversation is paused for Slack's 60 s; the dispatcher retries once they are over.
    assert slack_rig.channel.transport.pacer.paused_for(ADA_DM) > 50
    slack_rig.channel.transport.pacer = Pacer(per_conversation=0)  # 60 s later
    sent = await slack_rig.channel.send(TO_ADA, batch)  # the dispatcher's retry
    assert slack_rig.posted_texts(ADA_DM) == ["invitation", "first question"]
    assert sent.external_ref == slack_rig.posted(ADA_DM)[-1]["ts"]
    # The same texts sent again later are a new batch: sent in full.
    await slack_rig.channel.send(TO_ADA, batch)
    assert slack_rig.posted_texts(ADA_DM)[-2:] == ["invitation", "first question"]
