"""Imports, ``compare --pairs`` and themes against the raw encode rate of the same run; JSON.

    .venv/bin/python benchmarks/throughput.py                    # smoke: 200 texts (make bench)
    .venv/bin/python benchmarks/throughput.py --full             # 2,000 texts, 1,000 pairs/comments
    .venv/bin/python benchmarks/throughput.py --full --backend torch
    .venv/bin/python benchmarks/throughput.py --themes-only     # themes of 1,000 comments only
    .venv/bin/python benchmarks/throughput.py --full --no-themes  # imports and compare only

Figures (backend from ``embeddings.backend``, ``onnx-int8`` unless ``--backend``):

* ``raw_encode_per_s``: one length-sorted ``encode`` of the texts: the baseline;
* ``import``: ``rapport answers import`` of one reason per person (people imported first, timed
  apart as ``roster_people_per_s``) into SQLite, texts/s and the ratio to the mean of a raw
  encode of the same texts right before and right after it (the load of a shared machine moves
  within a minute); ``rerun_s``: the same file again (every row unchanged);
* ``compare_pairs``: ``ChangeDetector.assess_pairs`` (what ``rapport compare --pairs`` runs),
  pairs/s, and the raw encode rate of the same distinct texts (and clauses) before and after;
  with ``--full``, three such rounds and the median ratio (torch's thread pool swings 2-3x
  between identical encodes on a busy machine);
* ``cpu_ratio_to_raw``: the same ratios from the process's CPU seconds, which other processes'
  load moves much less than wall time;
* ``data``, ``cpus``, ``load_average_start``/``_end``: what was measured, and how busy the machine was;
* ``themes``: ``cluster_themes`` on 1,000 comments (vectors given), wall and CPU seconds, the
  chosen k, sizes and labels; choosing k on one thread (as ``choose_k`` does) against every thread
  (as before) in the same run; with ``--full``, ``old_kmeans_s``: the first choice of k (ten
  k-means starts for every k), same vectors.

Texts are NHS Friends and Family Test comments from ``../shared/data/feedback`` when present
(``RAPPORT_SHARED_DATA`` points elsewhere), else sentences made up here.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("RAPPORT_SHARED_DATA") or ROOT.parent / "shared" / "data")
FEEDBACK = DATA / "feedback" / "v6framework_230831.csv"
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def comments(n: int) -> list[str]:
    if FEEDBACK.is_file():
        with FEEDBACK.open(encoding="utf-8") as f:
            texts = [" ".join(r["FFT answer"].split()) for r in csv.DictReader(f)]
        texts = list(dict.fromkeys(t for t in texts if len(t) >= 25))
        return texts[:n]
    words = [
        "support",
        "pricing",
        "onboarding",
        "dashboard",
        "reports",
        "tickets",
        "manager",
        "renewal",
        "speed",
        "training",
    ]
    return [
        f"The {words[i % 10]} was {'slow' if i % 3 else 'great'} and the {words[(i * 7) % 10]} helped, case {i}."
        for i in range(n)
    ]


def old_choose_k(vectors: np.ndarray, max_k: int = 8) -> int:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best = (-2.0, 1)
    for k in range(2, max_k + 1):
        labels = KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(vectors)
        score = float(silhouette_score(vectors, labels, metric="cosine"))
        best = max(best, (score, k))
    return best[1]


def main(full: bool, backend: str) -> dict[str, object]:
    from bot.app import make_embedder
    from bot.config import load_config

    base = load_config(ROOT / "config.yaml")
    config = base.model_copy(update={"embeddings": base.embeddings.model_copy(update={"backend": backend})})
    embedder = make_embedder(config)
    texts = comments(2000 if full else 1000 if "--themes-only" in sys.argv else 200)
    embedder.encode(texts[:8])  # load the model outside the timings
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    raw = len(texts) / (time.perf_counter() - started)
    out: dict[str, object] = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "texts": len(texts),
        "data": "NHS FFT comments" if FEEDBACK.is_file() else "made-up sentences",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "raw_encode_per_s": round(raw),
    }

    if "--themes-only" not in sys.argv:
        out.update(_import_and_compare(config, embedder, texts, 3 if full else 1))
    if "--no-themes" not in sys.argv:
        out["themes"] = _themes(texts, vectors, full)
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _raw_rate(embedder: Any, texts: list[str], cpu: list[float] | None = None) -> float:
    """Texts/s of one length-sorted ``encode`` of ``texts`` (CPU seconds of the process added to
    ``cpu``)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    embedder.encode(texts)
    if cpu is not None:
        cpu.append(time.process_time() - cpu_started)
    return len(texts) / (time.perf_counter() - started)


