"""Replies and bursts: how long a person waits for the reply to a free-text answer, and how many
answers per second Rapport takes when many people answer at once (prints JSON).

    python benchmarks/burst.py                       # smoke size (CI): both backends, tiny
    python benchmarks/burst.py --full                # 500 replies, 1,000-answer bursts
    python benchmarks/burst.py --full --backend onnx-int8 --no-telegram

Per backend (``torch``, ``onnx-int8``), on a temporary SQLite file, with the real model:

* ``encode_one``: p50/p99 of one-sentence ``encode`` calls of the backend (the baseline of a reply);
* ``reply``: p50/p99 of ``CheckinService.handle`` for a free-text answer, sent from the person's
  linked Telegram chat, that the detector compares with the person's earlier answer (rating
  8 -> 3, so the reply is the follow-up question): from the inbound answer to the replies handed
  back to the channel, one person at a time, in a database of ``--people`` people; and its ratio
  to ``encode_one``;
* ``encode_in_replies``: the model's own call within those replies (one per reply: the answer and,
  to compare them, the clauses of the two answers), its texts and p50/p99: the rest of a reply
  is the engine's reads, writes and rules;
* ``raw_batch``: the same backend encoding the burst's answers, length-sorted, in batches of
  ``embeddings.batch_size`` (the raw batch throughput, sentences/s: the burst's baseline);
* ``engine_burst``: ``--burst`` people's answers handed to ``handle`` at once from
  ``conversation.concurrent_answers`` threads (as ``rapport run`` does), answers/s, the texts
  per encode call, and the ratio to ``raw_batch``; and from the process's CPU seconds (which the
  load of the machine changes far less than the wall time): the CPU one answer costs end to end
  against one sentence of the raw batch, and the ceiling those give, the most answers per second
  the engine could take with every core doing nothing else, as a ratio to ``raw_batch``;
* ``telegram_burst``: the same through the real Telegram channel polling
  ``tests/fakes/telegram_api.py``, which holds ``--burst`` updates (one per person) when polling
  starts; answers/s until every reply was sent. Telegram's own 30 messages/s limit on replies is
  lifted here (the fake does not enforce it): this measures Rapport, not Telegram's pacing.

Each answered burst is checked: every answer saved once, none lost.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bot.app import App, build
from bot.channels.base import use_engine_threads
from bot.config import Config, parse_config
from bot.engine.ports import Inbound
from memory import store
from memory.batching import BatchingEmbedder
from memory.db import transaction
from memory.embeddings import Embedder
from memory.models import Answer, FollowUp

QUESTIONS = [
    {"key": "score", "kind": "rating", "text": "How likely are you to recommend us?", "min": 0, "max": 10},
    {"key": "why", "kind": "text", "text": "What is the main reason for your score?"},
]
FIRST = "Support answers quickly and the people there are kind and helpful."
SECOND = [
    "Support got slow: tickets wait for days and nobody answers anymore.",
    "The new pricing is confusing and the invoices keep changing.",
    "Onboarding was rushed and the documentation is out of date.",
    "The app crashes every morning since the last release.",
    "Nobody called back after the outage, which was disappointing.",
    "Too expensive for what we get now that reports are gone.",
    "The account manager left and we have not heard from anyone since.",
    "Releases break our integrations every few weeks.",
]
T0 = dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=180)


class Counting:
    """Counts the inner embedder's calls and texts (how well the burst shares encode calls)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls = 0
        self.texts = 0
        self.seconds: list[float] = []  # of each call
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def load(self) -> object:
        load = getattr(self.inner, "load", None)
        return load() if callable(load) else None

    def encode(self, texts: Sequence[str]) -> Any:
        with self._lock:
            self.calls += 1
            self.texts += len(texts)
        t0 = time.perf_counter()
        try:
            return self.inner.encode(texts)
        finally:
            self.seconds.append(time.perf_counter() - t0)


