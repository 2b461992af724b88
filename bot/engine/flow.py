"""The check-in conversation as a pure state machine.

``advance(state, event, now) -> Transition(state, effects)`` reads no clock, touches no database and
sends nothing. The service (``bot.engine.service``) carries out the effects. The state, events and
effects are the plain dataclasses of ``bot.engine.flow_types``, reachable here as ``flow.X``. The
diagram in ``flow.md`` beside this file shows every stage; a test keeps the two in step.

Stages:

* ``invited``       the check-in exists; the person has not been asked yet.
* ``asking``        waiting for the answer to ``script[index]``.
* ``assessing``     a free-text answer is being compared with the person's history (the service
                    answers at once with ``Assessed``, in the same transaction).
* ``followup``      waiting for the answer to a "what changed?" question.
* ``reask``         the answer to it gave no reason ("yes", "idk", an emoji); asked once more,
                    more concretely. Whatever comes next is accepted.
* ``confirm_stop``  the person said stop; waiting for a yes.
* ``completed`` / ``opted_out`` / ``expired``  final.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from bot.engine.flow_types import (
    FINAL,
    STAGES,
    Ask,
    AskFollowUp,
    AssessChange,
    Assessed,
    Begin,
    Choose,
    Command,
    Complete,
    Effect,
    Event,
    Expire,
    MarkExpired,
    OptOut,
    Reply,
    Resume,
    SaveAnswer,
    SaveFollowUpAnswer,
    SaveOutcome,
    Say,
    SkipAnswer,
    SkipFollowUp,
    Stage,
    State,
    Step,
    Transition,
)
from bot.engine.ratings import parse_rating
from bot.engine.verdicts import VERDICT_VALUES, Verdict, parse_verdict
from memory.non_answers import is_non_answer

# The vocabulary lives in flow_types; callers use it as flow.X.
__all__ = [
    "COMMANDS", "FINAL", "NO", "STAGES", "YES", "Ask", "AskFollowUp", "AssessChange", "Assessed", "Begin", "Choose",
    "Command", "Complete", "Effect", "Event", "Expire", "MarkExpired", "OptOut", "Reply", "Resume", "SaveAnswer",
    "SaveFollowUpAnswer", "SaveOutcome", "Say", "SkipAnswer", "SkipFollowUp", "Stage", "State", "Step",
    "Transition", "advance", "command_of", "db_status"
]  # fmt: skip

COMMANDS = {"help", "skip", "stop", "start"}
YES = {"yes", "y", "yes.", "yes!", "yes please", "yes, stop", "stop", "confirm", "ok", "okay"}
NO = {"no", "n", "no.", "cancel", "continue", "carry on", "go on"}


def _next(state: State, *effects: Effect) -> Transition:
    """Move to the next question, or finish."""
    index = state.index + 1
    if index < len(state.script):
        new = replace(state, stage="asking", index=index)
        return Transition(new, (*effects, Ask(state.script[index].key)))
    new = replace(state, stage="completed", index=index)
    return Transition(new, (*effects, Complete(), Say("done")))


def _pending(state: State) -> tuple[Effect, ...]:
    """Whatever the person should see to carry on from here."""
    if state.stage == "followup":
        return (AskFollowUp(state.script[state.index].key),)
    if state.stage == "reask":
        return (Say("followup_reask"),)
    if state.stage == "confirm_stop":
        return (Say("confirm_stop"),)
    if state.current is not None:
        return (Ask(state.current.key),)
    return ()


def command_of(text: str) -> str | None:
    """``stop``, ``/stop``, ``Stop!`` and ``/stop@RapportBot`` are all the stop command."""
    word = text.strip().lower().lstrip("/").split("@", 1)[0].rstrip(".!")
    return word if word in COMMANDS else None


def advance(state: State, event: Event, now: dt.datetime) -> Transition:
    """The whole conversation. ``now`` is passed in (never read from a clock) and handed on."""
    if isinstance(event, Expire):
        if state.is_final:
            return Transition(state, ())
        return Transition(replace(state, stage="expired"), (MarkExpired(),))

    if state.is_final:
        if state.stage == "completed" and isinstance(event, (Reply, Choose, Command, Resume)):
            if isinstance(event, Command) and event.name == "help":
                return Transition(state, (Say("help", {"final": True}),))
            return Transition(state, (Say("already_done"),))
        return Transition(state, ())

    if isinstance(event, Begin):
        if state.stage != "invited":
            return Transition(state, _pending(state))
        first = replace(state, stage="asking", index=0)
        return Transition(first, (Say("invitation"), Ask(state.script[0].key, first=True)))

    if isinstance(event, Resume):
        if state.stage == "invited":
            return advance(state, Begin(), now)
        return Transition(state, (Say("resumed"), *_pending(state)))

    if isinstance(event, Assessed):
        if state.stage != "assessing":
            return Transition(state, ())
        if event.changed and state.followups_asked < state.max_followups:
            new = replace(state, stage="followup", followups_asked=state.followups_asked + 1)
            return Transition(new, (AskFollowUp(state.script[state.index].key),))
        return _next(state)

    if isinstance(event, Reply):
        cmd = command_of(event.text)
        if cmd is not None and (state.stage != "confirm_stop" or cmd in ("stop", "help")):
            return advance(state, Command(cmd), now)

    if isinstance(event, Command):
        return _command(state, event.name, now)

    if state.stage == "invited":
        # An answer before the invitation was shown: treat it as the start, then use it.
        return advance(replace(state, stage="asking", index=0), event, now)

    if state.stage == "confirm_stop":
        text = event.text if isinstance(event, Reply) else ""
        if text.strip().lower().rstrip(".!") in YES:
            return Transition(replace(state, stage="opted_out", paused_stage=None), (OptOut(), Say("opted_out")))
        back = replace(state, stage=state.paused_stage or "asking", paused_stage=None)
        return Transition(back, (Say("stop_cancelled"), *_pending(back)))

    if state.stage in ("followup", "reask"):
        if isinstance(event, Choose):
            return Transition(state, (Say("followup_needs_words"), *_pending(state)))
        text = event.text if isinstance(event, Reply) else ""
        problem = _text_problem(state, text)
        if problem:
            return Transition(state, (Say(problem, {"limit": state.max_chars}), *_pending(state)))
        if state.stage == "followup" and is_non_answer(text):
            # "yes", "idk", an emoji: no reason. Ask once more, more concretely; then accept anything.
            return Transition(
                replace(state, stage="reask"), (SaveFollowUpAnswer(text.strip(), final=False), Say("followup_reask"))
            )
        return _next(state, SaveFollowUpAnswer(text.strip()), Say("followup_thanks"))

    step = state.current
    if state.stage != "asking" or step is None:
        return Transition(state, _pending(state))

    if step.kind == "promise":
        return _promise(state, step, event)

    if step.kind == "rating":
        if isinstance(event, Choose):
            value, comment = event.value, None
            if not step.low <= value <= step.high:
                return Transition(
                    state, (Say("rating_out_of_range", {"low": step.low, "high": step.high}), Ask(step.key))
                )
        else:
            assert isinstance(event, Reply)
            parsed = parse_rating(event.text, low=step.low, high=step.high)
            if not parsed.ok:
                params = {"low": step.low, "high": step.high, "value": parsed.value}
                return Transition(state, (Say(f"rating_{parsed.problem}", params), Ask(step.key)))
            assert parsed.value is not None
            value, comment = parsed.value, parsed.comment
        answered = replace(state, answered=state.answered + 1)
        return _next(answered, SaveAnswer(step.key, "rating", value, comment))

    # Free text.
    if isinstance(event, Choose):
        return Transition(state, (Say("text_needs_words"), Ask(step.key)))
    assert isinstance(event, Reply)
    problem = _text_problem(state, event.text)
    if problem:
        return Transition(state, (Say(problem, {"limit": state.max_chars}), Ask(step.key)))
    assessing = replace(state, stage="assessing", answered=state.answered + 1)
    return Transition(assessing, (SaveAnswer(step.key, "text", None, event.text.strip()), AssessChange(step.key)))


def _promise(state: State, step: Step, event: Event) -> Transition:
    """A due promise: yes / partly / no (a button or words), the rest of the reply is a comment."""
    parsed: tuple[Verdict, str | None] | None = None
    if isinstance(event, Choose):
        verdict = VERDICT_VALUES.get(event.value)
        parsed = (verdict, None) if verdict else None
    else:
        parsed = parse_verdict(event.text) if isinstance(event, Reply) else None
    if parsed is None:
        return Transition(state, (Say("promise_unclear"), Ask(step.key)))
    verdict, comment = parsed
    return _next(state, SaveOutcome(step.key, verdict, comment), Say(f"promise_{verdict}"))


def _text_problem(state: State, text: str) -> str | None:
    if not text.strip():
        return "text_empty"
    if len(text) > state.max_chars:
        return "text_too_long"
    return None


def _command(state: State, name: str, now: dt.datetime) -> Transition:
    if name == "help":
        return Transition(state, (Say("help"), *_pending(state)))
    if name == "start":
        return advance(state, Resume(), now)
    if name in ("yes", "no"):
        # The Yes/No buttons under "stop?": typed words while it waits; from an old message, nothing.
        return advance(state, Reply(name), now) if state.stage == "confirm_stop" else Transition(state, _pending(state))
    if name == "stop":
        if state.stage == "confirm_stop":
            return Transition(replace(state, stage="opted_out", paused_stage=None), (OptOut(), Say("opted_out")))
        paused = state.stage if state.stage != "invited" else "asking"
        return Transition(replace(state, stage="confirm_stop", paused_stage=paused), (Say("confirm_stop"),))
    if name == "skip":
        if state.stage in ("followup", "reask"):
            return _next(state, SkipFollowUp(), Say("skipped"))
        step = state.current
        if step is None:
            return Transition(state, ())
        if step.kind == "promise":
            return _next(replace(state, stage="asking"), Say("skipped"))
        return _next(replace(state, stage="asking"), SkipAnswer(step.key), Say("skipped"))
    return Transition(state, (Say("help"), *_pending(state)))


def db_status(state: State) -> str:
    """The check-in status stored beside the state, for queries and reports."""
    if state.stage in FINAL:
        return state.stage
    return "in_progress" if state.answered or state.followups_asked or state.index > 0 else "invited"
