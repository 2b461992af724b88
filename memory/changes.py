"""Change detection: did this person's view move since they last answered?

Cosine similarity of sentence embeddings measures *topic*, not *stance*: "I like the new dashboard"
and "I dislike the new dashboard" are 0.90 apart by cosine. So the detector combines signals, and
each one that fires carries a reason a person can read:

* ``rating``  the rating for the same question moved by at least ``rating_delta`` points;
* ``drift``   the new words are about something else than the previous answer;
* ``stance``  the polarity flipped (lexicon-based, with negation handling, from VADER);
* ``history`` the answer left the person's usual ground, or went back to an old one.

The score is a noisy-OR of the signal strengths, in [0, 1]: 0 is the same view, 1 fully changed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memory.embeddings import Embedder, from_bytes

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True, kw_only=True)
class PastAnswer:
    """One earlier free-text answer of the same person to the same question."""

    text: str
    answered_at: dt.datetime
    rating: int | None = None
    answer_id: int | None = None
    embedding: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class Reason:
    """One signal that fired, in words a person can read."""

    kind: str
    text: str
    strength: float
    # The person's own earlier words this reason is about, if any.
    quote: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text, "strength": round(self.strength, 3)}
        if self.quote is not None:
            out["quote"] = self.quote
        if self.data:
            out["data"] = self.data
        return out


@dataclass(frozen=True, kw_only=True)
class Assessment:
    changed: bool
    score: float
    reasons: tuple[Reason, ...]
    # The earlier answer the follow-up should quote.
    compared_to: PastAnswer | None = None

    @property
    def reason_texts(self) -> list[str]:
        return [r.text for r in self.reasons]


@dataclass(frozen=True, kw_only=True)
class DetectorSettings:
    rating_delta: int = 2
    threshold: float = 0.5
    # Cosine at or above which two answers say the same thing, and at or below which they are
    # about different things; drift strength is linear in between.
    same_cosine: float = 0.75
    different_cosine: float = 0.35
    # |VADER compound| needed on both sides before a sign flip counts as a stance change.
    stance_min: float = 0.2
    quote_chars: int = 120


class Polarity:
    """Sentence polarity in [-1, 1] from VADER's lexicon (MIT), which handles negation."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def __call__(self, text: str) -> float:
        return float(self._analyzer.polarity_scores(text)["compound"])


_polarity: Polarity | None = None


def polarity(text: str) -> float:
    global _polarity
    if _polarity is None:
        _polarity = Polarity()
    return _polarity(text)


