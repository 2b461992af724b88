"""The follow-up names the concrete change the memory found, in the person's own words."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.helpers import Conversation, seed

pytestmark = pytest.mark.model

MARCH = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
SEPTEMBER = MARCH + dt.timedelta(days=182)


def followup_after(make_app, before: str, after: str, *, ratings: tuple[str, str] = ("8", "8")):
    app = make_app(real_model=True)
    seed(app)
    conv = Conversation(app)
    conv.start(MARCH)
    conv.say(ratings[0], MARCH)
    conv.say(before, MARCH)
    conv.start(SEPTEMBER)
    conv.say(ratings[1], SEPTEMBER)
    replies = conv.say(after, SEPTEMBER)
    return [m.text for m in replies if m.kind == "followup"]


def test_a_flipped_stance_is_named_with_both_answers(make_app) -> None:
    (text,) = followup_after(make_app, "Support is fast", "Support is slow")
    assert "In March 2026 you said “Support is fast”" in text
    assert "other way round" in text
    assert "“Support is slow”" in text


def test_a_new_subject_is_named_by_its_ideas(make_app) -> None:
    (text,) = followup_after(
        make_app,
        "Fast onboarding, and the account team knows our setup.",
        "The invoices are wrong every month; nobody answers the phone.",
    )
    assert "March 2026" in text
    # The idea that is gone is quoted back, not a generic "you see it differently".
    assert "you mentioned “Fast onboarding”" in text
    assert "today you didn't" in text


def test_a_rating_change_quotes_both_ratings(make_app) -> None:
    (text,) = followup_after(make_app, "Good value for money", "Good value for money", ratings=("9", "4"))
    assert "you gave 9" in text
    assert "Today it's 4" in text
