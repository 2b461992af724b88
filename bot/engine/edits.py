"""A person edits a message they sent: what the edit means is decided by :func:`bot.engine.outside.edit`;
this finds what the message carried (an answer, or a reply to a follow-up) and saves the edit,
embedding edited words again (with the embedding computed before the write when it still fits).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

import prompts
from bot.engine import flow, outside, precompute
from bot.engine.ports import Inbound, Outbound
from bot.engine.precompute import Moved, Precomputed
from bot.engine.script import Limits, Script
from bot.engine.turns import say
from memory.changes import ChangeDetector
from memory.embeddings import to_bytes
from memory.models import Answer, Checkin, FollowUp, Person


def ends(checkin: Checkin) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The check-in's own end and its wave's planned end."""
    return checkin.expires_at, checkin.wave.closes_at if checkin.wave is not None else None


def edited_answer(s: Session, person: Person, inbound: Inbound) -> Answer | None:
    """The answer the edited message carried, if it carried one."""
    if not inbound.ref:
        return None
    return s.query(Answer).filter(Answer.person_id == person.id, Answer.source_ref == inbound.ref).first()


@dataclass
class Edits:
    script_for: Callable[[Checkin], Script | None]
    limits: Limits
    detector: ChangeDetector

    def edit(
        self, s: Session, person: Person, inbound: Inbound, markup: prompts.Markup, pre: Precomputed | None
    ) -> list[Outbound]:
        """Find what the edited message carried; ``outside.edit`` decides what the edit does."""
        answer = edited_answer(s, person, inbound)
        if pre is not None and (answer is None or pre.basis != precompute.answer_basis(answer)):
            raise Moved
        followup = None
        if answer is None and inbound.ref:
            followup = (
                s.query(FollowUp)
                .join(Checkin, FollowUp.checkin_id == Checkin.id)
                .filter(Checkin.person_id == person.id, FollowUp.answer_ref == inbound.ref)
                .first()
            )
        if answer is None and followup is None:
            return []
        checkin = s.get(Checkin, answer.checkin_id if answer else followup.checkin_id)  # type: ignore[union-attr]
        assert checkin is not None
        script = self.script_for(checkin)
        question = script.question(answer.question) if script and answer else None
        low, high = (question.min, question.max) if question else (0, 10)
        effects = outside.edit(
            inbound.text or "",
            still_open=checkin.status in ("invited", "in_progress")
            and not outside.past_end(inbound.received_at, *ends(checkin)),
            kind="followup" if answer is None else ("rating" if answer.kind == "rating" else "text"),
            low=low, high=high, max_chars=self.limits.max_answer_chars,
            question=question.text if question else None,
        )  # fmt: skip
        out: list[Outbound] = []
        for effect in effects:
            if isinstance(effect, outside.SaveEdit):
                self._save_edit(answer, followup, effect, pre, inbound.received_at)
            elif isinstance(effect, flow.Say):
                out.append(say(effect.template, markup, **effect.params))
        return out

    def _save_edit(
        self, answer: Answer | None, followup: FollowUp | None, edit: outside.SaveEdit, pre: Precomputed | None,
        now: dt.datetime,
    ) -> None:  # fmt: skip
        if answer is None:
            assert followup is not None
            followup.answer_text = edit.text
            return
        if answer.kind == "rating":
            answer.rating, answer.text = edit.rating, edit.text
        else:
            answer.text = edit.text
            if pre is not None and pre.text == edit.text:
                answer.embedding, answer.embedding_model = pre.embedding, pre.model_id
            else:
                answer.embedding = to_bytes(self.detector.embedder.encode([edit.text or ""])[0])
                answer.embedding_model = self.detector.embedder.model_id
        answer.edited_at = now
