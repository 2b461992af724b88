"""A reply to "What changed?" that gives no reason is re-asked once; then anything is accepted.

Pure table tests of ``flow.advance``: no I/O, no clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from bot.engine import flow
from bot.engine.flow import (
    AskFollowUp,
    Choose,
    Command,
    Complete,
    Expire,
    MarkExpired,
    Reply,
    Resume,
    SaveFollowUpAnswer,
    Say,
    SkipFollowUp,
    State,
    Step,
    advance,
)

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SCRIPT = (Step(key="recommend", kind="rating"), Step(key="reason", kind="text"), Step(key="more", kind="text"))
FOLLOWUP = State(script=SCRIPT, stage="followup", index=1, answered=2, followups_asked=1)
REASK = replace(FOLLOWUP, stage="reask")
LAST_FOLLOWUP = replace(FOLLOWUP, index=2, answered=3)
LAST_REASK = replace(LAST_FOLLOWUP, stage="reask")


def templates(effects: tuple[flow.Effect, ...]) -> list[str]:
    return [e.template for e in effects if isinstance(e, Say)]


def saved(effects: tuple[flow.Effect, ...]) -> list[str]:
    return [e.text for e in effects if isinstance(e, SaveFollowUpAnswer)]


CASES = [
    # (name, state, event, stage, index, follow-up text saved, templates said)
    ("yes is re-asked", FOLLOWUP, Reply("yes"), "reask", 1, ["yes"], ["followup_reask"]),
    ("idk is re-asked", FOLLOWUP, Reply("idk"), "reask", 1, ["idk"], ["followup_reask"]),
    ("no is re-asked", FOLLOWUP, Reply("no"), "reask", 1, ["no"], ["followup_reask"]),
    ("a dot is re-asked", FOLLOWUP, Reply("."), "reask", 1, ["."], ["followup_reask"]),
    ("an emoji is re-asked", FOLLOWUP, Reply("👍"), "reask", 1, ["👍"], ["followup_reask"]),
    ("not sure is re-asked", FOLLOWUP, Reply("Not sure..."), "reask", 1, ["Not sure..."], ["followup_reask"]),
    ("a reason is kept at once", FOLLOWUP, Reply("New manager"), "asking", 2, ["New manager"], ["followup_thanks"]),
    ("a one-word reason is kept", FOLLOWUP, Reply("price"), "asking", 2, ["price"], ["followup_thanks"]),
    ("a reason after the re-ask", REASK, Reply("The new manager"), "asking", 2, ["The new manager"],
     ["followup_thanks"]),
    ("a non-answer after the re-ask is accepted", REASK, Reply("idk"), "asking", 2, ["idk"], ["followup_thanks"]),
    ("an emoji after the re-ask is accepted", REASK, Reply("🤷"), "asking", 2, ["🤷"], ["followup_thanks"]),
    ("the re-ask on the last question completes", LAST_REASK, Reply("no"), "completed", 3, ["no"],
     ["followup_thanks", "done"]),
    ("a real answer on the last question completes", LAST_FOLLOWUP, Reply("Billing errors"), "completed", 3,
     ["Billing errors"], ["followup_thanks", "done"]),
    ("skip at the follow-up", FOLLOWUP, Command("skip"), "asking", 2, [], ["skipped"]),
    ("skip typed at the re-ask", REASK, Reply("skip"), "asking", 2, [], ["skipped"]),
    ("stop at the follow-up asks to confirm", FOLLOWUP, Reply("stop"), "confirm_stop", 1, [], ["confirm_stop"]),
    ("stop at the re-ask asks to confirm", REASK, Reply("stop"), "confirm_stop", 1, [], ["confirm_stop"]),
    ("help at the re-ask shows help and re-asks", REASK, Reply("help"), "reask", 1, [], ["help", "followup_reask"]),
    ("empty at the re-ask re-asks", REASK, Reply("   "), "reask", 1, [], ["text_empty", "followup_reask"]),
    ("a button at the re-ask needs words", REASK, Choose(3), "reask", 1, [], ["followup_needs_words",
                                                                               "followup_reask"]),
    ("resume at the re-ask re-asks", REASK, Resume(), "reask", 1, [], ["resumed", "followup_reask"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "state", "event", "stage", "index", "kept", "said"), CASES, ids=[c[0] for c in CASES])
def test_reask(
    name: str, state: State, event: flow.Event, stage: str, index: int, kept: list[str], said: list[str]
) -> None:
    result = advance(state, event, NOW)
    assert (result.state.stage, result.state.index) == (stage, index)
    assert saved(result.effects) == kept
    assert templates(result.effects) == said


def test_re_asked_once_only_then_the_next_question() -> None:
    first = advance(FOLLOWUP, Reply("yes"), NOW)
    second = advance(first.state, Reply("yes"), NOW)
    assert second.state.stage == "asking"
    assert "followup_reask" not in templates(second.effects)
    assert [type(e).__name__ for e in second.effects] == ["SaveFollowUpAnswer", "Say", "Ask"]


def test_skip_at_the_reask_skips_the_followup() -> None:
    result = advance(LAST_REASK, Command("skip"), NOW)
    assert [type(e) for e in result.effects] == [SkipFollowUp, Say, Complete, Say]


def test_stop_then_no_returns_to_the_reask() -> None:
    paused = advance(REASK, Reply("stop"), NOW).state
    back = advance(paused, Reply("no"), NOW)
    assert back.state.stage == "reask"
    assert templates(back.effects) == ["stop_cancelled", "followup_reask"]
    # "no" there answered the stop question; it is not taken as the follow-up's answer.
    assert saved(back.effects) == []


def test_the_reask_survives_a_restart_and_expires() -> None:
    restored = State.from_dict(REASK.to_dict())
    assert restored == REASK
    assert [type(e) for e in advance(restored, Expire(), NOW).effects] == [MarkExpired]


def test_the_original_question_is_not_repeated_by_the_reask() -> None:
    result = advance(FOLLOWUP, Reply("ok"), NOW)
    assert not any(isinstance(e, AskFollowUp) for e in result.effects)
