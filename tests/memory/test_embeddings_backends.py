"""The onnx-int8 backend (the default) sees what torch sees; a service on it never imports torch;
the batching layer hands each caller its own rows."""

from __future__ import annotations

import csv
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bot.app import make_embedder
from bot.config import Config, EmbeddingsConfig
from memory.batching import BatchingEmbedder
from memory.changes import ChangeDetector
from memory.embeddings import EmbeddingModelUnavailable, SentenceTransformerEmbedder, encode_many
from memory.embeddings_onnx import OnnxInt8Embedder
from tests.conftest import ROOT
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
    onnx: OnnxInt8Embedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    fast = onnx.encode(WRITTEN)
    assert fast.shape == (len(WRITTEN), 384)
    assert fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert _min_cosine(fast, torch_embedder.encode(WRITTEN)) >= 0.98
    # One at a time too: int8 activations are scaled per batch, so batch mates must not matter.
    alone = np.vstack([onnx.encode([t]) for t in WRITTEN])
    assert _min_cosine(alone, torch_embedder.encode(WRITTEN)) >= 0.98


@pytest.mark.model
def test_onnx_threads_setting_sizes_the_session_and_keeps_the_vectors(onnx: OnnxInt8Embedder) -> None:
    one = OnnxInt8Embedder(threads=1)
    session, _ = one.load()
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    # Idle model threads sleep rather than spin (they would hold a core the service needs).
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert onnx.load()[0] is not session, "each thread count has its own session"
    assert _min_cosine(one.encode(WRITTEN[:3]), onnx.encode(WRITTEN[:3])) >= 0.9999


