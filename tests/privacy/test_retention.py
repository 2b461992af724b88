"""Retention: free text older than N months goes, ratings stay; daily in ``rapport run``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.runner import Runner
from memory import audit
from memory.db import transaction
from memory.models import Answer, Checkin, FollowUp, Outcome
from memory.models_scheduler import OutboxContent
from memory.retention import cutoff, run_retention
from tests.privacy.test_erasure import file_bytes, table_text
from tests.privacy.world import ANN_MARK, BOB_MARK, T0, build_world

# Six months after the world's latest answers: the early ones (T0 - 6 months) are 12 months old.
NOW = T0 + dt.timedelta(days=183)


@pytest.fixture
def app(make_app: Callable[..., App], tmp_path: Path) -> App:
    application = make_app()
    build_world(application, tmp_path / "digests")
    return application


def early_and_late(app: App) -> tuple[list[Answer], list[Answer]]:
    with transaction(app.sessions) as s:
        answers = list(s.scalars(select(Answer).order_by(Answer.id)))
    early = [a for a in answers if a.answered_at < T0]
    late = [a for a in answers if a.answered_at >= T0]
    return early, late


def test_cutoff_counts_calendar_months() -> None:
    assert cutoff(dt.datetime(2026, 3, 31, 9, tzinfo=dt.UTC), 1) == dt.datetime(2026, 2, 28, 9, tzinfo=dt.UTC)
    assert cutoff(dt.datetime(2026, 1, 15, tzinfo=dt.UTC), 24) == dt.datetime(2024, 1, 15, tzinfo=dt.UTC)
    assert cutoff(dt.datetime(2028, 3, 29, tzinfo=dt.UTC), 1) == dt.datetime(2028, 2, 29, tzinfo=dt.UTC)


def test_old_free_text_goes_and_ratings_stay(app: App) -> None:
    report = run_retention(app.sessions, months=9, now=NOW)
    assert (report.answers, report.dry_run) == (2, False)
    early, late = early_and_late(app)
    assert all(a.text is None and a.embedding is None for a in early)
    assert sorted(a.rating for a in early if a.kind == "rating") == [8, 9]
    assert all(a.text for a in late if a.kind == "text")
    with transaction(app.sessions) as s:
        words = " ".join(a.text or "" for a in s.scalars(select(Answer)))
        assert "early: the onboarding" not in words
        assert "late: support never answered" in words
        # The digest made within the period keeps its quotes until it is old enough itself.
        assert len(s.scalars(select(OutboxContent)).all()) == 3
    with transaction(app.sessions) as s:
        entry = next(e for e in audit.entries(s) if e.action == "retention.run")
        assert (entry.actor, entry.person_id, entry.detail["answers"]) == ("system", None, 2)


def test_a_longer_rule_keeps_everything_younger(app: App) -> None:
    before = table_text(app)
    report = run_retention(app.sessions, months=13, now=NOW)
    assert (report.answers, report.followups, report.outcomes) == (0, 0, 0)
    assert table_text(app) == before, "nothing deleted and no audit entry when nothing was old enough"


def test_everything_older_goes_including_follow_ups_and_comments(app: App) -> None:
    report = run_retention(app.sessions, months=1, now=NOW)
    assert (report.answers, report.followups, report.outcomes, report.stored_messages) == (6, 2, 2, 3)
    text = table_text(app)
    raw = file_bytes(app).decode("utf-8", "replace") if app.engine.dialect.name == "sqlite" else ""
    for mark in (ANN_MARK, BOB_MARK):
        for words in ("follow-up", "outcome", "early", "late", "in the conversation state"):
            assert f"{mark} {words}" not in text
            assert f"{mark} {words}" not in raw
        assert f"{mark} promise" in text, "promises are not free text of the person"
    with transaction(app.sessions) as s:
        assert all(f.answer_text is None for f in s.scalars(select(FollowUp)))
        assert all(o.comment is None and o.verdict for o in s.scalars(select(Outcome)))
        assert all(c.state == {} for c in s.scalars(select(Checkin)))
        assert len(s.scalars(select(Answer).where(Answer.kind == "rating")).all()) == 4


def test_dry_run_deletes_nothing(app: App) -> None:
    before = table_text(app)
    report = run_retention(app.sessions, months=9, now=NOW, dry_run=True)
    assert (report.answers, report.dry_run) == (2, True)
    assert table_text(app) == before


def test_off_by_default_and_keep_ratings_false(app: App) -> None:
    assert run_retention(app.sessions, months=None, now=NOW).answers == 0
    run_retention(app.sessions, months=9, keep_ratings=False, now=NOW)
    early, late = early_and_late(app)
    assert [a.kind for a in early] == ["text", "text"]
    assert all(a.text is None for a in early)
    assert len(late) == 4


async def test_rapport_run_applies_the_rule(make_app: Callable[..., App], config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    retention = config.privacy.retention.model_copy(update={"free_text_months": 9})
    configured = config.model_copy(update={"privacy": config.privacy.model_copy(update={"retention": retention})})
    app = make_app(config_override=configured)
    build_world(app, tmp_path / "digests")
    runner = Runner(app=app, channels={}, serve_web=False, clock=lambda: NOW)
    assert [j.name for j in runner.jobs if j.name == "retention"] == ["retention"]
    await runner.run_until_idle()
    early, late = early_and_late(app)
    assert all(a.text is None for a in early)
    assert all(a.text for a in late if a.kind == "text")


def test_no_job_when_the_rule_is_off(make_app: Callable[..., App]) -> None:
    runner = Runner(app=make_app(), channels={}, serve_web=False)
    assert "retention" not in [j.name for j in runner.jobs]
