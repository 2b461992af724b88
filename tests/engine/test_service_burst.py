"""Many people answering at once, through ``CheckinService.handle`` from many worker threads (as
``rapport run`` does), on SQLite and PostgreSQL: nothing lost, nothing twice, each person's
messages in order, and concurrent answers sharing encode calls.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select

from bot.engine.ports import Inbound, Outbound
from memory import store
from memory.batching import BatchingEmbedder
from memory.db import transaction
from memory.models import Answer, Checkin, ProcessedEvent
from tests.fakes.embedder import HashingEmbedder
from tests.helpers import T0

PEOPLE = 500  # two answers each (a rating, then the reason): a 1,000-answer burst
WORKERS = 64


class Counted(HashingEmbedder):
    """The hashing embedder, counting calls and texts, slow enough (as the model is) that
    callers pile up behind a running encode."""

    def __init__(self) -> None:
        super().__init__()
        self.texts = self.encodes = 0
        self.lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        with self.lock:
            self.encodes += 1
            self.texts += len(texts)
        threading.Event().wait(0.02)
        return super().encode(texts)


def enrol_and_start(app, people: int) -> None:
    with transaction(app.sessions) as s:
        program = store.program_by_name(s, "customers")
        for i in range(people):
            person, _ = store.upsert_person(s, key=f"p{i}", name=f"P{i}", email=None, timezone="UTC",
                                            owner_key=None, programs=[program], now=T0)  # fmt: skip
            app.service.start_in(s, person=person, program="customers", now=T0, channel="terminal")


def message(i: int, n: int, text: str) -> Inbound:
    return Inbound(channel="terminal", sender=f"p{i}", kind="text", text=text, event_key=f"p{i}-m{n}",
                   received_at=T0 + dt.timedelta(minutes=1 + n))  # fmt: skip


def test_a_thousand_answers_at_once_are_each_saved_once_in_each_persons_order(make_app) -> None:
    app = make_app()
    inner = Counted()
    app.detector.embedder = BatchingEmbedder(inner, max_wait=0.002, max_batch=64)
    enrol_and_start(app, PEOPLE)

    def person(i: int) -> list[list[Outbound]]:
        # One person's messages in order (as a channel's per-chat lock keeps them), each delivered
        # twice (a channel's redelivery): the second copy is a duplicate and gets no reply.
        rating, reason = message(i, 0, "7"), message(i, 1, f"Reason number {i}: support was quick")
        return [app.service.handle(m) for m in (rating, rating, reason, reason)]

    with ThreadPoolExecutor(WORKERS) as pool:
        replies = list(pool.map(person, range(PEOPLE)))

    for first, duplicate, answered, again in replies:
        assert first, "each answer is replied to"
        assert answered, "each answer is replied to"
        assert duplicate == [], "a redelivered event gets no reply"
        assert again == [], "a redelivered event gets no reply"
    with transaction(app.sessions) as s:
        rows = s.execute(select(Answer.person_id, Answer.question, Answer.rating, Answer.text, Answer.id)).all()
        assert s.scalar(select(func.count()).select_from(ProcessedEvent)) == 2 * PEOPLE
        statuses = s.scalars(select(Checkin.status)).all()
    assert len(rows) == 2 * PEOPLE, "no answer lost, none saved twice"
    by_person: dict[int, list[tuple[str, int | None, str | None]]] = {}
    for person_id, question, rating, text, _ in sorted(rows, key=lambda r: r[4]):
        by_person.setdefault(person_id, []).append((question, rating, text))
    assert len(by_person) == PEOPLE
    for answers in by_person.values():
        assert [(q, r) for q, r, _ in answers] == [("recommend", 7), ("reason", None)], "in each person's order"
        assert (answers[1][2] or "").startswith("Reason number")
    assert set(statuses) == {"completed"}
    # Concurrent reasons shared encode calls (one call per answer would be PEOPLE calls).
    assert inner.texts == PEOPLE
    # Each answer is announced to the batcher while it is read, so a batch's leader waits for
    # the answers on their way. On SQLite one writer paces the answers and they pile up at the
    # encoder: about 170 calls for 500. On PostgreSQL the commits (the disk) pace them and they
    # reach the encoder spread out: 250 to 400 calls for 500 on this machine, varying with the
    # disk; the bound there says only that concurrent answers met.
    bound = 0.7 if app.engine.dialect.name == "sqlite" else 0.95
    assert inner.encodes < PEOPLE * bound


def test_a_failing_encode_fails_only_its_own_answer(make_app) -> None:
    """One answer whose encode fails gets the error (the channel retries it); the answers batched
    with it are saved and replied to."""

    class FailsOn(Counted):
        def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
            if any("poison" in t for t in texts):
                raise RuntimeError("the model failed on this text")
            return super().encode(texts)

    app = make_app()
    app.detector.embedder = BatchingEmbedder(FailsOn(), max_wait=0.05, max_batch=64)
    enrol_and_start(app, 20)
    for i in range(20):
        app.service.handle(message(i, 0, "7"))

    def answer(i: int) -> list[Outbound] | BaseException:
        try:
            return app.service.handle(message(i, 1, "poison" if i == 3 else f"Fine answer {i}"))
        except RuntimeError as exc:
            return exc

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(answer, range(20)))
    assert isinstance(results[3], RuntimeError)
    assert all(isinstance(r, list) and r for i, r in enumerate(results) if i != 3)
    with transaction(app.sessions) as s:
        reasons = s.scalar(select(func.count()).select_from(Answer).where(Answer.question == "reason"))
        claimed = s.get(ProcessedEvent, "terminal:p3-m1")
    assert reasons == 19
    assert claimed is None, "the failed answer is not marked processed: its redelivery is answered"
