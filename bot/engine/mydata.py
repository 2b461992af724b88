""" "What did I tell you?": a person sees, corrects and deletes their own answers, in any channel.

The one home of the rules; channels only pass words and clicks on:

* ``my data`` (``/mydata``, ``mydata``, ``my answers``, ``what did I tell you?``...) shows every
  answer the person gave, newest check-in first, each with its number (the answer's id, stable
  across deletions): date, program, rating, reason, and the replies to "What changed?". Long
  summaries are cut into several messages at safe places (:mod:`bot.engine.mydata_view`).
* ``delete N`` asks first; ``delete N yes`` deletes the answer, the follow-ups asked about it and
  every quote of its words (``memory.own_answers``). ``correct N <new words>`` replaces it (a
  rating answer takes a number, as the question did) and re-embeds the words.
* The person's verdicts on promises, given at a check-in, show under it with their comment and
  a number of their own (``p12``, the outcome's id): ``delete p12`` (asked first) clears the
  comment and every quote of it, the verdict stays; ``correct p12 <new words>`` replaces it.
* A message the person deleted in their chat app (Slack) deletes the answer it carried.

While a check-in waits for free text, only the slash forms (``/delete 3``) are commands, so an
answer that happens to begin with "delete 3" is kept as an answer; ``my data`` as a whole message
is always the command. Opted-out people can still see, correct and delete their own answers.
In anonymous programs it is still the person's own data: only they see it.

Every delete and correction is written to the audit log (``answer.delete``, ``answer.correct``;
actor ``person``, the answer's id, how, row counts; never the words); comments on promises as
``outcome.delete``, ``outcome.correct`` with the outcome's id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.engine.mydata_requests import Correct, Delete, Show, answering_text, command_prefix, parse
from bot.engine.mydata_view import VERDICTS, Entry, Item, entries_of, render_summary
from bot.engine.ports import Inbound, Outbound
from bot.engine.ratings import parse_rating
from bot.engine.script import Limits, Script
from memory import audit, erasure, own_answers, store
from memory.db import transaction
from memory.embeddings import Embedder, to_bytes
from memory.models import Answer, Checkin, Outcome, Person

Via = Literal["chat", "message_deleted", "web", "slack_home"]
After = list[Callable[[], object]]


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """The embedding of a correction's new words, computed before the write transaction."""

    text: str
    embedding: bytes
    model_id: str


