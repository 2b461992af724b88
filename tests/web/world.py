"""A small history for the dashboard tests: two owners, their people, two waves each, promises,
an anonymous program below k, and a digest, with a script-like answer everywhere words show."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.app import App
from bot.dashboard import auth
from memory import promises
from memory.db import transaction
from memory.embeddings import to_bytes
from memory.models import Answer, Checkin, Enrollment, FollowUp, OutboxMessage, Owner, Person, Program, Wave
from tests.fakes.embedder import HashingEmbedder

_EMBEDDER = HashingEmbedder()
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
XSS = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery staple"


# More customers for screenshots: (name, ((rating, reason) per wave)).
EXTRA = [
    ("Nordlicht GmbH", ((6, "Onboarding was rough"), (9, "The new onboarding guide made it easy"))),
    ("Harbor & Co", ((8, "Reliable, good value"), (8, "Still reliable and fairly priced"))),
    ("Kestrel Labs", ((9, "Your API is the best we use"), (5, "API changes broke our build twice"))),
    ("Maple Dental", ((7, "Fine overall"), (7, "Fine, support could be faster"))),
]


@dataclass
class World:
    ann_promise: int
    carl_promise: int
    digest_id: int


def _checkin(s, person: Person, program: Program, wave: Wave | None, when: dt.datetime, rating: int | None,
             text: str | None, status: str = "completed") -> Checkin:  # fmt: skip
    c = Checkin(person_id=person.id, program_id=program.id, wave_id=wave.id if wave else None, status=status,
                channel="terminal", state={}, source="live", started_at=when, updated_at=when,
                completed_at=when if status == "completed" else None)  # fmt: skip
    s.add(c)
    s.flush()
    vec = to_bytes(_EMBEDDER.encode([text])[0]) if text else None
    if rating is not None:
        s.add(Answer(checkin_id=c.id, person_id=person.id, program_id=program.id, question="recommend" if not
                     program.anonymous else "enps", kind="rating", rating=rating, answered_at=when))  # fmt: skip
    if text is not None:
        s.add(Answer(checkin_id=c.id, person_id=person.id, program_id=program.id, question="reason", kind="text",
                     text=text, embedding=vec, embedding_model="test", answered_at=when))  # fmt: skip
    s.flush()
    return c


def build_world(app: App, *, admin: bool = False, mark: str = XSS, extra: int = 0) -> World:
    """``mark`` is put in people's words and names; screenshots pass a harmless one."""
    with transaction(app.sessions) as s:
        alice = Owner(key="alice@example.com", name="Alice", created_at=NOW)
        bob = Owner(key="bob@example.com", name="Bob", created_at=NOW)
        s.add_all([alice, bob])
        s.flush()
        customers = s.query(Program).filter_by(name="customers").one()
        employees = s.query(Program).filter_by(name="employees").one()
        w1 = Wave(
            program_id=customers.id,
            key="2025-h2",
            kind="manual",
            opens_at=NOW - dt.timedelta(days=200),
            closes_at=NOW - dt.timedelta(days=186),
            closed_at=NOW - dt.timedelta(days=186),
            created_at=NOW,
        )
        w2 = Wave(
            program_id=customers.id,
            key="2026-h1",
            kind="manual",
            opens_at=NOW - dt.timedelta(days=20),
            closes_at=NOW - dt.timedelta(days=6),
            closed_at=NOW - dt.timedelta(days=6),
            created_at=NOW,
        )
        e1 = Wave(
            program_id=employees.id,
            key="2026-q2",
            kind="cron",
            opens_at=NOW - dt.timedelta(days=30),
            closes_at=NOW - dt.timedelta(days=20),
            closed_at=NOW - dt.timedelta(days=20),
            created_at=NOW,
        )
        s.add_all([w1, w2, e1])
        s.flush()
        people = {}
        cast = [("ann", f"Ann {mark}".strip(), alice), ("dan", "Dan", alice), ("carl", "Carl", bob)]
        for key, name, owner in cast:
            p = Person(key=key, name=name, owner_id=owner.id, timezone="UTC", created_at=NOW, updated_at=NOW)
            s.add(p)
            s.flush()
            s.add(Enrollment(person_id=p.id, program_id=customers.id, enrolled_at=NOW, active=True))
            people[key] = p
        ann, dan, carl = people["ann"], people["dan"], people["carl"]
        _checkin(s, ann, customers, w1, NOW - dt.timedelta(days=190), 9, "Great support, fast answers")
        slow = (mark + " support got slow").strip().capitalize()
        c2 = _checkin(s, ann, customers, w2, NOW - dt.timedelta(days=10), 4, slow)
        answer = s.query(Answer).filter_by(checkin_id=c2.id, kind="text").one()
        reasons = [
            {"kind": "rating", "text": "rating fell from 9 to 4", "data": {}},
            {"kind": "appeared", "text": "a new idea: slow support", "data": {"theme": f"slow support {mark}".strip()}},
            {"kind": "disappeared", "text": "no longer mentions fast answers", "data": {"theme": "fast answers"}},
        ]
        s.add(
            FollowUp(
                checkin_id=c2.id, answer_id=answer.id, score=0.8, reasons=reasons, prompt={},
                question=f"You said “Great support, fast answers” before. What changed? {mark}".strip(),
                asked_at=NOW - dt.timedelta(days=10), answer_text=f"They cut the team {mark}".strip(),
                answered_at=NOW - dt.timedelta(days=10),
            )
        )  # fmt: skip
        _checkin(s, dan, customers, w1, NOW - dt.timedelta(days=190), 8, "Fine")
        _checkin(s, dan, customers, w2, NOW - dt.timedelta(days=12), None, None, status="expired")
        _checkin(s, carl, customers, w1, NOW - dt.timedelta(days=190), 7, "Carl's secret words")
        _checkin(s, carl, customers, w2, NOW - dt.timedelta(days=11), 7, "Carl still fine")
        # Three employees answered an anonymous wave: below k (5), nothing of it may show.
        for i in range(3):
            e = Person(key=f"emp{i}", name=f"Emp {i}", owner_id=alice.id, timezone="UTC", created_at=NOW,
                       updated_at=NOW)  # fmt: skip
            s.add(e)
            s.flush()
            s.add(Enrollment(person_id=e.id, program_id=employees.id, enrolled_at=NOW, active=True))
            _checkin(s, e, employees, e1, NOW - dt.timedelta(days=25), 2 + i, f"anon words {i} {mark}")
        p1 = promises.add_promise(s, person=ann, owner=alice, text=("A dedicated contact " + mark).strip(), now=NOW -
                                  dt.timedelta(days=9), due_at=NOW + dt.timedelta(days=30), source="web")  # fmt: skip
        p2 = promises.add_promise(s, person=carl, owner=bob, text="Carl's promise", now=NOW - dt.timedelta(days=9))
        for i, (name, history) in enumerate(EXTRA[:extra]):
            p = Person(key=f"x{i}", name=name, owner_id=alice.id, timezone="UTC", created_at=NOW, updated_at=NOW)
            s.add(p)
            s.flush()
            for wave, (rating, words) in zip((w1, w2), history, strict=True):
                _checkin(s, p, customers, wave, wave.opens_at + dt.timedelta(days=3), rating, words)
        digest = OutboxMessage(key="digest:alice:1", kind="digest", owner_id=alice.id, channel="file",
                               payload={"owner": alice.key, "since": (NOW - dt.timedelta(days=14)).isoformat(),
                                        "until": (NOW - dt.timedelta(days=7)).isoformat()},
                               status="sent", not_before=NOW, sent_at=NOW - dt.timedelta(days=7),
                               created_at=NOW)  # fmt: skip
        s.add(digest)
        s.flush()
        auth.set_password(s, owner_key=alice.key, password=PASSWORD, now=NOW, admin=admin)
        auth.set_password(s, owner_key=bob.key, password=PASSWORD, now=NOW)
        return World(ann_promise=p1.id, carl_promise=p2.id, digest_id=digest.id)
