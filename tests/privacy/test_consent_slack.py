"""Consent on Slack, over signed HTTP into the real Bolt app and slack-sdk client against the
loopback Web API fake: the stop button under a question and on the App Home, who sees the
answers, and owners acting only on their own people (typed, by mention, and by the form)."""

from __future__ import annotations

import json

from sqlalchemy import select

import prompts
from bot.engine.owners import link_owner
from memory import store
from memory.db import transaction
from memory.models import Promise
from tests.channels.slack_kit import SlackRig, dm_of
from tests.channels.test_slack_promise_shortcut import _shortcut, _submission
from tests.privacy.test_consent_telegram import ANONYMOUS, ATTRIBUTED

ADA = "U0ADA"
LEAD = "U0LEAD"


def mrkdwn(template: str, /, **ctx: object) -> str:
    return prompts.render(template, "slack_mrkdwn", **ctx)


def opted_out(rig: SlackRig, key: str = "ada") -> bool:
    with transaction(rig.app.sessions) as s:
        return store.require_person(s, key).opted_out_at is not None


def stop_button(message: dict) -> dict:  # type: ignore[type-arg]
    (block,) = [b for b in message["blocks"] if b.get("block_id") == "rapport_stop"]
    (button,) = block["elements"]
    return button  # type: ignore[no-any-return]


