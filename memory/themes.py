"""Themes across people: cluster reasons and follow-up answers into a handful of ideas.

* Vectors are the sentence embeddings Rapport already stores with each free-text answer (or are
  computed by the embedder for texts without one).
* Clustering is k-means on the L2-normalised vectors (so Euclidean distance follows cosine), with
  k chosen by the best silhouette score between 2 and ``max_k``. Fewer than ``min_texts`` texts
  make one theme; clusters smaller than ``min_size`` are folded into the nearest larger one.
* A label is the theme's most distinctive words by class-based TF-IDF (c-TF-IDF, as in BERTopic):
  a word's frequency inside the theme, weighted by how rare it is across themes. English stop
  words are removed.
* Quotes are the 2-3 texts closest to the centroid, as short excerpts.
* Change since the last wave: the previous wave's texts are assigned to the nearest current
  theme; ``change`` is the theme's share now minus its share then, in percentage points.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from memory.changes import excerpt

_WORD = re.compile(r"[a-z][a-z']{2,}")


@dataclass(frozen=True, kw_only=True)
class Theme:
    label: str
    words: tuple[str, ...]
    size: int
    share: float
    quotes: tuple[str, ...]
    # Share now minus share in the previous wave, in percentage points (None without a previous wave).
    change: float | None = None
    previous_size: int | None = None


def _stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    extra = {"really", "just", "also", "get", "got", "would", "could", "one", "much", "lot", "thing", "things"}
    return frozenset(ENGLISH_STOP_WORDS) | extra


def _words(text: str, stop: frozenset[str]) -> list[str]:
    return [w.strip("'") for w in _WORD.findall(text.lower()) if w.strip("'") not in stop and len(w.strip("'")) > 2]


def ctfidf_labels(texts: Sequence[str], labels: Sequence[int], *, top: int = 3) -> dict[int, tuple[str, ...]]:
    """Top distinctive words per cluster (class-based TF-IDF)."""
    stop = _stopwords()
    counts: dict[int, Counter[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        counts.setdefault(label, Counter()).update(_words(text, stop))
    total: Counter[str] = Counter()
    for c in counts.values():
        total.update(c)
    avg = sum(total.values()) / max(len(counts), 1)
    out = {}
    for label, c in counts.items():
        n = sum(c.values()) or 1
        scored = sorted(c.items(), key=lambda kv: (-(kv[1] / n) * math.log(1 + avg / total[kv[0]]), kv[0]))
        out[label] = tuple(w for w, _ in scored[:top])
    return out


def choose_k(vectors: NDArray[np.float32], *, max_k: int = 6, seed: int = 0) -> tuple[int, NDArray[np.int_]]:
    """k in [2, max_k] with the best silhouette; returns (k, labels).

    Each candidate k gets one k-means++ run (not ten) and the silhouettes share one precomputed
    cosine distance matrix: on 1,000 NHS comments the same k as ten starts for every k, in a
    fraction of the time (benchmarks/throughput.py). The work runs on one thread: at this size
    threads gain little on a quiet machine, and on a busy one k-means' OpenMP threads wait on each
    other (1,000 comments: 11 s on all threads against 1 s on one, with the same themes).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _choose_k(vectors, max_k=max_k, seed=seed)


