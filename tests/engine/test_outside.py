"""The pure rules outside a check-in's questions: opted out, between check-ins, non-text, edits."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.engine import flow, outside
from bot.engine.flow import Say

STATE = flow.State(script=(flow.Step(key="score", kind="rating", low=1, high=5), flow.Step(key="why", kind="text")))


def test_while_opted_out_only_start_is_heard_and_edits_pass_silently() -> None:
    assert outside.while_opted_out("text", "start") == (Say("resumed_opt_in"), outside.OptIn())
    assert outside.while_opted_out("text", None) == (Say("opted_out_reminder"),)
    assert outside.while_opted_out("non_text", None) == (Say("opted_out_reminder"),)
    assert outside.while_opted_out("edit", None) == ()
    assert outside.while_opted_out("delete", None) == ()


def test_between_checkins_stop_needs_no_confirmation() -> None:
    assert outside.between_checkins("stop", just_completed=False) == (outside.OptOutNow(), Say("opted_out"))
    assert outside.between_checkins("help", just_completed=True) == (Say("help", {"final": True}),)
    assert outside.between_checkins(None, just_completed=True) == (Say("already_done"),)
    assert outside.between_checkins("skip", just_completed=False) == (Say("no_checkin"),)


def test_non_text_speaks_in_the_terms_of_the_pending_question() -> None:
    asking = flow.advance(STATE, flow.Begin(), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).state
    assert outside.non_text(asking) == (Say("not_text", {"rating": True, "low": 1, "high": 5}),)
    on_text = flow.State(script=STATE.script, stage="asking", index=1)
    assert outside.non_text(on_text) == (Say("not_text", {"rating": False, "low": 0, "high": 10}),)


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("4", {"still_open": False, "kind": "rating"}, (Say("edit_too_late"),)),
        ("  ", {"still_open": True, "kind": "text"}, (Say("edit_rejected", {"problem": "the new text is empty"}),)),
        ("x" * 11, {"still_open": True, "kind": "text"},
         (Say("edit_rejected", {"problem": "the new text is too long"}),)),
        ("9", {"still_open": True, "kind": "rating", "low": 1, "high": 5},
         (Say("edit_rejected", {"problem": "it is not a number from 1 to 5"}),)),
        ("4 - better", {"still_open": True, "kind": "rating", "low": 1, "high": 5, "question": "Q?"},
         (outside.SaveEdit(rating=4, text="better"), Say("edit_ack", {"question": "Q?"}))),
        (" slower ", {"still_open": True, "kind": "followup"},
         (outside.SaveEdit(rating=None, text="slower"), Say("edit_ack", {"question": None}))),
    ],
)  # fmt: skip
def test_an_edit_corrects_the_answer_while_the_checkin_is_open(text: str, kwargs: dict, expected: tuple) -> None:
    assert outside.edit(text, max_chars=10, **kwargs) == expected
