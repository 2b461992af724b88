"""What the web-link check-in page needs from the database, as engine calls (channels reach the
database only through the engine). Each call is one short transaction; the async page calls them
through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from bot.engine.service import CheckinService
from memory import store
from memory.db import transaction
from memory.models import Checkin, Person

CHANNEL = "web"


@dataclass(frozen=True, kw_only=True)
class Visitor:
    person_key: str
    name: str
    opted_out: bool
    checkin_id: int | None
    program: str | None


@dataclass(frozen=True, kw_only=True)
class Recipient:
    person_id: int
    name: str
    email: str | None
    closes_at: dt.datetime | None
    program: str | None


class WebVisits:
    def __init__(self, *, service: CheckinService) -> None:
        self.sessions: sessionmaker[Session] = service.sessions

    def visitor(self, person_id: int, now: dt.datetime) -> Visitor | None:
        """Who a link is for and their open check-in; links the web identity the engine reads
        (the person's key: the link itself is the proof of who they are)."""
        with transaction(self.sessions) as s:
            person = s.get(Person, person_id)
            if person is None:
                return None
            store.link_identity(s, person=person, channel=CHANNEL, external_id=person.key, now=now)
            checkins = store.open_checkins(s, person.id)
            checkin = checkins[0] if checkins else None
            return Visitor(
                person_key=person.key, name=person.name or "", opted_out=person.opted_out_at is not None,
                checkin_id=checkin.id if checkin else None, program=checkin.program.name if checkin else None,
            )  # fmt: skip

    def recipient(self, person_key: str, checkin_id: int | None) -> Recipient | None:
        """Where the invitation e-mail goes, and when the check-in it is for closes."""
        with transaction(self.sessions) as s:
            person = store.find_person(s, person_key)
            if person is None:
                return None
            checkin = s.get(Checkin, checkin_id) if checkin_id is not None else None
            return Recipient(
                person_id=person.id, name=person.name or "", email=(person.email or "").strip() or None,
                closes_at=checkin.expires_at if checkin else None, program=checkin.program.name if checkin else None,
            )  # fmt: skip

    def person_id(self, person_key: str) -> int:
        with transaction(self.sessions) as s:
            return store.require_person(s, person_key).id
