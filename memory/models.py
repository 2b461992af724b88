"""Rapport's tables, as typed SQLAlchemy 2 models.

Every datetime is stored as an aware UTC value (``UtcDateTime``), whatever the backend: SQLite
keeps no zone, so the type re-attaches UTC on the way out. Embeddings are float32 bytes, which
both SQLite and PostgreSQL store compactly and which need no extension.

Columns that hold people's words, or what is derived from them (embeddings, conversation state,
stored messages that quote them), use the ``memory.crypto`` types: encrypted at rest when a key
is set, plain otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from memory.crypto import EncryptedBytes, EncryptedJSON, EncryptedText

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Check-in statuses in which the person may still answer.
OPEN_STATUSES = ("invited", "in_progress")
CHECKIN_STATUSES = ("invited", "in_progress", "completed", "expired", "opted_out")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware datetime stored in UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Owner(Base):
    """Someone responsible for a set of relationships: receives digests, records promises."""

    __tablename__ = "owners"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[dt.datetime]

    people: Mapped[list[Person]] = relationship(back_populates="owner")


class Person(Base):
    """Someone who answers check-ins."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id"), index=True)
    # Set when the person said "stop". Honoured by every channel and the scheduler until the
    # person themselves resumes.
    opted_out_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]

    owner: Mapped[Owner | None] = relationship(back_populates="people")
    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="person")
    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="person")


