"""The ``onnx-int8`` embedding backend (the default): the packaged model, exported once to ONNX
and quantized.

At run time only ``onnxruntime`` and ``tokenizers`` are used, so a service on this backend never
imports torch (faster per sentence, and about half the memory). The export needs torch and
transformers, so it runs once, in a child process, into a writable cache directory (logged, with
the seconds it took; ``rapport model prepare`` does it ahead); every later start loads the
cached file. Tokenisation, truncation, mean pooling and normalisation follow the model's own
sentence-transformers configuration files.

    python -m memory.embeddings_onnx MODEL_DIR OUTPUT.onnx     # what the child process runs
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memory.embeddings import BUILTIN_MODEL, BUILTIN_MODEL_ID, EmbeddingModelUnavailable, model_path

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Bump when the export or the quantization changes, so caches made by older code are not reused.
EXPORT_VERSION = "2"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_LOCK = threading.Lock()
_SESSIONS: dict[str, tuple[Any, Any]] = {}
#: An export takes 10 to 30 s; one that runs this long is stuck, and start-up fails with a reason.
EXPORT_TIMEOUT_SECONDS = 900.0
log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rapport" / "onnx"


class OnnxInt8Embedder:
    """all-MiniLM-L6-v2 (or a local sentence-transformers directory) on onnxruntime, int8 weights.

    Thread-safe: onnxruntime sessions and tokenizers may be called from several threads at once.
    """

    def __init__(
        self,
        *,
        model: str = BUILTIN_MODEL,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        threads: int = 0,
    ) -> None:
        self._model_spec = model
        self._cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._batch_size = batch_size
        self._threads = threads
        self._loaded: tuple[Any, Any] | None = None

    @property
    def model_id(self) -> str:
        base = BUILTIN_MODEL_ID if self._model_spec == BUILTIN_MODEL else self._model_spec
        return f"{base}#onnx-int8"

    def onnx_path(self) -> Path:
        """The cached quantized model: named after the source weights, so a new model re-exports."""
        source = Path(model_path(self._model_spec))
        digest = hashlib.sha256(f"{EXPORT_VERSION}\0{source.resolve()}".encode())
        for weights in sorted(source.glob("*.safetensors")) + sorted(source.glob("*.bin")):
            stat = weights.stat()
            digest.update(f"\0{weights.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
        return self._cache_dir / f"minilm-{digest.hexdigest()[:16]}.int8.onnx"

    def is_exported(self) -> bool:
        """Whether the exported model is already in the cache (so loading takes about a second)."""
        return self.onnx_path().is_file()

    def load(self) -> tuple[Any, Any]:
        """Export (first time only), then open the session and the tokenizer; idempotent."""
        if self._loaded is not None:
            return self._loaded
        with _LOCK:
            target = self.onnx_path()
            key = f"{target}#{self._threads}"
            if key not in _SESSIONS:
                source = Path(model_path(self._model_spec))
                _check_pooling(source)
                if not target.is_file():
                    log.info("exporting the embedding model to ONNX, once", extra={"cache_dir": str(target.parent)})
                    started = time.perf_counter()
                    export(source, target)
                    log.info(
                        "embedding model exported",
                        extra={"path": str(target), "seconds": round(time.perf_counter() - started, 1)},
                    )
                _SESSIONS[key] = _open(source, target, threads=self._threads)
            self._loaded = _SESSIONS[key]
        return self._loaded

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        session, tokenizer = self.load()
        encodings = tokenizer.encode_batch(list(texts))
        # Length-sorted batches pad little; the order is restored at the end.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            out[chunk] = _forward(session, [encodings[i] for i in chunk])
        return out


def _forward(session: Any, encodings: Sequence[Any]) -> NDArray[np.float32]:
    width = max(len(e.ids) for e in encodings)
    feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in _INPUTS}
    for row, e in enumerate(encodings):
        n = len(e.ids)
        feeds["input_ids"][row, :n] = e.ids
        feeds["attention_mask"][row, :n] = e.attention_mask
        feeds["token_type_ids"][row, :n] = e.type_ids
    hidden = session.run(None, feeds)[0]
    # Mean pooling over real tokens, then L2 normalisation: 1_Pooling and 2_Normalize of the model.
    mask = feeds["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return np.asarray(pooled / norms, dtype=np.float32)


def _check_pooling(source: Path) -> None:
    """This backend implements mean pooling + normalisation; refuse a model that says otherwise."""
    try:
        modules = json.loads((source / "modules.json").read_text())
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((source / pooling_dir / "config.json").read_text())
    except (OSError, ValueError, StopIteration, KeyError) as exc:
        raise EmbeddingModelUnavailable(f"{source} is not a sentence-transformers model directory") from exc
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
    normalises = any(m["type"].endswith("Normalize") for m in modules)
    if modes != {"pooling_mode_mean_tokens"} or not normalises:
        raise EmbeddingModelUnavailable(
            f"the onnx-int8 backend needs mean pooling and normalisation; {source} has {modes}"
        )


def _open(source: Path, target: Path, *, threads: int = 0) -> tuple[Any, Any]:
    import onnxruntime
    from tokenizers import Tokenizer

    max_length = 256
    config = source / "sentence_bert_config.json"
    if config.is_file():
        max_length = int(json.loads(config.read_text()).get("max_seq_length", max_length))
    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # 0: one thread per core (onnxruntime's choice).
    options.intra_op_num_threads = threads
    # Idle model threads sleep instead of spinning: a spinning thread holds a core that the
    # service's own threads (the writer, the channels) and other processes need. On 2 cores
    # beside one busy process: replies p50 17-20 ms against 30-34 ms with spinning, batches
    # 1.4x faster; with nothing else running the two are the same (benchmarks/README.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    return session, tokenizer


def export(source: Path, target: Path) -> None:
    """Run the export in a child process, so this process never loads torch. Offline: the
    child reads only ``source``, and never waits for a model hub."""
    _check_writable(target.parent)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - our own module, run by our own interpreter
            [sys.executable, "-m", "memory.embeddings_onnx", str(source), str(target)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=EXPORT_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        raise EmbeddingModelUnavailable(
            f"exporting the model to ONNX did not finish in {EXPORT_TIMEOUT_SECONDS:.0f} s"
        ) from None
    if done.returncode != 0 or not target.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise EmbeddingModelUnavailable(f"exporting the model to ONNX failed: {last}")


def _check_writable(folder: Path) -> None:
    """The cache directory exists and takes a file; otherwise say which setting to change."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as exc:
        raise EmbeddingModelUnavailable(
            f"the embedding model cannot be exported: {folder} is not a writable folder "
            f"({exc.strerror or exc}). Set embeddings.cache_dir to a folder the service can write, "
            "or run `rapport model prepare` once as a user who can write there."
        ) from None


