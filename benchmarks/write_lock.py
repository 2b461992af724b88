"""How long the SQLite write lock is held per answer (prints JSON).

    python benchmarks/write_lock.py [PEOPLE]        # default 20; real model, temporary SQLite file

Each person answers a check-in twice through ``CheckinService.handle`` (the path every channel
uses): the first time builds their history, the second is measured. The second free-text answer
is compared with the first (the model embeds it and the detector assesses it), which is the
heavy step. On SQLite the write lock is taken by the first INSERT/UPDATE/DELETE of a transaction
and released by its COMMIT (or ROLLBACK); the script times exactly that span with SQLAlchemy
engine events, and the wall time of each ``handle`` call beside it.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event

from bot.app import build
from bot.config import parse_config
from bot.engine.ports import Inbound
from memory import store
from memory.db import transaction

QUESTIONS = [
    {"key": "score", "kind": "rating", "text": "How likely are you to recommend us?", "min": 0, "max": 10},
    {"key": "why", "kind": "text", "text": "What is the main reason for your score?"},
]
FIRST = ("8", "Support answers quickly and the people there are kind and helpful.")
SECOND = ("3", "Support got slow: tickets wait for days and nobody answers anymore.")


class LockTimer:
    """Times first write -> commit/rollback per transaction on one engine."""

    def __init__(self, engine: Any) -> None:
        self.spans: list[float] = []
        self._start: dict[int, float] = {}
        event.listen(engine, "before_cursor_execute", self._execute)
        event.listen(engine, "commit", self._end)
        event.listen(engine, "rollback", self._end)

    def _execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb in ("INSERT", "UPDATE", "DELETE") and id(conn) not in self._start:
            self._start[id(conn)] = time.perf_counter()

    def _end(self, conn: Any) -> None:
        started = self._start.pop(id(conn), None)
        if started is not None:
            self.spans.append(time.perf_counter() - started)


def stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def main() -> None:
    people = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    program = {"title": "pulse", "questions": QUESTIONS, "channels": ["terminal"], "cadence": {"every": "6 months"}}
    config = parse_config({"programs": {"pulse": program}})
    folder = tempfile.mkdtemp(prefix="rapport-lock-")
    app = build(config, database_url=f"sqlite:///{folder}/bench.db", migrate=True)
    now = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)
    with transaction(app.sessions) as s:
        program = store.program_by_name(s, "pulse")
        for i in range(people):
            store.upsert_person(s, key=f"p{i}", name=f"P{i}", email=None, timezone="UTC", owner_key=None,
                                programs=[program], now=now)  # fmt: skip
    app.detector.embedder.encode(["warm up the model"])
    timer = LockTimer(app.engine)
    measured: dict[str, list[float]] = {"rating": [], "text": []}
    walls: dict[str, list[float]] = {"rating": [], "text": []}
    n = 0
    for round_, answers in enumerate((FIRST, SECOND)):
        when = now + dt.timedelta(days=180 * round_)
        for i in range(people):
            app.service.start(person_ref=f"p{i}", program="pulse", now=when, channel="terminal")
            for kind, text in zip(("rating", "text"), answers, strict=True):
                n += 1
                inbound = Inbound(channel="terminal", sender=f"p{i}", kind="text", text=text,
                                  received_at=when + dt.timedelta(seconds=n), event_key=f"e{n}")  # fmt: skip
                before = len(timer.spans)
                t0 = time.perf_counter()
                app.service.handle(inbound)
                wall = time.perf_counter() - t0
                if round_ == 1:
                    measured[kind].append(sum(timer.spans[before:]))
                    walls[kind].append(wall)
            # Follow-ups, if asked, are answered so the check-in completes.
            n += 1
            app.service.handle(Inbound(channel="terminal", sender=f"p{i}", kind="text", text="It just changed.",
                                       received_at=when + dt.timedelta(seconds=n), event_key=f"e{n}"))  # fmt: skip
    app.close()
    print(json.dumps({
        "benchmark": "write_lock",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.system()}".strip(),
        "people": people,
        "write_lock_held_per_text_answer": stats(measured["text"]),
        "write_lock_held_per_rating_answer": stats(measured["rating"]),
        "wall_per_text_answer": stats(walls["text"]),
        "wall_per_rating_answer": stats(walls["rating"]),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
