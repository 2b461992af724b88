"""The promise loop end to end: promise -> next check-in asks after the core questions ->
outcome and status -> the owner's digest shows it. And owners recording promises from chat."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.digests import render_digest
from bot.engine.owners import link_owner
from bot.engine.ports import Inbound
from memory import db, promises, store
from memory.digests import build_digest
from memory.models import Outcome, Owner, Promise
from tests.helpers import T0, Conversation, seed

LATER = T0 + dt.timedelta(days=180)


def _promise(app, person: str = "ann", due: dt.datetime | None = T0 + dt.timedelta(days=30), **kw) -> int:
    with db.transaction(app.sessions) as s:
        who = store.require_person(s, person)
        return promises.add_promise(s, person=who, owner=who.owner, text="a dedicated contact", now=T0,
                                    due_at=due, **kw).id  # fmt: skip


def test_promise_is_asked_after_the_core_questions_and_lands_in_the_digest(make_app) -> None:
    app = make_app()
    seed(app)
    chat = Conversation(app)
    chat.start(T0 - dt.timedelta(days=1))
    chat.say("9", T0)
    chat.say("Support answers within the hour.", T0)
    pid = _promise(app)

    chat = Conversation(app)
    first = chat.start(LATER)
    assert "made you a promise" not in chat.texts(first)  # core questions first
    chat.say("4", LATER)
    replies = chat.say("Support takes days to reply now.", LATER)
    if "What changed" in chat.texts(replies):
        replies = chat.say("Our account manager left.", LATER)
    asked = chat.texts(replies)
    assert "In March 2026 we made you a promise: “a dedicated contact”. Has that happened?" in asked
    assert [c.label for c in replies[-1].choices] == ["Yes", "Partly", "No"]
    assert "That's everything" not in asked

    end = chat.say("partly, only by email", LATER)
    assert "only in part" in chat.texts(end)
    assert "That's everything" in chat.texts(end)

    with db.transaction(app.sessions) as s:
        promise = s.get(Promise, pid)
        assert promise is not None
        assert promise.status == "partly"
        (outcome,) = s.scalars(select(Outcome)).all()
        assert (outcome.verdict, outcome.comment, outcome.checkin_id) == ("partly", "only by email", chat.checkin_id)
        digest = build_digest(s, owner="owner@example.com", since=LATER - dt.timedelta(days=7),
                              until=LATER + dt.timedelta(hours=1))  # fmt: skip
        stats = promises.owner_stats(promises.list_promises(s, now=LATER), promises.owner_keys(s), LATER)
    (item,) = digest.outcomes
    assert (item.person, item.verdict, item.comment) == ("ann", "partly", "only by email")
    assert digest.changes[0].person == "ann"
    assert digest.changes[0].old_rating == 9
    assert digest.changes[0].new_rating == 4
    assert "1 partly kept" in digest.summary
    text = render_digest(digest, "text").body
    assert "a dedicated contact" in text
    assert "partly kept" in text
    assert "only by email" in text
    (st,) = stats
    assert (st.owner, st.kept, st.partly, st.broken, st.open, st.kept_rate) == ("owner@example.com", 0, 1, 0, 0, 0.0)


def test_a_promise_not_yet_due_is_not_asked(make_app) -> None:
    app = make_app()
    seed(app)
    _promise(app, due=LATER + dt.timedelta(days=30))
    chat = Conversation(app)
    chat.start(LATER)
    chat.say("8", LATER)
    end = chat.say("Fine.", LATER)
    assert "made you a promise" not in " ".join(chat.transcript)
    assert "That's everything" in chat.texts(end)


def test_a_promise_without_due_date_is_asked_at_the_next_checkin_and_yes_keeps_it(make_app) -> None:
    app = make_app()
    seed(app)
    pid = _promise(app, due=None)
    chat = Conversation(app)
    chat.start(LATER)
    chat.say("8", LATER)
    chat.say("Fine.", LATER)
    assert "we made you a promise" in chat.transcript[-1]
    chat.say("maybe?", LATER)
    assert "start your reply with yes, partly or no" in chat.transcript[-2]
    chat.say("Yes, Maria calls every month", LATER)
    with db.transaction(app.sessions) as s:
        promise = s.get(Promise, pid)
        assert promise is not None
        assert promise.status == "kept"
        assert promise.outcomes[0].comment == "Maria calls every month"


def test_anonymous_programs_never_ask_about_promises(make_app) -> None:
    app = make_app()
    seed(app)
    _promise(app, person="bob", due=None)
    chat = Conversation(app, person="bob", program="employees")
    chat.start(LATER)
    chat.say("8", LATER)
    end = chat.say("Fine.", LATER)
    assert "made you a promise" not in " ".join(chat.transcript)
    assert "That's everything" in chat.texts(end)


def _owner_says(app, text: str, sender: str = "555", n: int = 1) -> str:
    inbound = Inbound(channel="telegram", sender=sender, kind="text", text=text, received_at=T0,
                      event_key=f"u{n}")  # fmt: skip
    return "\n".join(m.text for m in app.service.handle(inbound, markup="telegram_html"))


def test_an_owner_records_a_promise_from_chat(make_app) -> None:
    app = make_app()
    seed(app)
    with db.transaction(app.sessions) as s:
        owner = s.scalar(select(Owner).where(Owner.key == "owner@example.com"))
        assert owner is not None
        link_owner(s, owner=owner, channel="telegram", external_id="555", now=T0)
    reply = _owner_says(app, "promise @ann@example.com a <b>dedicated</b> contact by 2026-04-01")
    assert "Noted" in reply
    assert "1 April 2026" in reply
    assert "&lt;b&gt;dedicated&lt;/b&gt;" in reply  # the owner's words are escaped for Telegram HTML too
    assert "Has that" not in reply
    assert "promise @person" in _owner_says(app, "promise", n=3)
    assert "don't know anyone" in _owner_says(app, "promise @nobody something", n=4)
    assert "not a date" in _owner_says(app, "promise @ann something by 2026-02-30", n=5)
    assert "already passed" in _owner_says(app, "promise @ann something by 2020-01-01", n=6)
    assert "Noted" not in _owner_says(app, "promise @ann a dedicated contact by 2026-04-01", n=1)  # duplicate
    with db.transaction(app.sessions) as s:
        (p,) = s.scalars(select(Promise)).all()
        assert p.text == "a <b>dedicated</b> contact"
        assert p.due_at == dt.datetime(2026, 4, 1, 12, tzinfo=dt.UTC)
        assert p.source == "telegram"
        assert p.owner_id == owner.id


def test_people_who_are_not_owners_never_get_owner_powers(make_app) -> None:
    app = make_app()
    seed(app)
    with db.transaction(app.sessions) as s:
        ann = store.require_person(s, "ann")
        store.link_identity(s, person=ann, channel="telegram", external_id="777", now=T0)
    app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram")
    reply = _owner_says(app, "promise @bob a pay rise by 2026-04-01", sender="777")
    assert "Noted" not in reply
    stranger = _owner_says(app, "promise @bob a pay rise", sender="999", n=2)
    assert "Noted" not in stranger
    with db.transaction(app.sessions) as s:
        assert s.scalars(select(Promise)).all() == []


def test_a_promise_is_asked_in_one_open_checkin_only(make_app) -> None:
    from bot.config import Config

    data = make_app().config.model_dump()
    data["programs"]["partners"] = {**data["programs"]["customers"], "title": "partner"}
    config = Config.model_validate(data)
    app = make_app(config_override=config)
    seed(app, "id,name,email,timezone,owner,programs\nann,Ann,ann@example.com,UTC,o@example.com,customers;partners\n")
    _promise(app, due=None)
    first = Conversation(app, program="customers")
    first.start(LATER)
    second = Conversation(app, program="partners")
    second.start(LATER)
    with db.transaction(app.sessions) as s:
        from memory.models import Checkin

        scripts = {c.id: [st["key"] for st in c.state["script"]] for c in s.scalars(select(Checkin))}
    assert scripts[first.checkin_id][-1] == "promise:1"
    assert "promise:1" not in scripts[second.checkin_id]
