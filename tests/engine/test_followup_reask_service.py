"""Through ``CheckinService.handle``: a follow-up answered "yes" is re-asked once, the person's words
are stored as written, and the digest says when no reason was given.

The follow-up is triggered by a rating drop (9 -> 4), which does not depend on the model, so the
hashing embedder is enough here."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.digests import render_digest
from memory.db import transaction
from memory.digests import build_digest
from memory.models import Checkin, FollowUp
from tests.helpers import Conversation, seed

MARCH = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
SEPTEMBER = MARCH + dt.timedelta(days=182)


def at_followup(make_app):
    app = make_app()
    seed(app, now=MARCH)
    conv = Conversation(app)
    conv.start(MARCH)
    conv.say("9", MARCH)
    conv.say("Support answers within the hour.", MARCH)
    conv = Conversation(app)
    conv.start(SEPTEMBER)
    conv.say("4", SEPTEMBER)
    replies = conv.say("Support takes days now.", SEPTEMBER)
    assert [m.kind for m in replies] == ["followup"]
    return app, conv


def followup_of(app, conv: Conversation) -> FollowUp:
    with transaction(app.sessions) as s:
        (followup,) = s.scalars(select(FollowUp).where(FollowUp.checkin_id == conv.checkin_id)).all()
        s.expunge(followup)
        return followup


def digest_text(app) -> str:
    with transaction(app.sessions) as s:
        digest = build_digest(s, owner="owner@example.com", since=SEPTEMBER - dt.timedelta(days=7),
                              until=SEPTEMBER + dt.timedelta(hours=1))  # fmt: skip
    return render_digest(digest, "text").body


def test_yes_is_re_asked_once_and_the_reason_after_it_is_kept(make_app) -> None:
    app, conv = at_followup(make_app)
    reask = conv.say("yes", SEPTEMBER)
    assert (
        conv.texts(reask) == 'Thanks! Could you say what made the difference? A few words are enough, or reply "skip".'
    )
    assert followup_of(app, conv).answer_text == "yes"  # kept if the person goes quiet here
    done = conv.say("Our account manager left in June.", SEPTEMBER)
    assert "Thank you, that helps." in conv.texts(done)
    followup = followup_of(app, conv)
    assert (followup.answer_text, followup.skipped) == ("Our account manager left in June.", False)
    text = digest_text(app)
    assert 'What changed: "Our account manager left in June' in text
    assert "no reason given" not in text


def test_a_second_non_answer_is_accepted_and_the_digest_says_no_reason_was_given(make_app) -> None:
    app, conv = at_followup(make_app)
    conv.say("idk", SEPTEMBER)
    done = conv.say("🤷", SEPTEMBER)
    assert "That's everything" in conv.texts(done)
    with transaction(app.sessions) as s:
        checkin = s.get(Checkin, conv.checkin_id)
        assert checkin is not None
        assert checkin.status == "completed"
    assert followup_of(app, conv).answer_text == "🤷"  # as written
    text = digest_text(app)
    assert "What changed: no reason given" in text
    assert "🤷" not in text


def test_a_real_answer_the_first_time_is_stored_without_a_re_ask(make_app) -> None:
    app, conv = at_followup(make_app)
    done = conv.say("price", SEPTEMBER)
    assert "Could you say what made the difference" not in conv.texts(done)
    assert "That's everything" in conv.texts(done)
    assert followup_of(app, conv).answer_text == "price"
    assert 'What changed: "price"' in digest_text(app)


def test_skip_at_the_re_ask_skips_the_follow_up(make_app) -> None:
    app, conv = at_followup(make_app)
    conv.say("no", SEPTEMBER)
    conv.say("skip", SEPTEMBER)
    assert followup_of(app, conv).skipped
    assert "What changed" not in digest_text(app)


def test_start_shows_the_re_ask_again(make_app) -> None:
    _app, conv = at_followup(make_app)
    conv.say("ok", SEPTEMBER)
    resumed = conv.say("/start", SEPTEMBER, kind="command", command="start")
    assert "Could you say what made the difference?" in conv.texts(resumed)


def test_quiet_after_the_re_ask_keeps_the_first_reply(make_app) -> None:
    app, conv = at_followup(make_app)
    conv.say("👍", SEPTEMBER)
    followup = followup_of(app, conv)
    assert (followup.answer_text, followup.answered_at) == ("👍", None)  # still waiting for the re-ask