def _export_in_process(source: Path, target: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    model = AutoModel.from_pretrained(str(source), local_files_only=True).eval()
    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
    # Temporary files beside the target, renamed at the end: two processes exporting at once
    # each write their own and the last rename wins, never a half-written model.
    tag = f"{os.getpid()}.tmp"
    full, quantized = target.with_suffix(f".fp32.{tag}"), target.with_suffix(f".{tag}")
    try:
        with torch.no_grad():
            torch.onnx.export(
                LastHiddenState(model),
                (sample, sample, torch.zeros_like(sample)),
                str(full),
                input_names=list(_INPUTS),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        quantize_dynamic(
            str(full),
            str(quantized),
            per_channel=True,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=_kept_in_float32(str(full)),
        )
        os.replace(quantized, target)
    finally:
        for leftover in (full, quantized):
            leftover.unlink(missing_ok=True)


def _kept_in_float32(path: str) -> list[str]:
    """Per-channel int8 weights on the matrix products, except the ones that move the vectors
    most: each layer's feed-forward output projection and the whole last layer. Measured on STS-B
    dev and short answers ("Fast.", ""): cosine to torch >= 0.983 per sentence, against 0.971
    with every matrix product in int8 and 0.94 with per-tensor weights."""
    import onnx

    names = [n.name for n in onnx.load(path, load_external_data=False).graph.node if n.op_type == "MatMul"]
    last_layer = max((int(m.group(1)) for n in names if (m := re.search(r"layer\.(\d+)/", n))), default=-1)
    return [n for n in names if ("/output/dense" in n and "attention" not in n) or f"layer.{last_layer}/" in n]


if __name__ == "__main__":  # pragma: no cover - exercised through export()
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    _export_in_process(Path(sys.argv[1]), Path(sys.argv[2]))
