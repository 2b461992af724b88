"""Queries and writes on Rapport's memory, as small functions that take a Session.

Callers own the transaction (``memory.db.transaction``), so several of these compose into one
unit of work: an answer, its follow-up, the new conversation state and the inbound event's
idempotency key commit together or not at all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, joinedload, selectinload

from memory.errors import NotFound
from memory.models import (
    OPEN_STATUSES,
    Answer,
    ChannelIdentity,
    Checkin,
    Enrollment,
    FollowUp,
    Owner,
    Person,
    ProcessedEvent,
    Program,
)


def ensure_programs(
    s: Session, specs: Mapping[str, tuple[bool, int] | tuple[bool, int, int]], now: dt.datetime
) -> dict[str, Program]:
    """Make sure a row exists for every configured program; keep privacy settings in step.

    A spec is (anonymous, k) or (anonymous, k, k for comments).
    """
    existing = {p.name: p for p in s.scalars(select(Program))}
    for name, spec in specs.items():
        anonymous, k = spec[0], spec[1]
        k_comments = spec[2] if len(spec) > 2 else None
        program = existing.get(name)
        if program is None:
            program = Program(name=name, anonymous=anonymous, k_anonymity=k, k_comments=k_comments, created_at=now)
            s.add(program)
            existing[name] = program
        else:
            program.anonymous, program.k_anonymity, program.k_comments = anonymous, k, k_comments
    s.flush()
    return existing


def program_by_name(s: Session, name: str) -> Program:
    program = s.scalar(select(Program).where(Program.name == name))
    if program is None:
        raise NotFound("program", name)
    return program


def get_or_create_owner(s: Session, key: str, now: dt.datetime) -> Owner:
    owner = s.scalar(select(Owner).where(Owner.key == key))
    if owner is None:
        owner = Owner(key=key, name=key, email=key if "@" in key else None, created_at=now)
        s.add(owner)
        s.flush()
    return owner


# The statements every inbound message runs are built once, with bound parameters: building a
# select costs about as much as running it against SQLite.
_PERSON_BY_KEY = select(Person).where(Person.key == bindparam("key"))


def find_person(s: Session, ref: str) -> Person | None:
    """A person by their key (the roster id) or, failing that, their e-mail address."""
    person = s.scalar(_PERSON_BY_KEY, {"key": ref})
    if person is None and "@" in ref:
        person = s.scalar(select(Person).where(Person.email == ref.lower()))
    return person


def require_person(s: Session, ref: str) -> Person:
    person = find_person(s, ref)
    if person is None:
        raise NotFound("person", ref)
    return person


def upsert_person(
    s: Session,
    *,
    key: str,
    name: str | None,
    email: str | None,
    timezone: str,
    owner_key: str | None,
    programs: Iterable[Program],
    now: dt.datetime,
) -> tuple[Person, bool]:
    """Create or update a roster entry in place. Returns (person, created)."""
    person = s.scalar(select(Person).where(Person.key == key))
    created = person is None
    if person is None:
        person = Person(key=key, created_at=now, updated_at=now, timezone=timezone)
        s.add(person)
    person.name = name or None
    person.email = email.lower() if email else None
    person.timezone = timezone
    person.owner = get_or_create_owner(s, owner_key, now) if owner_key else None
    person.updated_at = now
    s.flush()
    for program in programs:
        enroll(s, person, program, now)
    return person, created


def enroll(s: Session, person: Person, program: Program, now: dt.datetime) -> Enrollment:
    enrollment = s.scalar(
        select(Enrollment).where(Enrollment.person_id == person.id, Enrollment.program_id == program.id)
    )
    if enrollment is None:
        enrollment = Enrollment(person_id=person.id, program_id=program.id, enrolled_at=now, active=True)
        s.add(enrollment)
        s.flush()
    elif not enrollment.active:
        enrollment.active = True
    return enrollment


def is_enrolled(s: Session, person_id: int, program_id: int) -> bool:
    return (
        s.scalar(
            select(Enrollment.id).where(
                Enrollment.person_id == person_id, Enrollment.program_id == program_id, Enrollment.active
            )
        )
        is not None
    )


_OPEN_CHECKINS = (
    select(Checkin)
    .options(joinedload(Checkin.wave))  # a message after the wave's end is refused: its end is read
    .where(Checkin.person_id == bindparam("person_id"), Checkin.status.in_(OPEN_STATUSES))
    .order_by(Checkin.updated_at.desc(), Checkin.id.desc())
)


def open_checkins(s: Session, person_id: int) -> list[Checkin]:
    """The person's open check-ins, most recently active first (each with its wave)."""
    return list(s.scalars(_OPEN_CHECKINS, {"person_id": person_id}))


