"""The onnx-int8 backend sees what torch sees; the batching layer hands each caller its own rows."""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.app import make_embedder
from bot.config import Config
from memory.changes import ChangeDetector
from memory.embeddings import BatchingEmbedder, SentenceTransformerEmbedder, encode_many
from memory.embeddings_onnx import OnnxInt8Embedder
from tests.fakes.embedder import HashingEmbedder

WRITTEN = [
    "I like the new dashboard",
    "I dislike the new dashboard",
    "Support answered within an hour and onboarding was smooth.",
    "Since the migration nothing works and nobody answers our tickets.",
    "Pricing went up again, but the product is still worth it to us.",
    "Fast.",
    "",
    "The account manager left and we have not heard from anyone since; renewals are in March.",
]
PAIRS = [
    ("I like the new dashboard", "I dislike the new dashboard"),
    ("Support is fast and friendly.", "Support is slow and nobody replies."),
    ("Onboarding was smooth.", "Onboarding went smoothly."),
    ("Great product, fair price.", "Great product and a fair price."),
    ("The reports are useful.", "We mostly talk about the weather here."),
]


@pytest.fixture(scope="module")
def onnx() -> OnnxInt8Embedder:
    model = OnnxInt8Embedder()
    model.load()
    return model


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


@pytest.mark.model
def test_onnx_vectors_match_torch_on_written_sentences(
    onnx: OnnxInt8Embedder, embedder: SentenceTransformerEmbedder
) -> None:
    fast = onnx.encode(WRITTEN)
    assert fast.shape == (len(WRITTEN), 384)
    assert fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert _min_cosine(fast, embedder.encode(WRITTEN)) >= 0.98
    # One at a time too: int8 activations are scaled per batch, so batch mates must not matter.
    alone = np.vstack([onnx.encode([t]) for t in WRITTEN])
    assert _min_cosine(alone, embedder.encode(WRITTEN)) >= 0.98