class OwnData:
    """The rules. ``handle`` and ``message_deleted`` run inside the service's write transaction;
    the door methods (:meth:`summary`, :meth:`delete`, :meth:`correct`) open their own."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        scripts: Mapping[str, Script],
        embedder: Embedder,
        limits: Limits,
        digest_folder: Path | None = None,
    ) -> None:
        self.sessions, self.scripts, self.embedder, self.limits = sessions, scripts, embedder, limits
        self.digest_folder = digest_folder

    # Before the transaction

    def prepare(self, inbound: Inbound) -> Prepared | None:
        """Embed a correction's words with no transaction open (the model takes a while)."""
        if inbound.kind != "text" or not inbound.text:
            return None
        request = parse(inbound.text, answering_text=False)
        return self.prepare_text(request.text) if isinstance(request, Correct) and not request.outcome else None

    def prepare_text(self, text: str) -> Prepared | None:
        text = text.strip()
        if not text or len(text) > self.limits.max_answer_chars:
            return None
        vector = self.embedder.encode([text])[0]
        return Prepared(text=text, embedding=to_bytes(vector), model_id=self.embedder.model_id)

    # Inside the service's transaction

    def handle(
        self, s: Session, person: Person, inbound: Inbound, markup: prompts.Markup, *, checkin: Checkin | None,
        prepared: Prepared | None, after: After,
    ) -> list[Outbound] | None:  # fmt: skip
        """The replies to a request about the person's own data; None when the message is not one."""
        if inbound.kind != "text" or not inbound.text:
            return None
        request = parse(inbound.text, answering_text=answering_text(checkin))
        if request is None:
            return None
        cmd = command_prefix(markup)
        if isinstance(request, Show):
            return render_summary(entries_of(s, person, self.scripts), markup, cmd=cmd)
        if request.outcome:
            return self._comment(s, person, request, inbound, markup, after=after)
        answer = own_answers.own_answer(s, person.id, request.item)
        if answer is None:
            return [_say("mydata_not_found", markup, answer_id=request.item, cmd=cmd)]
        if isinstance(request, Delete):
            if not request.confirmed:
                entry, item = self._entry_item(s, person, answer)
                return [_say("mydata_confirm_delete", markup, answer_id=item.id, when=entry.when, title=entry.title,
                             with_followup=bool(item.followups), cmd=cmd)]  # fmt: skip
            self._delete(s, person, answer, via="chat", channel=inbound.channel, now=inbound.received_at, after=after)
            return [_say("mydata_deleted", markup, answer_id=request.item, via_message=False, cmd=cmd)]
        problem = self._correct(s, person, answer, request.text, prepared=prepared, channel=inbound.channel,
                                via="chat", now=inbound.received_at, after=after)  # fmt: skip
        if problem is not None:
            return [_say("mydata_correct_rejected", markup, problem=problem, answer_id=request.item)]
        return [_say("mydata_corrected", markup, answer_id=request.item)]

    def message_deleted(
        self, s: Session, person: Person, inbound: Inbound, markup: prompts.Markup, *, after: After
    ) -> list[Outbound]:
        """The person deleted a message in their chat app: the answer it carried goes with it.
        A second delivery (or a message that carried no answer) does nothing."""
        if not inbound.ref:
            return []
        now, cmd = inbound.received_at, command_prefix(markup)
        answer = own_answers.answer_by_ref(s, person.id, inbound.ref)
        if answer is not None:
            answer_id = answer.id
            self._delete(s, person, answer, via="message_deleted", channel=inbound.channel, now=now, after=after)
            return [_say("mydata_deleted", markup, answer_id=answer_id, via_message=True, cmd=cmd)]
        followup = own_answers.followup_by_ref(s, person.id, inbound.ref)
        if followup is None or followup.answer_text is None:
            return []
        secure = own_answers.secure(s)
        change = own_answers.clear_followup_reply(s, followup)
        audit.record(s, actor="person", action="answer.delete", now=now, person_id=person.id,
                     detail={"followup": followup.id, "via": "message_deleted", "channel": inbound.channel,
                             "counts": change.counts})  # fmt: skip
        self._after(change, secure, after)
        return [_say("mydata_deleted", markup, answer_id=followup.answer_id, via_message=True, cmd=cmd)]

    def _comment(
        self, s: Session, person: Person, request: Delete | Correct, inbound: Inbound, markup: prompts.Markup, *,
        after: After,
    ) -> list[Outbound]:  # fmt: skip
        """``delete p12`` / ``correct p12 words``: the person's comment on a promise."""
        cmd, ref = command_prefix(markup), f"p{request.item}"
        outcome = own_answers.own_outcome(s, person.id, request.item)
        if outcome is None:
            return [_say("mydata_not_found", markup, answer_id=ref, cmd=cmd)]
        if isinstance(request, Delete) and not request.confirmed:
            return [_say("mydata_confirm_delete_comment", markup, ref=ref, promise=outcome.promise.text,
                         verdict=VERDICTS.get(outcome.verdict, outcome.verdict), cmd=cmd)]  # fmt: skip
        text = request.text if isinstance(request, Correct) else None
        problem = self._change_comment(s, person, outcome, text, via="chat", channel=inbound.channel,
                                       now=inbound.received_at, after=after)  # fmt: skip
        if problem is not None:
            return [_say("mydata_correct_rejected", markup, problem=problem, answer_id=ref)]
        if text is None:
            return [_say("mydata_comment_deleted", markup, ref=ref, cmd=cmd)]
        return [_say("mydata_corrected", markup, answer_id=ref)]

    # The writes

    def _change_comment(
        self, s: Session, person: Person, outcome: Outcome, text: str | None, *, via: Via, channel: str,
        now: dt.datetime, after: After,
    ) -> str | None:  # fmt: skip
        """Clear (``text`` None) or replace the comment; the problem when the new words cannot be used."""
        text = text.strip() if text is not None else None
        if text is not None and (problem := self._unusable(text)) is not None:
            return problem
        secure = own_answers.secure(s)
        if text is None:
            change = own_answers.clear_outcome_comment(s, outcome)
        else:
            change = own_answers.correct_outcome_comment(s, outcome, text)
        audit.record(s, actor="person", action="outcome.delete" if text is None else "outcome.correct", now=now,
                     person_id=person.id, detail={"outcome": outcome.id, "via": via, "channel": channel,
                                                  "counts": change.counts})  # fmt: skip
        self._after(change, secure, after)
        return None

    def _entry_item(self, s: Session, person: Person, answer: Answer) -> tuple[Entry, Item]:
        for entry in entries_of(s, person, self.scripts):
            for item in entry.items:
                if item.id == answer.id:
                    return entry, item
        raise LookupError(answer.id)  # entries_of lists every answer of the person

    def _delete(
        self, s: Session, person: Person, answer: Answer, *, via: Via, channel: str, now: dt.datetime, after: After
    ) -> None:
        answer_id = answer.id
        secure = own_answers.secure(s)
        change = own_answers.delete_answer(s, answer)
        audit.record(s, actor="person", action="answer.delete", now=now, person_id=person.id,
                     detail={"answer": answer_id, "via": via, "channel": channel, "counts": change.counts})  # fmt: skip
        self._after(change, secure, after)

    def _correct(
        self, s: Session, person: Person, answer: Answer, text: str, *, prepared: Prepared | None, channel: str,
        via: Via, now: dt.datetime, after: After,
    ) -> str | None:  # fmt: skip
        """Correct the answer; the problem, in the person's terms, when the new words cannot be used."""
        text = text.strip()
        if (problem := self._unusable(text)) is not None:
            return problem
        rating: int | None = None
        embedding: bytes | None = None
        model_id: str | None = None
        words: str | None = text
        if answer.kind == "rating":
            script = self.scripts.get(answer.checkin.program.name)
            question = script.question(answer.question) if script else None
            low, high = (question.min, question.max) if question else (0, 10)
            parsed = parse_rating(text, low=low, high=high)
            if not parsed.ok:
                return f"it does not start with a number from {low} to {high}"
            rating, words = parsed.value, parsed.comment
        elif prepared is not None and prepared.text == text:
            embedding, model_id = prepared.embedding, prepared.model_id
        else:
            embedding, model_id = to_bytes(self.embedder.encode([text])[0]), self.embedder.model_id
        secure = own_answers.secure(s)
        change = own_answers.correct_answer(s, answer, rating=rating, text=words, embedding=embedding,
                                            model_id=model_id, now=now)  # fmt: skip
        audit.record(s, actor="person", action="answer.correct", now=now, person_id=person.id,
                     detail={"answer": answer.id, "via": via, "channel": channel, "counts": change.counts})  # fmt: skip
        self._after(change, secure, after)
        return None

    def _unusable(self, text: str) -> str | None:
        if not text:
            return "the new text is empty"
        return "the new text is too long" if len(text) > self.limits.max_answer_chars else None

    def _after(self, change: own_answers.Change, secure: bool, after: After) -> None:
        """After the commit: digest files that quoted the words, then the SQLite WAL."""
        folder, sessions = self.digest_folder, self.sessions
        after.append(lambda: change.digest_files(folder))
        if secure:
            after.append(lambda: erasure.scrub_sqlite(sessions))

    # The door for pages and buttons (the web check-in page, the Slack App Home)

    def _run(self, work: Callable[[Session, After], object]) -> object:
        after: After = []
        with transaction(self.sessions) as s:
            result = work(s, after)
        for job in after:
            job()
        return result

    def summary(self, channel: str, external_id: str, workspace: str = "") -> list[Entry] | None:
        """The person's answers for their own eyes; None when Rapport does not know the sender."""
        with transaction(self.sessions) as s:
            person = _person(s, channel, external_id, workspace)
            return entries_of(s, person, self.scripts) if person is not None else None

    def item(self, channel: str, external_id: str, answer_id: int, workspace: str = "") -> tuple[Entry, Item] | None:
        """One of the person's answers (to confirm a deletion), or None when it is not theirs."""
        with transaction(self.sessions) as s:
            person = _person(s, channel, external_id, workspace)
            answer = own_answers.own_answer(s, person.id, answer_id) if person is not None else None
            return self._entry_item(s, person, answer) if person is not None and answer is not None else None

    def delete(
        self, channel: str, external_id: str, answer_id: int, *, now: dt.datetime, via: Via, workspace: str = ""
    ) -> bool:
        """Delete one of the person's answers (already confirmed); False when it is not theirs."""

        def work(s: Session, after: After) -> bool:
            person = _person(s, channel, external_id, workspace)
            answer = own_answers.own_answer(s, person.id, answer_id) if person is not None else None
            if person is None or answer is None:
                return False
            self._delete(s, person, answer, via=via, channel=channel, now=now, after=after)
            return True

        return bool(self._run(work))

    def correct(
        self, channel: str, external_id: str, answer_id: int, text: str, *, now: dt.datetime, via: Via,
        workspace: str = "",
    ) -> str | None:  # fmt: skip
        """Correct one of the person's answers; the problem when it could not be done."""
        request = Correct(answer_id, text.strip())
        prepared = self.prepare_text(request.text)

        def work(s: Session, after: After) -> str | None:
            person = _person(s, channel, external_id, workspace)
            answer = own_answers.own_answer(s, person.id, answer_id) if person is not None else None
            if person is None or answer is None:
                return "it is not one of your answers"
            return self._correct(s, person, answer, request.text, prepared=prepared, channel=channel, via=via,
                                 now=now, after=after)  # fmt: skip

        result = self._run(work)
        return result if isinstance(result, str) else None

    def change_comment(
        self, channel: str, external_id: str, outcome_id: int, text: str | None, *, now: dt.datetime, via: Via,
        workspace: str = "",
    ) -> str | None:  # fmt: skip
        """Clear (``text`` None, already confirmed) or correct the person's comment on a promise;
        the problem when it could not be done (:data:`NOT_YOURS` when it is not theirs)."""

        def work(s: Session, after: After) -> str | None:
            person = _person(s, channel, external_id, workspace)
            outcome = own_answers.own_outcome(s, person.id, outcome_id) if person is not None else None
            if person is None or outcome is None:
                return NOT_YOURS
            return self._change_comment(s, person, outcome, text, via=via, channel=channel, now=now, after=after)

        result = self._run(work)
        return result if isinstance(result, str) else None


#: What :meth:`OwnData.change_comment` says of an outcome that is not the person's (or none at all).
NOT_YOURS = "it is not one of your comments"


def _person(s: Session, channel: str, external_id: str, workspace: str) -> Person | None:
    identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
    return identity.person if identity is not None else None


def _say(template: str, markup: prompts.Markup, **params: object) -> Outbound:
    return Outbound(text=prompts.render(f"person/{template}", markup, **params))
