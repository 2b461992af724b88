"""Scheduler benchmark: planning and dispatching a 5,000-person staggered program (prints JSON).

    python benchmarks/scheduler.py [DATABASE_URL]      # default: a temporary SQLite file

Measures the first tick (anchors for everyone), a steady tick, a catch-up tick after 27 days of
downtime, and dispatch throughput through the real check-in opening with a recording channel
(no network). The spread of slots is reported too: invitations per day over the period.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import select

from bot.app import build
from bot.delivery import Delivery
from bot.runner import schedules_from_config
from memory.db import transaction
from memory.models import Enrollment
from scheduler.dispatch import Dispatcher, DispatchSettings
from scheduler.planner import Planner
from tests.fakes.channel import RecordingChannel
from tests.fakes.embedder import HashingEmbedder
from tests.scheduler.conftest import add_people, make_config

PEOPLE = 5000


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    config = make_config(
        cadence={"every": "6 months", "open_for_days": 14, "reminders": 2},
        window={"start": "00:00", "end": "23:59", "days": every_day},
    )
    app = build(config, embedder=HashingEmbedder(), database_url=url, migrate=True)
    schedules = schedules_from_config(config)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    out: dict[str, object] = {"people": PEOPLE, "backend": app.engine.dialect.name}
    add_people(app, PEOPLE, now=t0)
    planner = Planner(sessions=app.sessions, programs=schedules, expire=app.service.expire)

    def timed(name: str, when: dt.datetime) -> None:
        start = time.perf_counter()
        report = planner.tick(when)
        out[name] = {"seconds": round(time.perf_counter() - start, 3), "invitations": report.invitations}

    timed("first_tick", t0 + dt.timedelta(days=3))
    timed("steady_tick", t0 + dt.timedelta(days=3, minutes=1))
    timed("catch_up_tick_after_27_days", t0 + dt.timedelta(days=30))
    with transaction(app.sessions) as s:
        anchors = Counter(a.date() for a in s.scalars(select(Enrollment.anchor_at)) if a is not None)
    out["slots_per_day"] = {"days": len(anchors), "max": max(anchors.values()), "mean": round(PEOPLE / 181, 1)}

    now = t0 + dt.timedelta(days=30)
    channel = RecordingChannel()
    dispatcher = Dispatcher(
        sessions=app.sessions, worker_id="bench", programs=schedules, settings=DispatchSettings(),
        handlers=Delivery(app=app, channels={"telegram": channel}, clock=lambda: now).handlers(), clock=lambda: now,
    )  # fmt: skip

    async def drain() -> None:
        while (await dispatcher.dispatch_once()).handled:
            pass

    start = time.perf_counter()
    asyncio.run(drain())
    seconds = time.perf_counter() - start
    out["dispatch"] = {"sent": len(channel.sent), "seconds": round(seconds, 2),
                       "per_second": round(len(channel.sent) / seconds, 1)}  # fmt: skip
    app.close()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
