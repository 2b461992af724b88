"""One answer deleted or corrected at its author's request: the writes, in the caller's transaction.

The rules (who may, what is asked first, what is said) live in ``bot.engine.mydata``; these
functions only write. They reach every place the words of one answer are stored, the way
``memory.erasure`` does for a whole person, with the same code (:func:`erasure.quotes_pattern`,
:func:`erasure.redact_json`, :func:`erasure.redact_stored_digests`):

* **deleted**: the answer row, with its words, rating and embedding; the follow-ups asked about it
  ("What changed?", with the person's reply);
* **redacted** (the quoting line replaced by :data:`erasure.REDACTED`): later follow-up questions
  and their reasons that quoted the words, the check-in's conversation state, the stored
  rendering of the person's own messages (a reminder may quote them), owner digests stored in
  ``outbox_contents`` and, after the commit, digest files Rapport wrote.

Correcting replaces the words (and re-embeds them: the caller passes the new embedding) and
redacts the old words wherever they were quoted, as deleting does.

A person's comment on a promise (the ``outcomes`` row recorded at one of their check-ins) is
cleared or replaced the same way (:func:`clear_outcome_comment`, :func:`correct_outcome_comment`);
the verdict (kept, partly, not) stays: it is not words.

On SQLite, :func:`secure` turns on ``secure_delete`` for the transaction; the caller runs
:func:`erasure.scrub_sqlite` after the commit, so neither the file nor its WAL keeps the words.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from memory import erasure
from memory.models import Answer, Checkin, FollowUp, OutboxMessage, Outcome, Person
from memory.models_scheduler import OutboxContent


@dataclass
class Change:
    """What one delete or correction did: row counts (no words), and what to look for in digest
    files after the commit (``marks``)."""

    counts: dict[str, int] = field(default_factory=dict)
    marks: re.Pattern[str] | None = None

    def digest_files(self, folder: Path | None) -> list[str]:
        """Rewrite digest files that quoted the words (after the commit, as erasure does)."""
        if folder is None or self.marks is None:
            return []
        return erasure.redact_digest_files(folder, self.marks)


def secure(s: Session) -> bool:
    """On SQLite, overwrite freed pages for this transaction; True when the caller should scrub
    the WAL after the commit (:func:`memory.erasure.scrub_sqlite`)."""
    if s.get_bind().dialect.name != "sqlite":
        return False
    s.connection().exec_driver_sql("PRAGMA secure_delete=ON")
    return True


def own_answer(s: Session, person_id: int, answer_id: int) -> Answer | None:
    """The answer ``answer_id`` if it is this person's, else None (as if it did not exist)."""
    answer = s.get(Answer, answer_id)
    return answer if answer is not None and answer.person_id == person_id else None


def own_outcome(s: Session, person_id: int, outcome_id: int) -> Outcome | None:
    """The outcome ``outcome_id`` if the person recorded it at one of their check-ins, else None.
    An outcome an owner recorded (no check-in) carries the owner's words, not the person's."""
    outcome = s.get(Outcome, outcome_id)
    if outcome is None or outcome.checkin_id is None or outcome.promise.person_id != person_id:
        return None
    return outcome


def answer_by_ref(s: Session, person_id: int, ref: str) -> Answer | None:
    """The answer a channel message carried (its ``source_ref``: a Slack ts, a Telegram id)."""
    return s.scalar(select(Answer).where(Answer.person_id == person_id, Answer.source_ref == ref).limit(1))


def followup_by_ref(s: Session, person_id: int, ref: str) -> FollowUp | None:
    """The follow-up whose reply a channel message carried."""
    return s.scalar(
        select(FollowUp)
        .join(Checkin, FollowUp.checkin_id == Checkin.id)
        .where(Checkin.person_id == person_id, FollowUp.answer_ref == ref)
        .limit(1)
    )


def _names(s: Session, person_id: int) -> set[str]:
    person = s.get(Person, person_id)
    return {n for n in ((person.key, person.name) if person else ()) if n}


