"""Micro-batching: concurrent ``encode`` calls from worker threads share one call of the model.

A batch costs far less per sentence than single sentences, so a burst of answers goes through
near the batch rate, while one person answering alone is encoded at once.

Who is coming: the engine says, around the part of handling an answer that may encode
(:meth:`BatchingEmbedder.expect`), that a caller is on its way. A batch's leader then waits
(at most ``max_wait``) only while such callers have not arrived yet, and goes as soon as they all
have: a reply never waits for company that is not coming, and a burst fills its batches. Callers
that never said so (an import, ``compare``) fall back on timing: the leader waits only if another
caller arrived lately.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from memory.embeddings import DIM, Embedder, preload

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(eq=False)
class _Request:
    texts: list[str]
    vectors: NDArray[np.float32] | None = None
    error: BaseException | None = None
    taken: bool = False
    done: bool = False
    # Set when the request is done, or when its caller is to lead the next batch.
    wake: threading.Event = field(default_factory=threading.Event)


#: Without announced callers, a leader waits for others to join its batch only if another caller
#: arrived within this many ``max_wait`` periods before it (people are answering together).
COMPANY_WINDOW = 10


class BatchingEmbedder:
    """Concurrent ``encode`` calls from worker threads share one call of the inner embedder.

    The first waiting caller leads: it waits at most ``max_wait`` seconds for others to join (see
    the module's docstring for who it waits for), or until ``max_batch`` texts are waiting,
    encodes them together and hands each caller its rows. Callers arriving while an encode runs
    form the next batch, led by the oldest of them. Each caller sleeps on its own event (no
    thundering herd of waiting threads).

    A batch whose encode fails is encoded again request by request, so one bad request fails
    alone and the others get their rows.
    """

    def __init__(self, inner: Embedder, *, max_wait: float = 0.002, max_batch: int = 64) -> None:
        self.inner = inner
        self._max_wait = max_wait
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._full = threading.Condition(self._lock)
        self._pending: deque[_Request] = deque()
        self._pending_texts = 0
        self._leading = False
        self._last_arrival = self._previous_arrival = -float("inf")
        # Announced callers (``expect``) still on their way to ``encode``, and all announced ones.
        self._coming = 0
        self._announced = 0
        self._local = threading.local()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def load(self) -> object:
        """Load the inner model now (at start-up), if it loads lazily."""
        return preload(self.inner)

    @contextlib.contextmanager
    def expect(self) -> Iterator[None]:
        """This thread may call ``encode`` before the block ends: a leader may wait for it."""
        if getattr(self._local, "coming", False):
            yield  # already announced (nested)
            return
        with self._lock:
            self._coming += 1
            self._announced += 1
        self._local.coming = True
        try:
            yield
        finally:
            with self._lock:
                self._announced -= 1
                if self._local.coming:
                    self._arrived()

    def _arrived(self) -> None:
        """An announced caller reached ``encode`` or left without it (under the lock)."""
        self._local.coming = False
        self._coming -= 1
        if self._coming == 0:
            self._full.notify()

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        request = _Request(list(texts))
        with self._lock:
            self._previous_arrival, self._last_arrival = self._last_arrival, time.monotonic()
            self._pending.append(request)
            self._pending_texts += len(request.texts)
            if getattr(self._local, "coming", False):
                self._arrived()
            if self._pending_texts >= self._max_batch:
                self._full.notify()
        while True:
            with self._lock:
                request.wake.clear()
                if request.done:
                    break
                lead = not self._leading and not request.taken
                if lead:
                    self._leading = True
            if lead:
                self._lead()
            else:
                request.wake.wait()
        return self._result(request)

    def _company(self, now: float) -> bool:
        """Whether a leader should wait for others to join (under the lock)."""
        if self._announced:
            return self._coming > 0
        # Nobody announces: one caller alone (no other arrived lately) is encoded at once.
        return len(self._pending) > 1 or now - self._previous_arrival <= self._max_wait * COMPANY_WINDOW

    def _lead(self) -> None:
        with self._lock:
            deadline = time.monotonic() + self._max_wait
            while self._pending_texts < self._max_batch and self._company(time.monotonic()):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._full.wait(left)
            batch = self._take()
        try:
            self._run(batch)
        finally:
            with self._lock:
                self._leading = False
                for r in batch:
                    r.wake.set()
                # The oldest caller still waiting leads the next batch.
                if self._pending:
                    self._pending[0].wake.set()

    def _take(self) -> list[_Request]:
        """Whole requests, oldest first, up to ``max_batch`` texts (at least one request)."""
        batch: list[_Request] = []
        size = 0
        while self._pending and (not batch or size + len(self._pending[0].texts) <= self._max_batch):
            request = self._pending.popleft()
            size += len(request.texts)
            request.taken = True
            batch.append(request)
        self._pending_texts -= size
        return batch

    def _run(self, batch: list[_Request]) -> None:
        try:
            vectors = self.inner.encode([t for r in batch for t in r.texts])
        except BaseException as exc:
            if len(batch) == 1:
                batch[0].error, batch[0].done = exc, True
                return
            # One request may be what failed: each alone, so the others still get their rows.
            for r in batch:
                self._run([r])
            return
        start = 0
        for r in batch:
            r.vectors, r.done = vectors[start : start + len(r.texts)], True
            start += len(r.texts)

    @staticmethod
    def _result(request: _Request) -> NDArray[np.float32]:
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors


def expecting(embedder: Embedder) -> contextlib.AbstractContextManager[None]:
    """``embedder.expect()`` where the embedder batches; nothing otherwise."""
    expect = getattr(embedder, "expect", None)
    return expect() if callable(expect) else contextlib.nullcontext()
