"""What encryption at rest costs per answer (prints JSON).

    python benchmarks/encryption.py [PEOPLE]       # default 200 per round; temporary SQLite file
    RAPPORT_BENCH_DATABASE_URL=postgresql://... python benchmarks/encryption.py   # PostgreSQL too

One answer is what the product does per free-text answer: one transaction that inserts the
answer (its words, about 100 characters, and its 384-float embedding) and stores the check-in's
conversation state; then the read the change detector does, the person's answers to the question
(four earlier ones and the new one) with their embeddings. The same work runs with no key
(plain, the baseline) and with a key, in alternating rounds on the same database, so both see
the same machine load. ``crypto_us`` is the
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
from sqlalchemy import select, text

from memory import crypto, db
from memory.models import Answer, Checkin, Person, Program

NOW = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
WORDS = "Support got slow this quarter: tickets wait for days and nobody answers the phone anymore. {n}"
ROUNDS = 3
MODES = ("plain", "encrypted")
HISTORY = 4  # earlier answers per person, read back with each new one


def _people(sessions: Any, program_id: int, n: int, first: int) -> list[int]:
    """``n`` new people, each with HISTORY earlier answers (written the current way, untimed)."""
    rng = np.random.default_rng(first)
    with db.transaction(sessions) as s:
        people = [Person(key=f"p{first + i}", timezone="UTC", created_at=NOW, updated_at=NOW) for i in range(n)]
        s.add_all(people)
        s.flush()
        for person in people:
            for w in range(HISTORY):
                when = NOW + dt.timedelta(days=91 * w)
                checkin = Checkin(person_id=person.id, program_id=program_id, status="completed", started_at=when,
                                  updated_at=when, state={})  # fmt: skip
                s.add(checkin)
                s.flush()
                s.add(Answer(checkin_id=checkin.id, person_id=person.id, program_id=program_id, question="why",
                             kind="text", text=WORDS.format(n=w), answered_at=when, embedding_model="bench",
                             embedding=rng.standard_normal(384).astype(np.float32).tobytes()))  # fmt: skip
        return [p.id for p in people]


def _round(sessions: Any, program_id: int, people: list[int]) -> tuple[float, float]:
    """Per person: the answer's write transaction, then the read of their answers (timed)."""
    rng = np.random.default_rng(people[0])
    when = NOW + dt.timedelta(days=91 * HISTORY)
    write = read = 0.0
    for pid in people:
        vector = rng.standard_normal(384).astype(np.float32).tobytes()
        t0 = time.perf_counter()
        with db.transaction(sessions) as s:
            checkin = Checkin(person_id=pid, program_id=program_id, status="in_progress", started_at=when,
                              updated_at=when, state={"step": 1})  # fmt: skip
            s.add(checkin)
            s.flush()
            s.add(Answer(checkin_id=checkin.id, person_id=pid, program_id=program_id, question="why",
                         kind="text", text=WORDS.format(n=pid), embedding=vector, embedding_model="bench",
                         answered_at=when))  # fmt: skip
            checkin.state = {"step": 2, "text": WORDS.format(n=pid)}
            checkin.status = "completed"
        t1 = time.perf_counter()
        with db.transaction(sessions) as s:
            answers = s.scalars(
                select(Answer).where(Answer.person_id == pid, Answer.program_id == program_id, Answer.question == "why")
                .order_by(Answer.answered_at, Answer.id)
            ).all()  # fmt: skip
            assert len(answers) == HISTORY + 1
            assert answers[-1].text == WORDS.format(n=pid)
            assert all(a.embedding is not None and len(a.embedding) == 384 * 4 for a in answers)
        write += t1 - t0
        read += time.perf_counter() - t1
    return write / len(people) * 1e6, read / len(people) * 1e6


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
    with db.transaction(sessions) as s:
        program = Program(name="bench", anonymous=False, k_anonymity=5, created_at=NOW)
        s.add(program)
        s.flush()
        program_id = program.id
    key = Fernet.generate_key().decode()
    times: dict[str, list[tuple[float, float]]] = {"plain": [], "encrypted": []}
    first = 0
    for _ in range(ROUNDS):
        for mode in MODES:
            crypto.load({crypto.ENV: key} if mode == "encrypted" else {})
            people = _people(sessions, program_id, n, first)
            first += n
            times[mode].append(_round(sessions, program_id, people))
    crypto.load({crypto.ENV: key})  # every row (plain and encrypted) reads back
    with db.transaction(sessions) as s:
        assert len(s.scalars(select(Answer.text)).all()) == first * (HISTORY + 1)
    engine.dispose()
    out: dict[str, Any] = {"answers_per_round": n, "rounds": ROUNDS, "earlier_answers_read": HISTORY}
    for mode, rows in times.items():
        out[f"{mode}_write_us"] = round(statistics.median(w for w, _ in rows), 1)
        out[f"{mode}_read_us"] = round(statistics.median(r for _, r in rows), 1)
        out[f"{mode}_us_per_answer"] = round(out[f"{mode}_write_us"] + out[f"{mode}_read_us"], 1)
    out["ratio_encrypted_to_plain"] = round(out["encrypted_us_per_answer"] / out["plain_us_per_answer"], 3)
    out["extra_us_per_answer"] = round(out["encrypted_us_per_answer"] - out["plain_us_per_answer"], 1)
    return out


def measure_postgresql(url: str, n: int) -> dict[str, Any]:
    """In a schema of its own, dropped afterwards."""
    admin = db.make_engine(url)
    with admin.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS bench_encryption CASCADE"))
        conn.execute(text("CREATE SCHEMA bench_encryption"))
    try:
        sep = "&" if "?" in url else "?"
        return measure(f"{url}{sep}options=-csearch_path%3Dbench_encryption", n)
    finally:
        with admin.begin() as conn:
            conn.execute(text("DROP SCHEMA bench_encryption CASCADE"))
        admin.dispose()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 200
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
        result["postgresql"] = measure_postgresql(pg, n)
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
