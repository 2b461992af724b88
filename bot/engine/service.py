"""The check-in service, the engine's thin shell: read -> compute (model) -> one short write -> reply.

``handle`` first reads what the event needs and runs the model (embedding, change assessment)
with no transaction open (:mod:`bot.engine.precompute`). Then one write transaction claims the
event's idempotency key, checks that what the model's work was computed from has not moved (if it
has, everything is computed again), and commits the answer, its embedding, a follow-up and the new
conversation state together, or not at all. A crash before the commit loses nothing: the channel
redelivers and the event is processed again; a duplicate event key gets no replies, unless the
channel asked to confirm its replies (``confirm=True``) and never did: then the person is shown
the question their conversation waits on. Edits are :mod:`bot.engine.edits`.

What a message means is decided by pure rules: :mod:`bot.engine.flow` within a check-in,
:mod:`bot.engine.outside` for the rest (opted out, between check-ins, non-text, edits, and a
message that reaches a check-in after its end or its wave's: the check-in ends then and there
and the answer is refused, so nothing can join a closed wave's views).
:mod:`bot.engine.turns` carries out the effects inside the transaction.

The service is synchronous on purpose. Async channel adapters call it through
``asyncio.to_thread``, which also keeps embedding work off the event loop.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.engine import flow, outside, owners, people, precompute, promises
from bot.engine.edits import Edits, edited_answer, ends
from bot.engine.mydata import After, OwnData, Prepared
from bot.engine.ports import Inbound, Outbound, RepliesPending
from bot.engine.precompute import Moved, Precomputed
from bot.engine.script import Limits, Script
from bot.engine.turns import Turn, Turns, enrolled_scripts, say, told, who_sees
from bot.engine.writes import Writes
from memory import store
from memory.batching import expecting
from memory.changes import ChangeDetector
from memory.db import transaction
from memory.errors import NotEnrolled, OptedOut
from memory.models import OPEN_STATUSES, Answer, ChannelIdentity, Checkin, Person

log = logging.getLogger(__name__)

#: Times ``handle`` recomputes when the check-in moved under it, before computing inside the write.
RECOMPUTE_TRIES = 3


@dataclass(frozen=True, kw_only=True)
class Started:
    checkin_id: int
    created: bool
    messages: list[Outbound]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CheckinService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        scripts: Mapping[str, Script],
        detector: ChangeDetector,
        limits: Limits | None = None,
        clock: Callable[[], dt.datetime] = _utcnow,
        digest_folder: Path | None = None,
    ) -> None:
        self.sessions = sessions
        self.scripts = dict(scripts)
        self.detector = detector
        self.limits = limits or Limits()
        # The one clock, for callers that have no event time of their own (an inbound event
        # carries ``received_at``, which is the time the engine uses for it).
        self.clock = clock
        self.turns = Turns(scripts=self.scripts, detector=detector, limits=self.limits)
        self.edits = Edits(script_for=self._script_for, limits=self.limits, detector=detector)
        # A person's own answers: see, correct, delete ("my data"), and deleted chat messages.
        self.own = OwnData(sessions=sessions, scripts=self.scripts, embedder=detector.embedder, limits=self.limits,
                           digest_folder=digest_folder)  # fmt: skip
        # Program names by id (a program's name never changes): no query per answer to learn it.
        self._program_names: dict[int, str] = {}
        # SQLite takes one writer at a time; a writer that finds the lock taken polls for it with
        # growing sleeps (busy_timeout), leaving the lock idle between holders. This process's
        # writers queue in ``Writes`` instead, and the ones that queued together commit together;
        # other processes still meet at SQLite's lock. PostgreSQL writes in parallel: no queue.
        self._writes = Writes.for_sessions(sessions)

    def _script_for(self, checkin: Checkin) -> Script | None:
        name = self._program_names.get(checkin.program_id)
        if name is None:
            name = self._program_names[checkin.program_id] = checkin.program.name
        return self.scripts.get(name)

    # Starting ---------------------------------------------------------------------------------

    def new_state(self, script: Script) -> flow.State:
        steps = tuple(flow.Step(key=q.key, kind=q.kind, low=q.min, high=q.max) for q in script.questions)
        return flow.State(script=steps, max_followups=self.limits.max_followups, max_chars=self.limits.max_answer_chars)

    def start(
        self,
        *,
        person_ref: str,
        program: str,
        channel: str,
        now: dt.datetime | None = None,
        markup: prompts.Markup = "plain",
        wave_id: int | None = None,
        expires_at: dt.datetime | None = None,
    ) -> Started:
        """Open (or resume) the person's check-in in a program and return what to send."""
        with transaction(self.sessions) as s:
            person = store.require_person(s, person_ref)
            return self.start_in(
                s, person=person, program=program, now=now or self.clock(), channel=channel, markup=markup,
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
        script = self.scripts[program]
        row = store.program_by_name(s, program)
        if person.opted_out_at is not None:
            raise OptedOut(person.key)
        if not store.is_enrolled(s, person.id, row.id):
            raise NotEnrolled(person.key, program)
        checkin = store.open_checkin(s, person.id, row.id)
        created = checkin is None
        if checkin is None:
            state = self.new_state(script)
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
        turn = Turn(person=person, checkin=checkin, script=script, markup=markup, now=now)
        self.turns.run(s, turn, flow.Begin() if created else flow.Resume())
        return Started(checkin_id=checkin.id, created=created, messages=turn.out)

    def expire(self, s: Session, checkin: Checkin, now: dt.datetime) -> None:
        """Close an open check-in whose wave ended (used by the scheduler)."""
        script = self._script_for(checkin)
        if script is None:
            checkin.status, checkin.updated_at = "expired", now
            return
        person = s.get(Person, checkin.person_id)
        assert person is not None
        self.turns.run(s, Turn(person=person, checkin=checkin, script=script, markup="plain", now=now), flow.Expire())

    def _expire_now(self, s: Session, checkin: Checkin, now: dt.datetime) -> None:
        self.expire(s, checkin, now)
        if checkin.status in OPEN_STATUSES:
            checkin.status, checkin.updated_at = "expired", now

    # Inbound ----------------------------------------------------------------------------------

    def handle(
        self, inbound: Inbound, *, markup: prompts.Markup = "plain", confirm: bool = False,
        replies_pending_for: dt.timedelta | None = None,
    ) -> list[Outbound]:  # fmt: skip
        """Process one inbound event exactly once and return the replies to send.

        ``confirm=True``: the channel sends the replies after this returns and calls
        :meth:`replied` once they are out. Until then a redelivery of the same event (after a
        crash between the commit and the send) is answered with where the conversation stands,
        instead of being ignored as a duplicate. With ``replies_pending_for``, a redelivery that
        comes less than that long after the event was stored raises :class:`RepliesPending`
        instead: whoever stored it is most likely still sending its replies (a channel whose
        platform redelivers again later passes it)."""
        prepared = self.own.prepare(inbound)
        write = functools.partial(self._write_in, inbound, markup, confirm=confirm, pending_for=replies_pending_for)
        for _ in range(RECOMPUTE_TRIES):
            # Announced to the micro-batcher: a batch's leader may wait for this answer to join.
            with expecting(self.detector.embedder):
                pre = self._precompute(inbound)
            try:
                return self._writes.run(functools.partial(write, pre, prepared))
            except Moved:
                log.info("the check-in moved while the model ran; computing again")
        # Still racing: compute inside the write transaction (correct, holds the lock longer).
        return self._writes.run(functools.partial(write, None, prepared))

    def _precompute(self, inbound: Inbound) -> Precomputed | None:
        """A short read, then the model with no transaction open."""
        if inbound.kind not in ("text", "edit"):
            return None
        edited: tuple[Answer, str] | None = None
        needed: precompute.Needed | None = None
        with self.sessions() as s:
            if inbound.event_key and store.event_seen(s, self._event_key(inbound)):
                return None  # a redelivery: the write refuses it, and the model need not run
            person = self._sender(s, inbound)[1]
            if person is None or person.opted_out_at is not None:
                return None
            if inbound.kind == "edit":
                answer = edited_answer(s, person, inbound)
                text = (inbound.text or "").strip()
                if answer is None or answer.kind != "text" or not text or len(text) > self.limits.max_answer_chars:
                    return None
                edited = (answer, text)
            else:
                checkin = self._checkin_for(s, person, inbound)
                script = self._script_for(checkin) if checkin is not None else None
                if checkin is None or script is None or outside.past_end(inbound.received_at, *ends(checkin)):
                    return None  # nothing to compute (a message after the end is refused unread)
                needed = precompute.read_turn(s, checkin=checkin, inbound=inbound, rating_key=script.rating_key)
        # The read is over (its connection is back in the pool); now the model.
        if edited is not None:
            return precompute.for_edit(edited[0], edited[1], self.detector)
        return precompute.compute(needed, self.detector) if needed is not None else None

    @staticmethod
    def _sender(s: Session, inbound: Inbound) -> tuple[ChannelIdentity | None, Person | None]:
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

    def _write_in(
        self, inbound: Inbound, markup: prompts.Markup, pre: Precomputed | None, prepared: Prepared | None,
        s: Session, after: After, *, confirm: bool, pending_for: dt.timedelta | None,
    ) -> list[Outbound]:  # fmt: skip
        """One event's write, inside the transaction ``Writes`` gives it (``after``: work for
        after the commit, such as digest files and the SQLite WAL)."""
        key = self._event_key(inbound)
        if inbound.event_key and not store.claim_event(s, key, inbound.received_at, replied=not confirm):
            stored_at = store.unreplied_since(s, key)
            if stored_at is not None and pending_for is not None and inbound.received_at - stored_at < pending_for:
                log.info("redelivered event stored moments ago; its replies are likely on their way",
                         extra={"channel": inbound.channel})  # fmt: skip
                raise RepliesPending
            if stored_at is not None:
                log.info("redelivered event whose replies were never confirmed", extra={"channel": inbound.channel})
                return self._where_it_stands(s, inbound, markup)
            log.info("duplicate inbound event ignored", extra={"channel": inbound.channel})
            return []
        # Owners' commands ("promise @person ..."); None for everyone who is not an owner.
        owner_replies = owners.handle_owner_message(s, inbound, markup)
        if owner_replies is not None:
            return owner_replies
        identity, person = self._sender(s, inbound)
        if person is None:
            # Editing or deleting a message is not a question to answer, even from a stranger.
            return [] if inbound.kind in ("edit", "delete") else [say("unknown_person", markup)]
        if identity is not None and not identity.reachable:
            # They wrote to us, so the channel works again.
            people.mark_reachable(identity)
        return self._handle_person(s, person, inbound, markup, pre, prepared, after)

    def replied(self, inbound: Inbound) -> None:
        """The replies to ``inbound`` are out (see ``handle(confirm=True)``)."""
        if inbound.event_key:
            key, now = self._event_key(inbound), self.clock()
            # Queued with the answers' writes (on SQLite, it commits with whichever are waiting).
            self._writes.run(lambda s, _after: store.mark_replied(s, key, now))

    def _where_it_stands(self, s: Session, inbound: Inbound, markup: prompts.Markup) -> list[Outbound]:
        """The event was stored but its replies may never have gone out: show the person the
        question their conversation waits on (nothing is stored again)."""
        person = self._sender(s, inbound)[1]
        checkin = self._checkin_for(s, person, inbound) if person is not None else None
        if person is None:
            return []
        if checkin is None:
            # The event may be the answer that completed the check-in: the thanks never went out.
            return [say("done", markup)] if store.completed_by_event(s, person.id, self._event_key(inbound)) else []
        return self._turn(s, person, checkin, markup, inbound.received_at, flow.Resume())

    @staticmethod
    def _event_key(inbound: Inbound) -> str:
        return f"{inbound.channel}:{inbound.event_key}"

    def _handle_person(
        self, s: Session, person: Person, inbound: Inbound, markup: prompts.Markup, pre: Precomputed | None,
        prepared: Prepared | None = None, after: After | None = None,
    ) -> list[Outbound]:  # fmt: skip
        now = inbound.received_at
        after = after if after is not None else []
        # Their own answers are theirs to see, correct and delete, opted out or not.
        if inbound.kind == "delete":
            return self.own.message_deleted(s, person, inbound, markup, after=after)
        checkin = self._checkin_for(s, person, inbound)
        own = self.own.handle(s, person, inbound, markup, checkin=checkin, prepared=prepared, after=after)
        if own is not None:
            return own
        command = inbound.command or (flow.command_of(inbound.text or "") if inbound.kind == "text" else None)
        if person.opted_out_at is not None:
            return self._carry_out(s, person, outside.while_opted_out(inbound.kind, command), markup, now)
        if inbound.kind == "edit":
            return self.edits.edit(s, person, inbound, markup, pre)
        if checkin is not None and outside.past_end(now, *ends(checkin)):
            # Over, though the tick has not expired it yet: end it now, as the tick would have.
            self._expire_now(s, checkin, now)
            return self._carry_out(s, person, outside.after_end(inbound.kind, command), markup, now)
        if checkin is None:
            closed = s.get(Checkin, inbound.checkin_id) if inbound.checkin_id is not None else None
            done = closed is not None and closed.person_id == person.id and closed.status == "completed"
            return self._carry_out(s, person, outside.between_checkins(command, just_completed=done), markup, now)
        if inbound.kind == "non_text":
            return self._carry_out(s, person, outside.non_text(flow.State.from_dict(checkin.state)), markup, now)
        if pre is not None and pre.basis != precompute.checkin_basis(checkin):
            raise Moved
        return self._turn(s, person, checkin, markup, now, precompute.event_of(inbound), ref=inbound.ref, pre=pre)

    def _carry_out(
        self, s: Session, person: Person, effects: Sequence[outside.Effect], markup: prompts.Markup, now: dt.datetime
    ) -> list[Outbound]:
        out: list[Outbound] = []
        for effect in effects:
            if isinstance(effect, flow.Say):
                out.append(say(effect.template, markup, **effect.params))
                if effect.template == "help":
                    out += told(who_sees(enrolled_scripts(s, person, self.scripts), markup))
            elif isinstance(effect, outside.OptOutNow):
                people.opt_out(s, person, now)
            elif isinstance(effect, outside.OptIn):
                people.opt_in(s, person)
                checkins = store.open_checkins(s, person.id)
                if checkins:
                    out += self._turn(s, person, checkins[0], markup, now, flow.Resume())
        return out

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
        script = self._script_for(checkin)
        if script is None:
            return [say("no_checkin", markup)]
        turn = Turn(person=person, checkin=checkin, script=script, markup=markup, now=now, ref=ref, pre=pre)
        self.turns.run(s, turn, event)
        return turn.out

    # Edits ------------------------------------------------------------------------------------
