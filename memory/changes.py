"""Change detection: did this person's view move since they last answered?

Cosine similarity of sentence embeddings measures *topic*, not *stance*: "I like the new dashboard"
and "I dislike the new dashboard" have cosine 0.90, while a true paraphrase can score 0.40.
So the detector combines signals, and each one that fires carries a reason a person can read:

* ``rating``      the rating for the same question moved by at least ``rating_delta`` points;
* ``drift``       the new words are about something else than the previous answer (or than
                  anything the person said before);
* ``stance``      the stance flipped between answers about the same thing: one negates what
                  the other says, a word became its opposite, or the tone (VADER polarity)
                  turned from positive to negative or back;
* ``appeared``    an idea the person did not mention last time;
* ``disappeared`` an idea from last time that is gone today;
* ``history``     the answer left the previous one and went back to an older one.

The text signals lower an *effective similarity* (cosine minus a shift per signal), which a
logistic curve turns into a score in [0, 1] (0 is the same view, 1 fully changed); a rating change
joins by noisy-OR. Where no signal fires, the score ranks pairs exactly as cosine does.
Every default below was calibrated on public data; ``docs/change-detection.md`` says how.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from memory import stance, stance_head
from memory.change_types import (
    Assessment,
    DetectorSettings,
    PastAnswer,
    Reason,
    clean,
    clip01,
    excerpt,
    noisy_or,
    polarity,
    sign_word,
    theme_words,
)
from memory.embeddings import Embedder, Vectors, from_bytes
from memory.non_answers import is_non_answer
from memory.stance_head import READS_AS, StanceHead, default_head

__all__ = [
    "Assessment",
    "ChangeDetector",
    "DetectorSettings",
    "PastAnswer",
    "Reason",
    "excerpt",
    "is_non_answer",
    "polarity",
]

if TYPE_CHECKING:
    from numpy.typing import NDArray

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _reading(learned: Reason) -> dict[str, Any]:
    return {
        "previous": learned.data["previous"],
        "current": learned.data["current"],
        "change": learned.data["change"],
    }


class ChangeDetector:
    """Compares a new free-text answer (and rating) with the same person's earlier answers."""

    def __init__(
        self, *, embedder: Embedder, settings: DetectorSettings | None = None, stance_head: StanceHead | None = None
    ) -> None:
        self.embedder = embedder
        self.settings = settings or DetectorSettings()
        # The shipped head unless one is given; loaded on first use (a few kB, numpy only).
        self._head = stance_head

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
        return self.embed_and_assess(
            text=text, rating=rating, history=history, previous_rating=previous_rating, embedding=embedding
        )[1]

    def embed_and_assess(
        self,
        *,
        text: str,
        rating: int | None,
        history: Sequence[PastAnswer],
        previous_rating: int | None = None,
        embedding: NDArray[np.float32] | None = None,
    ) -> tuple[NDArray[np.float32], Assessment]:
        """The answer's embedding and its assessment, from one ``encode`` call for the answer, its
        clauses and any earlier answer stored without an embedding."""
        text = clean(text)
        known: dict[str, NDArray[np.float32]] = {}
        if embedding is not None:
            known[text] = np.asarray(embedding, dtype=np.float32)
        for h in history:
            if h.embedding is not None:
                known[clean(h.text)] = from_bytes(h.embedding)
        needed = [text, *(clean(h.text) for h in history)]
        if history:
            needed += self._clause_texts(clean(history[-1].text), text)
        vectors = Vectors(self.embedder, needed, known)
        if not history and previous_rating is None:
            return vectors[text], Assessment(changed=False, score=0.0, reasons=())
        return vectors[text], self._assess_one(text, rating, history, previous_rating, vectors)

    def assess_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        ratings: Sequence[tuple[int | None, int | None]] | None = None,
    ) -> list[Assessment]:
        """Batch form for evaluation and ``rapport compare --pairs``: (previous, current) pairs.

        All texts and clauses of the batch are embedded in one ``encode`` call, each distinct text
        once.
        """
        cleaned = [(clean(p), clean(c)) for p, c in pairs]
        needed: list[str] = []
        for prev, cur in cleaned:
            needed += [prev, cur, *self._clause_texts(prev, cur)]
        vectors = Vectors(self.embedder, needed, {})
        out = []
        for i, (prev, cur) in enumerate(cleaned):
            prev_rating, cur_rating = ratings[i] if ratings else (None, None)
            past = PastAnswer(text=prev, answered_at=_EPOCH, rating=prev_rating)
            out.append(self._assess_one(cur, cur_rating, [past], prev_rating, vectors))
        return out

    # Signals ----------------------------------------------------------------------------------

    @staticmethod
    def _clause_texts(previous: str, current: str) -> list[str]:
        a, b = stance.clauses(previous), stance.clauses(current)
        if len(a) < 2 and len(b) < 2:
            return []
        return [*a, *b]

    def _assess_one(
        self,
        text: str,
        rating: int | None,
        history: Sequence[PastAnswer],
        previous_rating: int | None,
        vectors: Vectors,
    ) -> Assessment:
        s = self.settings
        signals: list[Reason] = []
        cos: float | None = None
        previous = history[-1] if history else None
        if previous_rating is None and previous is not None:
            previous_rating = previous.rating

        if rating is not None and previous_rating is not None:
            signals += self._rating(rating, previous_rating)

        if previous is not None:
            before = clean(previous.text)
            vec = vectors[text]
            cos = float(np.dot(vectors[before], vec))
            older = [clean(h.text) for h in history[:-1]]
            older_sims = vectors.matrix(older) @ vec if older else np.zeros(0, dtype=np.float32)
            quote = excerpt(previous.text, s.quote_chars)
            signals += self._drift(cos, older_sims, quote)
            signals += self._stance(before, text, cos, quote)
            signals += self._learned(before, text, vectors, quote)
            signals += self._contrast(before, text, cos, vectors)
            signals += self._themes(before, text, vectors, quote)
            if older:
                signals += self._history(history, cos, older_sims)

        score = self._score(cos, signals)
        learned = next((r for r in signals if r.data.get("signal") == "learned"), None)
        reasons = sorted((r for r in signals if r.strength >= s.reason_min), key=lambda r: r.strength, reverse=True)
        return Assessment(
            changed=score >= s.threshold,
            score=round(score, 6),
            reasons=tuple(reasons),
            compared_to=previous,
            similarity=None if cos is None else round(cos, 4),
            stance=None if learned is None else _reading(learned),
        )

    def _score(self, similarity: float | None, signals: Sequence[Reason]) -> float:
        """One number in [0, 1] from the signals.

        Text signals lower an *effective similarity* (cosine minus a shift per signal), which the
        drift curve turns into a score. Working in cosine units keeps cosine's ranking where no
        signal fires, so the score does not lose what cosine already gets right. A rating change
        is separate evidence and joins by noisy-OR.
        """
        s = self.settings
        parts = [r.strength for r in signals if r.kind == "rating"]
        if similarity is not None:
            effective = similarity - sum(self._shift(r) * r.strength for r in signals)
            parts.append(1.0 / (1.0 + math.exp(-(s.drift_center - effective) / s.drift_width)))
        return noisy_or(parts)

    def _shift(self, reason: Reason) -> float:
        s = self.settings
        if reason.kind == "stance":
            signal = str(reason.data.get("signal", ""))
            shifts = {"negation": s.negation_shift, "opposite": s.opposite_shift, "learned": s.learned_shift}
            return shifts.get(signal, s.stance_shift)
        shifts = {"appeared": s.theme_shift, "disappeared": s.theme_shift, "history": s.history_shift}
        return shifts.get(reason.kind, 0.0)

    def _rating(self, rating: int, previous_rating: int) -> list[Reason]:
        s = self.settings
        delta = rating - previous_rating
        if abs(delta) < s.rating_delta:
            return []
        direction = "rose" if delta > 0 else "fell"
        return [
            Reason(
                kind="rating",
                text=f"rating {direction} from {previous_rating} to {rating}",
                strength=min(1.0, abs(delta) / (2 * s.rating_delta)) * 0.5 + 0.5,
                data={"previous": previous_rating, "current": rating, "delta": delta},
            )
        ]

    def _drift(self, cos: float, older_sims: NDArray[np.float32], quote: str) -> list[Reason]:
        s = self.settings
        drift = 1.0 / (1.0 + math.exp(-(s.drift_center - cos) / s.drift_width))
        data: dict[str, Any] = {"cosine": round(cos, 3)}
        text = f"the reason is about something different from last time (similarity {cos:.2f})"
        if len(older_sims):
            best = float(np.max(older_sims))
            data["closest_earlier_cosine"] = round(best, 3)
            if max(best, cos) < s.drift_center:
                text = f"the reason is unlike anything said before (closest similarity {max(best, cos):.2f})"
        return [Reason(kind="drift", text=text, strength=drift, quote=quote, data=data)]

    def _stance(self, before: str, after: str, cos: float, quote: str) -> list[Reason]:
        """A flip of tone (VADER polarity) between answers about the same thing.

        Between answers on different topics the drift already says it all, so the flip counts in
        full only from ``stance_high`` cosine up. A mere shift of tone without a flip is not
        counted: on STS-B it cost more than it told.
        """
        s = self.settings
        was, now = stance.polarity(before), stance.polarity(after)
        if was * now >= 0 or min(abs(was), abs(now)) < s.stance_min:
            return []
        gate = clip01((cos - s.stance_low) / max(s.stance_high - s.stance_low, 1e-6))
        return [
            Reason(
                kind="stance",
                text=f"the tone turned from {sign_word(was)} to {sign_word(now)}",
                strength=gate,
                quote=quote,
                data={"signal": "polarity", "previous": round(was, 3), "current": round(now, 3)},
            )
        ]

    @property
    def stance_head(self) -> StanceHead:
        if self._head is None:
            self._head = default_head()
        return self._head

    def _learned(self, before: str, after: str, vectors: Vectors, quote: str) -> list[Reason]:
        """The learned stance head: did the answer read as praise last time and as a complaint today
        (or the other way round)? Weak changes of reading count little (``learned_floor``,
        ``learned_power``): an unsure head reads news headlines as mild complaints."""
        s = self.settings
        if not s.learned_shift:
            return []
        p = self.stance_head.probabilities(vectors.matrix([before, after]), [before, after])
        moved = stance_head.change(p[0], p[1])
        strength = clip01((moved - s.learned_floor) / max(1.0 - s.learned_floor, 1e-6)) ** s.learned_power
        was, now = (stance_head.reads_as(x) for x in p)
        if was == now:
            # The same reading, less or more sure: name the direction it moved in.
            up = stance_head.valence(p[1]) > stance_head.valence(p[0])
            was, now = ("criticism", "praise") if up else ("praise", "criticism")
            text = f"last time this read more as {READS_AS[was]}; today more as {READS_AS[now]}"
        else:
            text = f"last time this read as {READS_AS[was]}; today as {READS_AS[now]}"
        data = {
            "signal": "learned",
            "change": round(moved, 3),
            "previous": dict(zip(stance_head.OUTPUT, np.round(p[0], 3).tolist(), strict=True)),
            "current": dict(zip(stance_head.OUTPUT, np.round(p[1], 3).tolist(), strict=True)),
        }
        return [Reason(kind="stance", text=text, strength=strength, quote=quote, data=data)]

    def _contrast(self, before: str, after: str, cos: float, vectors: Vectors) -> list[Reason]:
        """A negation or an opposite word between aligned texts (whole answers or clauses)."""
        s = self.settings
        a, b = stance.clauses(before), stance.clauses(after)
        if len(a) < 2 and len(b) < 2:
            aligned = [(before, after, cos)]
        else:
            sims = vectors.matrix(a) @ vectors.matrix(b).T
            aligned = []
            for j, clause in enumerate(b):
                i = int(np.argmax(sims[:, j]))
                if float(sims[i, j]) >= s.theme_match:
                    aligned.append((a[i], clause, float(sims[i, j])))
        best: Reason | None = None
        for old, new, sim in aligned:
            found = stance.contrast(old, new)
            if found is None:
                continue
            if found.kind == "negation":
                was, now = stance.polarity(old), stance.polarity(new)
                # "Great service, no waiting" and "Great service": both clearly positive, no flip.
                if was * now > 0 and min(abs(was), abs(now)) >= 0.3:
                    continue
            gate = clip01((sim - s.contrast_low) / max(s.contrast_high - s.contrast_low, 1e-6))
            # A contradiction restates the other text with a twist; news about a different event
            # that happens to hold a "not" shares few words with it.
            shared = clip01(stance.overlap(old, new, found.words) / s.contrast_overlap) if s.contrast_overlap else 1.0
            strength = min(gate, shared)
            if best is None or strength > best.strength:
                best = Reason(
                    kind="stance",
                    text=f"the answer now says the opposite: {found.describe()}",
                    strength=strength,
                    quote=excerpt(old, s.quote_chars),
                    data={**found.as_data(), "cosine": round(sim, 3)},
                )
        return [best] if best is not None else []

    def _themes(self, before: str, after: str, vectors: Vectors, quote: str) -> list[Reason]:
        """Ideas that appeared or disappeared, by matching clause to clause."""
        s = self.settings
        a, b = stance.clauses(before), stance.clauses(after)
        if len(a) < 2 and len(b) < 2:
            return []
        sims = vectors.matrix(a) @ vectors.matrix(b).T
        gone = [a[i] for i in range(len(a)) if float(np.max(sims[i])) < s.theme_match]
        new = [b[j] for j in range(len(b)) if float(np.max(sims[:, j])) < s.theme_match]
        out = []
        if new:
            themes = [theme_words(t, s.theme_chars) for t in new]
            out.append(
                Reason(
                    kind="appeared",
                    text="new this time: " + "; ".join(f"“{t}”" for t in themes),
                    strength=len(new) / len(b),
                    quote=quote,
                    data={"theme": themes[0], "themes": themes},
                )
            )
        if gone:
            themes = [theme_words(t, s.theme_chars) for t in gone]
            out.append(
                Reason(
                    kind="disappeared",
                    text="mentioned last time, not today: " + "; ".join(f"“{t}”" for t in themes),
                    strength=len(gone) / len(a),
                    quote=excerpt(gone[0], s.quote_chars),
                    data={"theme": themes[0], "themes": themes},
                )
            )
        return out

    def _history(self, history: Sequence[PastAnswer], cos: float, older_sims: NDArray[np.float32]) -> list[Reason]:
        s = self.settings
        best = int(np.argmax(older_sims))
        sim = float(older_sims[best])
        if sim < s.history_match or sim - cos < s.history_margin:
            return []
        older = history[best]
        strength = clip01((sim - cos) / (2 * s.history_margin))
        return [
            Reason(
                kind="history",
                text=f"the answer is back to what was said on {older.answered_at:%d %b %Y}",
                strength=strength,
                quote=excerpt(older.text, s.quote_chars),
                data={"cosine": round(sim, 3), "answered_at": older.answered_at.isoformat()},
            )
        ]
