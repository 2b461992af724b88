"""What encryption at rest costs per answer (prints JSON).

    python benchmarks/encryption.py [ANSWERS]      # default 400 per round; temporary SQLite file
    RAPPORT_BENCH_DATABASE_URL=postgresql://... python benchmarks/encryption.py   # PostgreSQL too

One answer is what the product does per free-text answer: one transaction that inserts the
answer (its words, about 120 characters, and its 384-float embedding) and stores the check-in's
conversation state; then the read the change detector does, the person's earlier text answers
with their embeddings. The same work runs with no key (plain, the baseline) and with a key, in
alternating rounds on the same database, so both see the same machine load. ``crypto_us`` is the
cipher alone (encrypt and decrypt of one answer's words, embedding and state), without SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from cryptography.fernet import Fernet
from sqlalchemy import select

from memory import crypto, db
from memory.models import Answer, Checkin, Person, Program

NOW = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
WORDS = "Support got slow this quarter: tickets wait for days and nobody answers the phone anymore. {n}"
ROUNDS = 3
MODES = ("plain", "encrypted")


def _setup(sessions: Any) -> tuple[dict[str, int], int]:
    """One person per mode, so each reads back only rows written its own way."""
    with db.transaction(sessions) as s:
        program = Program(name="bench", anonymous=False, k_anonymity=5, created_at=NOW)
        people = {m: Person(key=m, name=m, timezone="UTC", created_at=NOW, updated_at=NOW) for m in MODES}
        s.add_all([program, *people.values()])
        s.flush()
        return {m: p.id for m, p in people.items()}, program.id


def _round(sessions: Any, person_id: int, program_id: int, n: int, start: int) -> tuple[float, float]:
    rng = np.random.default_rng(start)
    write = read = 0.0
    for i in range(start, start + n):
        vector = rng.standard_normal(384).astype(np.float32).tobytes()
        t0 = time.perf_counter()
        with db.transaction(sessions) as s:
            checkin = Checkin(person_id=person_id, program_id=program_id, status="completed", started_at=NOW,
                              updated_at=NOW, state={"step": 1, "text": WORDS.format(n=i)})  # fmt: skip
            s.add(checkin)
            s.flush()
            s.add(Answer(checkin_id=checkin.id, person_id=person_id, program_id=program_id, question="why",
                         kind="text", text=WORDS.format(n=i), embedding=vector, embedding_model="bench",
                         answered_at=NOW))  # fmt: skip
            checkin.state = {"step": 2, "text": WORDS.format(n=i)}
        t1 = time.perf_counter()
        with db.transaction(sessions) as s:
            rows = s.execute(
                select(Answer.text, Answer.embedding)
                .where(Answer.person_id == person_id, Answer.id > 0)
                .order_by(Answer.id.desc())
                .limit(5)
            ).all()
            assert rows[0][0] == WORDS.format(n=i)
        write += t1 - t0
        read += time.perf_counter() - t1
    return write / n * 1e6, read / n * 1e6


def _cipher_us(repeat: int = 2000) -> float:
    ring = crypto.parse(Fernet.generate_key().decode())
    text = WORDS.format(n=1).encode()
    vector = np.zeros(384, np.float32).tobytes()
    state = json.dumps({"step": 2, "text": WORDS.format(n=1)}).encode()
    t0 = time.perf_counter()
    for _ in range(repeat):
        for data in (text, vector, state):
            ring.decrypt(ring.encrypt(data))
    return (time.perf_counter() - t0) / repeat * 1e6


def measure(url: str, n: int) -> dict[str, Any]:
    engine = db.make_engine(url)
    db.migrate(engine)
    sessions = db.make_sessionmaker(engine)
    people, program_id = _setup(sessions)
    key = Fernet.generate_key().decode()
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "encrypted": []}
    start = 0
    for _ in range(ROUNDS):
        for mode in MODES:
            crypto.load({crypto.ENV: key} if mode == "encrypted" else {})
            times[mode].append(_round(sessions, people[mode], program_id, n, start))
            start += n
    crypto.load({crypto.ENV: key})  # every row (plain and encrypted) reads back
    with db.transaction(sessions) as s:
        assert len(s.scalars(select(Answer.text)).all()) == start
    engine.dispose()
    out: dict[str, Any] = {"answers_per_round": n, "rounds": ROUNDS}
    for mode, rows in times.items():
        out[f"{mode}_write_us"] = round(statistics.median(w for w, _ in rows), 1)
        out[f"{mode}_read_us"] = round(statistics.median(r for _, r in rows), 1)
        out[f"{mode}_us_per_answer"] = round(out[f"{mode}_write_us"] + out[f"{mode}_read_us"], 1)
    out["ratio_encrypted_to_plain"] = round(out["encrypted_us_per_answer"] / out["plain_us_per_answer"], 3)
    out["extra_us_per_answer"] = round(out["encrypted_us_per_answer"] - out["plain_us_per_answer"], 1)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 400
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "crypto_us": round(_cipher_us(), 1),
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = measure(f"sqlite:///{Path(tmp) / 'bench.db'}", n)
    pg = os.environ.get("RAPPORT_BENCH_DATABASE_URL")
    if pg:
        result["postgresql"] = measure(pg, n)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