@pytest.mark.model
def test_onnx_vectors_match_torch_on_shared_data(
    onnx: OnnxInt8Embedder, embedder: SentenceTransformerEmbedder, shared_data: Path
) -> None:
    with (shared_data / "stsb" / "dev.tsv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    sentences = list(dict.fromkeys(s for r in rows[1:] for s in r[1:3]))[:400]
    assert _min_cosine(onnx.encode(sentences), embedder.encode(sentences)) >= 0.98
    # Decisions: on all 1,500 STS-B dev pairs 7 borderline pairs (score within a hair of the
    # threshold) differ; at least 99% must agree.
    pairs = [(r[1], r[2]) for r in rows[1:501]]
    slow = [a.changed for a in ChangeDetector(embedder=embedder).assess_pairs(pairs)]
    fast = [a.changed for a in ChangeDetector(embedder=onnx).assess_pairs(pairs)]
    assert sum(a == b for a, b in zip(fast, slow, strict=True)) >= 0.99 * len(pairs)


@pytest.mark.model
def test_onnx_makes_the_same_change_decisions(onnx: OnnxInt8Embedder, embedder: SentenceTransformerEmbedder) -> None:
    slow = [a.changed for a in ChangeDetector(embedder=embedder).assess_pairs(PAIRS)]
    fast = [a.changed for a in ChangeDetector(embedder=onnx).assess_pairs(PAIRS)]
    assert fast == slow
    # like/dislike and fast-and-friendly/slow-and-nobody-replies are changes of view; a rewording is not;
    # the last pair changes subject entirely.
    assert slow == [True, True, False, False, True]


@pytest.mark.model
def test_onnx_runs_without_torch_in_a_fresh_process(onnx: OnnxInt8Embedder) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from memory.embeddings_onnx import OnnxInt8Embedder as E;"
        "E().encode(['hi']); print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_both_backends_sit_behind_the_batching_layer(config: Config) -> None:
    # torch is the default: the change detector is calibrated on its vectors.
    assert config.embeddings.backend == "torch"
    built = make_embedder(config)
    assert isinstance(built, BatchingEmbedder)
    assert isinstance(built.inner, SentenceTransformerEmbedder)
    fast = make_embedder(
        config.model_copy(update={"embeddings": config.embeddings.model_copy(update={"backend": "onnx-int8"})})
    )
    assert isinstance(fast, BatchingEmbedder)
    assert isinstance(fast.inner, OnnxInt8Embedder)
    assert fast.model_id.endswith("#onnx-int8")


def test_a_model_without_mean_pooling_is_refused(tmp_path: Path) -> None:
    from memory.embeddings import EmbeddingModelUnavailable

    (tmp_path / "modules.json").write_text(
        '[{"path": "1_Pooling", "type": "x.Pooling"}, {"path": "", "type": "x.Normalize"}]'
    )
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    with pytest.raises(EmbeddingModelUnavailable, match="mean pooling"):
        OnnxInt8Embedder(model=str(tmp_path), cache_dir=tmp_path / "cache").load()


class CountingEmbedder:
    """Counts calls; slow enough that concurrent callers pile up behind one call."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.inner = HashingEmbedder()
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        with self.lock:
            self.calls.append(len(texts))
        threading.Event().wait(0.01)
        if self.fail_on is not None and self.fail_on in texts:
            raise ValueError("encoder failed")
        return self.inner.encode(texts)


def test_concurrent_encodes_share_calls_and_each_caller_gets_its_own_rows() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, max_wait=0.005, max_batch=64)
    texts = [f"answer number {i}" for i in range(200)]
    with ThreadPoolExecutor(32) as pool:
        got = list(pool.map(lambda t: batching.encode([t, t + " (clause)"]), texts))
    for text, vectors in zip(texts, got, strict=True):
        assert np.array_equal(vectors, inner.inner.encode([text, text + " (clause)"]))
    assert sum(inner.calls) == 400
    assert len(inner.calls) < 100  # shared calls, not one per answer
    assert max(inner.calls) <= 64


def test_a_request_larger_than_the_batch_goes_through_whole() -> None:
    batching = BatchingEmbedder(CountingEmbedder(), max_batch=4)
    texts = [f"t{i}" for i in range(10)]
    assert batching.encode(texts).shape == (10, HashingEmbedder().encode(["x"]).shape[1])
    assert batching.encode([]).shape[0] == 0


def test_an_encoder_error_fails_only_the_request_that_caused_it() -> None:
    gate = threading.Event()

    class Gated(CountingEmbedder):
        def encode(self, texts: Sequence[str]) -> np.ndarray:
            if texts == ["first"]:
                gate.wait(10)  # the next three pile up behind this call and form one batch
            return super().encode(texts)

    inner = Gated(fail_on="bad")
    batching = BatchingEmbedder(inner, max_wait=0.01)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batching.encode, ["first"])
        while not inner.calls:
            threading.Event().wait(0.001)
        futures = [pool.submit(batching.encode, [text]) for text in ("fine", "bad", "also fine")]
        while len(batching._pending) < 3:
            threading.Event().wait(0.001)
        gate.set()
        errors = [f.exception() for f in futures]
    assert first.result().shape[0] == 1
    assert inner.calls[:2] == [1, 3], "the three were batched together"
    assert isinstance(errors[1], ValueError)
    assert errors[0] is None, "the requests batched with it get their rows"
    assert errors[2] is None, "the requests batched with it get their rows"
    assert np.array_equal(futures[2].result(), inner.inner.encode(["also fine"]))
    assert batching.encode(["fine again"]).shape[0] == 1


def test_a_caller_alone_does_not_wait_for_company() -> None:
    """One person answering is encoded at once, not after ``max_wait``."""
    batching = BatchingEmbedder(CountingEmbedder(), max_wait=30.0)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (batching.encode(["alone"]), done.set()))
    worker.start()
    assert done.wait(10.0), "a lone caller waited for others to join"
    worker.join()


def test_encode_many_embeds_each_distinct_text_once_in_one_call() -> None:
    inner = CountingEmbedder()
    vectors = encode_many(inner, ["a", "b", "a", "c"])
    assert inner.calls == [3]
    assert set(vectors) == {"a", "b", "c"}
    assert encode_many(inner, []) == {}
