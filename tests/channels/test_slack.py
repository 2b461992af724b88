"""The Slack channel end to end: signed requests over real HTTP into the real Bolt app, the real
slack-sdk client against the loopback Web API fake, and the real engine and database."""

from __future__ import annotations

import json
import logging
import time

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest
from sqlalchemy import func, select

from memory.db import transaction
from memory.models import Answer, ChannelIdentity, Checkin, Person
from tests.channels.slack_kit import SIGNING_SECRET, SlackRig, make_channel, sign

ADA = "U0ADA"
ADA_DM = "D0ADA"


def answers(rig: SlackRig) -> list[Answer]:
    with transaction(rig.app.sessions) as s:
        return list(s.scalars(select(Answer).order_by(Answer.id)))


def checkin_status(rig: SlackRig) -> str:
    with transaction(rig.app.sessions) as s:
        return s.scalars(select(Checkin.status).order_by(Checkin.id.desc())).first() or ""


# Signing --------------------------------------------------------------------------------------


async def test_signed_url_verification_is_answered(slack_rig: SlackRig) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123", "token": "x"})
    resp = await slack_rig.post_raw(body, {"Content-Type": "application/json", **sign(body)})
    assert resp.status == 200
    assert (await resp.json())["challenge"] == "abc123"


async def test_forged_signature_is_refused(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    body = json.dumps(slack_rig.envelope({"type": "message", "user": ADA, "text": "stop", "ts": "1.1",
                                          "channel": ADA_DM, "channel_type": "im"}))  # fmt: skip
    headers = {"Content-Type": "application/json", **sign(body, secret="not-the-secret")}
    resp = await slack_rig.post_raw(body, headers)
    assert resp.status == 401
    assert slack_rig.posted() == []


async def test_stale_timestamp_is_refused(slack_rig: SlackRig) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123"})
    stale = int(time.time()) - 10 * 60
    resp = await slack_rig.post_raw(body, {"Content-Type": "application/json", **sign(body, timestamp=stale)})
    assert resp.status == 401


async def test_tampered_body_and_missing_headers_are_refused(slack_rig: SlackRig) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "abc123"})
    headers = {"Content-Type": "application/json", **sign(body)}
    assert (await slack_rig.post_raw(body.replace("abc", "xyz"), headers)).status == 401
    assert (await slack_rig.post_raw(body, {"Content-Type": "application/json"})).status == 401
    assert SIGNING_SECRET not in json.dumps([c.params for c in slack_rig.api.calls])


# A check-in in a DM ---------------------------------------------------------------------------


