"""Stories and trajectories on hand-made histories."""

from __future__ import annotations

import pytest

from memory import db
from memory.stories import TRAJECTORIES, build_story, trajectory
from tests.history_builder import T0, History, months


@pytest.mark.parametrize(
    ("ratings", "kind"),
    [
        ([], "new"),
        ([7], "new"),
        ([7, 7], "stable"),
        ([7, 8, 7, 8], "stable"),
        ([5, 8], "improving"),
        ([5, 6, 7], "improving"),  # gradual drift of +2 with no single move of 2
        ([9, 4], "declining"),
        ([8, 7, 6], "declining"),  # gradual drift down
        ([5, 9, 6], "declining"),  # up, then down: the latest move is a fall
        ([9, 4, 8], "recovering"),
        ([9, 3, 3, 7], "recovering"),
        ([9, 4, 9, 4], "volatile"),
        ([3, 8, 2, 9, 9], "volatile"),
        ([9, 8, 7, 4, 3], "declining"),  # consecutive falls are one run
    ],
)
def test_trajectory_rules(ratings: list[int], kind: str) -> None:
    result = trajectory(ratings, step=2)
    assert result.kind == kind
    assert result.kind in TRAJECTORIES
    assert result.why


def test_the_step_is_the_threshold() -> None:
    assert trajectory([7, 8], step=1).kind == "improving"
    assert trajectory([7, 8], step=2).kind == "stable"
    assert trajectory([4, 8], step=5).kind == "stable"


def test_a_story_joins_checkins_followups_themes_and_promises(make_app) -> None:
    from memory.promises import add_promise, record_outcome

    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        dana = h.person("dana", programs=("customers", "employees"))
        h.checkin(dana, "customers", T0, rating=9, text="Support answers within the hour.")
        h.checkin(dana, "customers", T0 + months(6), rating=4, text="Support takes days now.",
                  followup="Our account manager left.",
                  reasons=[{"kind": "rating", "text": "rating fell from 9 to 4"},
                           {"kind": "appeared", "text": "new theme", "data": {"theme": "slow support"}},
                           {"kind": "disappeared", "text": "gone", "data": {"theme": "fast answers"}}])  # fmt: skip
        h.checkin(dana, "customers", T0 + months(12), rating=8, text="Better again.")
        h.checkin(dana, "customers", T0 + months(13), status="invited")
        # An anonymous program never shows up in an owner's view of a person.
        h.checkin(dana, "employees", T0 + months(6), rating=1, text="My team lead is unbearable.")
        promise = add_promise(s, person=dana, owner=dana.owner, text="a dedicated contact", now=T0 + months(7),
                              due_at=T0 + months(9))  # fmt: skip
        record_outcome(s, promise=promise, verdict="partly", comment="only by email", now=T0 + months(12),
                       checkin_id=None)  # fmt: skip
        story = build_story(s, dana)

    assert [p.rating for p in story.points] == [9, 4, 8, None]
    assert {p.program for p in story.points} == {"customers"}
    assert "unbearable" not in str(story.to_dict())
    assert story.trajectories == {"customers": trajectory([9, 4, 8])}
    assert story.trajectories["customers"].kind == "recovering"
    second = story.points[1]
    assert second.followup_answer == "Our account manager left."
    assert second.themes_appeared == ("slow support",)
    assert second.themes_disappeared == ("fast answers",)
    assert story.points[3].status == "invited"
    (p,) = story.promises
    assert (p.text, p.status) == ("a dedicated contact", "partly")
    assert [(o.verdict, o.comment) for o in p.outcomes] == [("partly", "only by email")]
    data = story.to_dict()
    assert data["trajectories"]["customers"]["kind"] == "recovering"
    assert data["points"][0]["at"].startswith("2025-03-03")


def test_a_person_only_in_an_anonymous_program_has_an_empty_story(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        eve = h.person("eve", programs=("employees",))
        h.checkin(eve, "employees", T0, rating=2, text="I am thinking of leaving.")
        h.checkin(eve, "employees", T0 + months(3), rating=9, text="Much better now.")
        story = build_story(s, eve)
    assert story.points == ()
    assert story.trajectories == {}


def test_owner_facing_modules_read_checkins_only_through_the_anonymity_door() -> None:
    from pathlib import Path

    import memory

    root = Path(memory.__file__).parent
    for name in ("stories.py", "digests.py", "themes.py"):
        source = (root / name).read_text()
        assert "select(Checkin" not in source, f"{name} selects check-ins directly"
        assert "query(Checkin" not in source, f"{name} queries check-ins directly"


def test_themes_come_from_the_detector_s_reasons() -> None:
    from memory.stories import themes_in

    reasons = [
        {"kind": "appeared", "text": "new", "quote": "old words", "data": {"theme": "slow support",
                                                                         "themes": ["slow support", "exports"]}},
        {"kind": "appeared", "text": "new", "quote": "old words"},  # no theme: the quote is not a new idea
        {"kind": "disappeared", "text": "gone", "quote": "fast onboarding"},
        {"kind": "drift", "text": "x"},
        "not a dict",
    ]  # fmt: skip
    assert themes_in(reasons, "appeared") == ("slow support", "exports")
    assert themes_in(reasons, "disappeared") == ("fast onboarding",)
