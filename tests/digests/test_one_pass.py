"""All owners' digests in one pass are the digests the per-owner reads gave, owner by owner and in
every format, and the pass costs the same number of queries whatever the number of owners."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event

from bot.digests import FORMATS, render_digest
from memory import db
from memory.digests import build_digest, build_digests
from memory.errors import NotFound
from memory.models import Answer, Outcome, Owner, Promise
from tests.digests import digest_reference
from tests.history_builder import T0, History, months

SINCE, UNTIL = T0 + months(5), T0 + months(8)
OWNERS = ("lead", "second", "third", "nobody")


def _promise(h: History, person, text: str, *, due: dt.datetime | None, status: str = "open",
             program: str | None = "customers",
             verdicts: tuple[tuple[str, dt.datetime], ...] = ()) -> None:  # fmt: skip
    promise = Promise(person_id=person.id, owner_id=person.owner_id, text=text, made_at=T0, due_at=due,
                      status=status, source="cli", created_at=T0,
                      program_id=h.program(program).id if program else None)  # fmt: skip
    h.s.add(promise)
    h.s.flush()
    for verdict, at in verdicts:
        h.s.add(
            Outcome(promise_id=promise.id, verdict=verdict, comment=f"{verdict}, said {person.key}", recorded_at=at)
        )
    h.s.flush()


def _world(app) -> None:
    """Changes up and down, small moves, follow-ups (one a bare "yes", one skipped), ties, a view
    before the period with a reason and no rating, open and expired check-ins, promises kept and
    broken and due, an anonymous program with a closed wave, and people with no owner."""
    with db.transaction(app.sessions) as s:
        h = History(s)
        wave = h.wave("employees", "2025-Q3", T0 + months(6), T0 + months(6) + dt.timedelta(days=10))
        for owner in ("lead", "second"):
            for i in range(6):
                staff = h.person(f"{owner}-staff{i}", owner=owner, programs=("employees",))
                h.checkin(staff, "employees", T0 + months(6) + dt.timedelta(hours=i), rating=4 + i,
                          text=f"Workload is heavy ({i}).", wave=wave)  # fmt: skip
            ann = h.person(f"{owner}-ann", owner=owner, name="Ann")
            h.checkin(ann, "customers", T0, rating=9, text="Fast support.")
            h.checkin(ann, "customers", T0 + months(6), rating=6, text="Slower replies.")
            h.checkin(ann, "customers", T0 + months(7), rating=3, text="Nobody answers <b>any</b> more.",
                      followup="Our account manager left.",
                      reasons=[{"kind": "theme", "text": "support", "theme": "support",
                                "change": "appeared"}])  # fmt: skip
            bob = h.person(f"{owner}-bob", owner=owner, name="Ann")  # same name: ties broken as before
            h.checkin(bob, "customers", T0, rating=5, text="Missing reports.")
            h.checkin(bob, "customers", T0 + months(6), rating=8, text="The reports arrived.", followup="yes")
            cy = h.person(f"{owner}-cy", owner=owner, programs=("customers", "employees"))
            h.checkin(cy, "customers", T0, rating=8, text="Good.")
            h.checkin(cy, "customers", T0 + months(6), rating=7, text="Fine.")  # a small move: not listed
            h.checkin(cy, "employees", T0 + months(6), rating=2, text="Anonymous words.", followup="Never shown.")
            dee = h.person(f"{owner}-dee", owner=owner)
            h.checkin(dee, "customers", T0, text="Only words, no rating.")  # the view moved from
            h.checkin(dee, "customers", T0 + months(6), rating=8, text="Pricing worries me.", followup=None,
                      reasons=[{"kind": "drift", "text": "the reason is about something else"}])  # fmt: skip
            eve = h.person(f"{owner}-eve", owner=owner)
            tie = T0 + months(1)
            h.checkin(eve, "customers", tie - months(1), rating=2, text="Awful.")
            h.checkin(eve, "customers", tie, rating=9, text="Tied first.")
            h.checkin(eve, "customers", tie, rating=7, text="Tied second.")  # the same moment: the later row
            h.checkin(eve, "customers", tie + months(4) + dt.timedelta(days=29), rating=1, text="Tied last.",
                      status="expired")  # fmt: skip
            h.checkin(eve, "customers", T0 + months(7), rating=4, text="Worse.")
            fay = h.person(f"{owner}-fay", owner=owner)
            h.checkin(fay, "customers", T0, rating=9, text="Lovely.")
            h.checkin(fay, "customers", T0 + months(6), status="expired")  # expired in the period
            h.checkin(fay, "customers", T0 + months(7) + dt.timedelta(days=20), status="invited")  # open
            gus = h.person(f"{owner}-gus", owner=owner)
            h.checkin(gus, "customers", T0 + months(1), status="expired")  # expired long before
            h.checkin(gus, "customers", T0 + months(6), rating=2, text="First answer ever.")  # nothing before
            _promise(h, ann, "a dedicated contact", due=T0 + months(6), status="broken",
                     verdicts=(("no", T0 + months(6)), ("no", T0 + months(7))))  # fmt: skip
            _promise(h, bob, "weekly reports", due=None, status="kept", verdicts=(("yes", T0 + months(6)),))
            _promise(h, cy, "faster replies", due=T0 + months(7), verdicts=(("partly", T0 + months(2)),))
            _promise(h, dee, "a price freeze", due=T0 + months(9))  # not due yet
            _promise(h, eve, "a call back", due=T0 + months(4))  # overdue
            _promise(h, cy, "an anonymous promise", due=T0 + months(6), program="employees",
                     verdicts=(("no", T0 + months(6)),))  # fmt: skip
        h.person("third-only", owner="third")
        s.add(Owner(key="nobody", name=None, email=None, created_at=T0))
        orphan = h.person("orphan", owner=None)
        h.checkin(orphan, "customers", T0, rating=9, text="Fine.")
        h.checkin(orphan, "customers", T0 + months(6), rating=1, text="Bad.")


def test_one_pass_gives_each_owner_the_digest_the_per_owner_reads_gave(make_app) -> None:
    app = make_app()
    _world(app)
    with db.transaction(app.sessions) as s:
        everyone = build_digests(s, since=SINCE, until=UNTIL)
        some = build_digests(s, owners=["second", "lead"], since=SINCE, until=UNTIL)
        for owner in OWNERS:
            before = digest_reference.build_digest(s, owner=owner, since=SINCE, until=UNTIL)
            assert everyone[owner] == before
            assert build_digest(s, owner=owner, since=SINCE, until=UNTIL) == before
            for fmt in FORMATS:
                assert render_digest(everyone[owner], fmt) == render_digest(before, fmt), (owner, fmt)
    assert set(everyone) == set(OWNERS)
    assert set(some) == {"lead", "second"}
    assert some["lead"] == everyone["lead"]
    lead = everyone["lead"]
    # The world holds what the comparison is meant to cover.
    assert [c.person for c in lead.changes] == ["lead-ann", "lead-bob", "lead-eve", "lead-dee"]
    assert lead.changes[1].followup_no_reason  # a bare "yes"
    assert lead.changes[2].old_reason == "Tied second"  # of two answers at the same moment, the later row
    assert lead.changes[3].old_rating is None
    assert lead.changes[3].old_reason == "Only words, no rating"
    assert [o.verdict for o in lead.outcomes] == ["no", "no", "yes"]
    assert [(p.text, p.overdue) for p in lead.due] == [("a call back", True), ("faster replies", True)]
    assert [(x.person, x.status) for x in lead.silent] == [("lead-eve", "expired"), ("lead-fay", "expired"),
                                                          ("lead-fay", "open")]  # fmt: skip
    assert [(a.program, a.wave, a.suppressed) for a in lead.aggregates] == [("employees", "2025-Q3", False)]
    assert everyone["third"].empty
    assert everyone["nobody"].empty


def test_a_named_owner_that_does_not_exist_is_not_found(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s, pytest.raises(NotFound):
        build_digests(s, owners=["ghost"], since=SINCE, until=UNTIL)


def test_the_pass_costs_the_same_queries_for_any_number_of_owners(make_app) -> None:
    app = make_app()

    def add_owners(first: int, last: int) -> None:
        with db.transaction(app.sessions) as s:
            h = History(s)
            for o in range(first, last):
                for i in range(3):
                    p = h.person(f"o{o}-p{i}", owner=f"owner{o}")
                    h.checkin(p, "customers", T0, rating=9, text="Fast.")
                    h.checkin(p, "customers", T0 + months(6), rating=3 if i == 0 else 9, text="Slow.",
                              followup="They left." if i == 0 else None)  # fmt: skip
                    _promise(h, p, "a call", due=T0 + months(6), verdicts=(("no", T0 + months(6)),))

    def queries() -> int:
        statements: list[str] = []

        def count(_conn, _cursor, statement: str, *_rest) -> None:
            statements.append(statement)

        event.listen(app.engine, "before_cursor_execute", count)
        with db.transaction(app.sessions) as s:
            digests = build_digests(s, since=SINCE, until=UNTIL)
        event.remove(app.engine, "before_cursor_execute", count)
        assert sum(len(d.changes) for d in digests.values()) == len(digests)
        return len([q for q in statements if q.lstrip().upper().startswith(("SELECT", "WITH"))])

    add_owners(0, 2)
    two = queries()
    add_owners(2, 12)
    assert queries() == two


def test_a_checkin_with_two_different_ratings_counts_its_first(make_app) -> None:
    """Ratings are read as each check-in's lowest and highest: where they differ, the first one
    by answer id is read, as the per-owner reads did (here the first is the higher one)."""
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        ann = h.person("ann", owner="lead")
        h.checkin(ann, "customers", T0, rating=9, text="Fast.")
        late = h.checkin(ann, "customers", T0 + months(6), rating=8, text="Still fine.")
        before = h.checkin(ann, "customers", T0 + months(2), rating=3, text="Slow.")
        for c, rating in ((late, 2), (before, 10)):  # a second rating question, answered later
            s.add(Answer(checkin_id=c.id, person_id=ann.id, program_id=c.program_id, question="satisfaction",
                         kind="rating", rating=rating, answered_at=c.completed_at))  # fmt: skip
        s.flush()
    with db.transaction(app.sessions) as s:
        digest = build_digests(s, since=SINCE, until=UNTIL)["lead"]
        assert digest == digest_reference.build_digest(s, owner="lead", since=SINCE, until=UNTIL)
    [change] = digest.changes
    assert (change.old_rating, change.new_rating) == (3, 8)
