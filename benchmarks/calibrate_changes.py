"""Reproduce the calibration of ``memory.changes.DetectorSettings`` on ``../shared/data``.

    .venv/bin/python benchmarks/calibrate_changes.py

1. The drift curve: a logistic regression, on STS-B train, of "the annotators called the pair
   different topics" (human score < 1 of 5) against the cosine of the two sentences. Its centre
   and width are ``drift_center`` and ``drift_width``.
2. The shifts: a small grid of ``negation_shift``, ``opposite_shift`` and ``stance_shift`` (how
   far a negation, an opposite word and a flip of tone lower the effective similarity), scored
   on STS-B *train*
   Spearman and SICK train+trial recall of hard contradictions at <= 10% entailment flagged.
   The chosen values keep STS-B within 0.01 of plain cosine while catching most hard
   contradictions, and make a clear flip ("I like" / "I dislike") cross the decision threshold.

STS-B dev is left for ``evaluate_changes.py``. Each text is embedded once; the grid reuses the
vectors.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from evaluate_changes import DATA, read_tsv, recall_at_fpr, spearman  # noqa: E402

GRID = [(n, o, s) for n in (0.2, 0.3, 0.45) for o in (0.3, 0.6) for s in (0.0, 0.3)]


class MemoEmbedder:
    """Embeds each distinct text once for the whole grid."""

    def __init__(self) -> None:
        from memory.embeddings import SentenceTransformerEmbedder

        self.inner = SentenceTransformerEmbedder()
        self.model_id = self.inner.model_id
        self.cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.encode(todo), strict=True))
        return np.vstack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)


def main() -> int:
    if not (DATA / "stsb" / "train.tsv").is_file():
        print(f"no calibration data at {DATA}", file=sys.stderr)
        return 0
    from sklearn.linear_model import LogisticRegression

    from memory.changes import ChangeDetector, DetectorSettings

    embedder = MemoEmbedder()
    train = read_tsv(DATA / "stsb" / "train.tsv")
    human = np.array([float(r["score"]) for r in train])
    a = embedder.encode([r["sentence1"] for r in train])
    b = embedder.encode([r["sentence2"] for r in train])
    cosine = np.sum(a * b, axis=1)
    fit = LogisticRegression(C=1e6).fit(cosine[:, None], (human < 1).astype(int))
    w, c = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    report: dict[str, object] = {
        "drift_curve": {"center": round(-c / w, 3), "width": round(-1 / w, 3), "share_different": (human < 1).mean()},
        "stsb_train_cosine_spearman": round(spearman(cosine, human), 4),
    }
    sick = read_tsv(DATA / "sick" / "sick_train_trial.tsv")
    labels = np.array([r["entailment_label"] for r in sick])
    related = np.array([float(r["relatedness_score"]) for r in sick])
    rows = []
    for negation_shift, opposite_shift, stance_shift in GRID:
        settings = dataclasses.replace(
            DetectorSettings(), negation_shift=negation_shift, opposite_shift=opposite_shift, stance_shift=stance_shift
        )
        detector = ChangeDetector(embedder=embedder, settings=settings)
        on_train = detector.assess_pairs([(r["sentence1"], r["sentence2"]) for r in train])
        on_sick = detector.assess_pairs([(r["sentence_A"], r["sentence_B"]) for r in sick])
        sick_found = recall_at_fpr(np.array([x.score for x in on_sick]), labels, related)
        rows.append(
            {
                "negation_shift": negation_shift,
                "opposite_shift": opposite_shift,
                "stance_shift": stance_shift,
                "stsb_train_spearman": round(spearman([1 - x.score for x in on_train], human), 4),
                "sick_hard_recall": sick_found["hard_contradiction_recall"],
                "sick_recall": sick_found["contradiction_recall"],
            }
        )
    report["grid"] = rows
    print(json.dumps(report, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
