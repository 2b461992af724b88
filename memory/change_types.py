"""The values change detection works with: past answers, reasons, assessments and settings.

They live apart from the detector (``memory.changes``, which re-exports them) so that callers that
only quote or store them need not read the detector, and so each file stays small.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memory import stance


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
    # What the learned stance head read in each answer, even when it did not count as a reason:
    # {"previous": {"praise": p, "neutral": p, "criticism": p}, "current": {...}, "change": c}.
    stance: dict[str, Any] | None = None

    @property
    def reason_texts(self) -> list[str]:
        return [r.text for r in self.reasons]


@dataclass(frozen=True, kw_only=True)
class DetectorSettings:
    """Weights and thresholds; the defaults are the calibrated values (docs/change-detection.md)."""

    rating_delta: int = 2
    # Score at or above which the view counts as changed.
    threshold: float = 0.5
    # The text score is a logistic curve of the effective similarity. Its width was fitted on STS-B
    # train (human score < 1 against cosine, centre 0.342 there); the centre is where the score
    # crosses the decision threshold, set on the train side of the NHS development pairs so that
    # new wording alone is not a change (calibrate_changes.py).
    drift_center: float = 0.074
    drift_width: float = 0.078
    # Unused since the drift curve replaced them; kept so that older callers still construct.
    same_cosine: float = 0.75
    different_cosine: float = 0.35
    # How far each signal, at full strength, lowers the effective similarity (in cosine units).
    stance_shift: float = 0.3
    negation_shift: float = 0.3
    opposite_shift: float = 0.6
    history_shift: float = 0.3
    # The learned stance head (memory/stance_head.py). Its reading moves by ``change`` in [0, 1]
    # between the answers (1: sure praise against sure criticism); the signal's strength is
    # ((change - floor) / (1 - floor)) ** power, and at full strength it lowers the effective
    # similarity by ``learned_shift``. 0 turns the head off.
    learned_shift: float = 3.0
    learned_floor: float = 0.05
    learned_power: float = 2.0
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


def noisy_or(strengths: Sequence[float]) -> float:
    keep = 1.0
    for s in strengths:
        keep *= 1.0 - min(max(s, 0.0), 1.0)
    return 1.0 - keep


def sign_word(x: float) -> str:
    return "positive" if x > 0 else "negative"


def clip01(x: float) -> float:
    return min(1.0, max(0.0, x))


def clean(text: str) -> str:
    return " ".join(text.split())


def theme_words(text: str, limit: int) -> str:
    """A clause as the follow-up names it: the person's own words, as written, without the full stop.

    It is shown in quotation marks as theirs, so its case is theirs too ("It's fine", not "it's fine").
    """
    return excerpt(text, limit).rstrip(".!?")
