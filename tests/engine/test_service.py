"""The check-in service on a real database (SQLite, and PostgreSQL when configured).

These tests use the hashing embedder: they are about storage, flow and replies, not meaning.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from bot.engine.ports import Inbound, RepliesPending
from memory.db import transaction
from memory.errors import OptedOut
from memory.models import Answer, Checkin, Person, ProcessedEvent
from tests.helpers import T0, Conversation, seed


def checkin_of(app, conv: Conversation) -> Checkin:
    with transaction(app.sessions) as s:
        checkin = s.get(Checkin, conv.checkin_id)
        assert checkin is not None
        return checkin


def answers_of(app, conv: Conversation) -> dict[str, Answer]:
    with transaction(app.sessions) as s:
        return {a.question: a for a in s.scalars(select(Answer).where(Answer.checkin_id == conv.checkin_id))}


def test_first_checkin_completes_without_follow_up(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    first = conv.start()
    assert "check-in" in first[0].text
    assert [c.value for c in first[1].choices] == list(range(11))
    conv.say("8 - pretty good")
    done = conv.say("Support answered within an hour.")
    assert "everything" in conv.texts(done)
    answers = answers_of(app, conv)
    assert (answers["recommend"].rating, answers["recommend"].text) == (8, "pretty good")
    assert answers["reason"].text == "Support answered within an hour."
    assert answers["reason"].embedding is not None
    assert answers["reason"].embedding_model == app.embedder.model_id
    assert checkin_of(app, conv).status == "completed"


def test_edge_inputs_each_get_a_clear_reply(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    for text, expected in [
        ("", "didn't get a rating"),
        ("11", "11 is outside the scale"),
        ("-3", "-3 is outside the scale"),
        ("abc", "couldn't read a rating"),
        ("🙂🙂", "couldn't read a rating"),
        ("ممتاز", "couldn't read a rating"),
    ]:
        replies = conv.say(text)
        assert expected in replies[0].text, text
        assert replies[-1].question == "recommend"  # and the question again
    conv.say("7")
    assert "empty" in conv.texts(conv.say("   "))
    essay = "word " * 2000  # 10,000 characters
    conv.say(essay)
    assert answers_of(app, conv)["reason"].text == essay.strip()


def test_emoji_and_right_to_left_text_are_kept_as_typed(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("9")
    words = "الدعم ممتاز 👍 שירות מעולה"
    conv.say(words)
    assert answers_of(app, conv)["reason"].text == words


def test_too_long_answer_is_refused_not_truncated(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("9")
    replies = conv.say("x" * 20_001)
    assert "shorten" in conv.texts(replies)
    assert "reason" not in answers_of(app, conv)


def test_skip_and_help(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    assert "skip" in conv.texts(conv.say("help"))
    conv.say("skip")
    conv.say("Fine overall")
    answers = answers_of(app, conv)
    assert answers["recommend"].skipped
    assert answers["recommend"].rating is None


def test_stop_is_confirmed_recorded_and_honoured(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    assert "yes" in conv.texts(conv.say("stop"))
    assert "not hear from us" in conv.texts(conv.say("yes"))
    with transaction(app.sessions) as s:
        person = s.scalar(select(Person).where(Person.key == "ann"))
        assert person is not None
        assert person.opted_out_at is not None
    assert checkin_of(app, conv).status == "opted_out"
    # Later messages get a reminder, never a question; a new check-in cannot start.
    assert "asked us to stop" in conv.texts(conv.say("8"))
    with pytest.raises(OptedOut):
        conv.start(T0 + dt.timedelta(days=200))
    # The person themselves can resume.
    assert "again" in conv.texts(conv.say("start"))


def test_open_checkin_resumes_after_restart(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("6")
    app.close()
    again = make_app()  # same database, new process
    resumed = again.service.start(person_ref="ann", program="customers", now=T0, channel="terminal")
    assert not resumed.created
    assert resumed.checkin_id == conv.checkin_id
    assert resumed.messages[-1].question == "reason"


def test_same_event_twice_is_processed_once(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    first = conv.say("8", event_key="update-1")
    second = conv.say("9", event_key="update-1")
    assert first
    assert second == []
    assert answers_of(app, conv)["recommend"].rating == 8
    with transaction(app.sessions) as s:
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 1


def test_a_redelivery_moments_after_the_commit_is_left_for_later_when_the_channel_asks(make_app) -> None:
    """``replies_pending_for``: a redelivery that comes soon after the event was stored, its
    replies unconfirmed, raises RepliesPending (whoever stored it is most likely still replying);
    later, it shows where the conversation stands; once confirmed, it is a plain duplicate."""
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    first = Inbound(channel="terminal", sender="ann", kind="text", text="7", received_at=T0,
                    checkin_id=conv.checkin_id, event_key="seven")  # fmt: skip
    assert app.service.handle(first, confirm=True)
    window = dt.timedelta(seconds=30)
    soon = replace(first, received_at=T0 + dt.timedelta(seconds=5))
    with pytest.raises(RepliesPending):
        app.service.handle(soon, confirm=True, replies_pending_for=window)
    later = replace(first, received_at=T0 + dt.timedelta(minutes=1))
    assert conv.texts(app.service.handle(later, confirm=True, replies_pending_for=window))
    assert app.service.handle(soon, confirm=True) != [], "without the window: where it stands at once"
    app.service.replied(first)
    assert app.service.handle(soon, confirm=True, replies_pending_for=window) == []
    assert answers_of(app, conv)["recommend"].rating == 7


def test_a_redelivered_last_answer_whose_thanks_never_went_out_is_thanked(make_app) -> None:
    """The answer that completed the check-in was stored, then the process died before the thanks
    went out (confirm=True, never confirmed). Its redelivery stores nothing and thanks the person;
    once the thanks are confirmed, a further redelivery is an ordinary duplicate."""
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("8")
    last = Inbound(channel="terminal", sender="ann", kind="text", text="Support answered within an hour.",
                   received_at=T0, checkin_id=conv.checkin_id, event_key="last")  # fmt: skip
    lost = app.service.handle(last, confirm=True)
    assert "everything" in conv.texts(lost)
    again = app.service.handle(replace(last, received_at=T0 + dt.timedelta(minutes=3)), confirm=True)
    assert conv.texts(again) == conv.texts(lost[-1:]), "the thanks, once more"
    assert len(answers_of(app, conv)) == 2, "nothing stored twice"
    app.service.replied(last)
    assert app.service.handle(last, confirm=True) == []
    # Another person's or an earlier event never gets the thanks of this one.
    assert app.service.handle(replace(last, event_key="other"), confirm=True) != lost[-1:]


def test_edit_corrects_an_answer_while_open(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("3", ref="m1")
    reply = conv.say("7", kind="edit", ref="m1")
    assert "updated" in conv.texts(reply)
    assert answers_of(app, conv)["recommend"].rating == 7
    assert "couldn't use" in conv.texts(conv.say("lots", kind="edit", ref="m1"))
    conv.say("Good support", ref="m2")
    assert "already closed" in conv.texts(conv.say("Bad support", kind="edit", ref="m2"))
    assert answers_of(app, conv)["reason"].text == "Good support"


def test_non_text_gets_a_clear_reply_and_stores_nothing(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    reply = conv.say("", kind="non_text")
    assert "only read text" in conv.texts(reply)
    assert answers_of(app, conv) == {}


def test_unknown_sender_gets_no_data(make_app) -> None:
    app = make_app()
    seed(app)
    inbound = Inbound(channel="telegram", sender="999", kind="text", text="hi", received_at=T0)
    replies = app.service.handle(inbound)
    assert len(replies) == 1
    assert "don't know who you are" in replies[0].text


def test_one_open_checkin_per_person_and_program(make_app) -> None:
    app = make_app()
    seed(app)
    a = app.service.start(person_ref="ann", program="customers", now=T0, channel="terminal")
    b = app.service.start(person_ref="ann", program="customers", now=T0, channel="terminal")
    assert a.checkin_id == b.checkin_id
    assert b.created is False


def test_stop_between_checkins_opts_out_at_once(make_app) -> None:
    app = make_app()
    seed(app)
    conv = Conversation(app)
    conv.start()
    conv.say("9")
    conv.say("All good")
    assert "not hear from us" in conv.texts(conv.say("stop"))
    with transaction(app.sessions) as s:
        person = s.scalar(select(Person).where(Person.key == "ann"))
        assert person is not None
        assert person.opted_out_at is not None
    with pytest.raises(OptedOut):
        conv.start(T0 + dt.timedelta(days=200))
    assert "again" in conv.texts(conv.say("start"))