class ChannelIdentity(Base):
    """Where a person can be reached: a Telegram chat, a Slack user, a web link."""

    __tablename__ = "channel_identities"
    __table_args__ = (
        UniqueConstraint("channel", "workspace", "external_id", name="uq_identity_external"),
        UniqueConstraint("person_id", "channel", "workspace", name="uq_identity_person_channel"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    # Slack team id for Slack identities; empty string elsewhere (NULLs would defeat the unique).
    workspace: Mapped[str] = mapped_column(String(64), default="")
    external_id: Mapped[str] = mapped_column(String(200))
    # A conversation to write to, when it differs from the user id (a Slack DM channel).
    address: Mapped[str | None] = mapped_column(String(200))
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    unreachable_reason: Mapped[str | None] = mapped_column(String(200))
    unreachable_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]

    person: Mapped[Person] = relationship(back_populates="identities")


class Program(Base):
    """A kind of relationship. Its questions and cadence live in config; this row anchors data."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    k_anonymity: Mapped[int] = mapped_column(Integer, default=5)
    # Anonymous programs: the smaller group whose comments (and themes) may be shown.
    k_comments: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime]


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("person_id", "program_id", name="uq_enrollment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    enrolled_at: Mapped[dt.datetime]
    # The person's own point in the cadence, so a large program is staggered over the cycle.
    anchor_at: Mapped[dt.datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    person: Mapped[Person] = relationship(back_populates="enrollments")
    program: Mapped[Program] = relationship()


class Wave(Base):
    """One round of a program."""

    __tablename__ = "waves"
    __table_args__ = (UniqueConstraint("program_id", "key", name="uq_wave_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # staggered | cron | manual | import | chat
    opens_at: Mapped[dt.datetime]
    closes_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    # Set by ``rapport wave cancel`` before the planned end (closed_at is set too): see scheduler.waves.
    cancelled_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime]

    program: Mapped[Program] = relationship()


class Checkin(Base):
    """One conversation with one person in one wave."""

    __tablename__ = "checkins"
    __table_args__ = (
        # At most one open check-in per person and program, enforced by the database itself.
        Index(
            "uq_checkins_open",
            "person_id",
            "program_id",
            unique=True,
            sqlite_where=text("status IN ('invited', 'in_progress')"),
            postgresql_where=text("status IN ('invited', 'in_progress')"),
        ),
        UniqueConstraint("person_id", "program_id", "wave_id", name="uq_checkin_wave"),
        # Digests over every owner: completed in a period; each person's last one before it.
        Index("ix_checkins_completed", "status", "completed_at"),
        Index("ix_checkins_person_completed", "person_id", "program_id", "completed_at", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    wave_id: Mapped[int | None] = mapped_column(ForeignKey("waves.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="invited", index=True)
    channel: Mapped[str | None] = mapped_column(String(32))
    # The pure conversation state (bot.engine.flow.State), serialised.
    state: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    source: Mapped[str] = mapped_column(String(20), default="live")  # live | import
    started_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    completed_at: Mapped[dt.datetime | None]
    expires_at: Mapped[dt.datetime | None]
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)

    person: Mapped[Person] = relationship()
    program: Mapped[Program] = relationship()
    wave: Mapped[Wave | None] = relationship()
    answers: Mapped[list[Answer]] = relationship(back_populates="checkin", order_by="Answer.id")
    followups: Mapped[list[FollowUp]] = relationship(back_populates="checkin", order_by="FollowUp.id")


class Answer(Base):
    """A rating or free text for one core question of one check-in."""

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("checkin_id", "question", name="uq_answer_question"),
        Index("ix_answers_history", "person_id", "program_id", "question", "answered_at"),
        # Digests read each check-in's first rating from this index alone.
        Index("ix_answers_rating", "checkin_id", "kind", "skipped", "rating"),
        # A deleted answer's number must never name another answer later (ids are not reused).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkin_id: Mapped[int] = mapped_column(ForeignKey("checkins.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # rating | text
    rating: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(EncryptedText)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    embedding: Mapped[bytes | None] = mapped_column(EncryptedBytes)
    embedding_model: Mapped[str | None] = mapped_column(String(200))
    # The channel's id for the message that carried the answer, so an edit can find it.
    source_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    answered_at: Mapped[dt.datetime]
    edited_at: Mapped[dt.datetime | None]

    checkin: Mapped[Checkin] = relationship(back_populates="answers")


class FollowUp(Base):
    """A "what changed?" question: what was asked, why, and the answer it got."""

    __tablename__ = "followups"

    id: Mapped[int] = mapped_column(primary_key=True)
    checkin_id: Mapped[int] = mapped_column(ForeignKey("checkins.id", ondelete="CASCADE"), index=True)
    # The answer that triggered it, and the earlier answer it quoted.
    answer_id: Mapped[int] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    previous_answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id", ondelete="SET NULL"))
    question: Mapped[str] = mapped_column(EncryptedText)
    score: Mapped[float] = mapped_column(Float)
    reasons: Mapped[list[Any]] = mapped_column(EncryptedJSON, default=list)
    # What the question was rendered from, so it can be shown again (resume) in any markup.
    prompt: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON, default=dict)
    asked_at: Mapped[dt.datetime]
    answer_text: Mapped[str | None] = mapped_column(EncryptedText)
    answer_ref: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[dt.datetime | None]
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)

    checkin: Mapped[Checkin] = relationship(back_populates="followups")


class Promise(Base):
    """What was committed to a person, by whom and by when."""

    __tablename__ = "promises"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="SET NULL"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(EncryptedText)
    made_at: Mapped[dt.datetime]
    due_at: Mapped[dt.datetime | None]
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | kept | partly | broken
    source: Mapped[str] = mapped_column(String(20), default="cli")
    created_at: Mapped[dt.datetime]

    outcomes: Mapped[list[Outcome]] = relationship(back_populates="promise", order_by="Outcome.id")


class Outcome(Base):
    """Whether a promise was kept, in the person's own view."""

    __tablename__ = "outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    promise_id: Mapped[int] = mapped_column(ForeignKey("promises.id", ondelete="CASCADE"), index=True)
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id", ondelete="SET NULL"))
    verdict: Mapped[str] = mapped_column(String(20))  # yes | partly | no
    comment: Mapped[str | None] = mapped_column(EncryptedText)
    recorded_at: Mapped[dt.datetime]

    promise: Mapped[Promise] = relationship(back_populates="outcomes")


class ProcessedEvent(Base):
    """Idempotency keys of inbound events (Telegram update_id, Slack event_id, one-time tokens)."""

    __tablename__ = "processed_events"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    processed_at: Mapped[dt.datetime]
    # When the replies to the event were handed over. NULL: processed, but the process may have
    # died before its replies went out (a redelivery then shows where the conversation stands).
    replied_at: Mapped[dt.datetime | None]


class OutboxMessage(Base):
    """Every invitation, reminder and digest is a row here before it is sent.

    ``key`` is unique (person, program, wave, kind), so scheduling the same thing twice is a no-op.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "not_before"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # invitation | reminder | digest | message
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"))
    wave_id: Mapped[int | None] = mapped_column(ForeignKey("waves.id", ondelete="CASCADE"))
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id", ondelete="SET NULL"))
    channel: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # pending -> claimed -> sent | failed (permanent) | skipped
    status: Mapped[str] = mapped_column(String(20), default="pending")
    not_before: Mapped[dt.datetime]
    not_after: Mapped[dt.datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    external_ref: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime]
