"""The promise stage of the pure flow, and the verdict parser, as table tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from bot.engine.flow import (
    Ask,
    Assessed,
    Choose,
    Command,
    Complete,
    Reply,
    SaveOutcome,
    Say,
    State,
    Step,
    advance,
)
from bot.engine.verdicts import parse_verdict

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
SCRIPT = (
    Step(key="recommend", kind="rating"),
    Step(key="reason", kind="text"),
    Step(key="promise:7", kind="promise"),
    Step(key="promise:9", kind="promise"),
)
ASSESSING = State(script=SCRIPT, stage="assessing", index=1, answered=2)
FIRST_PROMISE = replace(ASSESSING, stage="asking", index=2)
LAST_PROMISE = replace(ASSESSING, stage="asking", index=3)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("partly, only by email", ("partly", "only by email")),
        ("Yes", ("yes", None)),
        ("yes!", ("yes", None)),
        ("YES. Maria is great", ("yes", "Maria is great")),
        ("no", ("no", None)),
        ("Nope - still waiting", ("no", "still waiting")),
        ("not yet, but promised for May", ("no", "but promised for May")),
        ("partially: only on weekdays", ("partly", "only on weekdays")),
        ("sort of", ("partly", None)),
        ("y", ("yes", None)),
        ("it has not", ("no", None)),
        ("  no\n\nthey forgot  ", ("no", "they forgot")),
        ("nothing happened", None),  # "no" must be a word of its own
        ("yesterday it did", None),
        ("maybe", None),
        ("", None),
        ("   ", None),
        ("8", None),
    ],
)
def test_verdicts(text: str, expected: tuple[str, str | None] | None) -> None:
    assert parse_verdict(text) == expected


def test_the_promise_is_asked_after_the_core_questions() -> None:
    t = advance(ASSESSING, Assessed(changed=False), NOW)
    assert t.state.stage == "asking"
    assert t.state.index == 2
    assert t.effects == (Ask("promise:7"),)


CASES = [
    ("words", FIRST_PROMISE, Reply("partly, only by email"), 3,
     (SaveOutcome("promise:7", "partly", "only by email"), Say("promise_partly"), Ask("promise:9"))),
    ("button yes", FIRST_PROMISE, Choose(2), 3, (SaveOutcome("promise:7", "yes", None), Say("promise_yes"),
                                                 Ask("promise:9"))),
    ("button no", FIRST_PROMISE, Choose(0), 3, (SaveOutcome("promise:7", "no", None), Say("promise_no"),
                                                Ask("promise:9"))),
    ("unknown button re-asks", FIRST_PROMISE, Choose(5), 2, (Say("promise_unclear"), Ask("promise:7"))),
    ("unclear words re-ask", FIRST_PROMISE, Reply("who knows"), 2, (Say("promise_unclear"), Ask("promise:7"))),
    ("empty re-asks", FIRST_PROMISE, Reply(""), 2, (Say("promise_unclear"), Ask("promise:7"))),
    ("skip moves on without an outcome", FIRST_PROMISE, Command("skip"), 3, (Say("skipped"), Ask("promise:9"))),
    ("last promise completes", LAST_PROMISE, Reply("no"), 4,
     (SaveOutcome("promise:9", "no", None), Say("promise_no"), Complete(), Say("done"))),
]  # fmt: skip


@pytest.mark.parametrize(("name", "state", "event", "index", "effects"), CASES, ids=[c[0] for c in CASES])
def test_promise_stage(name: str, state: State, event: object, index: int, effects: tuple[object, ...]) -> None:
    t = advance(state, event, NOW)  # type: ignore[arg-type]
    assert t.effects == effects
    assert t.state.index == index
    assert t.state.stage == ("completed" if index == len(SCRIPT) else "asking")


def test_stop_during_a_promise_returns_to_it() -> None:
    t = advance(FIRST_PROMISE, Reply("stop"), NOW)
    assert t.state.stage == "confirm_stop"
    back = advance(t.state, Reply("no"), NOW)
    assert back.state.stage == "asking"
    assert back.effects[-1] == Ask("promise:7")


def test_promise_steps_survive_serialisation() -> None:
    assert State.from_dict(FIRST_PROMISE.to_dict()) == FIRST_PROMISE