def _import_and_compare(config: Any, embedder: Any, texts: list[str], rounds: int) -> dict[str, object]:
    """Each figure between two raw encodes of the same texts, taken right before and after it: on
    a shared machine the load moves within a minute, so the ratio is to their mean."""
    from bot.app import build
    from bot.cli.people import import_answers_text, import_people_text
    from memory.changes import ChangeDetector

    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        app = build(config, embedder=embedder, database_url=f"sqlite:///{tmp}/t.db", migrate=True)
        roster = "id,name,email,timezone,owner,programs\n" + "".join(
            f"p{i},P{i},p{i}@example.com,UTC,lead@example.com,customers\n" for i in range(len(texts))
        )
        started = time.perf_counter()
        import_people_text(app, roster, NOW)
        people_s = time.perf_counter() - started
        rows = "".join(f'p{i},customers,reason,2025-09-01,,"{t.replace(chr(34), "")}"\n' for i, t in enumerate(texts))
        raw_cpu: list[float] = []
        before = _raw_rate(embedder, texts, raw_cpu)
        started, cpu_started = time.perf_counter(), time.process_time()
        report = import_answers_text(app, "person,program,question,answered_at,rating,text\n" + rows, NOW)
        rate = report.created / (time.perf_counter() - started)
        import_cpu = time.process_time() - cpu_started
        after = _raw_rate(embedder, texts, raw_cpu)
        started = time.perf_counter()
        again = import_answers_text(app, "person,program,question,answered_at,rating,text\n" + rows, NOW)
        rerun_s = time.perf_counter() - started
        app.close()
    baseline = (before + after) / 2
    out["import"] = {
        "texts_per_s": round(rate, 1),
        "raw_before_per_s": round(before, 1),
        "raw_after_per_s": round(after, 1),
        "ratio_to_raw": round(rate / baseline, 2),
        # CPU seconds of the process: what the load of other processes moves least.
        "cpu_s": round(import_cpu, 1),
        "raw_cpu_s": [round(c, 1) for c in raw_cpu],
        "cpu_ratio_to_raw": round(sum(raw_cpu) / len(raw_cpu) / import_cpu, 2),
        "rejected": len(report.problems),
        "rerun_s": round(rerun_s, 2),
        "rerun_unchanged": again.unchanged,
        "roster_people_per_s": round(len(texts) / people_s),
    }

    n = len(texts) // 2
    pairs = list(zip(texts[:n], texts[n : 2 * n], strict=True))
    detector = ChangeDetector(embedder=embedder)
    needed = list(dict.fromkeys(t for p, c in pairs for t in (p, c, *detector._clause_texts(p, c))))
    # Rounds of (raw encode, assess_pairs) and a last raw encode: each round's ratio is to the
    # raw rates on either side of it, and the median round is reported.
    raws: list[float] = []
    raw_cpu: list[float] = []
    rates: list[float] = []
    cpus: list[float] = []
    for _ in range(rounds):
        raws.append(_raw_rate(embedder, needed, raw_cpu) / len(needed) * n)  # pairs/s if encoding were all
        started, cpu_started = time.perf_counter(), time.process_time()
        detector.assess_pairs(pairs)
        rates.append(n / (time.perf_counter() - started))
        cpus.append(time.process_time() - cpu_started)
    raws.append(_raw_rate(embedder, needed, raw_cpu) / len(needed) * n)
    ratios = sorted(rate / ((raws[i] + raws[i + 1]) / 2) for i, rate in enumerate(rates))
    cpu_ratios = sorted((raw_cpu[i] + raw_cpu[i + 1]) / 2 / c for i, c in enumerate(cpus))
    out["compare_pairs"] = {
        "pairs": n,
        "rounds": rounds,
        "pairs_per_s": [round(r, 1) for r in rates],
        "encode_only_pairs_per_s": [round(r, 1) for r in raws],
        "ratio_to_raw": round(ratios[len(ratios) // 2], 2),
        "ratios": [round(r, 2) for r in ratios],
        "cpu_s": [round(c, 1) for c in cpus],
        "raw_cpu_s": [round(c, 1) for c in raw_cpu],
        "cpu_ratio_to_raw": round(cpu_ratios[len(cpu_ratios) // 2], 2),
        "texts_per_pair": round(len(needed) / n, 2),
    }
    return out


def _themes(texts: list[str], vectors: np.ndarray, full: bool) -> dict[str, object]:
    from memory.themes import _choose_k, _normalise, choose_k, cluster_themes

    thousand = vectors[:1000]
    started, cpu = time.perf_counter(), time.process_time()
    cluster_themes(texts[:20], thousand[:20], max_k=3)  # scikit-learn's imports, outside the timings
    imports_s, imports_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    themes = cluster_themes(texts[:1000], thousand, max_k=8)
    out: dict[str, object] = {
        "comments": len(thousand),
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu, 2),
        "imports_s": round(imports_s, 2),
        "imports_cpu_s": round(imports_cpu, 2),
        "k": len(themes),
        "sizes": [t.size for t in themes],
        "labels": [t.label for t in themes],
    }
    # Same-run baseline: choosing k on every thread (as before), and on one (as now).
    started, cpu = time.perf_counter(), time.process_time()
    k_threads = _choose_k(_normalise(thousand), max_k=8, seed=0)[0]
    threads_s, threads_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    k_one = choose_k(_normalise(thousand), max_k=8)[0]
    one_s, one_cpu = time.perf_counter() - started, time.process_time() - cpu
    out.update(
        {
            "choose_k_one_thread_s": round(one_s, 2),
            "choose_k_one_thread_cpu_s": round(one_cpu, 2),
            "choose_k_all_threads_s": round(threads_s, 2),
            "choose_k_all_threads_cpu_s": round(threads_cpu, 2),
            "k_one_thread": k_one,
            "k_all_threads": k_threads,
        }
    )
    if full:
        started = time.perf_counter()
        out["chosen_k_old"] = old_choose_k(thousand)
        out["old_kmeans_s"] = round(time.perf_counter() - started, 2)
    return out


if __name__ == "__main__":
    chosen = sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else "onnx-int8"
    print(json.dumps(main("--full" in sys.argv, chosen), indent=2, ensure_ascii=False))
