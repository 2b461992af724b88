"""Train the stance head (``memory/data/stance_head.npz``) on the shared NHS feedback (MIT).

    RAPPORT_SHARED_DATA=../shared/data .venv/bin/python benchmarks/train_stance_head.py [--write]

The head reads an answer's frozen all-MiniLM-L6-v2 embedding (the one Rapport stores anyway) and
says whether it reads as praise, neutral/mixed or criticism: the annotators' 1-5 comment
sentiment, grouped 1-2 / 3 / 4-5. Only the ``train`` side of the split in ``feedback_pairs.py``
is used; the held-back comments are never seen here.

Candidates (all on the same cached embeddings), compared by 5-fold cross-validation on the train
side (folds by comment):

* ``lr``: multinomial logistic regression on the embedding, C chosen from a small grid;
* ``lr+vader``: the same plus the existing lexical signals (VADER compound, a negation flag);
* ``lr+question``: the embedding of the question and answer together ("What could we do
  better? Nothing"), which costs a second embedding per answer;
* ``mlp``: one hidden layer of 64 ReLU units (scikit-learn's MLPClassifier, early stopping);
* ``ensemble``: the mean of the probabilities of ``lr`` and five ``mlp`` seeds, with or without the
  lexical inputs (``ensemble lr+vader C=1.0 + 5 mlp+vader`` ships).

Each is scored by the praise-against-criticism AUC of its comments, and by the AUC of the pair
change (``memory.stance_head.change``) on the train side's development pairs, out of fold; and, as a
guess at comments from elsewhere, trained on one trust and scored on the other. With ``--write``
the chosen candidate is refitted on the whole train side and written with its provenance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from feedback_pairs import FEEDBACK, CachedEmbedder, Comment, build_pairs, read_comments, split  # noqa: E402

from memory import stance  # noqa: E402
from memory.stance_head import OUTPUT, StanceHead, change  # noqa: E402

SEED = 7
FOLDS = 5
C_GRID = (0.3, 1.0, 3.0, 10.0)
Layers = list[tuple[np.ndarray, np.ndarray]]


def lexical(texts: Sequence[str]) -> np.ndarray:
    """The existing lexical signals as features: VADER compound and 'holds a negation'."""
    return np.array(
        [[stance.polarity(t), float(stance.negation_count(stance.words(t)) > 0)] for t in texts], dtype=np.float32
    )


def fit_lr(x: np.ndarray, y: np.ndarray, c: float) -> list[Layers]:
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=c, max_iter=2000).fit(x, y)
    return [[(m.coef_.T.astype(np.float32), m.intercept_.astype(np.float32))]]


def fit_mlp(x: np.ndarray, y: np.ndarray, seeds: Sequence[int] = (SEED,)) -> list[Layers]:
    from sklearn.neural_network import MLPClassifier

    out = []
    for seed in seeds:
        m = MLPClassifier(
            hidden_layer_sizes=(64,), alpha=1e-3, early_stopping=True, random_state=seed, max_iter=300
        ).fit(x, y)
        out.append([(w.astype(np.float32), b.astype(np.float32)) for w, b in zip(m.coefs_, m.intercepts_, strict=True)])
    return out


def predict(members: list[Layers], x: np.ndarray) -> np.ndarray:
    return StanceHead(members, features=()).probabilities_of(x)


def stance_auc(p: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    polar = y != 1
    return float(roc_auc_score(y[polar] == 2, (p[:, 2] - p[:, 0])[polar]))


def pair_auc(p: np.ndarray, comments: Sequence[Comment]) -> float:
    from sklearn.metrics import roc_auc_score

    index = {c.id: i for i, c in enumerate(comments)}
    pairs = [q for q in build_pairs(comments) if q.changed is not None]
    score = [change(p[index[q.previous.id]], p[index[q.current.id]]) for q in pairs]
    return float(roc_auc_score([q.changed for q in pairs], score))


def candidate_inputs(train: Sequence[Comment], embedder: CachedEmbedder) -> dict[str, np.ndarray]:
    emb = embedder.encode([c.text for c in train])
    with_q = embedder.encode([f"{c.question} {c.text}" for c in train])
    embedder.save()
    lex = lexical([c.text for c in train])
    return {"embedding": emb, "embedding+vader": np.hstack([emb, lex]), "question+answer": with_q}


def candidate_fitters() -> dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], list[Layers]]]]:
    fitters: dict[str, tuple[str, Callable[[np.ndarray, np.ndarray], list[Layers]]]] = {}
    for c in C_GRID:
        fitters[f"lr C={c}"] = ("embedding", lambda x, t, c=c: fit_lr(x, t, c))
        fitters[f"lr+vader C={c}"] = ("embedding+vader", lambda x, t, c=c: fit_lr(x, t, c))
        fitters[f"lr+question C={c}"] = ("question+answer", lambda x, t, c=c: fit_lr(x, t, c))
    fitters["mlp"] = ("embedding", fit_mlp)
    fitters["mlp+vader"] = ("embedding+vader", fit_mlp)
    fitters["ensemble lr C=1.0 + 5 mlp"] = ("embedding", lambda x, t: fit_lr(x, t, 1.0) + fit_mlp(x, t, range(5)))
    fitters["ensemble lr+vader C=1.0 + 5 mlp+vader"] = (
        "embedding+vader",
        lambda x, t: fit_lr(x, t, 1.0) + fit_mlp(x, t, range(5)),
    )
    return fitters


def out_of_fold(fit: Callable[[np.ndarray, np.ndarray], list[Layers]], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each comment's probabilities from a head that never saw it (5 folds, seeded)."""
    folds = np.random.default_rng(SEED).permutation(len(y)) % FOLDS
    oof = np.zeros((len(y), len(OUTPUT)))
    for k in range(FOLDS):
        oof[folds == k] = predict(fit(x[folds != k], y[folds != k]), x[folds == k])
    return oof


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true", help="write memory/data/stance_head.npz")
    parser.add_argument("--candidate", default=None, help="measure (and write) only this candidate")
    args = parser.parse_args()
    if not FEEDBACK.is_file():
        print(f"no feedback data at {FEEDBACK}", file=sys.stderr)
        return 0
    train = split(read_comments(), "train")
    y = np.array([c.stance for c in train])
    embedder = CachedEmbedder()
    inputs = candidate_inputs(train, embedder)
    fitters = candidate_fitters()
    trusts = np.array([c.trust for c in train])
    rows: dict[str, dict[str, Any]] = {}
    for name in [args.candidate] if args.candidate else list(fitters):
        feature, fit = fitters[name]
        x = inputs[feature]
        oof = out_of_fold(fit, x, y)
        cross = []
        for source in ("NEAS", "NHFT"):
            held = trusts != source
            cross.append(stance_auc(predict(fit(x[~held], y[~held]), x[held]), y[held]))
        rows[name] = {
            "input": feature,
            "cv_stance_auc": round(stance_auc(oof, y), 4),
            "cv_pair_change_auc": round(pair_auc(oof, train), 4),
            "cross_trust_stance_auc": [round(a, 4) for a in cross],
        }
        print(name, rows[name], file=sys.stderr)
    # The shipped head reads the answer's own embedding: the question+answer candidates would cost a
    # second embedding per answer, so they are measured but not chosen. Among the others, the best
    # pair AUC. (A tie window of 0.01 in favour of the simplest candidate was used first; it picked a
    # linear head, with which the detector cannot get below 29% follow-ups on unchanged train-side
    # pairs under the STS-B and SICK guards, against 23% with the ensemble: calibrate_changes.py.)
    shippable = [n for n in rows if rows[n]["input"] != "question+answer"]
    best = max(shippable, key=lambda n: rows[n]["cv_pair_change_auc"])
    report: dict[str, Any] = {"comments": len(train), "candidates": rows, "chosen": best}
    if args.write:
        feature, fit = fitters[best]
        if feature == "question+answer":
            raise SystemExit("the shipped head reads the answer's own embedding; pick another candidate")
        members = fit(inputs[feature], y)
        features = ("vader", "negation") if feature == "embedding+vader" else ()
        head = StanceHead(members, features=features)
        provenance = {
            "trained_on": "NHS Friends and Family Test comments, The-Strategy-Unit/pxtextmining at ba6c0a2f, "
            "datasets/v6framework_230831.csv (MIT, Copyright (c) 2021 NHS England); train side of the split "
            f"in benchmarks/feedback_pairs.py, {len(train)} comments",
            "labels": "Comment sentiment 1-2 praise, 3 neutral/mixed, 4-5 criticism",
            "embedding_model": embedder.model_id,
            "candidate": best,
            "cv": rows[best],
            "script": "benchmarks/train_stance_head.py",
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
            "licence": "MIT (derived from MIT-licensed data)",
        }
        path = head.save(ROOT / "memory" / "data" / "stance_head.npz", provenance)
        report["written"] = str(path.relative_to(ROOT))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
