"""The check-in conversation as a pure state machine.

``advance(state, event, now) -> Transition(state, effects)`` reads no clock, touches no database and
sends nothing. The service (``bot.engine.service``) carries out the effects. The diagram in
``flow.md`` beside this file shows every stage; a test keeps the two in step.

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
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from bot.engine.ratings import parse_rating
from bot.engine.verdicts import VERDICT_VALUES, Verdict, parse_verdict
from memory.non_answers import is_non_answer

Stage = Literal["invited", "asking", "assessing", "followup", "reask", "confirm_stop", "completed", "opted_out",
                "expired"]  # fmt: skip
STAGES: tuple[Stage, ...] = get_args(Stage)
FINAL: frozenset[Stage] = frozenset({"completed", "opted_out", "expired"})

COMMANDS = {"help", "skip", "stop", "start"}
YES = {"yes", "y", "yes.", "yes!", "yes please", "yes, stop", "stop", "confirm", "ok", "okay"}
NO = {"no", "n", "no.", "cancel", "continue", "carry on", "go on"}


@dataclass(frozen=True, kw_only=True)
class Step:
    """One question in the script of a check-in."""

    key: str
    # "promise" steps (key ``promise:<id>``) ask about a due promise after the core questions.
    kind: Literal["rating", "text", "promise"]
    low: int = 0
    high: int = 10


@dataclass(frozen=True, kw_only=True)
class State:
    script: tuple[Step, ...]
    stage: Stage = "invited"
    index: int = 0
    followups_asked: int = 0
    max_followups: int = 1
    max_chars: int = 20_000
    answered: int = 0
    # Where "stop" was said, so "no" returns there.
    paused_stage: Stage | None = None

    @property
    def current(self) -> Step | None:
        return self.script[self.index] if 0 <= self.index < len(self.script) else None

    @property
    def is_final(self) -> bool:
        return self.stage in FINAL

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["script"] = [asdict(s) for s in self.script]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> State:
        data = dict(data)
        data["script"] = tuple(Step(**s) for s in data.get("script", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


# Events ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Begin:
    """Send the invitation and the first question."""


@dataclass(frozen=True)
class Resume:
    """Ask again whatever is pending (after a restart, or /start)."""


@dataclass(frozen=True)
class Reply:
    text: str


@dataclass(frozen=True)
class Choose:
    """A button press carrying a rating."""

    value: int


@dataclass(frozen=True)
class Command:
    name: str


@dataclass(frozen=True)
class Assessed:
    changed: bool


@dataclass(frozen=True)
class Expire: ...


Event = Begin | Resume | Reply | Choose | Command | Assessed | Expire


# Effects --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """A message from ``prompts/`` (name without ``.j2``) with its parameters."""

    template: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ask:
    key: str
    first: bool = False


@dataclass(frozen=True)
class SaveAnswer:
    key: str
    kind: Literal["rating", "text"]
    rating: int | None
    text: str | None


@dataclass(frozen=True)
class SkipAnswer:
    key: str


@dataclass(frozen=True)
class AssessChange:
    key: str


@dataclass(frozen=True)
class AskFollowUp:
    key: str


@dataclass(frozen=True)
class SaveFollowUpAnswer:
    # Also a reply that gives no reason, not final (the reply to the re-ask replaces it), so it is
    # kept if the person goes quiet there.
    text: str
    final: bool = True


@dataclass(frozen=True)
class SkipFollowUp: ...


@dataclass(frozen=True)
class SaveOutcome:
    """The person's verdict on a promise (``key`` is the step's ``promise:<id>``)."""

    key: str
    verdict: Literal["yes", "partly", "no"]
    comment: str | None


@dataclass(frozen=True)
class Complete: ...


@dataclass(frozen=True)
class OptOut: ...


@dataclass(frozen=True)
class MarkExpired: ...


Effect = (
    Say
    | Ask
    | SaveAnswer
    | SkipAnswer
    | AssessChange
    | AskFollowUp
    | SaveFollowUpAnswer
    | SkipFollowUp
    | SaveOutcome
    | Complete
    | OptOut
    | MarkExpired
)


@dataclass(frozen=True)
class Transition:
    state: State
    effects: tuple[Effect, ...]


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
