"""The learned stance head: does an answer read as praise, neutral/mixed, or criticism?

A small classifier on the frozen sentence embedding Rapport already computes (and stores) for
every answer, so it costs a few small matrix products per answer and no second model. It was
trained by ``benchmarks/train_stance_head.py`` on the MIT-licensed NHS Friends and Family Test
comments (provenance inside the weights file, ``memory/data/stance_head.npz``; see
``docs/change-detection.md``). Pure numpy: no torch, no scikit-learn at run time.

The weights file holds one or more *members* (an ensemble averages their probabilities); each is
a stack of dense layers with ReLU between them and a softmax at the end.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

OUTPUT = ("praise", "neutral", "criticism")
# How a person would say what an answer read as, for reasons ("last time this read as praise").
READS_AS = {"praise": "praise", "neutral": "neutral or mixed", "criticism": "a complaint"}
WEIGHTS = Path(__file__).resolve().parent / "data" / "stance_head.npz"

Layers = list[tuple["NDArray[np.float32]", "NDArray[np.float32]"]]


class StanceHeadUnavailable(RuntimeError):
    """The weights file is missing or unreadable."""


class StanceHead:
    def __init__(self, members: Sequence[Layers], *, features: Sequence[str] = (), provenance: Any = None) -> None:
        if not members:
            raise ValueError("a stance head needs at least one member")
        self.members = [list(m) for m in members]
        # Extra lexical inputs after the embedding, in order ("vader", "negation").
        self.features = tuple(features)
        self.provenance: dict[str, Any] = dict(provenance or {})

    # Inference --------------------------------------------------------------------------------

    def probabilities_of(self, x: NDArray[Any]) -> NDArray[np.float64]:
        """Rows of (praise, neutral, criticism) probabilities for rows of input features."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float32))
        total = np.zeros((x.shape[0], len(OUTPUT)))
        for layers in self.members:
            h = x
            for k, (w, b) in enumerate(layers):
                h = h @ w + b
                if k < len(layers) - 1:
                    h = np.maximum(h, 0.0)
            h = h - h.max(axis=1, keepdims=True)
            e = np.exp(h.astype(np.float64))
            total += e / e.sum(axis=1, keepdims=True)
        return total / len(self.members)

    def probabilities(self, embeddings: NDArray[Any], texts: Sequence[str]) -> NDArray[np.float64]:
        """Stance probabilities of answers from their embeddings (and texts, for lexical inputs)."""
        x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if self.features:
            from memory import stance

            extra = []
            for t in texts:
                row = {"vader": stance.polarity(t), "negation": float(stance.negation_count(stance.words(t)) > 0)}
                extra.append([row[f] for f in self.features])
            x = np.hstack([x, np.asarray(extra, dtype=np.float32)])
        return self.probabilities_of(x)

    # Storage ----------------------------------------------------------------------------------

    def save(self, path: Path, provenance: dict[str, Any]) -> Path:
        arrays: dict[str, Any] = {}
        for i, layers in enumerate(self.members):
            for k, (w, b) in enumerate(layers):
                arrays[f"m{i}_w{k}"] = np.asarray(w, dtype=np.float32)
                arrays[f"m{i}_b{k}"] = np.asarray(b, dtype=np.float32)
        meta = {"members": [len(m) for m in self.members], "features": list(self.features), **provenance}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
        return path

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> StanceHead:
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                members = [
                    [(z[f"m{i}_w{k}"], z[f"m{i}_b{k}"]) for k in range(depth)]
                    for i, depth in enumerate(meta["members"])
                ]
        except (OSError, KeyError, ValueError) as exc:
            raise StanceHeadUnavailable(f"cannot read the stance head at {path}: {exc}") from exc
        return cls(members, features=meta.get("features", ()), provenance=meta)


_DEFAULT: StanceHead | None = None
_LOCK = threading.Lock()


def default_head() -> StanceHead:
    """The shipped head, loaded once per process."""
    global _DEFAULT
    with _LOCK:
        if _DEFAULT is None:
            _DEFAULT = StanceHead.load()
        return _DEFAULT


def valence(p: NDArray[Any]) -> float:
    """From -1 (surely criticism) to 1 (surely praise)."""
    return float(p[0] - p[2])


def change(before: NDArray[Any], after: NDArray[Any]) -> float:
    """How far the reading moved between two answers, in [0, 1]: half the change of valence.

    1 is sure praise against sure criticism; two readings of the same text give 0, however
    unsure the head is. (The chance of "one praises, the other criticises", p0*q2 + p2*q0, was
    tried first: it gives an unsure head 0.2-0.4 even between identical texts.)
    """
    return abs(valence(before) - valence(after)) / 2


def reads_as(p: NDArray[Any]) -> str:
    return OUTPUT[int(np.argmax(p))]
