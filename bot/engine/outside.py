"""Pure rules for what a person's message means outside a check-in's questions.

``flow.advance`` decides everything within an open check-in. These decide the rest: messages
while opted out, messages between check-ins (``stop`` needs no confirmation there), messages
after a check-in's end that the scheduler has not expired yet, a photo or sticker instead of
words, and an edited message that corrects an earlier answer. Like the flow,
they read no clock and touch no database: they return effects, and the service carries them out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from bot.engine import flow
from bot.engine.ratings import parse_rating


@dataclass(frozen=True)
class OptIn:
    """Clear the opt-out and show the open check-in again, if there is one."""


@dataclass(frozen=True)
class OptOutNow:
    """Opt out between check-ins: nothing is open, so nothing to confirm."""


@dataclass(frozen=True)
class SaveEdit:
    """Replace the edited answer (or follow-up answer) with the corrected value."""

    rating: int | None
    text: str | None


Effect = flow.Say | OptIn | OptOutNow | SaveEdit

Kind = Literal["text", "choice", "command", "edit", "delete", "non_text"]


def while_opted_out(kind: Kind, command: str | None) -> tuple[Effect, ...]:
    """Only "start" is heard; edits and deletions pass silently; anything else gets a reminder."""
    if command == "start":
        return (flow.Say("resumed_opt_in"), OptIn())
    if kind in ("delete", "edit"):
        return ()
    return (flow.Say("opted_out_reminder"),)


def past_end(now: dt.datetime, *ends: dt.datetime | None) -> bool:
    """A check-in is over at its own end or its wave's, whichever comes first, even before the
    scheduler's next tick has expired it: nothing said after that counts anywhere."""
    return any(end is not None and now >= end for end in ends)


def after_end(kind: Kind, command: str | None) -> tuple[Effect, ...]:
    """A message reached a check-in that is already over: an answer is refused kindly (it is
    counted in no wave: the closed wave's views are fixed, and the next wave asks again);
    commands such as "stop" and "help" mean what they mean between check-ins."""
    if kind in ("text", "choice") and command is None:
        return (flow.Say("late_answer"),)
    return between_checkins(command, just_completed=False)


def between_checkins(command: str | None, *, just_completed: bool) -> tuple[Effect, ...]:
    """No check-in is open."""
    if command == "help":
        return (flow.Say("help", {"final": True}),)
    if command == "stop":
        # Between check-ins there is nothing to carry on with, so "stop" needs no confirmation;
        # "start" undoes it.
        return (OptOutNow(), flow.Say("opted_out"))
    if just_completed:
        return (flow.Say("already_done"),)
    return (flow.Say("no_checkin"),)


def non_text(state: flow.State) -> tuple[Effect, ...]:
    """A photo, sticker or voice note: say what is needed, in the terms of the pending question."""
    step = state.current
    rating = step is not None and step.kind == "rating" and state.stage == "asking"
    params = {"rating": rating, "low": step.low if step else 0, "high": step.high if step else 10}
    return (flow.Say("not_text", params),)


def edit(
    text: str,
    *,
    still_open: bool,
    kind: Literal["rating", "text", "followup"],
    low: int = 0,
    high: int = 10,
    max_chars: int,
    question: str | None = None,
) -> tuple[Effect, ...]:
    """An edited message corrects the answer it carried, while its check-in is open."""
    text = text.strip()
    if not still_open:
        return (flow.Say("edit_too_late"),)
    if not text:
        return (flow.Say("edit_rejected", {"problem": "the new text is empty"}),)
    if len(text) > max_chars:
        return (flow.Say("edit_rejected", {"problem": "the new text is too long"}),)
    if kind == "followup":
        return (SaveEdit(rating=None, text=text), flow.Say("edit_ack", {"question": None}))
    if kind == "rating":
        parsed = parse_rating(text, low=low, high=high)
        if not parsed.ok:
            return (flow.Say("edit_rejected", {"problem": f"it is not a number from {low} to {high}"}),)
        return (SaveEdit(rating=parsed.value, text=parsed.comment), flow.Say("edit_ack", {"question": question}))
    return (SaveEdit(rating=None, text=text), flow.Say("edit_ack", {"question": question}))
