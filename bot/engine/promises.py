"""The promise loop inside a check-in: ask about due promises after the core questions.

At the start of a check-in in an attributed program, each due promise to the person becomes a
``promise:<id>`` step at the end of the script (``memory.promises.due_promises`` decides what is
due). The flow parses the verdict; the service calls :func:`save_outcome` for ``SaveOutcome``.
Anonymous programs never ask: a promise answer there would tie words to a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sqlalchemy.orm import Session

import prompts
from bot.engine import flow
from bot.engine.ports import Choice, Outbound
from memory import promises, store
from memory.models import Person, Program, Promise

PREFIX = "promise:"


def promise_id(key: str) -> int | None:
    if not key.startswith(PREFIX):
        return None
    try:
        return int(key.removeprefix(PREFIX))
    except ValueError:
        return None


def with_due_promises(
    s: Session, state: flow.State, *, person: Person, program: Program, now: dt.datetime
) -> flow.State:
    """The state with a step for each promise due at ``now`` appended after the core questions."""
    if program.anonymous:
        return state
    due = promises.due_promises(s, person_id=person.id, now=now, program_id=program.id)
    # A promise already waiting in another open check-in (another program) is asked there only.
    waiting = {
        step.get("key")
        for other in store.open_checkins(s, person.id)
        for step in (other.state or {}).get("script", ())
        if isinstance(step, dict)
    }
    due = [p for p in due if f"{PREFIX}{p.id}" not in waiting]
    if not due:
        return state
    steps = tuple(flow.Step(key=f"{PREFIX}{p.id}", kind="promise") for p in due)
    return replace(state, script=(*state.script, *steps))


def question(s: Session, key: str, markup: prompts.Markup, checkin_id: int) -> Outbound:
    pid = promise_id(key)
    promise = s.get(Promise, pid) if pid is not None else None
    text = prompts.render(
        "person/ask_promise",
        markup,
        promise=promise.text if promise else "",
        made_at=promise.made_at if promise else None,
    )
    choices = (Choice("Yes", 2), Choice("Partly", 1), Choice("No", 0))
    return Outbound(text=text, choices=choices, checkin_id=checkin_id, kind="question", question=key)


def save_outcome(s: Session, effect: flow.SaveOutcome, *, checkin_id: int, person_id: int, now: dt.datetime) -> None:
    pid = promise_id(effect.key)
    promise = s.get(Promise, pid) if pid is not None else None
    # A promise deleted mid-check-in, or someone else's, records nothing.
    if promise is None or promise.person_id != person_id:
        return
    promises.record_outcome(
        s, promise=promise, verdict=effect.verdict, comment=effect.comment, now=now, checkin_id=checkin_id
    )