def open_checkin(s: Session, person_id: int, program_id: int) -> Checkin | None:
    return s.scalar(
        select(Checkin).where(
            Checkin.person_id == person_id, Checkin.program_id == program_id, Checkin.status.in_(OPEN_STATUSES)
        )
    )


_EARLIER_ANSWERS = (
    select(Answer)
    .join(Checkin, Answer.checkin_id == Checkin.id)
    .where(
        Answer.person_id == bindparam("person_id"),
        Answer.program_id == bindparam("program_id"),
        Answer.question == bindparam("question"),
        Answer.skipped.is_(False),
        Answer.checkin_id != bindparam("checkin_id"),
        Checkin.started_at <= bindparam("started_at"),
    )
    .order_by(Answer.answered_at, Answer.id)
)


def earlier_answers(s: Session, *, person_id: int, program_id: int, question: str, before: Checkin) -> list[Answer]:
    """Non-skipped answers to the same question in earlier check-ins, oldest first."""
    params = {"person_id": person_id, "program_id": program_id, "question": question, "checkin_id": before.id,
              "started_at": before.started_at}  # fmt: skip
    return list(s.scalars(_EARLIER_ANSWERS, params))


_ANSWER_FOR = select(Answer).where(Answer.checkin_id == bindparam("checkin_id"), Answer.question == bindparam("q"))


def answer_for(s: Session, checkin_id: int, question: str) -> Answer | None:
    return s.scalar(_ANSWER_FOR, {"checkin_id": checkin_id, "q": question})


_RATINGS_IN = select(Answer.checkin_id, Answer.rating).where(
    Answer.checkin_id.in_(bindparam("ids", expanding=True)), Answer.question == bindparam("q")
)


def ratings_in(s: Session, checkin_ids: Sequence[int], question: str) -> dict[int, int | None]:
    """The answer to a rating question in each of these check-ins (absent: not answered)."""
    rows = s.execute(_RATINGS_IN, {"ids": list(checkin_ids), "q": question})
    return {checkin_id: rating for checkin_id, rating in rows}


_PENDING_FOLLOWUP = (
    select(FollowUp)
    .where(FollowUp.checkin_id == bindparam("checkin_id"), FollowUp.answered_at.is_(None), FollowUp.skipped.is_(False))
    .order_by(FollowUp.id.desc())
)


def pending_followup(s: Session, checkin_id: int) -> FollowUp | None:
    return s.scalar(_PENDING_FOLLOWUP, {"checkin_id": checkin_id})


def claim_event(s: Session, key: str, now: dt.datetime, *, replied: bool = True) -> bool:
    """Record an inbound event's idempotency key. False if it was already processed.

    The row commits with the work it guards; two racing deliveries cannot both commit, because
    the key is the primary key. ``replied=False``: the caller sends the replies after the commit
    and confirms them with :func:`mark_replied`.
    """
    # One statement: INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL), instead of a
    # read and an ORM flush. A racing second delivery waits for the first's commit, then inserts
    # nothing. On the table itself (Core): the ORM's bulk-insert path costs more than the insert.
    claim = _CLAIM[s.get_bind().dialect.name]
    row = {"key": key, "processed_at": now, "replied_at": now if replied else None}
    return s.execute(claim, row).first() is not None


def _claim(insert: Callable[..., Any]) -> Any:
    table = ProcessedEvent.__table__
    values = {"key": bindparam("key"), "processed_at": bindparam("processed_at", type_=table.c.processed_at.type),
              "replied_at": bindparam("replied_at", type_=table.c.replied_at.type)}  # fmt: skip
    return insert(table).values(values).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.key)