_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def excerpt(text: str, limit: int = 120) -> str:
    """A short quote of someone's words: the first sentence, cut at a word boundary."""
    flat = " ".join(text.split())
    first = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(first) <= limit:
        # The quote sits inside a sentence of ours, so its own full stop would double up.
        return first.rstrip(".") if not first.endswith("...") else first
    cut = first[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _noisy_or(strengths: Sequence[float]) -> float:
    keep = 1.0
    for s in strengths:
        keep *= 1.0 - min(max(s, 0.0), 1.0)
    return 1.0 - keep


class ChangeDetector:
    """Compares a new free-text answer (and rating) with the same person's earlier answers."""

    def __init__(self, *, embedder: Embedder, settings: DetectorSettings | None = None) -> None:
        self.embedder = embedder
        self.settings = settings or DetectorSettings()

    def assess(
        self,
        *,
        text: str,
        rating: int | None,
        history: Sequence[PastAnswer],
        previous_rating: int | None = None,
        embedding: NDArray[np.float32] | None = None,
    ) -> Assessment:
        """``history`` is oldest first; its last item is the previous answer."""
        if not history and previous_rating is None:
            return Assessment(changed=False, score=0.0, reasons=())
        vec = embedding if embedding is not None else self.embedder.encode([text])[0]
        past_vecs = self._vectors(history)
        return self._assess_one(text, rating, vec, history, past_vecs, previous_rating)

    def assess_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        ratings: Sequence[tuple[int | None, int | None]] | None = None,
    ) -> list[Assessment]:
        """Batch form for evaluation and ``rapport compare --pairs``: (previous, current) pairs."""
        texts = [p for p, _ in pairs] + [c for _, c in pairs]
        vecs = self.embedder.encode(texts) if texts else np.zeros((0, 384), dtype=np.float32)
        n = len(pairs)
        epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        out = []
        for i, (prev, cur) in enumerate(pairs):
            prev_rating, cur_rating = ratings[i] if ratings else (None, None)
            past = PastAnswer(text=prev, answered_at=epoch, rating=prev_rating)
            out.append(self._assess_one(cur, cur_rating, vecs[n + i], [past], vecs[i : i + 1], prev_rating))
        return out

    def _vectors(self, history: Sequence[PastAnswer]) -> NDArray[np.float32]:
        if not history:
            return np.zeros((0, 384), dtype=np.float32)
        missing = [i for i, h in enumerate(history) if h.embedding is None]
        fresh = self.embedder.encode([history[i].text for i in missing]) if missing else None
        rows: list[NDArray[np.float32]] = []
        j = 0
        for h in history:
            if h.embedding is None:
                assert fresh is not None
                rows.append(fresh[j])
                j += 1
            else:
                rows.append(from_bytes(h.embedding))
        return np.vstack(rows).astype(np.float32)

    def _assess_one(
        self,
        text: str,
        rating: int | None,
        vec: NDArray[np.float32],
        history: Sequence[PastAnswer],
        past_vecs: NDArray[np.float32],
        previous_rating: int | None,
    ) -> Assessment:
        s = self.settings
        reasons: list[Reason] = []
        previous = history[-1] if history else None
        if previous_rating is None and previous is not None:
            previous_rating = previous.rating
        quote = excerpt(previous.text, s.quote_chars) if previous is not None else None

        if rating is not None and previous_rating is not None:
            delta = rating - previous_rating
            if abs(delta) >= s.rating_delta:
                direction = "rose" if delta > 0 else "fell"
                reasons.append(
                    Reason(
                        kind="rating",
                        text=f"rating {direction} from {previous_rating} to {rating}",
                        strength=min(1.0, abs(delta) / (2 * s.rating_delta)) * 0.5 + 0.5,
                        data={"previous": previous_rating, "current": rating, "delta": delta},
                    )
                )

        if previous is not None and len(past_vecs):
            cos = float(np.dot(past_vecs[-1], vec))
            span = max(s.same_cosine - s.different_cosine, 1e-6)
            drift = min(1.0, max(0.0, (s.same_cosine - cos) / span))
            if drift > 0:
                reasons.append(
                    Reason(
                        kind="drift",
                        text="the reason is about something different from last time",
                        strength=drift,
                        quote=quote,
                        data={"cosine": round(cos, 3)},
                    )
                )

            before, now = polarity(previous.text), polarity(text)
            if before * now < 0 and min(abs(before), abs(now)) >= s.stance_min:
                was = "positive" if before > 0 else "negative"
                became = "positive" if now > 0 else "negative"
                reasons.append(
                    Reason(
                        kind="stance",
                        text=f"the tone turned from {was} to {became}",
                        strength=min(1.0, abs(before - now) / 1.2),
                        quote=quote,
                        data={"previous": round(before, 3), "current": round(now, 3)},
                    )
                )

            if len(past_vecs) >= 2:
                sims = past_vecs[:-1] @ vec
                best = int(np.argmax(sims))
                if float(sims[best]) >= s.same_cosine and cos < s.different_cosine + 0.1:
                    older = history[best]
                    reasons.append(
                        Reason(
                            kind="history",
                            text="the answer is back to what was said earlier",
                            strength=0.6,
                            quote=excerpt(older.text, s.quote_chars),
                            data={"cosine": round(float(sims[best]), 3), "answered_at": older.answered_at.isoformat()},
                        )
                    )

        score = _noisy_or([r.strength for r in reasons])
        reasons.sort(key=lambda r: r.strength, reverse=True)
        changed = score >= s.threshold
        return Assessment(changed=changed, score=round(score, 4), reasons=tuple(reasons), compared_to=previous)