async def test_the_stop_button_under_a_question_asks_to_confirm(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    question = slack_rig.last_rating_message(dm_of(ADA))
    button = stop_button(question)
    assert button["text"]["text"] == "Stop check-ins"

    await slack_rig.post(slack_rig.block_actions(ADA, question, button), form=True)
    assert slack_rig.posted_texts(dm_of(ADA))[-1] == mrkdwn("person/confirm_stop")
    assert not opted_out(slack_rig), "a click is not a decision: the conversation asks first"
    # A second click on the same button asks nothing more and never confirms by itself.
    await slack_rig.post(slack_rig.block_actions(ADA, question, button), form=True)
    assert slack_rig.posted_texts(dm_of(ADA)).count(mrkdwn("person/confirm_stop")) == 1
    assert not opted_out(slack_rig)

    await slack_rig.dm(ADA, "yes")
    assert slack_rig.posted_texts(dm_of(ADA))[-1] == mrkdwn("person/opted_out")
    assert opted_out(slack_rig)
    # Nothing more reaches them: a message gets the one reminder that they stopped.
    await slack_rig.dm(ADA, "8")
    assert slack_rig.posted_texts(dm_of(ADA))[-1] == mrkdwn("person/opted_out_reminder")


async def test_text_questions_carry_the_stop_button_too(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    rating = slack_rig.last_rating_message(dm_of(ADA))
    await slack_rig.click(ADA, value=8)
    text_question = slack_rig.posted(dm_of(ADA))[-1]
    assert [b["block_id"] for b in text_question["blocks"] if b["type"] == "actions"] == ["rapport_stop"]
    assert slack_rig.last_rating_message(dm_of(ADA))["ts"] == rating["ts"], "a text question is no rating question"

    await slack_rig.post(slack_rig.block_actions(ADA, text_question, stop_button(text_question)), form=True)
    assert slack_rig.posted_texts(dm_of(ADA))[-1] == mrkdwn("person/confirm_stop")
    await slack_rig.dm(ADA, "no")
    assert slack_rig.posted_texts(dm_of(ADA))[-1] == text_question["text"], "the text question comes back"
    assert not opted_out(slack_rig)


async def test_yes_and_no_buttons_answer_the_stop_question_once(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    dm = dm_of(ADA)

    async def ask_to_stop() -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
        await slack_rig.dm(ADA, "stop")
        message = slack_rig.last_message_with(dm, "rapport_confirm")
        assert message["text"] == mrkdwn("person/confirm_stop")
        (block,) = [b for b in message["blocks"] if b["type"] == "actions"]
        yes, no = block["elements"]
        return message, yes, no

    message, yes, no = await ask_to_stop()
    checkin = yes["value"].split(":")[0]
    assert [(b["text"]["text"], b["value"]) for b in (yes, no)] == [("Yes", f"{checkin}:yes"), ("No", f"{checkin}:no")]
    # "No" carries on, as a typed "no"; a second click on the same message does nothing more.
    await slack_rig.post(slack_rig.block_actions(ADA, message, no), form=True)
    await slack_rig.post(slack_rig.block_actions(ADA, message, no), form=True)
    assert slack_rig.posted_texts(dm).count(mrkdwn("person/stop_cancelled")) == 1
    assert not opted_out(slack_rig)
    (update,) = [c.params for c in slack_rig.api.calls if c.method == "chat.update"]
    assert "Your answer: *No*" in str(update["text"]), "the buttons are replaced by the answer"

    # An old "stop?" answered by typing: its Yes, clicked late, stops nothing.
    stale, stale_yes, _ = await ask_to_stop()
    await slack_rig.dm(ADA, "no")
    await slack_rig.post(slack_rig.block_actions(ADA, stale, stale_yes), form=True)
    assert not opted_out(slack_rig)
    assert mrkdwn("person/opted_out") not in slack_rig.posted_texts(dm)

    # "Yes" stops, once; a forged value does nothing.
    message, yes, _ = await ask_to_stop()
    await slack_rig.post(slack_rig.block_actions(ADA, message, {**yes, "value": f"{checkin}:maybe"}), form=True)
    assert not opted_out(slack_rig)
    await slack_rig.post(slack_rig.block_actions(ADA, message, yes), form=True)
    await slack_rig.post(slack_rig.block_actions(ADA, message, yes), form=True)
    assert opted_out(slack_rig)
    assert slack_rig.posted_texts(dm).count(mrkdwn("person/opted_out")) == 1


async def test_a_stop_button_from_a_stranger_or_with_a_forged_value_stops_nobody(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.invite("ada")
    question = slack_rig.last_rating_message(dm_of(ADA))
    forged = {**stop_button(question), "value": "12; DROP TABLE people"}
    await slack_rig.post(slack_rig.block_actions(ADA, question, forged), form=True)
    await slack_rig.post(slack_rig.block_actions("U0EVE", question, stop_button(question)), form=True)
    assert not opted_out(slack_rig)
    assert mrkdwn("person/confirm_stop") not in slack_rig.posted_texts()


async def test_the_app_home_stop_button_opts_out_and_resume_opts_back_in(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.post(slack_rig.envelope({"type": "app_home_opened", "user": ADA, "tab": "home"}))
    view = slack_rig.api.calls_to("views.publish")[-1]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    home_stop = next(b["accessory"] for b in view["blocks"] if b.get("accessory", {}).get("action_id"))
    assert home_stop["action_id"] == "rapport_home_stop"
    assert "confirm" in home_stop, "Slack's own dialog confirms the stop"
    message = {"ts": "1.1", "channel": dm_of(ADA), "text": "", "blocks": []}
    await slack_rig.post(slack_rig.block_actions(ADA, message, {**home_stop, "value": ""}), form=True)
    assert opted_out(slack_rig)
    resume = {"action_id": "rapport_home_resume", "value": "", "text": {"type": "plain_text", "text": "Resume"}}
    await slack_rig.post(slack_rig.block_actions(ADA, message, resume), form=True)
    assert not opted_out(slack_rig)


async def test_the_invitation_and_help_say_who_sees_the_answers(slack_rig: SlackRig) -> None:
    await slack_rig.roster("ada", slack_user=ADA)
    await slack_rig.roster("eve", slack_user="U0EVE", program="employees")
    await slack_rig.invite("ada")
    await slack_rig.invite("eve", program="employees")
    for user, sentence, other in ((ADA, ATTRIBUTED, ANONYMOUS), ("U0EVE", ANONYMOUS, ATTRIBUTED)):
        invitation = slack_rig.posted_texts(dm_of(user))[0]
        assert sentence in invitation
        assert other not in invitation
        await slack_rig.dm(user, "help")
        assert sentence in slack_rig.posted_texts(dm_of(user))[-2]  # help, then the pending question


async def _two_owners(rig: SlackRig) -> None:
    await rig.roster("ada", slack_user=ADA, email="ada@example.com")
    await rig.roster("bob", slack_user="U0BOB", email="bob@example.com")
    with transaction(rig.app.sessions) as s:
        lead = store.get_or_create_owner(s, "lead@example.com", rig.clock())
        other = store.get_or_create_owner(s, "other@example.com", rig.clock())
        link_owner(s, owner=lead, channel="slack", external_id=LEAD, now=rig.clock())
        store.require_person(s, "ada").owner_id = lead.id
        store.require_person(s, "bob").owner_id = other.id


async def test_an_owner_cannot_act_on_someone_else_s_person(slack_rig: SlackRig) -> None:
    await _two_owners(slack_rig)

    async def lead_says(text: str, *, markup: bool = False) -> str:
        await slack_rig.dm(LEAD, text, markup=markup)
        return slack_rig.posted_texts(dm_of(LEAD))[-1]

    assert await lead_says("promise @bob a pay rise") == mrkdwn("owner/promise_unknown_person", ref="bob")
    assert await lead_says("promise @zed a pay rise") == mrkdwn("owner/promise_unknown_person", ref="zed")
    mentioned = await lead_says("promise <@U0BOB> a pay rise", markup=True)
    assert mentioned == mrkdwn("owner/promise_unknown_person", ref="U0BOB")
    unknown_mention = await lead_says("promise <@U0ZED> a pay rise", markup=True)
    assert unknown_mention == mrkdwn("owner/promise_unknown_person", ref="U0ZED")

    # The form: someone else's person is refused as an unknown name, and never prefilled.
    await slack_rig.post(_shortcut(LEAD, "I want a pay rise", author="U0BOB"), form=True)
    view = slack_rig.api.calls_to("views.open")[-1]["view"]
    view = json.loads(view) if isinstance(view, str) else view
    person_input = next(b["element"] for b in view["blocks"] if b.get("block_id") == "person")
    assert "initial_value" not in person_input
    answers = []
    for n, person in enumerate(("bob", "zed")):
        resp = await slack_rig.post(_submission(LEAD, person=person, text="A pay rise", due=None,
                                                view_id=f"V0F{n}"), form=True)  # fmt: skip
        answers.append((await resp.json())["errors"]["person"])
    assert answers == [prompts.render("owner/promise_unknown_person", "plain", ref=r) for r in ("bob", "zed")]

    assert "Noted" in await lead_says("promise @ada a named contact")
    with transaction(slack_rig.app.sessions) as s:
        (promise,) = s.scalars(select(Promise)).all()
        assert promise.person_id == store.require_person(s, "ada").id
