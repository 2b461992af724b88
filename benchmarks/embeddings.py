"""Measure both embedding backends in the same run; print JSON.

    .venv/bin/python benchmarks/embeddings.py           # smoke size (make bench)
    .venv/bin/python benchmarks/embeddings.py --full    # STS-B dev, 1,000 concurrent encodes

Figures, per backend (``torch``, ``onnx-int8``), each in a fresh child process so resident memory
and import costs are its own:

* ``idle_rss_mb``: resident memory with Rapport's modules imported and the embedder built, before
  the model loads; ``loaded_rss_mb``: after loading and encoding; ``load_s``: the load;
  ``imports_torch``: whether torch was imported at all.
* ``ms_per_sentence``: p50 and p99 of one-sentence ``encode`` calls;
* ``sentences_per_s``: one length-sorted batch encode of all texts (the raw batch rate);
* ``batched``: ``concurrent`` one-sentence encodes from 64 threads (people answering at once)
  through ``BatchingEmbedder``, sentences/s, and its ratio to the raw batch rate of the same run.

Then ``parity``: cosine of onnx-int8 to torch per sentence (min, p1, mean), for texts encoded in
batches and one at a time. Texts are STS-B dev sentences from ``../shared/data`` when present,
otherwise sentences written here
(``RAPPORT_SHARED_DATA`` points elsewhere).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("RAPPORT_SHARED_DATA") or ROOT.parent / "shared" / "data")
STSB = DATA / "stsb" / "dev.tsv"
THREADS = 64
WRITTEN = [
    "Support answered within an hour and onboarding was smooth.",
    "I like the new dashboard",
    "I dislike the new dashboard",
    "Since the migration nothing works and nobody answers our tickets.",
    "Pricing went up again but the product is worth it.",
    "The account manager left and we have not heard from anyone since.",
    "Fast, friendly, competent.",
    "Too many meetings; I cannot get my work done.",
]


def texts(full: bool) -> list[str]:
    if not STSB.is_file():
        return WRITTEN * (40 if full else 8)
    with STSB.open(encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    sentences = list(dict.fromkeys(s for r in rows[1:] for s in r[1:3]))
    return sentences[: 1000 if full else 64]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(backend: str, full: bool, out: str) -> None:
    from bot.app import make_embedder
    from bot.config import load_config

    base = load_config(ROOT / "config.yaml")
    settings = base.embeddings.model_copy(update={"backend": backend})
    config = base.model_copy(update={"embeddings": settings})
    embedder = make_embedder(config)
    inner = embedder.inner  # type: ignore[attr-defined]
    sentences = texts(full)
    idle = rss_mb()
    started = time.perf_counter()
    inner.load()
    inner.encode(sentences[:4])
    load_s = time.perf_counter() - started
    singles = []
    single_vectors = []
    for s in sentences[: 200 if full else 32]:
        t = time.perf_counter()
        single_vectors.append(inner.encode([s])[0])
        singles.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    vectors = inner.encode(sentences)
    raw_rate = len(sentences) / (time.perf_counter() - t)
    concurrent = 1000 if full else 128
    pool = [sentences[i % len(sentences)] for i in range(concurrent)]
    with ThreadPoolExecutor(THREADS) as ex:
        t = time.perf_counter()
        list(ex.map(lambda s: embedder.encode([s]), pool))
        batched_rate = concurrent / (time.perf_counter() - t)
    np.save(out + ".batch.npy", vectors)
    np.save(out + ".single.npy", np.vstack(single_vectors))
    result = {
        "idle_rss_mb": round(idle),
        "loaded_rss_mb": round(rss_mb()),
        "load_s": round(load_s, 2),
        "imports_torch": "torch" in sys.modules,
        "ms_per_sentence": {
            "p50": round(float(np.percentile(singles, 50)), 2),
            "p99": round(float(np.percentile(singles, 99)), 2),
        },
        "sentences_per_s": round(raw_rate),
        "batched": {
            "concurrent": concurrent,
            "threads": THREADS,
            "sentences_per_s": round(batched_rate),
            "ratio_to_raw": round(batched_rate / raw_rate, 2),
        },
        "threads_alive": threading.active_count(),
    }
    Path(out + ".json").write_text(json.dumps(result))


def cosines(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    c = np.sum(a * b, axis=1)
    return {
        "min": round(float(c.min()), 4),
        "p1": round(float(np.percentile(c, 1)), 4),
        "mean": round(float(c.mean()), 4),
    }


def main(full: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "full": full,
        "texts": len(texts(full)),
        "data": "stsb dev" if STSB.is_file() else "written",
    }
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("torch", "onnx-int8"):
            base = f"{tmp}/{backend}"
            args = [sys.executable, __file__, "--child", backend, base] + (["--full"] if full else [])
            subprocess.run(args, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            out[backend] = json.loads(Path(base + ".json").read_text())
        torch_b, onnx_b = np.load(f"{tmp}/torch.batch.npy"), np.load(f"{tmp}/onnx-int8.batch.npy")
        torch_s, onnx_s = np.load(f"{tmp}/torch.single.npy"), np.load(f"{tmp}/onnx-int8.single.npy")
    out["parity_cosine_to_torch"] = {"batched": cosines(onnx_b, torch_b), "one_at_a_time": cosines(onnx_s, torch_s)}
    t, o = out["torch"], out["onnx-int8"]
    out["speedup"] = {  # onnx-int8 over torch, same run
        "ms_per_sentence_p50": round(t["ms_per_sentence"]["p50"] / o["ms_per_sentence"]["p50"], 1),  # type: ignore[index]
        "sentences_per_s": round(o["sentences_per_s"] / t["sentences_per_s"], 1),  # type: ignore[index]
    }
    return out


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[i + 1], "--full" in sys.argv, sys.argv[i + 2])
    else:
        print(json.dumps(main("--full" in sys.argv), indent=2))
