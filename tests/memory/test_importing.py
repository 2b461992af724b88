"""Imports refuse odd rows with a line number each, and never take a row for something it is not."""

from __future__ import annotations

import datetime as dt

from bot.cli.people import import_answers_text, import_people_text

NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
ROSTER = """id,name,email,timezone,owner,programs
ann,Ann,ann@example.com,UTC,lead@example.com,customers
bob,Bob,bob@example.com,UTC,lead@example.com,customers
"""


def _messages(report) -> dict[int, str]:
    return {p.line: p.message for p in report.problems}


def test_ratings_that_are_not_whole_numbers_in_range_are_refused(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    answers = """person,program,question,answered_at,rating,text
ann,customers,recommend,2025-09-01,inf,
ann,customers,recommend,2025-09-02,nan,
ann,customers,recommend,2025-09-03,7.9,
ann,customers,recommend,2025-09-04,-inf,
ann,customers,recommend,2025-09-05,7.0,
ann,customers,reason,2025-09-05,8,Fast support.
"""
    report = import_answers_text(app, answers, NOW)
    problems = _messages(report)
    assert problems[2] == "rating 'inf' is not a number"
    assert problems[3] == "rating 'nan' is not a number"
    assert problems[4] == "rating '7.9' is not a whole number"
    assert problems[5] == "rating '-inf' is not a number"
    assert problems[7] == "question 'reason' takes text, not a rating"
    assert report.created == 1  # 7.0 is 7


def test_duplicate_answers_in_one_file_are_refused_with_the_first_line(make_app) -> None:
    app = make_app()
    import_people_text(app, ROSTER, NOW)
    answers = """person,program,question,answered_at,rating,text
ann,customers,recommend,2025-09-01,8,
ann,customers,recommend,2025-09-01,3,
"""
    report = import_answers_text(app, answers, NOW)
    assert _messages(report) == {3: "the same answer is already on line 2"}
    assert report.created == 1


def test_duplicate_ids_and_emails_in_one_roster_are_refused(make_app) -> None:
    app = make_app()
    roster = ROSTER + "ann,Ann Again,other@example.com,UTC,,customers\ncy,Cy,BOB@example.com,UTC,,customers\n"
    report = import_people_text(app, roster, NOW)
    assert _messages(report) == {
        4: "id 'ann' is already on line 2",
        5: "'BOB@example.com' is already on line 3",
    }
    assert report.created == 2


def test_reimporting_an_identical_roster_changes_nothing_and_says_so(make_app) -> None:
    app = make_app()
    first = import_people_text(app, ROSTER, NOW)
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    again = import_people_text(app, ROSTER, NOW + dt.timedelta(days=1))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    moved = import_people_text(app, ROSTER.replace("bob@example.com,UTC", "bob@example.com,Europe/Paris"), NOW)
    assert (moved.created, moved.updated, moved.unchanged) == (0, 1, 1)


def test_a_large_roster_goes_in_whole_across_batches(make_app) -> None:
    from memory import db
    from memory.importing import import_people

    app = make_app()
    rows = "".join(f"p{i},P {i},p{i}@example.com,UTC,lead@example.com,customers\n" for i in range(1203))
    report = import_people(app.sessions, ROSTER.splitlines()[0] + "\n" + rows, known_programs=["customers"],
                           now=NOW, batch=500)  # fmt: skip
    assert report.created == 1203
    with db.transaction(app.sessions) as s:
        from sqlalchemy import func, select

        from memory.models import Person

        assert s.scalar(select(func.count()).select_from(Person)) == 1203


def test_time_zones_in_any_case_and_control_characters_are_cleaned(make_app) -> None:
    from memory import store
    from memory.db import transaction

    app = make_app()
    roster = (
        "id,name,email,timezone,owner,programs\n"
        "ann,Ann\x00 Lee,ann@example.com,utc,,customers\n"
        "bob,Bob,bob@example.com,europe/london,,customers\n"
        "cy,Cy,cy@example.com,Mars/Olympus,,customers\n"
    )
    report = import_people_text(app, roster, NOW)
    assert _messages(report) == {4: "unknown time zone 'Mars/Olympus' (use an IANA name such as Europe/Berlin, or UTC)"}
    assert report.created == 2
    answers = (
        "person,program,question,answered_at,rating,text\nann,customers,reason,2025-09-01,,Fast\x00 support\x1b.\n"
    )
    assert import_answers_text(app, answers, NOW).created == 1
    with transaction(app.sessions) as s:
        ann, bob = store.require_person(s, "ann"), store.require_person(s, "bob")
        assert (ann.name, ann.timezone, bob.timezone) == ("Ann Lee", "UTC", "Europe/London")
        (checkin,) = store.history(s, ann.id)
        assert [a.text for a in checkin.answers] == ["Fast support."]
