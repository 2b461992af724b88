"""The conversation as pure table tests: state + event -> state + effects. No I/O, no clock."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

import pytest

from bot.engine import flow
from bot.engine.flow import (
    Ask,
    AskFollowUp,
    AssessChange,
    Assessed,
    Begin,
    Choose,
    Command,
    Complete,
    Expire,
    MarkExpired,
    OptOut,
    Reply,
    Resume,
    SaveAnswer,
    SaveFollowUpAnswer,
    Say,
    SkipAnswer,
    SkipFollowUp,
    State,
    Step,
    advance,
)

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SCRIPT = (Step(key="recommend", kind="rating"), Step(key="reason", kind="text"))
START = State(script=SCRIPT)
ASKING_RATING = replace(START, stage="asking", index=0)
ASKING_REASON = replace(START, stage="asking", index=1, answered=1)
ASSESSING = replace(ASKING_REASON, stage="assessing", answered=2)
FOLLOWUP = replace(ASSESSING, stage="followup", followups_asked=1)


def says(*names: str) -> list[str]:
    return list(names)


def templates(effects: tuple[flow.Effect, ...]) -> list[str]:
    return [e.template for e in effects if isinstance(e, Say)]


CASES = [
    # (name, state, event, expected stage, expected index, expected effect types)
    ("begin invites and asks", START, Begin(), "asking", 0, [Say, Ask]),
    ("typed rating", ASKING_RATING, Reply("8"), "asking", 1, [SaveAnswer, Ask]),
    ("button rating", ASKING_RATING, Choose(3), "asking", 1, [SaveAnswer, Ask]),
    ("rating with comment", ASKING_RATING, Reply("8 - pretty good"), "asking", 1, [SaveAnswer, Ask]),
    ("out of range re-asks", ASKING_RATING, Reply("11"), "asking", 0, [Say, Ask]),
    ("negative re-asks", ASKING_RATING, Reply("-3"), "asking", 0, [Say, Ask]),
    ("words re-ask", ASKING_RATING, Reply("abc"), "asking", 0, [Say, Ask]),
    ("empty re-asks", ASKING_RATING, Reply(""), "asking", 0, [Say, Ask]),
    ("button out of range re-asks", ASKING_RATING, Choose(42), "asking", 0, [Say, Ask]),
    ("free text is assessed", ASKING_REASON, Reply("Support is slow"), "assessing", 1, [SaveAnswer, AssessChange]),
    ("empty text re-asks", ASKING_REASON, Reply("  "), "asking", 1, [Say, Ask]),
    ("too long re-asks", ASKING_REASON, Reply("x" * 20_001), "asking", 1, [Say, Ask]),
    ("a button on a text question", ASKING_REASON, Choose(5), "asking", 1, [Say, Ask]),
    ("changed asks a follow-up", ASSESSING, Assessed(True), "followup", 1, [AskFollowUp]),
    ("unchanged completes", ASSESSING, Assessed(False), "completed", 2, [Complete, Say]),
    (
        "follow-up answer completes",
        FOLLOWUP,
        Reply("New manager"),
        "completed",
        2,
        [SaveFollowUpAnswer, Say, Complete, Say],
    ),
    ("empty follow-up re-asks", FOLLOWUP, Reply(""), "followup", 1, [Say, AskFollowUp]),
    ("skip a question", ASKING_RATING, Reply("skip"), "asking", 1, [SkipAnswer, Say, Ask]),
    ("skip a follow-up", FOLLOWUP, Command("skip"), "completed", 2, [SkipFollowUp, Say, Complete, Say]),
    ("help re-asks", ASKING_RATING, Reply("help"), "asking", 0, [Say, Ask]),
    ("/help@bot re-asks", ASKING_RATING, Reply("/help@RapportBot"), "asking", 0, [Say, Ask]),
    ("stop asks to confirm", ASKING_REASON, Reply("stop"), "confirm_stop", 1, [Say]),
    ("resume re-asks", ASKING_REASON, Resume(), "asking", 1, [Say, Ask]),
    ("expire", ASKING_REASON, Expire(), "expired", 1, [MarkExpired]),
    ("an answer before the invitation counts", START, Reply("9"), "asking", 1, [SaveAnswer, Ask]),
]


@pytest.mark.parametrize(("name", "state", "event", "stage", "index", "effects"), CASES, ids=[c[0] for c in CASES])
def test_transitions(name: str, state: State, event: flow.Event, stage: str, index: int, effects: list[type]) -> None:
    result = advance(state, event, NOW)
    assert result.state.stage == stage
    assert result.state.index == index
    assert [type(e) for e in result.effects] == effects


def test_rating_comment_is_kept() -> None:
    result = advance(ASKING_RATING, Reply("8 - pretty good"), NOW)
    save = result.effects[0]
    assert isinstance(save, SaveAnswer)
    assert (save.rating, save.text) == (8, "pretty good")


@pytest.mark.parametrize(
    ("text", "template"),
    [("11", "rating_out_of_range"), ("-3", "rating_out_of_range"), ("abc", "rating_not_a_number"),
     ("", "rating_empty"), ("7.5", "rating_not_whole"), ("🙂", "rating_not_a_number")],
)  # fmt: skip
def test_bad_ratings_say_why(text: str, template: str) -> None:
    assert templates(advance(ASKING_RATING, Reply(text), NOW).effects) == [template]


def test_the_yes_and_no_buttons_answer_stop_as_typed_words_and_nothing_else() -> None:
    asked = advance(ASKING_REASON, Reply("stop"), NOW).state
    for word in ("yes", "no"):
        typed, pressed = advance(asked, Reply(word), NOW), advance(asked, Command(word), NOW)
        assert (pressed.state, pressed.effects) == (typed.state, typed.effects)
    # From an old message, once the question was answered: the conversation just carries on.
    for word in ("yes", "no"):
        late = advance(ASKING_REASON, Command(word), NOW)
        assert late.state == ASKING_REASON
        assert [type(e) for e in late.effects] == [Ask]


def test_stop_confirmed_is_an_opt_out() -> None:
    asked = advance(ASKING_REASON, Reply("Stop"), NOW).state
    result = advance(asked, Reply("yes"), NOW)
    assert result.state.stage == "opted_out"
    assert [type(e) for e in result.effects] == [OptOut, Say]


def test_stop_twice_confirms() -> None:
    asked = advance(ASKING_REASON, Command("stop"), NOW).state
    assert advance(asked, Reply("/stop"), NOW).state.stage == "opted_out"


def test_stop_cancelled_returns_where_it_was() -> None:
    asked = advance(FOLLOWUP, Reply("stop"), NOW).state
    result = advance(asked, Reply("no, sorry"), NOW)
    assert result.state.stage == "followup"
    assert templates(result.effects) == ["stop_cancelled"]
    assert isinstance(result.effects[-1], AskFollowUp)


def test_follow_ups_are_capped() -> None:
    capped = replace(ASSESSING, followups_asked=1, max_followups=1)
    assert advance(capped, Assessed(True), NOW).state.stage == "completed"
    none_allowed = replace(ASSESSING, max_followups=0)
    assert advance(none_allowed, Assessed(True), NOW).state.stage == "completed"


def test_final_states_answer_politely() -> None:
    done = replace(START, stage="completed", index=2)
    assert templates(advance(done, Reply("hello?"), NOW).effects) == ["already_done"]
    assert advance(replace(START, stage="opted_out"), Reply("hi"), NOW).effects == ()
    assert advance(done, Expire(), NOW).effects == ()


def test_state_survives_serialisation() -> None:
    state = replace(FOLLOWUP, paused_stage="followup")
    assert State.from_dict(state.to_dict()) == state


def test_db_status() -> None:
    assert flow.db_status(START) == "invited"
    assert flow.db_status(ASKING_RATING) == "invited"
    assert flow.db_status(ASKING_REASON) == "in_progress"
    assert flow.db_status(replace(START, stage="completed")) == "completed"


def test_every_stage_is_in_the_diagram() -> None:
    diagram = (Path(flow.__file__).parent / "flow.md").read_text()
    mermaid = re.search(r"```mermaid\n(.*?)```", diagram, re.S)
    assert mermaid is not None
    for stage in flow.STAGES:
        assert re.search(rf"\b{stage}\b", mermaid.group(1)), f"stage {stage} missing from flow.md"