_CLAIM = {"sqlite": _claim(sqlite_insert), "postgresql": _claim(postgresql_insert)}


_EVENT_SEEN = select(ProcessedEvent.key).where(ProcessedEvent.key == bindparam("key"))


def event_seen(s: Session, key: str) -> bool:
    """The inbound event was processed already (a redelivery): no model work for it."""
    return s.scalar(_EVENT_SEEN, {"key": key}) is not None


def unreplied_since(s: Session, key: str) -> dt.datetime | None:
    """When the event was processed, if its replies were never confirmed as sent (else None)."""
    event = s.get(ProcessedEvent, key)
    return event.processed_at if event is not None and event.replied_at is None else None


def completed_by_event(s: Session, person_id: int, key: str) -> bool:
    """The person's last check-in was completed by this inbound event (at the time it was
    processed: an answer's time is its event's)."""
    processed_at = s.scalar(select(ProcessedEvent.processed_at).where(ProcessedEvent.key == key))
    last = s.scalar(
        select(Checkin.completed_at)
        .where(Checkin.person_id == person_id, Checkin.status == "completed")
        .order_by(Checkin.completed_at.desc())
        .limit(1)
    )
    return processed_at is not None and last == processed_at


def mark_replied(s: Session, key: str, now: dt.datetime) -> None:
    s.execute(
        update(ProcessedEvent)
        .where(ProcessedEvent.key == key, ProcessedEvent.replied_at.is_(None))
        .values(replied_at=now)
        .execution_options(synchronize_session=False)
    )


_IDENTITY = (
    select(ChannelIdentity)
    .options(joinedload(ChannelIdentity.person))
    .where(
        ChannelIdentity.channel == bindparam("channel"),
        ChannelIdentity.workspace == bindparam("workspace"),
        ChannelIdentity.external_id == bindparam("external_id"),
    )
)


def find_identity(s: Session, *, channel: str, external_id: str, workspace: str = "") -> ChannelIdentity | None:
    """The identity with its person, in one statement (every inbound message asks for both)."""
    return s.scalar(_IDENTITY, {"channel": channel, "workspace": workspace, "external_id": external_id})


def identities_of(s: Session, person_id: int) -> list[ChannelIdentity]:
    return list(s.scalars(select(ChannelIdentity).where(ChannelIdentity.person_id == person_id)))


def link_identity(
    s: Session,
    *,
    person: Person,
    channel: str,
    external_id: str,
    now: dt.datetime,
    workspace: str = "",
    address: str | None = None,
) -> ChannelIdentity:
    """Bind a channel account to a person; a person has one identity per channel and workspace."""
    identity = find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
    if identity is not None and identity.person_id != person.id:
        s.delete(identity)
        s.flush()
        identity = None
    if identity is None:
        identity = s.scalar(
            select(ChannelIdentity).where(
                ChannelIdentity.person_id == person.id,
                ChannelIdentity.channel == channel,
                ChannelIdentity.workspace == workspace,
            )
        )
    if identity is None:
        identity = ChannelIdentity(
            person_id=person.id, channel=channel, workspace=workspace, external_id=external_id, created_at=now
        )
        s.add(identity)
    identity.external_id = external_id
    identity.address = address or identity.address
    identity.reachable = True
    identity.unreachable_reason = None
    identity.unreachable_at = None
    s.flush()
    return identity


def mark_unreachable(s: Session, identity: ChannelIdentity, reason: str, now: dt.datetime) -> None:
    identity.reachable = False
    identity.unreachable_reason = reason
    identity.unreachable_at = now


def history(s: Session, person_id: int) -> Sequence[Checkin]:
    """Every check-in of a person, oldest first, with answers and follow-ups loaded."""
    return list(
        s.scalars(
            select(Checkin)
            .where(Checkin.person_id == person_id)
            .options(selectinload(Checkin.answers), selectinload(Checkin.followups), selectinload(Checkin.program))
            .order_by(Checkin.started_at, Checkin.id)
        )
    )
