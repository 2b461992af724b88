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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from memory import stance
from memory.embeddings import Embedder, from_bytes

if TYPE_CHECKING:
    from numpy.typing import NDArray

_DIM = 384
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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
    # Plain cosine similarity with that answer, for evaluation against the cosine baseline.
    similarity: float | None = None

    @property
    def reason_texts(self) -> list[str]:
        return [r.text for r in self.reasons]


@dataclass(frozen=True, kw_only=True)
class DetectorSettings:
    """Weights and thresholds; the defaults are the calibrated values (docs/change-detection.md)."""

    rating_delta: int = 2
    # Score at or above which the view counts as changed.
    threshold: float = 0.5
    # The text score is the chance that people would call two texts "different topics" at their
    # effective similarity: a logistic curve fitted on STS-B train (human score < 1 against cosine).
    drift_center: float = 0.342
    drift_width: float = 0.078
    # Unused since the drift curve replaced them; kept so that older callers still construct.
    same_cosine: float = 0.75
    different_cosine: float = 0.35
    # How far each signal, at full strength, lowers the effective similarity (in cosine units).
    stance_shift: float = 0.3
    negation_shift: float = 0.3
    opposite_shift: float = 0.6
    history_shift: float = 0.3
    # Themes explain a change but do not move the score: a shift of 0.05 raised the longitudinal
    # proxy AUC by 0.02 and cost 0.006 of STS-B Spearman.
    theme_shift: float = 0.0
    # |VADER compound| needed on both sides before a sign flip counts as a stance flip.
    stance_min: float = 0.2
    # The cosine ranges over which a tone flip, and a negation or opposite word, grow from not
    # counting to counting in full: between answers on different topics the drift says it all.
    stance_low: float = 0.5
    stance_high: float = 0.8
    contrast_low: float = 0.5
    contrast_high: float = 0.8
    # Share of content words (Jaccard) at which a negation or opposite word counts in full.
    contrast_overlap: float = 0.5
    # Two clauses carry the same idea at or above this cosine (theme diff).
    theme_match: float = 0.5
    # "Back to an older answer": close to it (cosine) and clearly closer to it than to the last one.
    history_match: float = 0.7
    history_margin: float = 0.2
    # Signals weaker than this still count in the score, but are not listed as reasons.
    reason_min: float = 0.15
    quote_chars: int = 120
    theme_chars: int = 60