def _choose_k(vectors: NDArray[np.float32], *, max_k: int, seed: int) -> tuple[int, NDArray[np.int_]]:
    from sklearn.cluster import KMeans
    from sklearn.metrics import pairwise_distances, silhouette_score

    n = len(vectors)
    # Silhouettes on at most 2,000 texts: the distance matrix grows with the square.
    sample = np.random.default_rng(seed).choice(n, size=min(n, 2000), replace=False) if n else np.arange(0)
    distances = pairwise_distances(vectors[sample], metric="cosine")
    best: tuple[float, int, NDArray[np.int_]] | None = None
    for k in range(2, min(max_k, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(vectors)
        if len(set(labels[sample].tolist())) < 2:
            continue
        score = float(silhouette_score(distances, labels[sample], metric="precomputed"))
        if best is None or score > best[0]:
            best = (score, k, labels)
    if best is None:
        return 1, np.zeros(n, dtype=np.int_)
    return best[1], best[2]


def _normalise(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


def cluster_themes(
    texts: Sequence[str],
    vectors: NDArray[np.float32],
    *,
    previous: tuple[Sequence[str], NDArray[np.float32]] | None = None,
    max_k: int = 6,
    min_texts: int = 6,
    min_size: int = 2,
    quotes: int = 3,
    quote_chars: int = 120,
) -> list[Theme]:
    """Themes over ``texts`` (one row of ``vectors`` per text), largest first (on one thread, as
    :func:`choose_k` explains)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _cluster_themes(texts, vectors, previous=previous, max_k=max_k, min_texts=min_texts,
                               min_size=min_size, quotes=quotes, quote_chars=quote_chars)  # fmt: skip


def _cluster_themes(
    texts: Sequence[str],
    vectors: NDArray[np.float32],
    *,
    previous: tuple[Sequence[str], NDArray[np.float32]] | None,
    max_k: int,
    min_texts: int,
    min_size: int,
    quotes: int,
    quote_chars: int,
) -> list[Theme]:
    keep = [i for i, t in enumerate(texts) if t and t.strip()]
    if not keep:
        return []
    texts = [texts[i] for i in keep]
    vecs = _normalise(np.asarray(vectors, dtype=np.float32)[keep])
    if len(texts) < min_texts:
        labels = np.zeros(len(texts), dtype=np.int_)
    else:
        _, labels = choose_k(vecs, max_k=max_k)
    labels = _fold_small(vecs, labels, min_size)
    ids = sorted(set(labels.tolist()))
    centroids = {i: _normalise(vecs[labels == i].mean(axis=0, keepdims=True))[0] for i in ids}
    words = ctfidf_labels(texts, labels.tolist())

    prev_counts: Counter[int] | None = None
    prev_total = 0
    if previous is not None and len(previous[0]):
        pvecs = _normalise(np.asarray(previous[1], dtype=np.float32))
        matrix = np.vstack([centroids[i] for i in ids])
        nearest = np.argmax(pvecs @ matrix.T, axis=1)
        prev_counts = Counter(ids[j] for j in nearest.tolist())
        prev_total = len(pvecs)

    themes = []
    for i in ids:
        members = np.flatnonzero(labels == i)
        sims = vecs[members] @ centroids[i]
        order = members[np.argsort(-sims, kind="stable")]
        chosen: list[str] = []
        for j in order.tolist():
            quote = excerpt(texts[j], quote_chars)
            if quote and quote not in chosen:
                chosen.append(quote)
            if len(chosen) >= quotes:
                break
        share = len(members) / len(texts)
        change = prev_size = None
        if prev_counts is not None and prev_total:
            prev_size = prev_counts.get(i, 0)
            change = round(100 * (share - prev_size / prev_total), 1)
        top = words.get(i, ())
        themes.append(
            Theme(
                label=" · ".join(top) if top else "(no words)",
                words=top,
                size=len(members),
                share=round(share, 3),
                quotes=tuple(chosen),
                change=change,
                previous_size=prev_size,
            )
        )
    themes.sort(key=lambda t: (-t.size, t.label))
    return themes


def _fold_small(vecs: NDArray[np.float32], labels: NDArray[np.int_], min_size: int) -> NDArray[np.int_]:
    """Move members of clusters below ``min_size`` to the nearest cluster that is big enough."""
    labels = labels.copy()
    sizes = Counter(labels.tolist())
    big = [c for c, n in sizes.items() if n >= min_size]
    if not big or len(big) == len(sizes):
        return labels
    centroids = np.vstack([_normalise(vecs[labels == c].mean(axis=0, keepdims=True))[0] for c in big])
    for idx in np.flatnonzero(~np.isin(labels, big)).tolist():
        labels[idx] = big[int(np.argmax(centroids @ vecs[idx]))]
    return labels
