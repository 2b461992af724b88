"""File digests as an owner finds them in the folder: named by owner and date, and no
"No changes." files unless the owner asked for them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import Config
from bot.digests import DigestDelivery, digest_file_stem
from memory import db
from memory.models import OutboxMessage
from scheduler.digests import DigestSchedule, plan_digests
from scheduler.dispatch import SkipMessage
from tests.history_builder import T0, History

MONDAY_9 = dt.datetime(2025, 9, 1, 9, 0, tzinfo=dt.UTC)


def _with(config: Config, **digests: object) -> Config:
    data = config.model_dump()
    data["digests"] = {**data["digests"], **digests}
    return Config.model_validate(data)


def _row(app) -> OutboxMessage:
    with db.transaction(app.sessions) as s:
        (row,) = plan_digests(s, schedule=DigestSchedule(channel="file"), now=MONDAY_9)
        s.flush()
        s.expunge(row)
        return row


def _people(app, *, changed: bool) -> None:
    with db.transaction(app.sessions) as s:
        h = History(s)
        dana = h.person("dana", owner="lead@example.com", name="Dana")
        h.checkin(dana, "customers", T0, rating=9, text="Support answers within the hour.")
        if changed:
            h.checkin(dana, "customers", MONDAY_9 - dt.timedelta(days=3), rating=3, text="Support is slow now.")


async def test_digest_files_are_named_by_owner_and_date(make_app, tmp_path: Path) -> None:
    app = make_app()
    _people(app, changed=True)
    config = _with(app.config, directory=str(tmp_path / "digests"))
    ref = await DigestDelivery(sessions=app.sessions, config=config)(_row(app))
    assert ref is not None
    assert Path(ref).name == "digest-lead@example.com-2025-09-01-0800.md"
    assert sorted(p.name for p in (tmp_path / "digests").iterdir()) == [
        "digest-lead@example.com-2025-09-01-0800.html",
        "digest-lead@example.com-2025-09-01-0800.md",
    ]


def test_an_odd_owner_key_cannot_leave_the_digest_folder() -> None:
    when = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    assert digest_file_stem("../../etc/passwd", when) == "digest-etc-passwd-2026-11-30-0800"
    assert digest_file_stem("Ana María", when, "Europe/Berlin") == "digest-Ana-Mar-a-2026-11-30-0900"
    assert digest_file_stem("///", when) == "digest-owner-2026-11-30-0800"


async def test_an_empty_digest_is_skipped_and_writes_nothing(make_app, tmp_path: Path) -> None:
    app = make_app()
    _people(app, changed=False)
    config = _with(app.config, directory=str(tmp_path / "digests"))
    with pytest.raises(SkipMessage, match="nothing to report"):
        await DigestDelivery(sessions=app.sessions, config=config)(_row(app))
    assert not (tmp_path / "digests").exists()


async def test_an_owner_who_asked_for_empty_digests_gets_them(make_app, tmp_path: Path) -> None:
    app = make_app()
    _people(app, changed=False)
    config = _with(
        app.config,
        directory=str(tmp_path),
        schedules=[{"owner": "lead@example.com", "cron": "0 8 * * mon", "send_empty": True}],
    )
    ref = await DigestDelivery(sessions=app.sessions, config=config)(_row(app))
    assert ref is not None
    assert "No changes" in Path(ref).read_text()
    everyone = _with(app.config, directory=str(tmp_path / "all"), send_empty=True)
    with db.transaction(app.sessions) as s:
        row = s.scalar(select(OutboxMessage))
        assert row is not None
        s.expunge(row)
    assert await DigestDelivery(sessions=app.sessions, config=everyone)(row) is not None