@pytest.mark.model
def test_onnx_vectors_match_torch_on_shared_data(
    onnx: OnnxInt8Embedder, torch_embedder: SentenceTransformerEmbedder, shared_data: Path
) -> None:
    with (shared_data / "stsb" / "dev.tsv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    sentences = list(dict.fromkeys(s for r in rows[1:] for s in r[1:3]))[:400]
    assert _min_cosine(onnx.encode(sentences), torch_embedder.encode(sentences)) >= 0.98
    # Decisions: on all 1,500 STS-B dev pairs 7 borderline pairs (score within a hair of the
    # threshold) differ; at least 99% must agree.
    pairs = [(r[1], r[2]) for r in rows[1:501]]
    slow = [a.changed for a in ChangeDetector(embedder=torch_embedder).assess_pairs(pairs)]
    fast = [a.changed for a in ChangeDetector(embedder=onnx).assess_pairs(pairs)]
    assert sum(a == b for a, b in zip(fast, slow, strict=True)) >= 0.99 * len(pairs)


@pytest.mark.model
def test_onnx_makes_the_same_change_decisions(
    onnx: OnnxInt8Embedder, torch_embedder: SentenceTransformerEmbedder
) -> None:
    slow = [a.changed for a in ChangeDetector(embedder=torch_embedder).assess_pairs(PAIRS)]
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
    # onnx-int8 is the default, in the models and in the shipped config.yaml: parity with torch
    # holds (docs/change-detection.md), and a plain install then never imports torch at run time.
    assert EmbeddingsConfig().backend == config.embeddings.backend == "onnx-int8"
    fast = make_embedder(config)
    assert isinstance(fast, BatchingEmbedder)
    assert isinstance(fast.inner, OnnxInt8Embedder)
    assert fast.model_id.endswith("#onnx-int8")
    slow = make_embedder(
        config.model_copy(update={"embeddings": config.embeddings.model_copy(update={"backend": "torch"})})
    )
    assert isinstance(slow, BatchingEmbedder)
    assert isinstance(slow.inner, SentenceTransformerEmbedder)


@pytest.mark.model
def test_the_service_on_the_default_backend_never_imports_torch(tmp_path: Path) -> None:
    """What `rapport run` does before it receives: the CLI with every command, the App from the
    shipped config.yaml, the model loaded, one answer embedded; torch stays out of the process."""
    import subprocess
    import sys

    code = (
        "import sys, bot.cli; from bot.app import build; from bot.config import load_config;"
        "app = build(load_config('config.yaml'), database_url=sys.argv[1], migrate=True);"
        "app.load_model(); app.embedder.encode(['Support got slower.']); app.close();"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    url = f"sqlite:///{tmp_path / 'rapport.db'}"
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_cache_dir_that_cannot_be_written_fails_with_the_setting_to_change(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    embedder = OnnxInt8Embedder(cache_dir=tmp_path / "a-file" / "onnx")
    assert not embedder.is_exported()
    with pytest.raises(EmbeddingModelUnavailable, match=r"not a writable folder .*embeddings\.cache_dir"):
        embedder.load()


def test_an_unwritable_cache_dir_stops_prepare_with_one_line_and_exit_1(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "a-file").write_text("not a folder")
    config = (ROOT / "config.yaml").read_text(encoding="utf-8")
    config = config.replace("\n  cache_dir:\n", f"\n  cache_dir: {tmp_path / 'a-file' / 'onnx'}\n", 1)
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--config", str(tmp_path / "config.yaml"), "model", "prepare"],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("error: the embedding model cannot be exported:")
    assert "Traceback" not in done.stderr


def test_a_first_start_exports_once_and_says_so_in_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import memory.embeddings_onnx as onnx_backend

    exports: list[Path] = []

    def fake_export(source: Path, target: Path) -> None:
        exports.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"exported")

    monkeypatch.setattr(onnx_backend, "export", fake_export)
    monkeypatch.setattr(onnx_backend, "_open", lambda source, target, threads: ("session", "tokenizer"))
    # Its own cache of open sessions: the other tests' loaded model stays loaded.
    monkeypatch.setattr(onnx_backend, "_SESSIONS", {})
    caplog.set_level("INFO", logger="memory.embeddings_onnx")
    first = OnnxInt8Embedder(cache_dir=tmp_path / "onnx")
    assert not first.is_exported()
    first.load()
    assert first.is_exported()
    assert [r.getMessage() for r in caplog.records] == [
        "exporting the embedding model to ONNX, once",
        "embedding model exported",
    ]
    assert caplog.records[0].cache_dir == str(tmp_path / "onnx")
    # Another process (a restart) finds the file and exports nothing.
    onnx_backend._SESSIONS.clear()
    caplog.clear()
    OnnxInt8Embedder(cache_dir=tmp_path / "onnx").load()
    assert len(exports) == 1
    assert caplog.records == []


def test_an_unknown_model_fails_fast_on_onnx_too() -> None:
    with pytest.raises(EmbeddingModelUnavailable, match="does not exist"):
        OnnxInt8Embedder(model="sentence-transformers/not-here").load()


@pytest.mark.model
def test_prepare_makes_the_model_ready_ahead_of_the_first_start() -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    result = CliRunner().invoke(app, ["--config", str(ROOT / "config.yaml"), "model", "prepare"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("embedding model ready: onnx-int8, ")
    assert "all-MiniLM-L6-v2#onnx-int8" in result.output
    assert "exported model: " in result.output


def test_a_model_without_mean_pooling_is_refused(tmp_path: Path) -> None:
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


def test_an_announced_caller_does_not_wait_when_nobody_else_is_coming() -> None:
    """One reply right after another (arrivals close together) is still encoded at once."""
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, max_wait=30.0)
    for i in range(3):
        done = threading.Event()

        def answer(text: str = f"answer {i}") -> None:
            with batching.expect():
                batching.encode([text])
            done.set()

        threading.Thread(target=answer).start()
        assert done.wait(10.0), "an announced caller waited for company that was not coming"


def test_a_leader_waits_for_announced_callers_and_goes_when_they_arrived() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, max_wait=30.0)
    on_the_way, go = threading.Barrier(3), threading.Event()

    def answer(text: str, reading: float) -> np.ndarray:
        with batching.expect():
            on_the_way.wait(10)  # all three are handling an answer
            if reading:
                go.wait(10)  # the others still read theirs when the first reaches the encoder
            return batching.encode([text])

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(answer, "first", 0)
        others = [pool.submit(answer, text, 1) for text in ("second", "third")]
        while not batching._pending:
            threading.Event().wait(0.001)
        threading.Event().wait(0.05)
        assert not inner.calls, "the leader waits while announced answers are on their way"
        go.set()
        results = [f.result(timeout=10) for f in (first, *others)]
    assert inner.calls == [3], "one call for the three, made once all had arrived (not after 30 s)"
    assert all(r.shape[0] == 1 for r in results)


def test_an_announced_caller_that_never_encodes_releases_the_leader() -> None:
    inner = CountingEmbedder()
    batching = BatchingEmbedder(inner, max_wait=30.0)
    leave = threading.Event()

    def rating_only() -> None:
        with batching.expect():
            leave.wait(10)  # a rating: nothing to encode

    leaver = threading.Thread(target=rating_only)
    leaver.start()
    while not batching._coming:
        threading.Event().wait(0.001)
    with ThreadPoolExecutor(1) as pool:
        text = pool.submit(lambda: batching.encode(["a text answer"]))
        threading.Event().wait(0.05)
        assert not text.done(), "it waits while the other is on its way"
        leave.set()
        assert text.result(timeout=10).shape[0] == 1
    leaver.join()


def test_encode_many_embeds_each_distinct_text_once_in_one_call() -> None:
    inner = CountingEmbedder()
    vectors = encode_many(inner, ["a", "b", "a", "c"])
    assert inner.calls == [3]
    assert set(vectors) == {"a", "b", "c"}
    assert encode_many(inner, []) == {}
