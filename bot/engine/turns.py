"""Carrying out one turn of the conversation inside the caller's transaction.

:class:`Turns` runs ``flow.advance`` and does what its effects say: save an answer (with the
embedding computed before the transaction, see ``bot.engine.precompute``), compare it with the
person's history, create a follow-up, record an outcome or an opt-out, and render the replies
from ``prompts/`` for the channel's markup. ``bot.engine.service`` owns the transactions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import prompts
from bot.engine import flow, people, promises
from bot.engine.ports import Choice, Outbound
from bot.engine.precompute import Precomputed
from bot.engine.script import Limits, Script
from memory import store
from memory.changes import Assessment, ChangeDetector, PastAnswer, Reason, excerpt
from memory.embeddings import from_bytes, to_bytes
from memory.models import Answer, Checkin, Enrollment, FollowUp, Person, Program


@dataclass
class Turn:
    """What one call accumulates before it renders replies."""

    person: Person
    checkin: Checkin
    script: Script
    markup: prompts.Markup
    now: dt.datetime
    ref: str | None = None
    assessment: Assessment | None = None
    pre: Precomputed | None = None
    out: list[Outbound] = field(default_factory=list)
    # Answers saved in this turn, by question (the follow-up names the one just saved).
    saved: dict[str, Answer] = field(default_factory=dict)


# What the follow-up names, most concrete first: an earlier answer returned to, a flipped stance,
# the rating, an idea gone or new. Plain drift only when nothing else is strong enough to name.
_CONCRETE = ("history", "stance", "rating", "disappeared", "appeared")
_NAMEABLE = 0.3


def _most_concrete(reasons: tuple[Reason, ...]) -> Reason | None:
    for kind in _CONCRETE:
        for reason in reasons:
            if reason.kind == kind and reason.strength >= _NAMEABLE:
                return reason
    return reasons[0] if reasons else None


def say(template: str, markup: prompts.Markup, **params: Any) -> Outbound:
    return Outbound(text=prompts.render(f"person/{template}", markup, **params))


def enrolled_scripts(s: Session, person: Person, scripts: Mapping[str, Script]) -> list[Script]:
    """The scripts of the programs the person takes part in (for "help" between check-ins)."""
    names = s.scalars(
        select(Program.name)
        .join(Enrollment, Enrollment.program_id == Program.id)
        .where(Enrollment.person_id == person.id, Enrollment.active)
        .order_by(Program.name)
    )
    return [scripts[name] for name in names if name in scripts]


def told(sentence: str) -> list[Outbound]:
    """The who-sees sentence as its own message after "help" (whole on every channel, also where
    a long message is clipped, such as the web page's conversation)."""
    return [Outbound(text=sentence)] if sentence else []


def who_sees(scripts: list[Script], markup: prompts.Markup) -> prompts.Trusted:
    """The sentence that tells people who sees their answers in these programs (one each, the
    same sentence once), rendered for the sink: the invitation carries it, and "help" is followed
    by it."""
    lines: list[str] = []
    for script in scripts:
        line = prompts.render(
            "person/who_sees", markup, anonymous=script.anonymous, k=script.k, owner_role=script.owner_role
        )
        if line not in lines:
            lines.append(line)
    return prompts.Trusted(" ".join(lines))


class Turns:
    def __init__(self, *, scripts: Mapping[str, Script], detector: ChangeDetector, limits: Limits) -> None:
        self.scripts = scripts
        self.detector = detector
        self.limits = limits

    def run(self, s: Session, turn: Turn, event: flow.Event) -> None:
        state = flow.State.from_dict(turn.checkin.state)
        pending: list[flow.Event] = [event]
        while pending:
            transition = flow.advance(state, pending.pop(0), turn.now)
            state = transition.state
            for effect in transition.effects:
                follow = self._apply(s, turn, state, effect)
                if follow is not None:
                    pending.append(follow)
        checkin = turn.checkin
        checkin.state = state.to_dict()
        checkin.status = flow.db_status(state)
        checkin.updated_at = turn.now
        if state.stage == "completed" and checkin.completed_at is None:
            checkin.completed_at = turn.now

    def _apply(self, s: Session, turn: Turn, state: flow.State, effect: flow.Effect) -> flow.Event | None:
        checkin, now = turn.checkin, turn.now
        if isinstance(effect, flow.Say):
            params = dict(effect.params)
            if effect.template == "invitation":
                params.update(
                    name=turn.person.name, program_title=turn.script.title,
                    count=len(turn.script.questions),
                )  # fmt: skip
            if effect.template == "invitation":
                params["who_sees"] = who_sees([turn.script], turn.markup)
            message = say(effect.template, turn.markup, **params)
            if effect.template == "confirm_stop":
                message = replace(message, confirm=True, checkin_id=checkin.id)
            turn.out.append(message)
            if effect.template == "help":
                turn.out += told(who_sees([turn.script], turn.markup))
        elif isinstance(effect, flow.Ask):
            if effect.key.startswith(promises.PREFIX):
                turn.out.append(promises.question(s, effect.key, turn.markup, checkin.id))
            else:
                turn.out.append(self._question(turn, effect.key))
        elif isinstance(effect, flow.SaveAnswer):
            self._save_answer(s, turn, effect)
        elif isinstance(effect, flow.SkipAnswer):
            answer = store.answer_for(s, checkin.id, effect.key) or Answer(
                checkin_id=checkin.id, person_id=checkin.person_id, program_id=checkin.program_id,
                question=effect.key, kind=self._kind(turn, effect.key), answered_at=now,
            )  # fmt: skip
            answer.skipped, answer.rating, answer.text, answer.answered_at = True, None, None, now
            s.add(answer)
        elif isinstance(effect, flow.AssessChange):
            computed = turn.pre.assessment if turn.pre is not None else None
            turn.assessment = computed if computed is not None else self._assess(s, turn, effect.key)
            return flow.Assessed(turn.assessment.changed)
        elif isinstance(effect, flow.AskFollowUp):
            turn.out.append(self._followup(s, turn, effect.key))
        elif isinstance(effect, flow.SaveFollowUpAnswer):
            followup = store.pending_followup(s, checkin.id)
            if followup is not None:
                # A reply that was re-asked stays pending (answered_at unset) until the next one.
                followup.answer_text, followup.answer_ref = effect.text, turn.ref
                followup.answered_at = now if effect.final else None
        elif isinstance(effect, flow.SkipFollowUp):
            followup = store.pending_followup(s, checkin.id)
            if followup is not None:
                followup.skipped = True
        elif isinstance(effect, flow.SaveOutcome):
            promises.save_outcome(s, effect, checkin_id=checkin.id, person_id=checkin.person_id, now=now)
        elif isinstance(effect, flow.Complete):
            checkin.completed_at = now
        elif isinstance(effect, flow.OptOut):
            # The flow closes this check-in itself; the rule closes every other one.
            people.opt_out(s, turn.person, now, keep=checkin.id)
        elif isinstance(effect, flow.MarkExpired):
            checkin.expires_at = checkin.expires_at or now
        return None

    def _kind(self, turn: Turn, key: str) -> str:
        question = turn.script.question(key)
        return question.kind if question else "text"

    def _save_answer(self, s: Session, turn: Turn, effect: flow.SaveAnswer) -> None:
        checkin = turn.checkin
        answer = store.answer_for(s, checkin.id, effect.key)
        if answer is None:
            answer = Answer(
                checkin_id=checkin.id, person_id=checkin.person_id, program_id=checkin.program_id,
                question=effect.key, kind=effect.kind, answered_at=turn.now,
            )  # fmt: skip
            s.add(answer)
        answer.rating, answer.text, answer.skipped = effect.rating, effect.text, False
        answer.answered_at, answer.source_ref = turn.now, turn.ref
        if effect.kind == "text" and effect.text:
            # Embedded before the write transaction when it could be (bot.engine.precompute).
            if turn.pre is not None and turn.pre.text == effect.text:
                answer.embedding, answer.embedding_model = turn.pre.embedding, turn.pre.model_id
            else:
                answer.embedding = to_bytes(self.detector.embedder.encode([effect.text])[0])
                answer.embedding_model = self.detector.embedder.model_id
        s.flush()
        turn.saved[effect.key] = answer

    def _assess(self, s: Session, turn: Turn, key: str) -> Assessment:
        checkin = turn.checkin
        current = store.answer_for(s, checkin.id, key)
        assert current is not None
        assert current.text is not None
        earlier = store.earlier_answers(
            s, person_id=checkin.person_id, program_id=checkin.program_id, question=key, before=checkin
        )
        rating_key = turn.script.rating_key(key)

        def rating_in(checkin_id: int) -> int | None:
            answer = store.answer_for(s, checkin_id, rating_key) if rating_key else None
            return answer.rating if answer else None

        # Each earlier answer carries the rating given with it; the detector compares the last one.
        history = [
            PastAnswer(text=a.text or "", answered_at=a.answered_at, answer_id=a.id, embedding=a.embedding,
                       rating=rating_in(a.checkin_id))
            for a in earlier
        ]  # fmt: skip
        if not history:
            return Assessment(changed=False, score=0.0, reasons=())
        vec = from_bytes(current.embedding) if current.embedding else None
        return self.detector.assess(text=current.text, rating=rating_in(checkin.id), history=history, embedding=vec)

    def _followup(self, s: Session, turn: Turn, key: str) -> Outbound:
        checkin = turn.checkin
        # A fresh assessment asks a new follow-up; otherwise the pending one is asked again.
        pending = store.pending_followup(s, checkin.id) if turn.assessment is None else None
        if pending is None:
            assessment = turn.assessment
            assert assessment is not None
            assert assessment.compared_to is not None
            answer = turn.saved.get(key) or store.answer_for(s, checkin.id, key)
            assert answer is not None
            params = self._followup_params(answer, assessment)
            # Anonymous programs: the person is told that the quote of their own words is theirs alone.
            params["private_quote"] = turn.script.anonymous
            pending = FollowUp(
                checkin_id=checkin.id, answer_id=answer.id, previous_answer_id=assessment.compared_to.answer_id,
                question=prompts.render("person/followup", "plain", **params), score=assessment.score,
                reasons=[r.as_dict() for r in assessment.reasons],
                prompt={k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in params.items()},
                asked_at=turn.now,
            )  # fmt: skip
            s.add(pending)  # written with the commit
        params = dict(pending.prompt)
        if isinstance(params.get("when"), str):
            params["when"] = dt.datetime.fromisoformat(params["when"])
        text = prompts.render("person/followup", turn.markup, **params)
        return Outbound(text=text, checkin_id=checkin.id, kind="followup", question=key)

    def _followup_params(self, answer: Answer, assessment: Assessment) -> dict[str, Any]:
        previous = assessment.compared_to
        assert previous is not None
        top = _most_concrete(assessment.reasons)
        reason = top.kind if top else "drift"
        current = excerpt(answer.text, self.limits.quote_chars) if answer.text else ""
        params: dict[str, Any] = {
            "reason": reason,
            "when": previous.answered_at,
            "quote": (top.quote if top and top.quote else excerpt(previous.text, self.limits.quote_chars)),
            "current": current,
        }
        if top is not None:
            if top.kind == "rating":
                params.update(previous_rating=top.data.get("previous"), current_rating=top.data.get("current"))
            if top.kind in ("appeared", "disappeared"):
                params["theme"] = top.data.get("theme", "")
            if top.kind == "history" and top.data.get("answered_at"):
                params["when"] = dt.datetime.fromisoformat(top.data["answered_at"])
        return params

    def _question(self, turn: Turn, key: str) -> Outbound:
        question = turn.script.question(key)
        assert question is not None
        if question.kind == "rating":
            text = prompts.render(
                "person/ask_rating", turn.markup, question=question.text, low=question.min, high=question.max,
                low_label=question.low_label, high_label=question.high_label,
            )  # fmt: skip
            choices = tuple(Choice(str(v), v) for v in range(question.min, question.max + 1))
            return Outbound(text=text, choices=choices, checkin_id=turn.checkin.id, kind="question", question=key)
        text = prompts.render("person/ask_text", turn.markup, question=question.text)
        return Outbound(text=text, checkin_id=turn.checkin.id, kind="question", question=key)
