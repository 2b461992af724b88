"""The check-in service: read -> compute (model) -> one short write -> reply.

``handle`` first reads what the event needs and runs the model (embedding, change assessment)
with no transaction open (:mod:`bot.engine.precompute`). Then one write transaction claims the
event's idempotency key, checks that the check-in has not moved meanwhile (if it has, everything
is computed again), and commits the answer, its embedding, a follow-up and the new conversation
state together, or not at all. Replies are rendered and returned to the channel, which sends them.

The service is synchronous on purpose. Async channel adapters call it through
``asyncio.to_thread``, which also keeps embedding work off the event loop.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.config import ProgramConfig
from bot.engine import flow, owners, precompute, promises
from bot.engine.ports import Choice, Inbound, Outbound
from bot.engine.precompute import Precomputed
from bot.engine.ratings import parse_rating
from memory import store
from memory.changes import Assessment, ChangeDetector, PastAnswer, Reason, excerpt
from memory.db import transaction
from memory.embeddings import from_bytes, to_bytes
from memory.errors import NotEnrolled, OptedOut
from memory.models import Answer, ChannelIdentity, Checkin, FollowUp, Person, ProcessedEvent

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Started:
    checkin_id: int
    created: bool
    messages: list[Outbound]


@dataclass
class _Turn:
    """What one call accumulates before it renders replies."""

    person: Person
    checkin: Checkin
    program: ProgramConfig
    markup: prompts.Markup
    now: dt.datetime
    ref: str | None = None
    assessment: Assessment | None = None
    pre: Precomputed | None = None
    out: list[Outbound] = field(default_factory=list)


# What the follow-up names, most concrete first: an earlier answer returned to, a flipped stance,
# the rating, an idea gone or new. Plain drift only when nothing else is strong enough to name.
_CONCRETE = ("history", "stance", "rating", "disappeared", "appeared")
_NAMEABLE = 0.3


class _Moved(Exception):
    """What the model's work was computed from changed before the write: compute again."""


#: Times ``handle`` recomputes when the check-in moved under it, before computing inside the write.
RECOMPUTE_TRIES = 3


def _most_concrete(reasons: tuple[Reason, ...]) -> Reason | None:
    for kind in _CONCRETE:
        for reason in reasons:
            if reason.kind == kind and reason.strength >= _NAMEABLE:
                return reason
    return reasons[0] if reasons else None