class Cached:
    """Seeding only: every person's first answer is the same text, encoded once."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def encode(self, texts: Sequence[str]) -> Any:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
            if missing:
                self.cache.update(zip(missing, self.inner.encode(missing), strict=True))
            return np.vstack([self.cache[t] for t in texts])


def percentiles(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 2),
        "max_ms": round(ms[-1], 2),
    }


def cpu_ceiling(cpu_per_answer: float, cpu_per_sentence: float, raw_per_s: float) -> dict[str, float]:
    """What the process's CPU seconds say about the burst, whatever the load: the CPU one answer
    costs end to end against one sentence of the raw batch, and the most answers per second the
    engine could take if every core it may run on did nothing else (its ceiling), as a ratio to
    the raw batch rate measured in the same run."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    ceiling = cores / cpu_per_answer
    return {
        "cpu_ms_per_answer": round(cpu_per_answer * 1000, 2),
        "raw_cpu_ms_per_sentence": round(cpu_per_sentence * 1000, 2),
        "ceiling_answers_per_s": round(ceiling, 1),
        "ceiling_ratio_to_raw_batch": round(ceiling / raw_per_s, 2),
    }


def config_for(backend: str) -> Config:
    program = {"title": "pulse", "questions": QUESTIONS, "channels": ["terminal", "telegram"],
               "cadence": {"every": "6 months"}}  # fmt: skip
    return parse_config({"programs": {"pulse": program}, "embeddings": {"backend": backend}})


def terminal(key: str, text: str, n: int, when: dt.datetime) -> Inbound:
    return Inbound(channel="terminal", sender=key, kind="text", text=text, event_key=f"t{n}",
                   received_at=when + dt.timedelta(seconds=n % 3600))  # fmt: skip


def from_chat(chat_id: int, text: str, n: int, when: dt.datetime) -> Inbound:
    """A text message as the Telegram channel hands it to the engine (a linked chat)."""
    return Inbound(channel="telegram", sender=str(chat_id), kind="text", text=text, event_key=f"u{n}",
                   received_at=when + dt.timedelta(seconds=n % 3600))  # fmt: skip


def seed(app: App, keys: list[str], chat_ids: dict[str, int]) -> None:
    """Everyone: a first check-in (8, FIRST), then a second one opened and rated 3."""
    with transaction(app.sessions) as s:
        program = store.program_by_name(s, "pulse")
        for key in keys:
            person, _ = store.upsert_person(s, key=key, name=key, email=None, timezone="UTC", owner_key=None,
                                            programs=[program], now=T0)  # fmt: skip
            if key in chat_ids:
                store.link_identity(s, person=person, channel="telegram", external_id=str(chat_ids[key]), now=T0)

    def one(i_key: tuple[int, str]) -> None:
        i, key = i_key
        for round_, (rating, text) in enumerate(((8, FIRST), (3, None))):
            when = T0 if round_ == 0 else T1
            app.service.start(person_ref=key, program="pulse", now=when, channel="terminal")
            app.service.handle(terminal(key, str(rating), 10 * i + 2 * round_, when))
            if text is not None:
                app.service.handle(terminal(key, text, 10 * i + 2 * round_ + 1, when))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, enumerate(keys)))


def text_answers(app: App) -> tuple[int, int]:
    """(text answers of the second wave, distinct persons among them)."""
    with app.sessions() as s:
        rows = s.execute(select(Answer.person_id).where(Answer.question == "why", Answer.answered_at >= T1)).all()
        return len(rows), len({r[0] for r in rows})


def followups(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(FollowUp)) or 0


