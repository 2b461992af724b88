""" "My data" through each channel's real client against the fakes: Slack (DM, App Home, deleted
messages), Telegram, the web link's page and ``rapport chat``."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.app import App
from bot.channels.terminal import TerminalChat
from bot.channels.web import WebChannel
from bot.cli.people import seed_demo
from bot.invites import make_token
from bot.web import make_web_app
from memory import audit, store
from memory.db import transaction
from memory.models import Answer, Outcome, Person, Promise
from prompts.split import units
from tests.channels.slack_kit import SlackRig, dm_of, slack_rig
from tests.channels.telegram_kit import CHAT, T0, add_person, text_update, webhook_client
from tests.channels.test_telegram import started_channel
from tests.fakes.telegram_api import FakeTelegramAPI, telegram_api
from tests.helpers import seed
from tests.history_builder import History, months

__all__ = ["slack_rig", "telegram_api"]  # the channels' fixtures, used here

ADA = "U0ADA"
ADA_DM = dm_of(ADA)
WORDS = "<!channel> ping <@U0BOSS> *bold* & Zq7unique words"


def answer_ids(app: App, person: str) -> dict[str, int]:
    """(text or rating) -> id of the person's answers."""
    with transaction(app.sessions) as s:
        pid = s.scalar(select(Person.id).where(Person.key == person))
        return {(a.text or str(a.rating)): a.id for a in s.scalars(select(Answer).where(Answer.person_id == pid))}


def deleted_event(user: str, ts: str) -> dict[str, object]:
    return {"type": "message", "subtype": "message_deleted", "hidden": True, "channel": dm_of(user),
            "channel_type": "im", "ts": "1800009999.000001", "deleted_ts": ts,
            "previous_message": {"type": "message", "user": user, "text": "x", "ts": ts}}  # fmt: skip


# Slack -------------------------------------------------------------------------------------------


async def slack_answers(rig: SlackRig) -> str:
    """Ada answers a check-in in her DM; returns the ts of the message that carried her reason."""
    await rig.roster("ada", slack_user=ADA)
    await rig.invite("ada")
    await rig.dm(ADA, "9")
    ts = rig.next_ts()
    await rig.dm(ADA, WORDS, ts=ts)
    return ts


async def test_slack_dm_shows_escaped_words_and_deletes_after_a_confirmation(slack_rig: SlackRig) -> None:
    await slack_answers(slack_rig)
    reason = answer_ids(slack_rig.app, "ada")[WORDS]
    await slack_rig.dm(ADA, "my data")
    shown = slack_rig.posted_texts(ADA_DM)[-1]
    assert f"#{reason}" in shown
    assert "&lt;!channel&gt; ping &lt;@U0BOSS&gt;" in shown
    assert "&amp; Zq7unique" in shown
    assert "<!channel>" not in shown
    assert "<@U0BOSS>" not in shown
    assert '"delete N"' in shown, "Slack would take a leading slash for a slash command"

    await slack_rig.dm(ADA, f"delete {reason}")
    assert f'"delete {reason} yes"' in slack_rig.posted_texts(ADA_DM)[-1]
    assert reason in answer_ids(slack_rig.app, "ada").values()
    await slack_rig.dm(ADA, f"delete {reason} yes")
    assert "is deleted" in slack_rig.posted_texts(ADA_DM)[-1]
    assert reason not in answer_ids(slack_rig.app, "ada").values()


