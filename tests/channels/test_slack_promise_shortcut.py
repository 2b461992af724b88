"""The "Record a promise" message shortcut, over signed HTTP against the real ``SlackChannel``:
an owner gets the form (prefilled), the submission records the promise through the same code as
the ``promise @person`` chat command, and nobody else gets owner powers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from bot.channels.slack.blocks import PROMISE_SHORTCUT
from bot.engine.owners import link_owner
from memory import db, store
from memory.models import Promise
from tests.channels.slack_kit import TEAM, SlackRig, slack_escape

ROOT = Path(__file__).resolve().parents[2]

JSON = dict[str, Any]
OWNER = "U0LEAD"


async def _setup(rig: SlackRig) -> None:
    await rig.roster("dana", slack_user="U0DANA", email="dana@example.com")
    with db.transaction(rig.app.sessions) as s:
        owner = store.get_or_create_owner(s, "lead@example.com", rig.clock())
        link_owner(s, owner=owner, channel="slack", external_id=OWNER, now=rig.clock())
        # Owners act only on their own people: dana is the lead's.
        store.require_person(s, "dana").owner_id = owner.id


def _shortcut(user: str, text: str, *, author: str = "U0DANA") -> JSON:
    return {
        "type": "message_action",
        "token": "verification_token",
        "action_ts": "1800000000.100",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "team_id": TEAM, "name": "someone"},
        "channel": {"id": "C0SUPPORT", "name": "support"},
        "callback_id": PROMISE_SHORTCUT,
        "trigger_id": "1337.42.abcdef",
        "message_ts": "1800000000.000009",
        "message": {"type": "message", "user": author, "text": slack_escape(text), "ts": "1800000000.000009"},
        "response_url": "https://hooks.slack.invalid/app-actions/T111/1/x",
    }


def _submission(user: str, *, person: str, text: str, due: str | None, view_id: str = "V0FORM") -> JSON:
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "team_id": TEAM, "name": "someone"},
        "api_app_id": "A111",
        "token": "verification_token",
        "trigger_id": "1337.43.abcdef",
        "view": {
            "id": view_id,
            "team_id": TEAM,
            "type": "modal",
            "callback_id": PROMISE_SHORTCUT,
            "private_metadata": "",
            "blocks": [],
            "state": {
                "values": {
                    "person": {"value": {"type": "plain_text_input", "value": person}},
                    "promise": {"value": {"type": "plain_text_input", "value": text}},
                    "due": {"value": {"type": "datepicker", "selected_date": due}},
                }
            },
        },
    }


def _opened(rig: SlackRig) -> JSON:
    calls = rig.api.calls_to("views.open")
    assert calls, rig.api.methods()
    view = calls[-1]["view"]
    return view if isinstance(view, dict) else json.loads(view)


def _promises(rig: SlackRig) -> list[Promise]:
    with db.transaction(rig.app.sessions) as s:
        rows = list(s.scalars(select(Promise)))
        s.expunge_all()
        return rows


async def test_an_owner_records_a_promise_from_a_message(slack_rig: SlackRig) -> None:
    await _setup(slack_rig)
    words = "Can we get a dedicated contact? <!channel> & *soon*"
    resp = await slack_rig.post(_shortcut(OWNER, words), form=True)
    assert resp.status == 200
    assert slack_rig.api.calls_to("views.open")[-1]["trigger_id"] == "1337.42.abcdef"
    view = _opened(slack_rig)
    assert view["callback_id"] == PROMISE_SHORTCUT
    inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert inputs["person"]["initial_value"] == "dana"  # the message's author, by roster id
    assert inputs["promise"]["initial_value"] == words  # as typed, Slack's escaping undone
    assert inputs["due"]["type"] == "datepicker"

    resp = await slack_rig.post(
        _submission(OWNER, person="dana@example.com", text="A dedicated contact <!channel> *soon*", due="2099-03-31"),
        form=True,
    )
    answer = await resp.json()
    assert answer["response_action"] == "update"
    shown = answer["view"]["blocks"][0]["text"]
    assert shown["type"] == "plain_text"
    assert "Noted" in shown["text"]
    assert "31 March 2099" in shown["text"]
    (promise,) = _promises(slack_rig)
    assert promise.text == "A dedicated contact <!channel> *soon*"
    assert promise.due_at is not None
    assert promise.due_at.replace(tzinfo=dt.UTC) == dt.datetime(2099, 3, 31, 12, tzinfo=dt.UTC)
    assert promise.source == "slack"
    # The same form sent twice records once.
    again = await slack_rig.post(_submission(OWNER, person="dana", text="A dedicated contact", due=None), form=True)
    assert (await again.json())["response_action"] == "clear"
    assert len(_promises(slack_rig)) == 1
    assert slack_rig.posted() == []  # nothing was taken for an answer or posted anywhere


async def test_mistakes_are_shown_under_the_field_and_nothing_is_recorded(slack_rig: SlackRig) -> None:
    await _setup(slack_rig)
    resp = await slack_rig.post(_submission(OWNER, person="nobody", text="Something", due=None), form=True)
    answer = await resp.json()
    assert answer["response_action"] == "errors"
    assert "don't know anyone" in answer["errors"]["person"]
    resp = await slack_rig.post(_submission(OWNER, person="dana", text="   ", due=None, view_id="V0FORM2"), form=True)
    answer = await resp.json()
    assert answer["response_action"] == "errors"
    assert "promise @person" in answer["errors"]["promise"]
    assert _promises(slack_rig) == []
    # A refused form can be corrected and sent again (its id is not used up).
    resp = await slack_rig.post(_submission(OWNER, person="dana", text="A call back", due=None), form=True)
    assert (await resp.json())["response_action"] == "update"
    (promise,) = _promises(slack_rig)
    assert promise.due_at is None
    # A malformed form is closed without recording anything.
    broken = _submission(OWNER, person="dana", text="x", due="2026-02-30", view_id="V0FORM3")
    resp = await slack_rig.post(broken, form=True)
    assert resp.status == 200
    assert len(_promises(slack_rig)) == 1


async def test_people_who_are_not_owners_get_a_notice_and_record_nothing(slack_rig: SlackRig) -> None:
    await _setup(slack_rig)
    await slack_rig.invite("dana")  # an open check-in: a stray form must not become an answer
    posted = len(slack_rig.posted())
    resp = await slack_rig.post(_shortcut("U0DANA", "promise me a pony"), form=True)
    assert resp.status == 200
    view = _opened(slack_rig)
    assert "submit" not in view
    assert all(b["type"] != "input" for b in view["blocks"])
    assert "Only owners" in view["blocks"][0]["text"]["text"]
    resp = await slack_rig.post(_submission("U0DANA", person="dana", text="a pony", due=None), form=True)
    answer = await resp.json()
    assert answer["response_action"] == "update"
    assert "Only owners" in answer["view"]["blocks"][0]["text"]["text"]
    assert _promises(slack_rig) == []
    assert len(slack_rig.posted()) == posted
    with db.transaction(slack_rig.app.sessions) as s:
        (checkin,) = store.open_checkins(s, store.require_person(s, "dana").id)
        assert checkin.answers == []


async def test_an_unsigned_shortcut_is_refused(slack_rig: SlackRig) -> None:
    await _setup(slack_rig)
    resp = await slack_rig.post(_shortcut(OWNER, "x"), form=True, headers={"X-Slack-Signature": "v0=forged"})
    assert resp.status == 401
    assert slack_rig.api.calls_to("views.open") == []


def test_the_manifest_declares_the_shortcut() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text())
    (shortcut,) = manifest["features"]["shortcuts"]
    assert shortcut["callback_id"] == PROMISE_SHORTCUT
    assert shortcut["type"] == "message"
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]