async def test_checkin_with_buttons_then_words(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    sent = await slack_rig.invite("ada")

    # The DM is opened with conversations.open and remembered as the identity's address.
    assert slack_rig.api.calls_to("conversations.open")[0]["users"] == ADA
    with transaction(slack_rig.app.sessions) as s:
        assert s.scalar(select(ChannelIdentity.address)) == ADA_DM
    invitation, question = slack_rig.posted(ADA_DM)
    assert "check-in" in invitation["text"]
    assert "blocks" not in invitation
    assert sent.external_ref == question["ts"]
    actions = [b for b in question["blocks"] if b["type"] == "actions"]
    buttons = [e for b in actions if b["block_id"] != "rapport_stop" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == [str(n) for n in range(11)]
    assert actions[-1]["elements"][0]["text"]["text"] == "Stop check-ins"
    assert all(b["value"].split(":")[1] == b["text"]["text"] for b in buttons)

    resp = await slack_rig.click(ADA, value=8)
    assert resp.status == 200
    update = slack_rig.api.calls_to("chat.update")[0]
    assert update["ts"] == question["ts"]
    assert update["channel"] == ADA_DM
    assert "Your answer: *8*" in json.dumps(update["blocks"])
    assert all(b["type"] != "actions" for b in update["blocks"])
    assert "main reason" in slack_rig.posted_texts(ADA_DM)[-1]

    await slack_rig.dm(ADA, "Support answers within the hour & the <b>docs</b> are good")
    assert [(a.question, a.rating, a.text) for a in answers(slack_rig)] == [
        ("recommend", 8, None),
        ("reason", None, "Support answers within the hour & the <b>docs</b> are good"),
    ]
    assert checkin_status(slack_rig) == "completed"
    assert "Thank" in slack_rig.posted_texts(ADA_DM)[-1] or "thank" in slack_rig.posted_texts(ADA_DM)[-1]


async def test_typed_number_and_help_skip_stop(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.dm(ADA, "help")
    assert "skip" in slack_rig.posted_texts(ADA_DM)[-3]
    assert slack_rig.posted_texts(ADA_DM)[-2] == "Your account manager sees your answers."
    await slack_rig.dm(ADA, "7")
    assert answers(slack_rig)[0].rating == 7
    await slack_rig.dm(ADA, "skip")
    assert answers(slack_rig)[1].skipped
    assert checkin_status(slack_rig) == "completed"


async def test_stop_in_the_dm_opts_out(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.dm(ADA, "stop")
    assert "stop" in slack_rig.posted_texts(ADA_DM)[-1].lower()
    await slack_rig.dm(ADA, "yes")
    with transaction(slack_rig.app.sessions) as s:
        assert s.scalar(select(Person.opted_out_at)) is not None
    assert checkin_status(slack_rig) == "opted_out"


async def test_slack_retries_and_duplicate_event_ids_are_processed_once(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    before = len(slack_rig.posted(ADA_DM))
    await slack_rig.dm(ADA, "9", event_id="EvSAME", ts="1800000000.000100")
    after_first = len(slack_rig.posted(ADA_DM))
    retry = await slack_rig.dm(
        ADA, "9", event_id="EvSAME", ts="1800000000.000100", headers={"X-Slack-Retry-Num": "1",
                                                                     "X-Slack-Retry-Reason": "http_timeout"}
    )  # fmt: skip
    assert retry.status == 200
    await slack_rig.dm(ADA, "9", event_id="EvSAME", ts="1800000000.000100")
    assert after_first > before
    assert len(slack_rig.posted(ADA_DM)) == after_first
    assert len(answers(slack_rig)) == 1


async def test_second_click_on_the_same_buttons_counts_once(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    question = slack_rig.last_rating_message(ADA_DM)
    await slack_rig.click(ADA, value=3, message=question)
    posts = len(slack_rig.posted(ADA_DM))
    await slack_rig.click(ADA, value=10, message=question)
    assert len(slack_rig.posted(ADA_DM)) == posts
    assert [a.rating for a in answers(slack_rig)] == [3]
    # The message shows the answer that counts.
    assert ["Your answer: *3*" in json.dumps(u["blocks"]) for u in slack_rig.api.calls_to("chat.update")] == [True]
    # Another Rapport process gets the second click: the database's idempotency key holds.
    other = make_channel(slack_rig.app, slack_rig.api, slack_rig.clock)
    button = next(e for b in question["blocks"] if b["type"] == "actions" for e in b["elements"])
    await other.bolt.async_dispatch(
        AsyncBoltRequest(body=slack_rig.block_actions(ADA, question, button), mode="socket_mode")
    )
    await other.drain()
    assert len(slack_rig.posted(ADA_DM)) == posts
    assert [a.rating for a in answers(slack_rig)] == [3]


async def test_forged_button_values_are_refused(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    question = slack_rig.last_rating_message(ADA_DM)
    button = question["blocks"][1]["elements"][0]
    for value in ("", "abc", "1:2:3", "99999999999999:1", "1:<!channel>", "1:" + "9" * 10):
        resp = await slack_rig.post(slack_rig.block_actions(ADA, question, {**button, "value": value}), form=True)
        assert resp.status == 200
    assert answers(slack_rig) == []
    assert slack_rig.api.calls_to("chat.update") == []
    # A well-formed but out-of-range value is the engine's to refuse, with a clear answer.
    await slack_rig.post(slack_rig.block_actions(ADA, question, {**button, "value": "1:42"}), form=True)
    assert answers(slack_rig) == []
    assert "0" in slack_rig.posted_texts(ADA_DM)[-2]
    assert "10" in slack_rig.posted_texts(ADA_DM)[-2]


async def test_unknown_person_gets_a_polite_reply_and_nothing_is_stored(slack_rig: SlackRig) -> None:
    await slack_rig.dm("U0NOBODY", "9 - great, my phone is 555-0100")
    assert "don't know who you are" in slack_rig.posted_texts("D0NOBODY")[-1]
    with transaction(slack_rig.app.sessions) as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 0
        assert s.scalar(select(func.count()).select_from(Answer)) == 0


async def test_edit_corrects_the_answer_while_open_and_delete_removes_it(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.dm(ADA, "6", ts="1800000000.000200")
    posts = len(slack_rig.posted(ADA_DM))
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": ADA_DM,
        "channel_type": "im",
        "ts": "1800000000.000300",
        "message": {"type": "message", "user": ADA, "text": "8", "ts": "1800000000.000200", "edited": {}},
        "previous_message": {"type": "message", "user": ADA, "text": "6", "ts": "1800000000.000200"},
    }
    await slack_rig.post(slack_rig.envelope(edited))
    assert answers(slack_rig)[0].rating == 8
    assert len(slack_rig.posted(ADA_DM)) == posts + 1  # "updated your answer"
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "channel": ADA_DM,
        "channel_type": "im",
        "ts": "1800000000.000400",
        "deleted_ts": "1800000000.000200",
        "previous_message": {"type": "message", "user": ADA, "text": "8", "ts": "1800000000.000200"},
    }
    resp = await slack_rig.post(slack_rig.envelope(deleted))
    assert resp.status == 200
    # The deleted message takes the answer it carried with it (tests/privacy/test_mydata_channels.py).
    assert answers(slack_rig) == []
    assert "deleted the answer it carried" in slack_rig.posted_texts(ADA_DM)[-1]
    assert len(slack_rig.posted(ADA_DM)) == posts + 2


async def test_bot_channel_and_system_messages_are_ignored(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    posts = len(slack_rig.posted())
    # The bot's own message, another bot's, a channel message, a system subtype, a file without text.
    await slack_rig.dm(ADA, "9", bot_id="BBOT")
    await slack_rig.dm("UOTHERBOT", "9", bot_id="B999", subtype="bot_message")
    await slack_rig.dm("USLACKBOT", "Reminder: answer the check-in")
    await slack_rig.post(slack_rig.envelope({"type": "message", "user": ADA, "text": "9", "ts": "1.2",
                                             "channel": "C0GENERAL", "channel_type": "channel"}))  # fmt: skip
    await slack_rig.dm(ADA, "", subtype="channel_join")
    assert len(slack_rig.posted()) == posts
    assert answers(slack_rig) == []
    # A file with no words gets a clear answer in the DM.
    await slack_rig.dm(ADA, "", subtype="file_share", files=[{"id": "F1", "name": "scan.png"}])
    assert "only read text" in slack_rig.posted_texts(ADA_DM)[-1]
    assert answers(slack_rig) == []


async def test_unknown_events_and_payload_types_are_acknowledged(slack_rig: SlackRig) -> None:
    posts = len(slack_rig.api.calls)
    for payload in (
        slack_rig.envelope({"type": "team_join", "user": {"id": "U9"}}),
        slack_rig.envelope({"type": "brand_new_event_kind"}),
        slack_rig.envelope({"type": "message"}),
        {"type": "event_callback", "event_id": "Ev1", "team_id": "T111"},
        {"type": "something_new", "team_id": "T111"},
    ):
        resp = await slack_rig.post(payload)
        assert resp.status == 200, payload
    view = {"type": "view_submission", "user": {"id": ADA}, "team": {"id": "T111"}, "view": {"callback_id": "x"}}
    assert (await slack_rig.post(view, form=True)).status == 200
    assert [c.method for c in slack_rig.api.calls[posts:] if c.method != "auth.test"] == []


async def test_strangers_editing_or_deleting_and_bot_edits_get_no_answer(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.click(ADA, value=8)
    posts = len(slack_rig.posted())
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel_type": "im",
        "ts": "1800000001.000001",
        "previous_message": {"type": "message", "text": "before", "ts": "1800000000.000900"},
    }
    # Rapport's own rating message, updated after the click: Slack reports it as changed.
    bot_edit = {**changed, "channel": ADA_DM, "message": {"bot_id": "BBOT", "text": "after", "ts": "1.9"}}
    stranger = {
        **changed,
        "channel": "D0NOBODY",
        "message": {"user": "U0NOBODY", "text": "after", "ts": "1800000000.000900"},
    }
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": "D0NOBODY",
        "channel_type": "im",
        "deleted_ts": "1800000000.000900",
        "previous_message": {"user": "U0NOBODY", "text": "after", "ts": "1800000000.000900"},
    }
    for event in (bot_edit, stranger, deleted):
        assert (await slack_rig.post(slack_rig.envelope(event))).status == 200
    assert len(slack_rig.posted()) == posts
    assert [a.rating for a in answers(slack_rig)] == [8]


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        ("", "application/json"),
        ("not json", "application/json"),
        ("[]", "application/json"),
        ("null", "application/json"),
        ('{"type": "event_callback", "event": "oops"}', "application/json"),
        (
            '{"type": "event_callback", "event": {"type": "message", "channel_type": "im", "user": 5}}',
            "application/json",
        ),
        ("payload=not-json", "application/x-www-form-urlencoded"),
        ("payload=%7B%7D", "application/x-www-form-urlencoded"),
        (
            'payload={"type":"block_actions","actions":[{"action_id":"rapport_rating_1"}]}',
            "application/x-www-form-urlencoded",
        ),
    ],
)
async def test_malformed_signed_requests_never_crash(slack_rig: SlackRig, body: str, ctype: str) -> None:
    resp = await slack_rig.post_raw(body, {"Content-Type": ctype, **sign(body)})
    assert resp.status < 500
    assert [c.method for c in slack_rig.api.calls if c.method != "auth.test"] == []


async def test_logs_carry_neither_words_nor_tokens(slack_rig: SlackRig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.dm(ADA, "7 zanzibar-secret-words")
    await slack_rig.dm("U0NOBODY", "zanzibar-secret-words from a stranger")
    # The App Home sends the person's words back to Slack: the API client's request log would show them.
    await slack_rig.post(slack_rig.envelope({"type": "app_home_opened", "user": ADA, "tab": "home"}))
    assert "zanzibar" in str(slack_rig.api.calls_to("views.publish"))
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "zanzibar" not in logged
    assert slack_rig.api.bot_token not in logged
    assert SIGNING_SECRET not in logged


async def test_words_are_stored_as_typed_not_as_slack_escapes_them(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    await slack_rig.dm(ADA, "7 - Q&A <3 is slow", ts="1800000000.000500")
    assert (answers(slack_rig)[0].rating, answers(slack_rig)[0].text) == (7, "Q&A <3 is slow")
    # Slack escapes an edited message's text the same way.
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "channel": ADA_DM,
        "channel_type": "im",
        "ts": "1800000000.000600",
        "message": {"user": ADA, "text": "8 - R&amp;D &lt;3 is slow", "ts": "1800000000.000500"},
        "previous_message": {"user": ADA, "text": "7 - Q&amp;A &lt;3 is slow", "ts": "1800000000.000500"},
    }
    await slack_rig.post(slack_rig.envelope(edited))
    assert (answers(slack_rig)[0].rating, answers(slack_rig)[0].text) == (8, "R&D <3 is slow")
    # Shown again, the words are escaped once: Slack displays them as typed.
    await slack_rig.post(slack_rig.envelope({"type": "app_home_opened", "user": ADA, "tab": "home"}))
    assert "R&amp;D &lt;3 is slow" in json.dumps(slack_rig.api.calls_to("views.publish")[-1])