async def test_a_deleted_slack_message_deletes_its_answer_once(slack_rig: SlackRig) -> None:
    ts = await slack_answers(slack_rig)
    reason = answer_ids(slack_rig.app, "ada")[WORDS]
    before = len(slack_rig.posted_texts(ADA_DM))
    event = deleted_event(ADA, ts)
    await slack_rig.post(slack_rig.envelope(event, event_id="EvDEL1"))
    assert reason not in answer_ids(slack_rig.app, "ada").values()
    assert "deleted the answer it carried" in slack_rig.posted_texts(ADA_DM)[-1]
    # Slack delivers the same event again, and then under a new id: nothing more happens.
    await slack_rig.post(slack_rig.envelope(event, event_id="EvDEL1"))
    await slack_rig.post(slack_rig.envelope(event, event_id="EvDEL2"))
    assert len(slack_rig.posted_texts(ADA_DM)) == before + 1
    with transaction(slack_rig.app.sessions) as s:
        deletes = [e for e in audit.entries(s) if e.action == "answer.delete"]
        assert [(e.detail["answer"], e.detail["via"]) for e in deletes] == [(reason, "message_deleted")]
    # The rating, carried by another message, stays.
    assert answer_ids(slack_rig.app, "ada")["9"]


async def test_slack_app_home_deletes_one_answer_with_its_button(slack_rig: SlackRig) -> None:
    await slack_answers(slack_rig)
    reason = answer_ids(slack_rig.app, "ada")[WORDS]
    await slack_rig.post(slack_rig.envelope({"type": "app_home_opened", "user": ADA, "tab": "home"}))
    view = slack_rig.api.calls_to("views.publish")[-1]["view"]
    blocks = (json.loads(view) if isinstance(view, str) else view)["blocks"]
    buttons = [b["accessory"] for b in blocks if b.get("accessory", {}).get("action_id") == "rapport_home_delete"]
    assert [b["value"] for b in buttons] == [str(i) for i in sorted(answer_ids(slack_rig.app, "ada").values())]
    button = next(b for b in buttons if b["value"] == str(reason))
    assert button["confirm"]["confirm"]["text"] == "Delete"
    click = {"type": "block_actions", "user": {"id": ADA, "team_id": "T111"}, "team": {"id": "T111"},
             "container": {"type": "view", "view_id": "V1"}, "view": {"id": "V1", "type": "home"},
             "actions": [{"type": "button", "action_id": "rapport_home_delete", "value": str(reason),
                          "action_ts": "2.2"}]}  # fmt: skip
    await slack_rig.post(click, form=True)
    assert reason not in answer_ids(slack_rig.app, "ada").values()
    assert "is deleted" in slack_rig.posted_texts(ADA_DM)[-1]
    republished = json.dumps(slack_rig.api.calls_to("views.publish")[-1])
    assert "Zq7unique" not in republished
    # A forged value (someone else's answer, or not a number) deletes nothing.
    await slack_rig.roster("bob", slack_user="U0BOB")
    with transaction(slack_rig.app.sessions) as s:
        h = History(s)
        h.checkin(h.person_by_key("bob"), "customers", T0, rating=4, text="Bob's own words")
    bobs = answer_ids(slack_rig.app, "bob")["Bob's own words"]
    for value in (str(bobs), "1; drop", ""):
        forged = {**click, "actions": [{**click["actions"][0], "value": value}]}  # type: ignore[index]
        await slack_rig.post(forged, form=True)
    assert bobs in answer_ids(slack_rig.app, "bob").values()


# Telegram ----------------------------------------------------------------------------------------


