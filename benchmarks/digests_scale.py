"""All owners' digests at scale, on SQLite and PostgreSQL; print JSON.

    .venv/bin/python benchmarks/digests_scale.py            # smoke: 1,000 people (make bench)
    .venv/bin/python benchmarks/digests_scale.py --full     # 10,000, 30,000 and 100,000 people
    .venv/bin/python benchmarks/digests_scale.py --sizes=100000 --no-baseline
    .venv/bin/python benchmarks/digests_scale.py --sizes=100000 --no-baseline --postgresql-only

Each size: ``people`` people, 100 per owner, six completed check-ins each (a rating and a reason
with a 384-float embedding, as live answers have), every tenth person moving by 4 points in the
last wave with a follow-up. Rows are written with bulk inserts (not timed). Then, timed, all
owners' digests over the last wave's period in one pass (``memory.digests.build_digests``, one
transaction): ``seconds`` of wall time, ``cpu_seconds`` of this process's CPU (PostgreSQL's own
work is in its server processes). The same-run baseline is one ``build_digest`` per owner, each
in its own transaction, as the digest dispatcher sends them (``per_owner_seconds``; skipped with
``--no-baseline``). ``peak_rss_mb`` is the process's peak resident memory after the one pass
(generation writes in chunks of 5,000 rows, so it stays below it). PostgreSQL runs when
``RAPPORT_BENCH_DATABASE_URL`` is set (an empty database or schema it may fill); the figures are
linear in people when ``s_per_10k_people`` stays flat across sizes. On PostgreSQL the pass runs
twice on the same data: first with the server's ``work_mem`` (``server_work_mem_seconds``, the
same-run before), then with ``digests.work_mem`` from config.yaml (``seconds``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build  # noqa: E402
from bot.config import load_config  # noqa: E402
from memory import db  # noqa: E402
from memory.digests import build_digest, build_digests  # noqa: E402
from memory.models import Answer, Checkin, Owner, Person, Program  # noqa: E402
from tests.fakes.embedder import HashingEmbedder  # noqa: E402

T0 = dt.datetime(2023, 1, 2, 9, 0, tzinfo=dt.UTC)
WAVES = 6
PER_OWNER = 100
CHUNK = 5000


def fill(url: str, people: int) -> None:
    app = build(load_config(ROOT / "config.yaml"), embedder=HashingEmbedder(), database_url=url, migrate=True)
    blob = np.random.default_rng(0).standard_normal(384).astype(np.float32).tobytes()
    with app.engine.begin() as conn:
        program = conn.scalar(select(Program.id).where(Program.name == "customers"))
        owners = [
            {"key": f"owner{i}@example.com", "name": f"Owner {i}", "email": None, "created_at": T0}
            for i in range(people // PER_OWNER)
        ]
        conn.execute(insert(Owner), owners)
        owner_ids = list(conn.scalars(select(Owner.id).order_by(Owner.id)))
        for start in range(0, people, CHUNK):
            rows = [
                {
                    "key": f"p{i}",
                    "name": f"Person {i}",
                    "email": f"p{i}@example.com",
                    "timezone": "UTC",
                    "owner_id": owner_ids[i // PER_OWNER],
                    "opted_out_at": None,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for i in range(start, min(people, start + CHUNK))
            ]
            conn.execute(insert(Person), rows)
        person_ids = list(conn.scalars(select(Person.id).order_by(Person.id)))
    for start in range(0, people, CHUNK // WAVES):
        with app.engine.begin() as conn:
            chunk = person_ids[start : start + CHUNK // WAVES]
            checkins = []
            for n, pid in enumerate(chunk, start=start):
                for w in range(WAVES):
                    at = T0 + dt.timedelta(days=182 * w, minutes=n % 600)
                    checkins.append(
                        {
                            "person_id": pid,
                            "program_id": program,
                            "wave_id": None,
                            "status": "completed",
                            "channel": "telegram",
                            "state": {"stage": "done"},
                            "source": "live",
                            "started_at": at,
                            "updated_at": at,
                            "completed_at": at,
                            "expires_at": None,
                            "reminders_sent": 0,
                        }
                    )
            ids = conn.execute(insert(Checkin).returning(Checkin.id, sort_by_parameter_order=True), checkins)
            answers = []
            for (cid,), row in zip(ids, checkins, strict=True):
                n = row["person_id"]
                last = row["started_at"] >= T0 + dt.timedelta(days=182 * (WAVES - 1))
                rating = 4 if last and n % 10 == 0 else 8
                common = {
                    "checkin_id": cid,
                    "person_id": row["person_id"],
                    "program_id": program,
                    "answered_at": row["started_at"],
                    "skipped": False,
                    "edited_at": None,
                    "source_ref": None,
                }
                answers.append(
                    {
                        **common,
                        "question": "recommend",
                        "kind": "rating",
                        "rating": rating,
                        "text": None,
                        "embedding": None,
                        "embedding_model": None,
                    }
                )
                answers.append(
                    {
                        **common,
                        "question": "reason",
                        "kind": "text",
                        "rating": None,
                        "text": f"Support was {'slow' if rating < 8 else 'quick'} this time, person {n}.",
                        "embedding": blob,
                        "embedding_model": "bench",
                    }
                )
            conn.execute(insert(Answer), answers)
    if app.engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load (PostgreSQL 13+ vacuums after inserts too):
        # without statistics the planner guesses badly (1.7 s per owner at 10,000 people instead
        # of 0.1 s), and until a vacuum marks the pages all-visible, an index-only scan still
        # visits every row it finds (the answers' rating index: 200,000 heap reads at 100,000).
        with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    app.close()


def run(url: str, people: int) -> dict[str, object]:
    app = build(load_config(ROOT / "config.yaml"), embedder=HashingEmbedder(), database_url=url, migrate=False)
    since, until = T0 + dt.timedelta(days=182 * (WAVES - 1) - 7), T0 + dt.timedelta(days=182 * (WAVES - 1) + 7)
    with db.transaction(app.sessions) as s:
        owners = list(s.scalars(select(Owner.key).order_by(Owner.id)))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    work_mem = app.config.digests.work_mem
    before: dict[str, object] = {}
    if app.engine.dialect.name == "postgresql":
        # The same-run "before": the same pass with the server's own work_mem (4MB by default).
        started, cpu = time.perf_counter(), time.process_time()
        with db.transaction(app.sessions) as s:
            server = s.scalar(text("SHOW work_mem"))
            server_digests = build_digests(s, since=since, until=until, work_mem=None)
        before = {"server_work_mem": server, "server_work_mem_seconds": round(time.perf_counter() - started, 2),
                  "server_work_mem_cpu_seconds": round(time.process_time() - cpu, 2)}  # fmt: skip
        del server_digests
    # All owners' digests in one pass, in one transaction.
    started, cpu = time.perf_counter(), time.process_time()
    with db.transaction(app.sessions) as s:
        digests = build_digests(s, since=since, until=until, work_mem=work_mem)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    changes = sum(len(d.changes) for d in digests.values())
    del digests
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # The same-run baseline: one digest per owner, each in its own transaction (the dispatcher's way).
    started, base_cpu = time.perf_counter(), time.process_time()
    base_changes = 0
    for owner in owners if "--no-baseline" not in sys.argv else ():
        with db.transaction(app.sessions) as s:
            base_changes += len(build_digest(s, owner=owner, since=since, until=until).changes)
    base_seconds, base_cpu = time.perf_counter() - started, time.process_time() - base_cpu
    app.close()
    return {
        "people": people,
        "owners": len(owners),
        "checkins": people * WAVES,
        "changes": changes,
        "work_mem": work_mem if app.engine.dialect.name == "postgresql" else None,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "s_per_10k_people": round(seconds / people * 10_000, 3),
        "cpu_s_per_10k_people": round(cpu / people * 10_000, 3),
        "peak_rss_mb": round(peak / 1024),
        "rss_before_digests_mb": round(rss_before / 1024),
        "per_owner_seconds": round(base_seconds, 2),
        "per_owner_cpu_seconds": round(base_cpu, 2),
        "per_owner_changes": base_changes,
        "one_pass_vs_per_owner": round(seconds / base_seconds, 3) if base_changes else None,
        **before,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def measure(kind: str, people: int) -> dict[str, object]:
    """Fill and measure in a child process, so each size's peak memory is its own."""
    argv = ["x", *(a for a in sys.argv[1:] if a == "--no-baseline")]
    code = f"import sys; sys.argv={argv!r}; from benchmarks_digests_scale import child; child({kind!r}, {people})"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{Path(__file__).parent}"}
    code = code.replace("benchmarks_digests_scale", "digests_scale")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        return {"people": people, "error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, object] = json.loads(done.stdout)
    return result


def child(kind: str, people: int) -> None:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/scale.db"
            fill(url, people)
            print(json.dumps(run(url, people)))
        return
    url = os.environ["RAPPORT_BENCH_DATABASE_URL"]
    engine = db.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS bench_digests CASCADE"))
        conn.execute(text("CREATE SCHEMA bench_digests"))
    engine.dispose()
    sep = "&" if "?" in url else "?"
    scoped = f"{url}{sep}options=-csearch_path%3Dbench_digests"
    fill(scoped, people)
    print(json.dumps(run(scoped, people)))


if __name__ == "__main__":
    sizes: tuple[int, ...] = (10_000, 30_000, 100_000) if "--full" in sys.argv else (1_000,)
    for arg in sys.argv:
        if arg.startswith("--sizes="):  # e.g. --sizes=10000,100000
            sizes = tuple(int(x) for x in arg.split("=", 1)[1].split(","))
    kinds = ["sqlite"] + (["postgresql"] if os.environ.get("RAPPORT_BENCH_DATABASE_URL") else [])
    if "--postgresql-only" in sys.argv:
        kinds = ["postgresql"]
    out = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": f"{os.cpu_count()} cores",
           "load_average": [round(x, 2) for x in os.getloadavg()], "waves": WAVES, "per_owner": PER_OWNER}  # fmt: skip
    for kind in kinds:
        out[kind] = [measure(kind, n) for n in sizes]
    print(json.dumps(out, indent=2))
