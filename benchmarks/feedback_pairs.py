"""The change-detection development set, built from the shared NHS feedback (MIT).

No public data has the same people answering the same question twice, so the set pairs answers
the way a longitudinal pair looks: two answers **to the same question, on the same topic** (the
same trust, the same question wording, at least one framework topic in common), labelled by the
annotators' 1-5 comment sentiment, read as a stance:

* praise (1-2), neutral or mixed (3), criticism (4-5);
* **changed**: one answer praises and the other criticises;
* **unchanged**: both answers have the same stance;
* praise or criticism against a neutral or mixed answer is ambiguous (3 also marks "mixed"), so
  those pairs are counted apart and not in the targets.

Topics that restate the sentiment ("Positive experience & gratitude", "Negative experience &
dissatisfaction") and "Not assigned" / "Labelling not possible" do not make two answers "on the
same topic".

**The split is by comment**: a comment is held back when a hash of its Comment ID says so (25%),
and pairs are built within each side only, so no comment appears on both sides. The stance head
is trained, and the detector calibrated, on the ``train`` side; the ``held_back`` side is only
ever evaluated (``evaluate_changes.py``).

Also here: :class:`CachedEmbedder`, which keeps embeddings of the data on disk between runs of
the scripts (in ``$RAPPORT_EMBED_CACHE``, default a folder under the system's temp directory;
never committed).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RAPPORT_SHARED_DATA", ROOT.parent / "shared" / "data"))
FEEDBACK = DATA / "feedback" / "v6framework_230831.csv"
HELD_BACK_SHARE = 4  # one comment in four
PAIR_SEED = 20261201
PAIRS_PER_COMMENT = 3
_NOT_TOPICS = {
    "Not assigned",
    "Labelling not possible",
    "Positive experience & gratitude",
    "Negative experience & dissatisfaction",
}
STANCES = ("praise", "neutral", "criticism")


@dataclass(frozen=True)
class Comment:
    id: str
    trust: str
    question: str
    text: str
    sentiment: int  # 1 very positive .. 5 very negative
    rating: int | None  # FFT 1 very good .. 5 very poor; None for "don't know" (6, 7) or blank
    topics: frozenset[str]

    @property
    def stance(self) -> int:
        """0 praise, 1 neutral or mixed, 2 criticism."""
        return 0 if self.sentiment <= 2 else 1 if self.sentiment == 3 else 2

    @property
    def held_back(self) -> bool:
        return is_held_back(self.id)


def is_held_back(comment_id: str) -> bool:
    """One comment in four, by a hash of its Comment ID: the same answer on every machine."""
    return int(hashlib.sha256(comment_id.encode()).hexdigest(), 16) % HELD_BACK_SHARE == 0


@dataclass(frozen=True)
class Pair:
    previous: Comment
    current: Comment

    @property
    def changed(self) -> bool | None:
        """True for praise against criticism, False for the same stance, None when ambiguous."""
        a, b = self.previous.stance, self.current.stance
        if a == b:
            return False
        return True if {a, b} == {0, 2} else None


def read_comments(path: Path = FEEDBACK) -> list[Comment]:
    """Every labelled, non-empty answer (5,958 of 7,908)."""
    out = []
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        topics = [c for c in (reader.fieldnames or [])[11:] if c not in _NOT_TOPICS]
        for r in reader:
            text = " ".join((r["FFT answer"] or "").split())
            if r["Comment sentiment"] not in {"1", "2", "3", "4", "5"} or not text:
                continue
            if "did not answer" in text.lower():
                continue
            rating = r["FFT categorical answer"]
            out.append(
                Comment(
                    id=r["Comment ID"],
                    trust=r["Trust"],
                    question=" ".join(r["FFT question"].split()),
                    text=text,
                    sentiment=int(r["Comment sentiment"]),
                    rating=int(rating) if rating in {"1", "2", "3", "4", "5"} else None,
                    topics=frozenset(t for t in topics if r[t] == "1"),
                )
            )
    return out


def split(comments: Sequence[Comment], side: str) -> list[Comment]:
    if side not in {"train", "held_back"}:
        raise ValueError(side)
    return [c for c in comments if c.held_back == (side == "held_back")]


def build_pairs(comments: Sequence[Comment]) -> list[Pair]:
    """Seeded pairs of answers to the same question on a shared topic, within one side."""
    rng = np.random.default_rng(PAIR_SEED)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, c in enumerate(comments):
        for t in c.topics:
            groups[(c.trust, c.question + "\x00" + t)].append(i)
    neighbours: dict[int, set[int]] = defaultdict(set)
    for members in groups.values():
        for i in members:
            neighbours[i].update(j for j in members if j != i)
    seen: set[tuple[int, int]] = set()
    out = []
    for i in range(len(comments)):
        options = sorted(neighbours[i])
        if not options:
            continue
        for j in rng.choice(options, size=min(PAIRS_PER_COMMENT, len(options)), replace=False):
            key = (min(i, int(j)), max(i, int(j)))
            if key in seen:
                continue
            seen.add(key)
            out.append(Pair(comments[key[0]], comments[key[1]]))
    return out


class CachedEmbedder:
    """Wraps an embedder and keeps every vector on disk, keyed by model and text."""

    def __init__(self, inner: object | None = None, folder: Path | None = None) -> None:
        if inner is None:
            from memory.embeddings import SentenceTransformerEmbedder

            inner = SentenceTransformerEmbedder()
        self.inner = inner
        self.model_id: str = inner.model_id  # type: ignore[attr-defined]
        default = Path(tempfile.gettempdir()) / "rapport-embed-cache"
        self.folder = folder or Path(os.environ.get("RAPPORT_EMBED_CACHE", default))
        self.folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256(self.model_id.encode()).hexdigest()[:12]
        self.file = self.folder / f"{name}.npz"
        self.cache: dict[str, np.ndarray] = {}
        if self.file.is_file():
            with np.load(self.file, allow_pickle=False) as z:
                texts = json.loads(str(z["texts"])) if z["texts"].ndim == 0 else z["texts"].tolist()
                self.cache = dict(zip(texts, z["vectors"], strict=True))
        self._dirty = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.encode(todo), strict=True))  # type: ignore[attr-defined]
            self._dirty = True
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.vstack([self.cache[t] for t in texts]).astype(np.float32)

    def save(self) -> None:
        if not self._dirty:
            return
        texts = list(self.cache)
        tmp = self.file.with_suffix(".tmp.npz")
        np.savez(tmp, texts=np.array(json.dumps(texts)), vectors=np.vstack([self.cache[t] for t in texts]))
        tmp.replace(self.file)
        self._dirty = False