def measure_backend(
    backend: str, *, people: int, replies: int, burst: int, telegram: bool, workers: int | None
) -> dict[str, Any]:
    config = config_for(backend)
    workers = workers or config.conversation.concurrent_answers
    folder = tempfile.mkdtemp(prefix="rapport-burst-")
    url = f"sqlite:///{folder}/bench.db"
    real = build(config, database_url=url, migrate=True)
    assert isinstance(real.embedder, BatchingEmbedder)
    inner = real.embedder.inner
    counting = Counting(inner)
    real.embedder.inner = counting
    t0 = time.perf_counter()
    real.embedder.load()
    load_s = time.perf_counter() - t0

    reply_keys = [f"r{i}" for i in range(people)]
    burst_keys = [f"b{i}" for i in range(burst)]
    tele_keys = [f"g{i}" for i in range(burst)] if telegram else []
    # Everyone answers from a linked Telegram chat, as people do (the engine finds the chat's
    # person); only the polling burst goes through the channel itself.
    chat_ids = {key: 10_000 + i for i, key in enumerate(reply_keys + burst_keys + tele_keys)}
    seeding = build(config, database_url=url, migrate=False, embedder=Cached(inner))
    t0 = time.perf_counter()
    seed(seeding, reply_keys + burst_keys + tele_keys, chat_ids)
    seed_s = time.perf_counter() - t0
    seeding.close()
    gc.collect()
    gc.freeze()  # as `rapport run` does once it has started

    # Baseline of a reply: one-sentence encodes of the backend itself, half before and half after
    # the replies (the machine's load drifts).
    sentences = [SECOND[i % len(SECOND)] for i in range(max(50, min(replies, 200)))]
    inner.encode(["warm up"])
    one: list[float] = []

    def encode_one(texts: list[str]) -> None:
        for text in texts:
            t0 = time.perf_counter()
            inner.encode([text])
            one.append(time.perf_counter() - t0)

    encode_one(sentences[::2])
    counting.calls = counting.texts = 0
    counting.seconds.clear()
    walls = []
    for i, key in enumerate(reply_keys[:replies]):
        inbound = from_chat(chat_ids[key], SECOND[i % len(SECOND)], 1_000_000 + i, T1)
        t0 = time.perf_counter()
        out = real.service.handle(inbound)
        walls.append(time.perf_counter() - t0)
        assert out, "every answer gets a reply"
    in_replies = {"calls": counting.calls, "texts_per_call": round(counting.texts / max(1, counting.calls), 1),
                  **percentiles(counting.seconds)}  # fmt: skip
    encode_one(sentences[1::2])
    reply = percentiles(walls)
    one_stats = percentiles(one)

    # Raw batch throughput of the backend on the burst's answers, before and after the burst.
    texts = sorted((SECOND[i % len(SECOND)] + f" ({i})" for i in range(burst)), key=len)
    size = config.embeddings.batch_size

    raw_cpu: list[float] = []

    def raw_seconds() -> float:
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, len(texts), size):
            inner.encode(texts[start : start + size])
        raw_cpu.append(time.process_time() - c0)
        return time.perf_counter() - t0

    inner.encode(texts[:size])  # warm up: torch prepares its kernels for each new shape
    raw_before = raw_seconds()

    # The engine burst: everyone's answer at once, from the worker threads rapport run uses.
    inbounds = [from_chat(chat_ids[key], SECOND[i % len(SECOND)] + f" ({i})", 2_000_000 + i, T1)
                for i, key in enumerate(burst_keys)]  # fmt: skip
    before = text_answers(real)[0]
    counting.calls = counting.texts = 0
    with ThreadPoolExecutor(workers) as pool:
        t0, c0 = time.perf_counter(), time.process_time()
        outs = list(pool.map(real.service.handle, inbounds))
        engine_s, engine_cpu = time.perf_counter() - t0, time.process_time() - c0
    raw_per_s = 2 * len(texts) / (raw_before + raw_seconds())
    saved, distinct = text_answers(real)
    assert saved - before == burst, "every answer saved once"
    assert distinct == len(reply_keys[:replies]) + burst, "one answer per person"
    assert all(outs), "every answer replied to"
    engine = {
        "answers": burst, "seconds": round(engine_s, 2), "answers_per_s": round(burst / engine_s, 1),
        "ratio_to_raw_batch": round(burst / engine_s / raw_per_s, 2),
        "encode_calls": counting.calls, "texts_encoded": counting.texts,
        "texts_per_call": round(counting.texts / max(1, counting.calls), 1),
        **cpu_ceiling(engine_cpu / burst, sum(raw_cpu) / (2 * len(texts)), raw_per_s),
    }  # fmt: skip

    result: dict[str, Any] = {
        "backend": backend, "load_s": round(load_s, 1), "seed_s": round(seed_s, 1), "people": len(reply_keys),
        "encode_one": one_stats, "reply": reply, "encode_in_replies": in_replies,
        "reply_p50_over_encode_p50": round(reply["p50_ms"] / one_stats["p50_ms"], 2),
        "reply_p99_over_encode_p99": round(reply["p99_ms"] / one_stats["p99_ms"], 2),
        "raw_batch_sentences_per_s": round(raw_per_s, 1), "workers": workers, "engine_burst": engine,
    }  # fmt: skip
    if telegram:
        result["telegram_burst"] = asyncio.run(telegram_burst(real, tele_keys, chat_ids, workers, raw_per_s))
    real.close()
    return result