async def test_telegram_mydata_is_split_under_the_limit_and_deletes(
    make_app: Callable[..., App], telegram_api: FakeTelegramAPI
) -> None:
    app = make_app()
    add_person(app)
    with transaction(app.sessions) as s:
        h = History(s)
        ann = h.person_by_key("ann")
        for i in range(12):
            h.checkin(ann, "customers", T0 - months(i), rating=7, text=f"round {i:02d} <i>&</i> " + "long words " * 80)
    channel = await started_channel(app, telegram_api, mode="webhook")
    client = await webhook_client(channel)
    try:
        assert await client.post("/telegram/webhook", json=text_update("/mydata", update_id=1),
                                 headers={"X-Telegram-Bot-Api-Secret-Token": "webhook-secret-for-tests"})  # fmt: skip
        sent = telegram_api.calls_to("sendMessage")
        assert len(sent) > 1
        assert all(units(m["text"]) <= 4096 for m in sent)
        assert all(m.get("parse_mode") == "HTML" for m in sent)
        joined = "\n".join(m["text"] for m in sent)
        assert all(f"round {i:02d} &lt;i&gt;&amp;&lt;/i&gt;" in joined for i in range(12))
        assert "<i>" not in joined
        assert '"/delete N"' in joined
        target = answer_ids(app, "ann")["round 03 <i>&</i> " + "long words " * 80]
        for update_id, text in ((2, f"/delete {target}"), (3, f"/delete@RapportBot {target} yes")):
            await client.post("/telegram/webhook", json=text_update(text, update_id=update_id),
                              headers={"X-Telegram-Bot-Api-Secret-Token": "webhook-secret-for-tests"})  # fmt: skip
        assert "is deleted" in telegram_api.sent_texts(CHAT)[-1]
        assert target not in answer_ids(app, "ann").values()
    finally:
        await client.close()
        await channel.stop()


# The web link ------------------------------------------------------------------------------------

KEY = b"k" * 32
NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
FIELDS = re.compile(r'name="(nonce|csrf)" value="([^"]+)"')