class CheckinService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        programs: Mapping[str, ProgramConfig],
        detector: ChangeDetector,
        max_followups: int = 1,
        max_answer_chars: int = 20_000,
        quote_chars: int = 120,
    ) -> None:
        self.sessions = sessions
        self.programs = programs
        self.detector = detector
        self.max_followups = max_followups
        self.max_answer_chars = max_answer_chars
        self.quote_chars = quote_chars

    # Starting ---------------------------------------------------------------------------------

    def new_state(self, program: ProgramConfig) -> flow.State:
        script = tuple(flow.Step(key=q.key, kind=q.kind, low=q.min, high=q.max) for q in program.questions)
        return flow.State(script=script, max_followups=self.max_followups, max_chars=self.max_answer_chars)

    def start(
        self,
        *,
        person_ref: str,
        program: str,
        now: dt.datetime,
        channel: str,
        markup: prompts.Markup = "plain",
        wave_id: int | None = None,
        expires_at: dt.datetime | None = None,
    ) -> Started:
        """Open (or resume) the person's check-in in a program and return what to send."""
        with transaction(self.sessions) as s:
            person = store.require_person(s, person_ref)
            return self.start_in(
                s, person=person, program=program, now=now, channel=channel, markup=markup,
                wave_id=wave_id, expires_at=expires_at,
            )  # fmt: skip

    def start_in(
        self,
        s: Session,
        *,
        person: Person,
        program: str,
        now: dt.datetime,
        channel: str,
        markup: prompts.Markup = "plain",
        wave_id: int | None = None,
        expires_at: dt.datetime | None = None,
    ) -> Started:
        """``start`` inside the caller's transaction (the scheduler claims an outbox row with it)."""
        config = self.programs[program]
        row = store.program_by_name(s, program)
        if person.opted_out_at is not None:
            raise OptedOut(person.key)
        if not store.is_enrolled(s, person.id, row.id):
            raise NotEnrolled(person.key, program)
        checkin = store.open_checkin(s, person.id, row.id)
        created = checkin is None
        if checkin is None:
            state = self.new_state(config)
            # Promises due by now are asked about after the core questions.
            state = promises.with_due_promises(s, state, person=person, program=row, now=now)
            checkin = Checkin(
                person_id=person.id, program_id=row.id, wave_id=wave_id, status="invited", channel=channel,
                state=state.to_dict(), started_at=now, updated_at=now, expires_at=expires_at,
            )  # fmt: skip
            s.add(checkin)
            s.flush()
        else:
            checkin.channel = channel
        turn = _Turn(person=person, checkin=checkin, program=config, markup=markup, now=now)
        self._run(s, turn, flow.Begin() if created else flow.Resume())
        return Started(checkin_id=checkin.id, created=created, messages=turn.out)

    # Inbound ----------------------------------------------------------------------------------

    def handle(self, inbound: Inbound, *, markup: prompts.Markup = "plain") -> list[Outbound]:
        """Process one inbound event exactly once and return the replies to send."""
        for _ in range(RECOMPUTE_TRIES):
            pre = self._precompute(inbound)
            try:
                return self._write(inbound, markup, pre)
            except _Moved:
                log.info("the check-in moved while the model ran; computing again")
        # Still racing: compute inside the write transaction (correct, holds the lock longer).
        return self._write(inbound, markup, None)

    def _precompute(self, inbound: Inbound) -> Precomputed | None:
        """A short read, then the model with no transaction open (see ``bot.engine.precompute``)."""
        if inbound.kind not in ("text", "edit"):
            return None
        with self.sessions() as s:
            if inbound.event_key and s.get(ProcessedEvent, f"{inbound.channel}:{inbound.event_key}") is not None:
                return None
            person = self._sender(s, inbound)[1]
            if person is None or person.opted_out_at is not None:
                return None
            if inbound.kind == "edit":
                answer = self._edited_answer(s, person, inbound)
                text = (inbound.text or "").strip()
                if answer is None or answer.kind != "text" or not text or len(text) > self.max_answer_chars:
                    return None
                return precompute.for_edit(answer, text, self.detector)
            checkin = self._checkin_for(s, person, inbound)
            program = self.programs.get(checkin.program.name) if checkin is not None else None
            if checkin is None or program is None:
                return None
            return precompute.for_turn(
                s, checkin=checkin, inbound=inbound, detector=self.detector,
                rating_key=lambda key: self._rating_key(program, key),
            )  # fmt: skip

    def _sender(self, s: Session, inbound: Inbound) -> tuple[ChannelIdentity | None, Person | None]:
        identity = store.find_identity(
            s, channel=inbound.channel, external_id=inbound.sender, workspace=inbound.workspace
        )
        person = identity.person if identity is not None else None
        if person is None and inbound.channel == "terminal":
            person = store.find_person(s, inbound.sender)
        return identity, person

    @staticmethod
    def _checkin_for(s: Session, person: Person, inbound: Inbound) -> Checkin | None:
        checkins = store.open_checkins(s, person.id)
        checkin = next((c for c in checkins if c.id == inbound.checkin_id), None) if inbound.checkin_id else None
        return checkin or (checkins[0] if checkins else None)

    def _write(self, inbound: Inbound, markup: prompts.Markup, pre: Precomputed | None) -> list[Outbound]:
        with transaction(self.sessions) as s:
            key = f"{inbound.channel}:{inbound.event_key}"
            if inbound.event_key and not store.claim_event(s, key, inbound.received_at):
                log.info("duplicate inbound event ignored", extra={"channel": inbound.channel})
                return []
            # Owners' commands ("promise @person ..."); None for everyone who is not an owner.
            owner_replies = owners.handle_owner_message(s, inbound, markup)
            if owner_replies is not None:
                return owner_replies
            identity, person = self._sender(s, inbound)
            if person is None:
                # Editing or deleting a message is not a question to answer, even from a stranger.
                return [] if inbound.kind in ("edit", "delete") else [self._say("unknown_person", markup)]
            if identity is not None and not identity.reachable:
                # They wrote to us, so the channel works again.
                identity.reachable, identity.unreachable_reason, identity.unreachable_at = True, None, None
            return self._handle_person(s, person, inbound, markup, pre)

    def _handle_person(
        self, s: Session, person: Person, inbound: Inbound, markup: prompts.Markup, pre: Precomputed | None = None
    ) -> list[Outbound]:
        now = inbound.received_at
        command = inbound.command or (flow.command_of(inbound.text or "") if inbound.kind == "text" else None)
        if person.opted_out_at is not None:
            if command == "start":
                person.opted_out_at = None
                out = [self._say("resumed_opt_in", markup)]
                checkins = store.open_checkins(s, person.id)
                if checkins:
                    out += self._turn(s, person, checkins[0], markup, now, flow.Resume())
                return out
            if inbound.kind in ("delete", "edit"):
                return []
            return [self._say("opted_out_reminder", markup)]

        checkin = self._checkin_for(s, person, inbound)

        if inbound.kind == "delete":
            return []
        if inbound.kind == "edit":
            return self._edit(s, person, inbound, markup, pre)
        if checkin is None:
            if command == "help":
                return [self._say("help", markup, final=True)]
            if command == "stop":
                # Between check-ins there is nothing to carry on with, so "stop" needs no
                # confirmation; "start" undoes it.
                person.opted_out_at = now
                return [self._say("opted_out", markup)]
            if inbound.checkin_id is not None:
                closed = s.get(Checkin, inbound.checkin_id)
                if closed is not None and closed.person_id == person.id and closed.status == "completed":
                    return [self._say("already_done", markup)]
            return [self._say("no_checkin", markup)]

        if inbound.kind == "non_text":
            state = flow.State.from_dict(checkin.state)
            step = state.current
            rating = step is not None and step.kind == "rating" and state.stage == "asking"
            return [
                self._say(
                    "not_text", markup, rating=rating, low=step.low if step else 0, high=step.high if step else 10
                )
            ]

        if pre is not None and pre.basis != precompute.checkin_basis(checkin):
            raise _Moved
        return self._turn(s, person, checkin, markup, now, precompute.event_of(inbound), ref=inbound.ref, pre=pre)

    def _turn(
        self,
        s: Session,
        person: Person,
        checkin: Checkin,
        markup: prompts.Markup,
        now: dt.datetime,
        event: flow.Event,
        ref: str | None = None,
        pre: Precomputed | None = None,
    ) -> list[Outbound]:
        program = self.programs.get(checkin.program.name)
        if program is None:
            return [self._say("no_checkin", markup)]
        turn = _Turn(person=person, checkin=checkin, program=program, markup=markup, now=now, ref=ref, pre=pre)
        self._run(s, turn, event)
        return turn.out

    def expire(self, s: Session, checkin: Checkin, now: dt.datetime) -> None:
        """Close an open check-in whose wave ended (used by the scheduler)."""
        program = self.programs.get(checkin.program.name)
        if program is None:
            checkin.status, checkin.updated_at = "expired", now
            return
        person = s.get(Person, checkin.person_id)
        assert person is not None
        turn = _Turn(person=person, checkin=checkin, program=program, markup="plain", now=now)
        self._run(s, turn, flow.Expire())

    # Effects ----------------------------------------------------------------------------------

    def _run(self, s: Session, turn: _Turn, event: flow.Event) -> None:
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

    def _apply(self, s: Session, turn: _Turn, state: flow.State, effect: flow.Effect) -> flow.Event | None:
        checkin, now = turn.checkin, turn.now
        if isinstance(effect, flow.Say):
            params = dict(effect.params)
            if effect.template == "invitation":
                params.update(
                    name=turn.person.name, program_title=turn.program.title or checkin.program.name,
                    count=len(turn.program.questions),
                )  # fmt: skip
            turn.out.append(self._say(effect.template, turn.markup, **params))
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
                followup.answer_text, followup.answered_at, followup.answer_ref = effect.text, now, turn.ref
        elif isinstance(effect, flow.SkipFollowUp):
            followup = store.pending_followup(s, checkin.id)
            if followup is not None:
                followup.skipped = True
        elif isinstance(effect, flow.SaveOutcome):
            promises.save_outcome(s, effect, checkin_id=checkin.id, person_id=checkin.person_id, now=now)
        elif isinstance(effect, flow.Complete):
            checkin.completed_at = now
        elif isinstance(effect, flow.OptOut):
            turn.person.opted_out_at = now
            for other in store.open_checkins(s, turn.person.id):
                if other.id != checkin.id:
                    other.status, other.updated_at = "opted_out", now
        elif isinstance(effect, flow.MarkExpired):
            checkin.expires_at = checkin.expires_at or now
        return None

    def _kind(self, turn: _Turn, key: str) -> str:
        question = turn.program.question(key)
        return question.kind if question else "text"

    def _save_answer(self, s: Session, turn: _Turn, effect: flow.SaveAnswer) -> None:
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
            if turn.pre is not None and turn.pre.text == effect.text:
                answer.embedding, answer.embedding_model = turn.pre.embedding, turn.pre.model_id
            else:
                answer.embedding = to_bytes(self.detector.embedder.encode([effect.text])[0])
                answer.embedding_model = self.detector.embedder.model_id
        s.flush()

    def _rating_key(self, program: ProgramConfig, text_key: str) -> str | None:
        """The rating question a free-text question explains: the nearest rating before it."""
        keys = [q.key for q in program.questions]
        before = program.questions[: keys.index(text_key)] if text_key in keys else program.questions
        ratings = [q.key for q in before if q.kind == "rating"]
        return ratings[-1] if ratings else None

    def _assess(self, s: Session, turn: _Turn, key: str) -> Assessment:
        checkin = turn.checkin
        current = store.answer_for(s, checkin.id, key)
        assert current is not None
        assert current.text is not None
        earlier = store.earlier_answers(
            s, person_id=checkin.person_id, program_id=checkin.program_id, question=key, before=checkin
        )
        rating_key = self._rating_key(turn.program, key)

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

    def _followup(self, s: Session, turn: _Turn, key: str) -> Outbound:
        checkin = turn.checkin
        pending = store.pending_followup(s, checkin.id)
        if pending is None or turn.assessment is not None:
            assessment = turn.assessment
            assert assessment is not None
            assert assessment.compared_to is not None
            answer = store.answer_for(s, checkin.id, key)
            assert answer is not None
            params = self._followup_params(answer, assessment)
            pending = FollowUp(
                checkin_id=checkin.id, answer_id=answer.id, previous_answer_id=assessment.compared_to.answer_id,
                question=prompts.render("person/followup", "plain", **params), score=assessment.score,
                reasons=[r.as_dict() for r in assessment.reasons],
                prompt={k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in params.items()},
                asked_at=turn.now,
            )  # fmt: skip
            s.add(pending)
            s.flush()
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
        current = excerpt(answer.text, self.quote_chars) if answer.text else ""
        params: dict[str, Any] = {
            "reason": reason,
            "when": previous.answered_at,
            "quote": (top.quote if top and top.quote else excerpt(previous.text, self.quote_chars)),
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

    def _question(self, turn: _Turn, key: str) -> Outbound:
        question = turn.program.question(key)
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

    def _say(self, template: str, markup: prompts.Markup, **params: Any) -> Outbound:
        return Outbound(text=prompts.render(f"person/{template}", markup, **params))

    # Edits ------------------------------------------------------------------------------------

    @staticmethod
    def _edited_answer(s: Session, person: Person, inbound: Inbound) -> Answer | None:
        if not inbound.ref:
            return None
        return s.query(Answer).filter(Answer.person_id == person.id, Answer.source_ref == inbound.ref).first()

    def _edit(
        self, s: Session, person: Person, inbound: Inbound, markup: prompts.Markup, pre: Precomputed | None = None
    ) -> list[Outbound]:
        """An edited message corrects the answer it carried, while the check-in is open."""
        if not inbound.ref:
            return []
        text = (inbound.text or "").strip()
        answer = self._edited_answer(s, person, inbound)
        if pre is not None and (answer is None or pre.basis != precompute.answer_basis(answer)):
            raise _Moved
        followup = None
        if answer is None:
            followup = (
                s.query(FollowUp)
                .join(Checkin, FollowUp.checkin_id == Checkin.id)
                .filter(Checkin.person_id == person.id, FollowUp.answer_ref == inbound.ref)
                .first()
            )
            if followup is None:
                return []
        checkin = s.get(Checkin, answer.checkin_id if answer else followup.checkin_id)  # type: ignore[union-attr]
        assert checkin is not None
        if checkin.status not in ("invited", "in_progress"):
            return [self._say("edit_too_late", markup)]
        if not text:
            return [self._say("edit_rejected", markup, problem="the new text is empty")]
        if len(text) > self.max_answer_chars:
            return [self._say("edit_rejected", markup, problem="the new text is too long")]
        if followup is not None:
            followup.answer_text = text
            return [self._say("edit_ack", markup, question=None)]
        assert answer is not None
        program = self.programs.get(checkin.program.name)
        question = program.question(answer.question) if program else None
        if answer.kind == "rating":
            low, high = (question.min, question.max) if question else (0, 10)
            parsed = parse_rating(text, low=low, high=high)
            if not parsed.ok:
                return [self._say("edit_rejected", markup, problem=f"it is not a number from {low} to {high}")]
            answer.rating, answer.text = parsed.value, parsed.comment
        else:
            answer.text = text
            if pre is not None and pre.text == text:
                answer.embedding, answer.embedding_model = pre.embedding, pre.model_id
            else:
                answer.embedding = to_bytes(self.detector.embedder.encode([text])[0])
                answer.embedding_model = self.detector.embedder.model_id
        answer.edited_at = inbound.received_at
        return [self._say("edit_ack", markup, question=question.text if question else None)]