async def telegram_burst(app: App, keys: list[str], chat_ids: dict[str, int], workers: int, raw: float) -> dict:
    from bot.channels.telegram import TelegramChannel, TelegramSettings
    from tests.channels.telegram_kit import text_update
    from tests.fakes.telegram_api import FakeTelegramAPI

    use_engine_threads(asyncio.get_running_loop(), workers)
    async with FakeTelegramAPI() as api:
        for i, key in enumerate(keys):
            api.push_update(text_update(SECOND[i % len(SECOND)] + f" [{i}]", chat_id=chat_ids[key]))
        settings = TelegramSettings(token=api.token, invite_key=b"k" * 32, mode="polling", api_base_url=api.base_url,
                                    poll_timeout=1.0, per_chat_rate=0, overall_rate=1e6)  # fmt: skip
        channel = TelegramChannel(settings=settings, service=app.service, clock=lambda: T1)
        before = text_answers(app)[0]
        t0 = time.perf_counter()
        await channel.start()
        try:
            await api.wait_until(lambda: len(api.calls_to("sendMessage")) >= len(keys), timeout=3600)
            seconds = time.perf_counter() - t0
        finally:
            await channel.stop()
    saved = text_answers(app)[0] - before
    assert saved == len(keys), f"{saved} of {len(keys)} answers saved"
    return {"answers": len(keys), "seconds": round(seconds, 2), "answers_per_s": round(len(keys) / seconds, 1),
            "ratio_to_raw_batch": round(len(keys) / seconds / raw, 2),
            "replies_sent": len(api.calls_to("sendMessage"))}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="500 people, 1,000-answer bursts")
    parser.add_argument("--backend", choices=["torch", "onnx-int8", "both"], default="both")
    parser.add_argument("--replies", type=int, help="replies measured (default: every person)")
    parser.add_argument("--no-telegram", action="store_true", help="skip the burst through Telegram polling")
    parser.add_argument("--people", type=int, help="people answering one at a time (default 500 --full, 20)")
    parser.add_argument("--burst", type=int, help="people answering at once (default 1,000 --full, 40)")
    parser.add_argument("--workers", type=int, help="overrides conversation.concurrent_answers")
    args = parser.parse_args()
    people, burst = (500, 1000) if args.full else (20, 40)
    people, burst = args.people or people, args.burst or burst
    replies = min(people, args.replies or people)
    backends = ["onnx-int8", "torch"] if args.backend == "both" else [args.backend]
    out = {
        "benchmark": "burst", "date": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.system()}, {os.cpu_count()} cpus",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "results": [measure_backend(b, people=people, replies=replies, burst=burst, telegram=not args.no_telegram,
                                    workers=args.workers) for b in backends],
        "load_average_after": [round(x, 1) for x in os.getloadavg()],
    }  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