def _redact_quotes(s: Session, person_id: int, checkin: Checkin | None, marks: re.Pattern[str]) -> dict[str, int]:
    """Every stored line that quotes the words, but the rows about to be deleted."""
    counts = {"followup_quotes": 0, "stored_messages": 0}
    checkins = select(Checkin.id).where(Checkin.person_id == person_id)
    for followup in s.scalars(select(FollowUp).where(FollowUp.checkin_id.in_(checkins))):
        question = erasure.redact_text(followup.question, marks)
        reasons, prompt = erasure.redact_json(followup.reasons, marks), erasure.redact_json(followup.prompt, marks)
        if (question, reasons, prompt) != (followup.question, followup.reasons, followup.prompt):
            followup.question, followup.reasons, followup.prompt = question, reasons, prompt
            counts["followup_quotes"] += 1
    if checkin is not None:
        state = erasure.redact_json(checkin.state, marks)
        if state != checkin.state:
            checkin.state = state
    own_rows = select(OutboxMessage.id).where(OutboxMessage.person_id == person_id)
    for content in s.scalars(select(OutboxContent).where(OutboxContent.outbox_id.in_(own_rows))):
        body = erasure.redact_json(content.body, marks)
        if body != content.body:
            content.body = body
            counts["stored_messages"] += 1
    counts["stored_digests"] = erasure.redact_stored_digests(s, marks)
    # A closed anonymous wave's fixed view keeps its counts; a comment quoting the words goes.
    counts["wave_views"] = erasure.redact_wave_views(s, marks)
    return counts


def delete_answer(s: Session, answer: Answer) -> Change:
    """Delete ``answer`` and the follow-ups asked about it; redact every quote of their words."""
    tied = list(s.scalars(select(FollowUp).where(FollowUp.answer_id == answer.id)))
    texts = [t for t in [answer.text, *(f.answer_text for f in tied)] if t]
    marks = erasure.quotes_pattern(texts, short_with=_names(s, answer.person_id)) if texts else None
    counts: dict[str, int] = {}
    if marks is not None:
        counts.update(_redact_quotes(s, answer.person_id, answer.checkin, marks))
    counts["followups"] = len(tied)
    s.execute(delete(FollowUp).where(FollowUp.answer_id == answer.id))
    # A later follow-up that compared with this answer keeps its own reply, not the link.
    for later in s.scalars(select(FollowUp).where(FollowUp.previous_answer_id == answer.id)):
        later.previous_answer_id = None
    s.execute(delete(Answer).where(Answer.id == answer.id))
    s.flush()
    s.expire_all()
    counts["answers"] = 1
    return Change(counts=counts, marks=marks)


def clear_followup_reply(s: Session, followup: FollowUp) -> Change:
    """The person took back their reply to a "What changed?" question: the reply goes, the
    question stays answered-and-empty (as a skipped one)."""
    text = followup.answer_text
    marks = erasure.quotes_pattern([text], short_with=_names(s, followup.checkin.person_id)) if text else None
    counts: dict[str, int] = {}
    if marks is not None:
        counts.update(_redact_quotes(s, followup.checkin.person_id, followup.checkin, marks))
    followup.answer_text, followup.answer_ref, followup.skipped = None, None, True
    counts["followup_replies"] = 1
    return Change(counts=counts, marks=marks)


def correct_answer(
    s: Session,
    answer: Answer,
    *,
    rating: int | None,
    text: str | None,
    embedding: bytes | None,
    model_id: str | None,
    now: dt.datetime,
) -> Change:
    """Replace the answer's rating and words; the old words are redacted wherever quoted.

    ``embedding`` is the new words' embedding (None for a rating answer, whose comment is not
    embedded), computed by the caller before the transaction when it could be.
    """
    old = answer.text
    marks = None
    counts: dict[str, int] = {}
    if old and old != text:
        marks = erasure.quotes_pattern([old], short_with=_names(s, answer.person_id))
        counts.update(_redact_quotes(s, answer.person_id, answer.checkin, marks))
    if answer.kind == "rating":
        answer.rating = rating
    else:
        answer.embedding, answer.embedding_model = embedding, model_id if embedding is not None else None
    answer.text, answer.skipped, answer.edited_at = text, False, now
    counts["answers"] = 1
    return Change(counts=counts, marks=marks)


def clear_outcome_comment(s: Session, outcome: Outcome) -> Change:
    """The person took back their comment on a promise: the words go (every quote redacted), the
    verdict stays."""
    return _replace_outcome_comment(s, outcome, None, "outcome_comments")


def correct_outcome_comment(s: Session, outcome: Outcome, text: str) -> Change:
    """Replace the person's comment on a promise; the old words are redacted wherever quoted."""
    return _replace_outcome_comment(s, outcome, text, "outcomes")


def _replace_outcome_comment(s: Session, outcome: Outcome, text: str | None, count: str) -> Change:
    person_id = outcome.promise.person_id
    old, marks = outcome.comment, None
    counts: dict[str, int] = {}
    if old and old != text:
        marks = erasure.quotes_pattern([old], short_with=_names(s, person_id))
        checkin = s.get(Checkin, outcome.checkin_id) if outcome.checkin_id is not None else None
        counts.update(_redact_quotes(s, person_id, checkin, marks))
    outcome.comment = text
    counts[count] = 1
    return Change(counts=counts, marks=marks)
