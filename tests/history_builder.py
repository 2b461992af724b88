"""Hand-made histories for stories, digests and anonymity tests: rows inserted directly.

Usage::

    with db.transaction(app.sessions) as s:
        h = History(s)
        dana = h.person("dana", owner="lead")
        h.checkin(dana, "customers", T0, rating=9, text="Fast support.")
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from memory import store
from memory.models import Answer, Checkin, FollowUp, Person, Program, Wave

T0 = dt.datetime(2025, 3, 3, 10, 0, tzinfo=dt.UTC)


def months(n: int) -> dt.timedelta:
    return dt.timedelta(days=30 * n)


class History:
    def __init__(self, s: Session) -> None:
        self.s = s

    def program(self, name: str) -> Program:
        return store.program_by_name(self.s, name)

    def person(self, key: str, *, owner: str | None = "lead", programs: tuple[str, ...] = ("customers",),
               name: str | None = None) -> Person:  # fmt: skip
        person, _ = store.upsert_person(
            self.s, key=key, name=name or key.title(), email=f"{key}@example.com", timezone="UTC",
            owner_key=owner, programs=[self.program(p) for p in programs], now=T0 - months(12),
        )  # fmt: skip
        return person

    def wave(self, program: str, key: str, opens: dt.datetime, closed: dt.datetime | None) -> Wave:
        wave = Wave(program_id=self.program(program).id, key=key, kind="cron", opens_at=opens,
                    closes_at=closed, closed_at=closed, created_at=opens)  # fmt: skip
        self.s.add(wave)
        self.s.flush()
        return wave

    def checkin(
        self,
        person: Person,
        program: str,
        at: dt.datetime,
        *,
        rating: int | None = None,
        text: str | None = None,
        status: str = "completed",
        wave: Wave | None = None,
        followup: str | None = None,
        reasons: list[dict[str, Any]] | None = None,
    ) -> Checkin:
        prog = self.program(program)
        c = Checkin(person_id=person.id, program_id=prog.id, wave_id=wave.id if wave else None, status=status,
                    channel="terminal", state={}, source="live", started_at=at, updated_at=at,
                    completed_at=at if status == "completed" else None,
                    expires_at=at + dt.timedelta(days=14) if status == "expired" else None)  # fmt: skip
        self.s.add(c)
        self.s.flush()
        rating_key = "enps" if program == "employees" else "recommend"
        answers = []
        if rating is not None:
            answers.append(Answer(checkin_id=c.id, person_id=person.id, program_id=prog.id, question=rating_key,
                                  kind="rating", rating=rating, answered_at=at))  # fmt: skip
        if text is not None:
            answers.append(Answer(checkin_id=c.id, person_id=person.id, program_id=prog.id, question="reason",
                                  kind="text", text=text, answered_at=at))  # fmt: skip
        self.s.add_all(answers)
        self.s.flush()
        if followup is not None or reasons:
            text_answer = next(a for a in answers if a.kind == "text")
            self.s.add(FollowUp(checkin_id=c.id, answer_id=text_answer.id, question="What changed?", score=0.8,
                                reasons=reasons or [{"kind": "drift", "text": "the reason is about something else"}],
                                prompt={}, asked_at=at, answer_text=followup,
                                answered_at=at if followup else None))  # fmt: skip
            self.s.flush()
        return c

    def person_by_key(self, key: str) -> Person:
        person = self.s.scalar(select(Person).where(Person.key == key))
        assert person is not None
        return person