async def test_the_web_page_shows_corrects_and_deletes_own_answers(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed_demo(app, NOW)
    with transaction(app.sessions) as s:
        h = History(s)
        h.checkin(h.person_by_key("demo-dana"), "customers", NOW - months(1), rating=6,
                  text="<script>alert(1)</script> Zq8web words")  # fmt: skip
        pid = store.require_person(s, "demo-dana").id
    target = answer_ids(app, "demo-dana")["<script>alert(1)</script> Zq8web words"]
    channel = WebChannel(service=app.service, config=app.config, key=KEY, clock=lambda: NOW,
                         base="http://rapport.test")  # fmt: skip
    token = make_token(person_id=pid, key=KEY, now=NOW, ttl=dt.timedelta(days=1))
    mine = f"/c/{token}/mine"
    async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as client:
        page = await client.get(f"/c/{token}")
        assert mine in await page.text()
        body = await (await client.get(mine)).text()
        assert "&lt;script&gt;alert(1)&lt;/script&gt; Zq8web words" in body
        assert "<script>" not in body
        fields = dict(FIELDS.findall(body))

        confirm = await (await client.get(f"{mine}?delete={target}")).text()
        assert f"Delete answer #{target} for good?" in confirm
        bad = await client.post(mine, data={"nonce": fields["nonce"], "csrf": "forged", "answer": str(target),
                                            "action": "delete"}, allow_redirects=False)  # fmt: skip
        assert bad.status == 403
        assert target in answer_ids(app, "demo-dana").values()

        fixed = await client.post(mine, data={**fields, "answer": str(target), "action": "correct",
                                              "text": "Zq8web corrected"}, allow_redirects=False)  # fmt: skip
        assert fixed.status == 303
        assert "Zq8web corrected" in await (await client.get(fixed.headers["Location"])).text()
        assert "Zq8web corrected" in answer_ids(app, "demo-dana")

        gone = await client.post(mine, data={**fields, "answer": str(target), "action": "delete"},
                                 allow_redirects=False)  # fmt: skip
        assert gone.status == 303
        after = await (await client.get(gone.headers["Location"])).text()
        assert "the answer is deleted" in after
        assert "Zq8web" not in after
        assert target not in answer_ids(app, "demo-dana").values()
    with transaction(app.sessions) as s:
        vias = [(e.action, e.detail["via"]) for e in audit.entries(s) if e.action.startswith("answer.")]
        assert sorted(vias) == [("answer.correct", "web"), ("answer.delete", "web")]


async def test_the_web_page_shows_corrects_and_deletes_own_comments_on_promises(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed_demo(app, NOW)
    with transaction(app.sessions) as s:
        h = History(s)
        dana = h.person_by_key("demo-dana")
        checkin = h.checkin(dana, "customers", NOW - months(1), rating=6, text="Zq8web answer")
        promise = Promise(person_id=dana.id, text="<i>call</i> back", made_at=NOW - months(2), status="partly",
                          source="cli", created_at=NOW - months(2))  # fmt: skip
        s.add(promise)
        s.flush()
        outcome = Outcome(promise_id=promise.id, checkin_id=checkin.id, verdict="partly",
                          comment="<script>alert(2)</script> Zq8comment", recorded_at=NOW - months(1))  # fmt: skip
        s.add(outcome)
        s.flush()
        ref, pid = f"p{outcome.id}", dana.id
    channel = WebChannel(service=app.service, config=app.config, key=KEY, clock=lambda: NOW,
                         base="http://rapport.test")  # fmt: skip
    token = make_token(person_id=pid, key=KEY, now=NOW, ttl=dt.timedelta(days=1))
    mine = f"/c/{token}/mine"

    def comment() -> str | None:
        with transaction(app.sessions) as s:
            return s.get(Outcome, int(ref[1:])).comment  # type: ignore[union-attr]

    async with TestClient(TestServer(make_web_app(routes=channel.routes()))) as client:
        body = await (await client.get(mine)).text()
        assert f'#{ref} About "&lt;i&gt;call&lt;/i&gt; back"' in body
        assert "You said partly kept — &lt;script&gt;alert(2)&lt;/script&gt; Zq8comment" in body
        assert "<script>" not in body
        assert "<i>" not in body
        fields = dict(FIELDS.findall(body))
        confirm = await (await client.get(f"{mine}?delete={ref}")).text()
        assert f"Delete your comment #{ref} for good?" in confirm

        fixed = await client.post(mine, data={**fields, "answer": ref, "action": "correct", "text": "Zq8fixed"},
                                  allow_redirects=False)  # fmt: skip
        assert fixed.status == 303
        assert "You said partly kept — Zq8fixed" in await (await client.get(fixed.headers["Location"])).text()
        assert comment() == "Zq8fixed"

        gone = await client.post(mine, data={**fields, "answer": ref, "action": "delete"}, allow_redirects=False)
        after = await (await client.get(gone.headers["Location"])).text()
        assert "the comment is deleted" in after
        assert "Zq8fixed" not in after
        assert f"#{ref} About" in after, "the verdict stays"
        assert comment() is None
        other = await client.post(mine, data={**fields, "answer": "p999999", "action": "delete"},
                                  allow_redirects=False)  # fmt: skip
        assert other.headers["Location"].endswith("done=missing")
    with transaction(app.sessions) as s:
        vias = [(e.action, e.detail["via"]) for e in audit.entries(s) if e.action.startswith("outcome.")]
        assert sorted(vias) == [("outcome.correct", "web"), ("outcome.delete", "web")]


# rapport chat ------------------------------------------------------------------------------------


def test_rapport_chat_shows_and_deletes_own_answers(make_app: Callable[..., App]) -> None:
    app = make_app()
    seed(app)
    with transaction(app.sessions) as s:
        h = History(s)
        h.checkin(h.person_by_key("ann"), "customers", T0 - months(3), rating=5, text="Zq9terminal \x1b[31mred")
    target = answer_ids(app, "ann")["Zq9terminal \x1b[31mred"]
    out = io.StringIO()
    chat = TerminalChat(service=app.service, person="ann", program="customers", clock=lambda: T0,
                        write=lambda line: print(line, file=out))  # fmt: skip
    chat.run(iter(["my data", f"delete {target} yes", "8"]))
    text = out.getvalue()
    assert f"#{target}" in text
    assert "Zq9terminal \\x1b[31mred" in text, "controls are shown, never run"
    assert "\x1b" not in text
    assert f"#{target} is deleted" in text
    assert sorted(answer_ids(app, "ann")) == ["5", "8"], "the reason deleted, its rating kept, the check-in went on"
