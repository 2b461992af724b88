"""Retention: free text older than ``privacy.retention.free_text_months`` is deleted, ratings kept.

"Free text" is every place a person's own words are stored: an answer's text and its embedding
(derived from the words), a follow-up's answer, an outcome's comment, and the conversation state
of a check-in that closed before the cutoff (it may hold the words of the turn in progress), and
the stored rendering of messages sent before the cutoff (kept for retries; a digest quotes words).
Ratings stay, so trends survive; ``keep_ratings: false`` deletes old rating answers too.

The age is the moment the words were given (``answered_at``, ``recorded_at``). One transaction,
an audit entry (``retention.run``, counts only) for each run that deleted something. On SQLite
the deletion runs with ``secure_delete`` and is followed by a WAL checkpoint, as erasure is.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from memory import audit
from memory.erasure import scrub_sqlite
from memory.models import OPEN_STATUSES, Answer, Checkin, FollowUp, OutboxMessage, Outcome
from memory.models_scheduler import OutboxContent


@dataclass(frozen=True)
class RetentionReport:
    cutoff: dt.datetime
    answers: int
    followups: int
    outcomes: int
    ratings: int
    dry_run: bool
    stored_messages: int = 0


def cutoff(now: dt.datetime, months: int) -> dt.datetime:
    """``now`` minus ``months`` calendar months (31 March minus one month is 28/29 February)."""
    index = now.year * 12 + (now.month - 1) - months
    year, month = divmod(index, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _count(s: Session, query: Select[Any]) -> int:
    return int(s.scalar(select(func.count()).select_from(query.subquery())) or 0)


def run_retention(
    sessions: sessionmaker[Session],
    *,
    months: int | None,
    keep_ratings: bool = True,
    now: dt.datetime,
    actor: str = "system",
    dry_run: bool = False,
) -> RetentionReport:
    """Apply the rule at ``now``. ``months=None`` (the default config) deletes nothing."""
    if months is None:
        return RetentionReport(cutoff=now, answers=0, followups=0, outcomes=0, ratings=0, dry_run=dry_run)
    before = cutoff(now, months)
    old_text = and_(Answer.answered_at < before, or_(Answer.text.is_not(None), Answer.embedding.is_not(None)))
    old_followup = and_(FollowUp.answered_at < before, FollowUp.answer_text.is_not(None))
    old_comment = and_(Outcome.recorded_at < before, Outcome.comment.is_not(None))
    old_rating = and_(Answer.answered_at < before, Answer.kind == "rating")
    # A rendered message is kept for retries only; once done and old, it goes (it may quote words).
    done = select(OutboxMessage.id).where(OutboxMessage.status.in_(("sent", "failed", "skipped")))
    old_message = and_(OutboxContent.prepared_at < before, OutboxContent.outbox_id.in_(done))
    with sessions() as s, s.begin():
        sqlite = s.get_bind().dialect.name == "sqlite"
        counts = {
            "answers": _count(s, select(Answer.id).where(old_text)),
            "followups": _count(s, select(FollowUp.id).where(old_followup)),
            "outcomes": _count(s, select(Outcome.id).where(old_comment)),
            "ratings": 0 if keep_ratings else _count(s, select(Answer.id).where(old_rating)),
            "stored_messages": _count(s, select(OutboxContent.outbox_id).where(old_message)),
        }
        report = RetentionReport(cutoff=before, dry_run=dry_run, **counts)
        if dry_run or not any(counts.values()):
            return report
        if sqlite:
            s.connection().exec_driver_sql("PRAGMA secure_delete=ON")
        s.execute(update(Answer).where(old_text).values(text=None, embedding=None, embedding_model=None))
        s.execute(update(FollowUp).where(old_followup).values(answer_text=None))
        s.execute(update(Outcome).where(old_comment).values(comment=None))
        # Closed check-ins no longer need their conversation state, which may quote the words.
        s.execute(
            update(Checkin).where(Checkin.updated_at < before, Checkin.status.not_in(OPEN_STATUSES)).values(state={})
        )
        s.execute(delete(OutboxContent).where(old_message))
        if not keep_ratings:
            s.execute(delete(Answer).where(old_rating))
        audit.record(s, actor=actor, action="retention.run", now=now,
                     detail={"cutoff": before.isoformat(), **counts})  # fmt: skip
    if sqlite:
        scrub_sqlite(sessions)
    return report


def daily_job(sessions: sessionmaker[Session], *, months: int, keep_ratings: bool) -> Callable[[dt.datetime], None]:
    """What ``rapport run`` calls once a day (``bot.runner``): the rule at the job's ``now``."""

    def run(now: dt.datetime) -> None:
        run_retention(sessions, months=months, keep_ratings=keep_ratings, now=now, actor="system")

    return run
