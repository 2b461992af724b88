"""Evaluate change detection on ``../shared/data`` and print the figures as JSON.

    .venv/bin/python benchmarks/evaluate_changes.py        # or: make eval
    .venv/bin/python benchmarks/evaluate_changes.py --backend torch
    .venv/bin/python benchmarks/evaluate_changes.py --parity

The embeddings come from the backend ``config.yaml`` selects (``embeddings.backend``: what a
plain install runs, onnx-int8), unless ``--backend`` names the other one.

Figures, each for the detector and, in the same run on the same embeddings, for plain cosine:

* ``stsb_dev_spearman``: Spearman correlation between (1 - score) and the human similarity of the
  1,500 STS-B dev pairs (for cosine: the cosine itself).
* ``sick``: on SICK train+trial (4,934 pairs), the score threshold at which at most 10% of the
  ENTAILMENT pairs are flagged, and at that threshold the recall of CONTRADICTION pairs, overall
  and for those with relatedness >= 3.5 ("hard": same topic, opposite claim). Also the detector's
  own decision (``changed``) on the same pairs.
* ``development_set``: the held-back side of the change/no-change pairs built from the NHS
  feedback (``feedback_pairs.py``: two answers to the same question on a shared topic, changed
  when one praises and the other criticises; no held-back comment was used to train the stance
  head or to calibrate). ROC AUC of the score, and at the product's decision threshold the share
  of changed and of unchanged pairs on which Rapport would ask "what changed?". From the texts
  alone, and again with the people's own 1-5 ratings passed as the product would (rating 1 "very
  good" read as 5 of 5). Same run: plain cosine's AUC, and the detector as it was before the
  stance head (``previous_detector``: no learned signal, drift centre 0.342).
* ``stance_head``: the learned signal's own cost per answer, on top of the embedding.
* ``longitudinal_proxy``: there is no public set of the same people answering the same question
  twice, so this is a proxy built from the NHS Friends and Family Test answers of the NHFT trust,
  held-back comments only (the stance head never saw them): answers to the same question are
  paired at random (seeded), with rating 1..5 ("very good" .. "very poor"). Pairs whose ratings differ by >= 3 are
  "feelings changed most", pairs with equal ratings "changed least"; the figure is the ROC AUC of
  the score between the two groups, from the texts alone (ratings are not passed to the detector).
  It pairs different people, so it measures how well the score tracks a change of feeling, not a
  person's own drift.
* ``ms_per_pair``: wall time of ``ChangeDetector.assess_pairs`` (embedding included, one batch,
  as in ``rapport compare --pairs``) divided by the number of pairs; ``cpu_ms_per_pair`` is the
  process CPU time over all threads (on an idle 2-core machine about twice the wall time), which
  other work on the machine inflates less; ``load_average`` says how busy the machine was.

When ``../shared/data`` is absent, it says so and exits 0.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = Path(os.environ.get("RAPPORT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MAX_ENTAILMENT_FLAGGED = 0.10
HARD_RELATEDNESS = 3.5
PROXY_SEED = 20240501
PROXY_TRUST = "NHFT"
# The drift centre before the stance head: the STS-B "different topics" fit (calibrate_changes.py).
PREVIOUS_CENTER = 0.342


def read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).correlation)


def recall_at_fpr(score: np.ndarray, labels: np.ndarray, related: np.ndarray) -> dict[str, float]:
    """Flag ``score > t`` with the lowest t that flags at most 10% of ENTAILMENT pairs."""
    entail = np.sort(score[labels == "ENTAILMENT"])
    allowed = int(np.floor(MAX_ENTAILMENT_FLAGGED * len(entail)))
    threshold = float(entail[len(entail) - allowed - 1]) if allowed < len(entail) else float("-inf")
    flagged = score > threshold
    contra = labels == "CONTRADICTION"
    hard = contra & (related >= HARD_RELATEDNESS)
    return {
        "threshold": round(threshold, 4),
        "entailment_flagged": round(float(flagged[labels == "ENTAILMENT"].mean()), 4),
        "contradiction_recall": round(float(flagged[contra].mean()), 4),
        "hard_contradiction_recall": round(float(flagged[hard].mean()), 4),
        "neutral_flagged": round(float(flagged[labels == "NEUTRAL"].mean()), 4),
    }


def auc(score: Sequence[float], positive: Sequence[int]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, score))


def development_set(detector: Any, embedder: Any) -> dict[str, Any]:
    """The held-back development pairs: AUC and the rates of follow-ups asked (see the docstring)."""
    from feedback_pairs import CachedEmbedder, build_pairs, read_comments, split

    from memory.changes import ChangeDetector

    memo = CachedEmbedder(embedder)
    pairs = build_pairs(split(read_comments(), "held_back"))
    texts = [(p.previous.text, p.current.text) for p in pairs]

    def product_rating(r: int | None) -> int | None:
        return None if r is None else 6 - r

    ratings = [(product_rating(p.previous.rating), product_rating(p.current.rating)) for p in pairs]
    previous = dataclasses.replace(detector.settings, learned_shift=0.0, drift_center=PREVIOUS_CENTER)
    runs = {
        "text_only": ChangeDetector(embedder=memo, settings=detector.settings).assess_pairs(texts),
        "with_ratings": ChangeDetector(embedder=memo, settings=detector.settings).assess_pairs(texts, ratings),
        "previous_detector": ChangeDetector(embedder=memo, settings=previous).assess_pairs(texts),
    }
    memo.save()
    label = np.array([p.changed for p in pairs], dtype=object)
    polar = np.array([x is not None for x in label])
    changed = np.array([x is True for x in label])
    out: dict[str, Any] = {"pairs": int(polar.sum()), "changed": int(changed.sum()), "ambiguous": int((~polar).sum())}
    for name, found in runs.items():
        score = np.array([a.score for a in found])
        asked = np.array([a.changed for a in found])
        out[name] = {
            "auc": round(auc(score[polar], changed[polar]), 4),
            "asked_on_changed": round(float(asked[changed].mean()), 4),
            "asked_on_unchanged": round(float(asked[polar & ~changed].mean()), 4),
            "asked_on_ambiguous": round(float(asked[~polar].mean()), 4),
        }
    cosine = np.array([1 - (a.similarity or 0.0) for a in runs["text_only"]])
    out["cosine_auc"] = round(auc(cosine[polar], changed[polar]), 4)
    return out


def stance_head_cost(embedder: Any, repeats: int = 2000) -> dict[str, float]:
    """Microseconds for the learned signal of one pair (two answers), the embeddings given."""
    from memory.stance_head import change, default_head

    head = default_head()
    texts = ["The staff were kind and quick.", "Waited four hours and nobody told us why."]
    vectors = embedder.encode(texts)
    started = time.perf_counter()
    for _ in range(repeats):
        p = head.probabilities(vectors, texts)
        change(p[0], p[1])
    per_pair = (time.perf_counter() - started) * 1000 / repeats
    return {"ms_per_pair": round(per_pair, 4), "ms_per_answer": round(per_pair / 2, 4)}


def proxy_pairs(path: Path) -> tuple[list[tuple[str, str]], list[int]]:
    from feedback_pairs import is_held_back

    rng = np.random.default_rng(PROXY_SEED)
    by_question: dict[str, list[tuple[str, int]]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        for r in csv.DictReader(f):
            text = " ".join((r["FFT answer"] or "").split())
            rating = r["FFT categorical answer"]
            if r["Trust"] != PROXY_TRUST or rating not in {"1", "2", "3", "4", "5"}:
                continue
            if len(text.split()) < 3 or "did not answer" in text.lower():
                continue
            if not is_held_back(r["Comment ID"]):
                continue
            by_question[" ".join(r["FFT question"].split())].append((text, int(rating)))
    pairs: list[tuple[str, str]] = []
    labels: list[int] = []
    for question in sorted(by_question):
        answers = by_question[question]
        if len(answers) < 2:
            continue
        for _ in range(3 * len(answers)):
            i, j = rng.choice(len(answers), size=2, replace=False)
            (a, ra), (b, rb) = answers[int(i)], answers[int(j)]
            if ra == rb:
                pairs.append((a, b))
                labels.append(0)
            elif abs(ra - rb) >= 3:
                pairs.append((a, b))
                labels.append(1)
    return pairs, labels


def backend_parity(torch_embedder: Any, onnx_embedder: Any, data: Path = DATA) -> dict[str, Any]:
    """Do the two embedding backends lead to the same decisions, with the shipped settings?

    Per set of pairs: the share of pairs on which both ask (or both do not), the largest and mean
    difference of the score, and the cosine of the two backends' embeddings of the same text.
    """
    from feedback_pairs import build_pairs, read_comments, split

    from memory.changes import ChangeDetector

    sets: dict[str, list[tuple[str, str]]] = {}
    if (data / "feedback" / "v6framework_230831.csv").is_file():
        held = [p for p in build_pairs(split(read_comments(), "held_back")) if p.changed is not None]
        sets["development_set_held_back"] = [(p.previous.text, p.current.text) for p in held]
    sets["stsb_dev"] = [(r["sentence1"], r["sentence2"]) for r in read_tsv(data / "stsb" / "dev.tsv")]
    sets["sick"] = [(r["sentence_A"], r["sentence_B"]) for r in read_tsv(data / "sick" / "sick_train_trial.tsv")]
    out: dict[str, Any] = {}
    for name, pairs in sets.items():
        a = ChangeDetector(embedder=torch_embedder).assess_pairs(pairs)
        b = ChangeDetector(embedder=onnx_embedder).assess_pairs(pairs)
        diff = np.abs(np.array([x.score for x in a]) - np.array([x.score for x in b]))
        texts = sorted({t for pair in pairs for t in pair})[:2000]
        agree = np.sum(torch_embedder.encode(texts) * onnx_embedder.encode(texts), axis=1)
        out[name] = {
            "pairs": len(pairs),
            "same_decision": round(float(np.mean([x.changed == y.changed for x, y in zip(a, b, strict=True)])), 4),
            "asked_torch": round(float(np.mean([x.changed for x in a])), 4),
            "asked_onnx_int8": round(float(np.mean([y.changed for y in b])), 4),
            "score_difference_mean": round(float(diff.mean()), 4),
            "score_difference_max": round(float(diff.max()), 4),
            "embedding_cosine_min": round(float(agree.min()), 4),
            "embedding_cosine_mean": round(float(agree.mean()), 5),
        }
    return out


def run(detector: Any, data: Path = DATA) -> dict[str, Any]:
    out: dict[str, Any] = {}
    timings: dict[str, float] = {}

    cpu: dict[str, float] = {}
    dev = read_tsv(data / "stsb" / "dev.tsv")
    started, started_cpu = time.perf_counter(), time.process_time()
    found = detector.assess_pairs([(r["sentence1"], r["sentence2"]) for r in dev])
    timings["stsb_dev"] = (time.perf_counter() - started) * 1000 / len(dev)
    cpu["stsb_dev"] = (time.process_time() - started_cpu) * 1000 / len(dev)
    human = [float(r["score"]) for r in dev]
    out["stsb_dev_spearman"] = {
        "detector": round(spearman([1 - a.score for a in found], human), 4),
        "cosine": round(spearman([a.similarity for a in found], human), 4),
    }

    sick = read_tsv(data / "sick" / "sick_train_trial.tsv")
    started, started_cpu = time.perf_counter(), time.process_time()
    found = detector.assess_pairs([(r["sentence_A"], r["sentence_B"]) for r in sick])
    timings["sick"] = (time.perf_counter() - started) * 1000 / len(sick)
    cpu["sick"] = (time.process_time() - started_cpu) * 1000 / len(sick)
    labels = np.array([r["entailment_label"] for r in sick])
    related = np.array([float(r["relatedness_score"]) for r in sick])
    score = np.array([a.score for a in found])
    cosine = np.array([a.similarity for a in found])
    changed = np.array([a.changed for a in found])
    contra = labels == "CONTRADICTION"
    out["sick"] = {
        "pairs": len(sick),
        "detector": recall_at_fpr(score, labels, related),
        "cosine": recall_at_fpr(1 - cosine, labels, related),
        "detector_decision": {
            "threshold": detector.settings.threshold,
            "entailment_flagged": round(float(changed[labels == "ENTAILMENT"].mean()), 4),
            "contradiction_recall": round(float(changed[contra].mean()), 4),
            "hard_contradiction_recall": round(float(changed[contra & (related >= HARD_RELATEDNESS)].mean()), 4),
        },
    }

    feedback = data / "feedback" / "v6framework_230831.csv"
    if feedback.is_file():
        out["development_set"] = development_set(detector, detector.embedder)
    out["stance_head"] = stance_head_cost(detector.embedder)
    if feedback.is_file():
        pairs, positive = proxy_pairs(feedback)
        found = detector.assess_pairs(pairs)
        out["longitudinal_proxy"] = {
            "pairs": len(pairs),
            "changed_most": int(sum(positive)),
            "detector_auc": round(auc([a.score for a in found], positive), 4),
            "cosine_auc": round(auc([1 - (a.similarity or 0.0) for a in found], positive), 4),
        }

    out["ms_per_pair"] = {k: round(v, 2) for k, v in timings.items()}
    out["cpu_ms_per_pair"] = {k: round(v, 2) for k, v in cpu.items()}
    for key, base in (("stsb_dev_spearman", "cosine"),):
        out[key]["ratio_to_cosine"] = round(out[key]["detector"] / out[key][base], 3)
    for key in ("contradiction_recall", "hard_contradiction_recall"):
        base = out["sick"]["cosine"][key]
        out["sick"][f"{key}_ratio_to_cosine"] = round(out["sick"]["detector"][key] / base, 2) if base else None
    return out


def main() -> int:
    if not (DATA / "stsb" / "dev.tsv").is_file() or not (DATA / "sick" / "sick_train_trial.tsv").is_file():
        print(f"no evaluation data at {DATA} (expected stsb/ and sick/); nothing to evaluate", file=sys.stderr)
        return 0
    import argparse

    import yaml

    from memory.changes import ChangeDetector
    from memory.embeddings import SentenceTransformerEmbedder

    # (``bot.config`` is not imported here: ``benchmarks/`` on the path would shadow ``scheduler``.)
    shipped = str(yaml.safe_load((ROOT / "config.yaml").read_text())["embeddings"]["backend"])
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--backend", choices=("torch", "onnx-int8"), default=shipped,
        help=f"embedding backend (default: config.yaml's, {shipped})",
    )  # fmt: skip
    parser.add_argument(
        "--parity", action="store_true", help="compare the decisions of the torch and onnx-int8 backends instead"
    )
    args = parser.parse_args()
    if args.parity:
        from memory.embeddings_onnx import OnnxInt8Embedder

        parity = backend_parity(SentenceTransformerEmbedder(), OnnxInt8Embedder())
        print(json.dumps({"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"), "parity": parity}, indent=2))
        return 0
    embedder: Any
    if args.backend == "onnx-int8":
        from memory.embeddings_onnx import OnnxInt8Embedder

        embedder = OnnxInt8Embedder()
    else:
        embedder = SentenceTransformerEmbedder()
    started = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - started
    detector = ChangeDetector(embedder=embedder)
    load_before = os.getloadavg()[0]
    figures = run(detector)
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "model": embedder.model_id,
        "backend": args.backend,
        "model_load_s": round(load_s, 2),
        "load_average_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        **figures,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
