"""The model's work for one inbound event, done before the write transaction.

``CheckinService.handle`` used to embed and assess inside its write transaction, so on SQLite the
write lock was held while the model ran (about a second per free-text answer). Now a short read
looks at what the event will do (the pure flow says whether it saves a free-text answer and
compares it with the person's history), and the embedding and the assessment are computed with
no transaction open. The write transaction then checks that what they were computed from has not
moved (the check-in's state, or the edited answer) and uses them; if it moved, the service
computes again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot.engine import flow
from bot.engine.ports import Inbound
from memory import store
from memory.changes import Assessment, ChangeDetector, PastAnswer
from memory.embeddings import to_bytes
from memory.models import Answer, Checkin


class Moved(Exception):
    """What the model's work was computed from changed before the write: compute again."""


@dataclass(frozen=True, kw_only=True)
class Precomputed:
    """Embedding (and assessment) of the text an event saves, and what they were computed from."""

    basis: tuple[Any, ...]
    text: str
    embedding: bytes
    model_id: str
    assessment: Assessment | None = None


def checkin_basis(checkin: Checkin) -> tuple[Any, ...]:
    return ("checkin", checkin.id, json.dumps(checkin.state, sort_keys=True, default=str))


def answer_basis(answer: Answer) -> tuple[Any, ...]:
    return ("answer", answer.id, answer.text, answer.edited_at)


def event_of(inbound: Inbound) -> flow.Event:
    """The flow event an inbound message is (within a check-in)."""
    if inbound.kind == "choice" and inbound.value is not None:
        return flow.Choose(inbound.value)
    if inbound.kind == "command" and inbound.command:
        return flow.Command(inbound.command)
    return flow.Reply(inbound.text or "")


@dataclass(frozen=True, kw_only=True)
class Needed:
    """What the model needs for one event, read in a short read: the text and, to compare it,
    the person's earlier answers with their ratings."""

    basis: tuple[Any, ...]
    text: str
    history: tuple[PastAnswer, ...] | None
    rating: int | None = None


def read_turn(
    s: Session, *, checkin: Checkin, inbound: Inbound, rating_key: Callable[[str], str | None]
) -> Needed | None:
    """Run the flow on a copy of the state: does this event save free text to compare?"""
    state = flow.State.from_dict(checkin.state)
    transition = flow.advance(state, event_of(inbound), inbound.received_at)
    saves = [e for e in transition.effects if isinstance(e, flow.SaveAnswer) and e.kind == "text" and e.text]
    if not saves:
        return None
    save = saves[0]
    assert save.text is not None
    if not any(isinstance(e, flow.AssessChange) for e in transition.effects):
        return Needed(basis=checkin_basis(checkin), text=save.text, history=None)
    key = rating_key(save.key)
    earlier = store.earlier_answers(
        s, person_id=checkin.person_id, program_id=checkin.program_id, question=save.key, before=checkin
    )
    # The rating given in each of those check-ins and in this one: one query, not one per check-in.
    ratings = store.ratings_in(s, [checkin.id, *(a.checkin_id for a in earlier)], key) if key else {}
    history = tuple(
        PastAnswer(text=a.text or "", answered_at=a.answered_at, answer_id=a.id, embedding=a.embedding,
                   rating=ratings.get(a.checkin_id))
        for a in earlier
    )  # fmt: skip
    return Needed(basis=checkin_basis(checkin), text=save.text, history=history, rating=ratings.get(checkin.id))


def compute(needed: Needed, detector: ChangeDetector) -> Precomputed:
    """The model's work, with no transaction open: embed, and compare with the history."""
    assessment = None
    if needed.history:
        # The answer and its clauses in one encode call.
        vector, assessment = detector.embed_and_assess(
            text=needed.text, rating=needed.rating, history=list(needed.history)
        )
    else:
        vector = detector.embedder.encode([needed.text])[0]
        if needed.history is not None:
            assessment = Assessment(changed=False, score=0.0, reasons=())
    return Precomputed(
        basis=needed.basis, text=needed.text, embedding=to_bytes(vector), model_id=detector.embedder.model_id,
        assessment=assessment,
    )  # fmt: skip


def for_edit(answer: Answer, text: str, detector: ChangeDetector) -> Precomputed:
    vector = detector.embedder.encode([text])[0]
    return Precomputed(
        basis=answer_basis(answer), text=text, embedding=to_bytes(vector), model_id=detector.embedder.model_id
    )
