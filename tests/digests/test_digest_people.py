"""A digest lists people, not check-ins: one entry per person, with their movement over the period."""

from __future__ import annotations

from memory import db
from memory.digests import build_digest
from tests.history_builder import T0, History, months


def test_two_checkins_in_the_period_are_one_person_with_their_whole_movement(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        ann, bob = h.person("ann"), h.person("bob")
        h.checkin(ann, "customers", T0, rating=9, text="Fast support.")
        # Two check-ins inside the period: 9 -> 6 -> 4. One person moved down by 5.
        h.checkin(ann, "customers", T0 + months(6), rating=6, text="Slower replies.")
        h.checkin(ann, "customers", T0 + months(7), rating=4, text="Nobody answers any more.")
        h.checkin(bob, "customers", T0, rating=5, text="Missing reports.")
        h.checkin(bob, "customers", T0 + months(6), rating=8, text="The reports arrived.")
    with db.transaction(app.sessions) as s:
        digest = build_digest(s, owner="lead", since=T0 + months(5), until=T0 + months(8))
    assert [c.person for c in digest.changes] == ["ann", "bob"]
    assert digest.summary.startswith("2 people changed (1 down, 1 up)")
    ann_change = digest.changes[0]
    assert (ann_change.old_rating, ann_change.new_rating, ann_change.delta) == (9, 4, -5)
    assert ann_change.old_reason == "Fast support"
    assert ann_change.new_reason == "Nobody answers any more"
    assert ann_change.trajectory == "declining"


def test_a_person_who_moved_and_came_back_within_the_period_is_not_listed(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        cy = h.person("cy")
        h.checkin(cy, "customers", T0, rating=8, text="Good.")
        h.checkin(cy, "customers", T0 + months(6), rating=4, text="Bad week.")
        h.checkin(cy, "customers", T0 + months(7), rating=8, text="Good again.")
    with db.transaction(app.sessions) as s:
        digest = build_digest(s, owner="lead", since=T0 + months(5), until=T0 + months(8))
    assert digest.changes == ()
    assert digest.summary == "No changes."


def test_a_followup_anywhere_in_the_period_marks_the_persons_view_as_changed(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        dee = h.person("dee")
        h.checkin(dee, "customers", T0, rating=8, text="Great onboarding.")
        h.checkin(dee, "customers", T0 + months(6), rating=8, text="Pricing worries me.", followup="New prices.")
        h.checkin(dee, "customers", T0 + months(7), rating=8, text="Still pricing.")
    with db.transaction(app.sessions) as s:
        digest = build_digest(s, owner="lead", since=T0 + months(5), until=T0 + months(8))
    assert len(digest.changes) == 1
    assert digest.changes[0].view_changed
    assert digest.changes[0].followup_answer == "New prices"