def excerpt(text: str, limit: int = 120) -> str:
    """A short quote of someone's words: the first sentence, cut at a word boundary."""
    first = next(iter(stance.sentences(text)), "")
    if len(first) <= limit:
        # The quote sits inside a sentence of ours, so its own full stop would double up.
        return first.rstrip(".") if not first.endswith("...") else first
    cut = first[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def polarity(text: str) -> float:
    """VADER polarity in [-1, 1] (kept here for callers of the first version)."""
    return stance.polarity(text)


def _noisy_or(strengths: Sequence[float]) -> float:
    keep = 1.0
    for s in strengths:
        keep *= 1.0 - min(max(s, 0.0), 1.0)
    return 1.0 - keep


def _sign(x: float) -> str:
    return "positive" if x > 0 else "negative"


def _clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def _clean(text: str) -> str:
    return " ".join(text.split())


def _theme(text: str, limit: int) -> str:
    """A clause as the follow-up names it: the person's own words, as written, without the full stop.

    It is shown in quotation marks as theirs, so its case is theirs too ("It's fine", not "it's fine").
    """
    return excerpt(text, limit).rstrip(".!?")


class _Vectors:
    """Embeddings of every text one assessment needs, from a single ``encode`` call."""

    def __init__(self, embedder: Embedder, texts: Sequence[str], known: Mapping[str, NDArray[np.float32]]) -> None:
        self._known: dict[str, NDArray[np.float32]] = dict(known)
        todo = list(dict.fromkeys(t for t in texts if t not in self._known))
        if todo:
            encoded = embedder.encode(todo)
            self._known.update(zip(todo, encoded, strict=True))

    def __getitem__(self, text: str) -> NDArray[np.float32]:
        return self._known[text]

    def matrix(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            return np.zeros((0, _DIM), dtype=np.float32)
        return np.vstack([self._known[t] for t in texts]).astype(np.float32)


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
        text = _clean(text)
        known: dict[str, NDArray[np.float32]] = {}
        if embedding is not None:
            known[text] = np.asarray(embedding, dtype=np.float32)
        for h in history:
            if h.embedding is not None:
                known[_clean(h.text)] = from_bytes(h.embedding)
        needed = [text, *(_clean(h.text) for h in history)]
        if history:
            needed += self._clause_texts(_clean(history[-1].text), text)
        vectors = _Vectors(self.embedder, needed, known)
        return self._assess_one(text, rating, history, previous_rating, vectors)

    def assess_pairs(
        self,
        pairs: Sequence[tuple[str, str]],
        ratings: Sequence[tuple[int | None, int | None]] | None = None,
    ) -> list[Assessment]:
        """Batch form for evaluation and ``rapport compare --pairs``: (previous, current) pairs.

        All texts and clauses of the batch are embedded in one ``encode`` call, each distinct text
        once.
        """
        cleaned = [(_clean(p), _clean(c)) for p, c in pairs]
        needed: list[str] = []
        for prev, cur in cleaned:
            needed += [prev, cur, *self._clause_texts(prev, cur)]
        vectors = _Vectors(self.embedder, needed, {})
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
        vectors: _Vectors,
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
            before = _clean(previous.text)
            vec = vectors[text]
            cos = float(np.dot(vectors[before], vec))
            older = [_clean(h.text) for h in history[:-1]]
            older_sims = vectors.matrix(older) @ vec if older else np.zeros(0, dtype=np.float32)
            quote = excerpt(previous.text, s.quote_chars)
            signals += self._drift(cos, older_sims, quote)
            signals += self._stance(before, text, cos, quote)
            signals += self._contrast(before, text, cos, vectors)
            signals += self._themes(before, text, vectors, quote)
            if older:
                signals += self._history(history, cos, older_sims)

        score = self._score(cos, signals)
        reasons = sorted((r for r in signals if r.strength >= s.reason_min), key=lambda r: r.strength, reverse=True)
        return Assessment(
            changed=score >= s.threshold,
            score=round(score, 6),
            reasons=tuple(reasons),
            compared_to=previous,
            similarity=None if cos is None else round(cos, 4),
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
        return _noisy_or(parts)

    def _shift(self, reason: Reason) -> float:
        s = self.settings
        if reason.kind == "stance":
            signal = str(reason.data.get("signal", ""))
            return {"negation": s.negation_shift, "opposite": s.opposite_shift}.get(signal, s.stance_shift)
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
        gate = _clip01((cos - s.stance_low) / max(s.stance_high - s.stance_low, 1e-6))
        return [
            Reason(
                kind="stance",
                text=f"the tone turned from {_sign(was)} to {_sign(now)}",
                strength=gate,
                quote=quote,
                data={"signal": "polarity", "previous": round(was, 3), "current": round(now, 3)},
            )
        ]

    def _contrast(self, before: str, after: str, cos: float, vectors: _Vectors) -> list[Reason]:
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
            gate = _clip01((sim - s.contrast_low) / max(s.contrast_high - s.contrast_low, 1e-6))
            # A contradiction restates the other text with a twist; news about a different event
            # that happens to hold a "not" shares few words with it.
            shared = _clip01(stance.overlap(old, new, found.words) / s.contrast_overlap) if s.contrast_overlap else 1.0
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

    def _themes(self, before: str, after: str, vectors: _Vectors, quote: str) -> list[Reason]:
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
            themes = [_theme(t, s.theme_chars) for t in new]
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
            themes = [_theme(t, s.theme_chars) for t in gone]
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
        strength = _clip01((sim - cos) / (2 * s.history_margin))
        return [
            Reason(
                kind="history",
                text=f"the answer is back to what was said on {older.answered_at:%d %b %Y}",
                strength=strength,
                quote=excerpt(older.text, s.quote_chars),
                data={"cosine": round(sim, 3), "answered_at": older.answered_at.isoformat()},
            )
        ]
