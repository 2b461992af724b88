"""Change detection: what a person would notice if the memory got it wrong.

Tests marked ``model`` run the real all-MiniLM-L6-v2; the others use the hashing stand-in or no
model at all.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import spearmanr

from memory import stance
from memory.changes import Assessment, ChangeDetector, DetectorSettings, PastAnswer
from memory.embeddings import Embedder, to_bytes
from tests.fakes.embedder import HashingEmbedder

MARCH = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
SEPTEMBER = dt.datetime(2025, 9, 10, 9, 0, tzinfo=dt.UTC)
NEXT_MARCH = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


def compare(embedder: Embedder, previous: str, current: str) -> Assessment:
    detector = ChangeDetector(embedder=embedder)
    return detector.assess(text=current, rating=None, history=[PastAnswer(text=previous, answered_at=MARCH)])


def kinds(assessment: Assessment) -> list[str]:
    return [r.kind for r in assessment.reasons]


class CountingEmbedder:
    """The real model, counting calls and texts, to check that work is batched.

    Each text is encoded alone underneath: onnx-int8 (the default) scales its int8 activations per
    batch, so a vector moves a little with its batch mates (cosine > 0.98, the parity tests), and
    a score by a few hundredths. What is checked here is the detector's batching, not the model's."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append(len(texts))
        if not texts:
            return self.inner.encode(texts)
        return np.vstack([self.inner.encode([t]) for t in texts]).astype(np.float32)


# The real model ------------------------------------------------------------------------------


@pytest.mark.model
def test_a_paraphrase_is_not_a_change(embedder: Embedder) -> None:
    # New words, low cosine (0.41), the same complaint: 0.02 on both backends. The pair these
    # tests used before, "... / Getting started was hard to understand", is not clearly decided:
    # 0.30 on torch, 0.55 to 0.64 on the default onnx-int8 (its stance head reads the second
    # sentence as praise, 68%), so it is asked about there (docs/performance.md).
    found = compare(embedder, "The onboarding was confusing", "I found getting started confusing")
    assert not found.changed
    assert found.score < DetectorSettings().threshold


@pytest.mark.model
def test_the_same_words_are_not_a_change(embedder: Embedder) -> None:
    found = compare(embedder, "Support answers quickly and kindly.", "Support answers quickly and kindly.")
    assert not found.changed
    assert found.score < 0.05
    assert found.reasons == ()


@pytest.mark.model
@pytest.mark.parametrize(
    ("previous", "current"),
    [
        ("I like the new dashboard", "I dislike the new dashboard"),
        ("I like the new dashboard", "I don't like the new dashboard"),
        ("The reports are accurate and helpful", "The reports are not accurate and not helpful"),
    ],
)
def test_a_negated_view_is_a_change_that_cosine_misses(embedder: Embedder, previous: str, current: str) -> None:
    found = compare(embedder, previous, current)
    assert found.similarity is not None
    assert found.similarity > 0.6  # cosine alone calls these the same
    assert found.changed
    assert found.reasons[0].kind == "stance"
    assert found.reasons[0].quote == previous


@pytest.mark.model
def test_an_opposite_word_is_named_in_the_reason(embedder: Embedder) -> None:
    found = compare(embedder, "Support is fast", "Support is slow")
    opposite = [r for r in found.reasons if r.data.get("signal") == "opposite"]
    assert opposite, found.reasons
    assert opposite[0].data["words"] == ["fast", "slow"]
    assert "“fast” became “slow”" in opposite[0].text


@pytest.mark.model
def test_a_changed_opinion_on_another_subject_is_a_change(embedder: Embedder) -> None:
    found = compare(
        embedder,
        "The team is supportive and I enjoy my work",
        "I feel burned out and my manager ignores me",
    )
    assert found.changed
    # Another subject (low cosine), but what the follow-up names is the change of view: new words
    # alone are not a change, so the drift counts little next to the flip the stance head reads.
    assert (found.similarity or 0.0) < 0.5
    assert found.reasons[0].text == "last time this read as praise; today as a complaint"


@pytest.mark.model
def test_negations_rank_above_paraphrases_where_cosine_cannot_tell(embedder: Embedder) -> None:
    detector = ChangeDetector(embedder=embedder)
    negated = detector.assess_pairs(
        [
            ("I like the new dashboard", "I dislike the new dashboard"),
            ("The staff were helpful", "The staff were not helpful"),
        ]
    )
    paraphrased = detector.assess_pairs(
        [
            ("The onboarding was confusing", "I found getting started confusing"),
            ("The reporting is great and saves us hours every week.",
             "The reports are excellent and save us many hours each week."),
        ]
    )  # fmt: skip
    # Cosine cannot separate them: a paraphrase is less similar than the negations.
    assert min(a.similarity or 0.0 for a in negated) > min(a.similarity or 0.0 for a in paraphrased)
    assert min(a.score for a in negated) > max(a.score for a in paraphrased)
    assert [a.changed for a in negated + paraphrased] == [True, True, False, False]


@pytest.mark.model
def test_a_theme_that_disappeared_and_one_that_appeared_are_named(embedder: Embedder) -> None:
    found = compare(
        embedder,
        "The onboarding was fast, and the support team answers within the hour.",
        "The support team answers within the hour. But the invoices are always wrong.",
    )
    by_kind = {r.kind: r for r in found.reasons}
    assert "appeared" in by_kind, found.reasons
    assert "disappeared" in by_kind, found.reasons
    assert "invoices" in by_kind["appeared"].data["theme"]
    assert "onboarding" in by_kind["disappeared"].data["theme"]
    assert "onboarding" in (by_kind["disappeared"].quote or "")
    # The idea that stayed is not reported as new or gone.
    assert not any("support team" in t for t in by_kind["appeared"].data["themes"])
    assert not any("support team" in t for t in by_kind["disappeared"].data["themes"])


@pytest.mark.model
def test_back_to_what_was_said_a_year_ago(embedder: Embedder) -> None:
    detector = ChangeDetector(embedder=embedder)
    history = [
        PastAnswer(text="Deployments break every week and nobody owns the fixes", answered_at=MARCH),
        PastAnswer(text="The new release process made shipping calm and predictable", answered_at=SEPTEMBER),
    ]
    found = detector.assess(text="Deployments keep breaking every week and no one owns fixing them", rating=None,
                            history=history)  # fmt: skip
    assert found.changed
    back = [r for r in found.reasons if r.kind == "history"]
    assert back, found.reasons
    assert back[0].quote is not None
    assert back[0].quote.startswith("Deployments break every week")
    assert back[0].data["answered_at"] == MARCH.isoformat()
    assert found.compared_to is history[-1]


@pytest.mark.model
def test_stored_embeddings_are_used_and_texts_encoded_once(embedder: Embedder) -> None:
    counting = CountingEmbedder(embedder)
    detector = ChangeDetector(embedder=counting)
    earlier = "The onboarding was fast"
    history = [PastAnswer(text=earlier, answered_at=MARCH, embedding=to_bytes(embedder.encode([earlier])[0]))]
    detector.assess(text="Onboarding took weeks and nobody helped", rating=None, history=history)
    assert counting.calls == [1]  # only the new answer; the stored vector is reused


@pytest.mark.model
def test_pairs_are_embedded_in_one_batch_and_match_the_single_path(embedder: Embedder) -> None:
    counting = CountingEmbedder(embedder)
    detector = ChangeDetector(embedder=counting)
    pairs = [
        ("I like the new dashboard", "I dislike the new dashboard"),
        ("Fast onboarding. Friendly support.", "Friendly support. But the invoices are wrong."),
        ("I like the new dashboard", "I like the new dashboard"),
    ]
    batched = detector.assess_pairs(pairs)
    assert len(counting.calls) == 1
    # Each distinct text and clause once: 4 texts, and 3 clauses of the two-sentence answers.
    assert counting.calls[0] == 7
    for (previous, current), together in zip(pairs, batched, strict=True):
        alone = detector.assess(text=current, rating=None, history=[PastAnswer(text=previous, answered_at=MARCH)])
        assert alone.changed == together.changed
        assert math.isclose(alone.score, together.score, abs_tol=1e-4)
        assert [r.text for r in alone.reasons] == [r.text for r in together.reasons]


# Without the model ---------------------------------------------------------------------------


def test_a_rating_that_fell_is_a_change_with_its_numbers() -> None:
    detector = ChangeDetector(embedder=HashingEmbedder())
    history = [PastAnswer(text="Good value", answered_at=MARCH, rating=9)]
    found = detector.assess(text="Good value", rating=4, history=history)
    assert found.changed
    assert found.reasons[0].kind == "rating"
    assert found.reasons[0].data == {"previous": 9, "current": 4, "delta": -5}
    assert found.reasons[0].text == "rating fell from 9 to 4"


def test_a_rating_that_moved_one_point_is_not_a_change() -> None:
    detector = ChangeDetector(embedder=HashingEmbedder())
    history = [PastAnswer(text="Good value", answered_at=MARCH, rating=8)]
    found = detector.assess(text="Good value", rating=7, history=history)
    assert not found.changed
    assert "rating" not in kinds(found)


def test_nothing_to_compare_with_is_no_change() -> None:
    found = ChangeDetector(embedder=HashingEmbedder()).assess(text="Hello", rating=7, history=[])
    assert found == Assessment(changed=False, score=0.0, reasons=())


def test_the_score_stays_in_the_unit_interval() -> None:
    detector = ChangeDetector(embedder=HashingEmbedder())
    texts = ["", "No.", "I love it", "I hate it, it is not good, never", "x " * 500]
    for previous in texts:
        for current in texts:
            found = detector.assess(
                text=current, rating=0, history=[PastAnswer(text=previous, answered_at=MARCH, rating=10)]
            )
            assert 0.0 <= found.score <= 1.0


def test_contrast_finds_negations_and_opposites() -> None:
    assert stance.contrast("A man is playing", "There is no man playing") == stance.Contrast("negation", ("no",))
    assert stance.contrast("I like it", "I don't like it") == stance.Contrast("negation", ("don't",))
    assert stance.contrast("The staff were helpful", "The staff were unhelpful") == stance.Contrast(
        "opposite", ("helpful", "unhelpful")
    )
    assert stance.contrast("It is not cheap", "It is not cheap at all") is None  # negated on both sides
    assert stance.contrast("The onboarding was confusing", "Getting started was hard to understand") is None


def test_clauses_split_ideas_and_drop_connectives() -> None:
    assert stance.clauses("The onboarding was fast, and the docs were clear. But support takes days; ok") == [
        "The onboarding was fast",
        "the docs were clear",
        "support takes days ok",
    ]
    assert stance.clauses("Great.") == ["Great"]
    assert stance.clauses("") == []


# On the shared evaluation data (skipped when ../shared/data is absent) -----------------------


def _read_tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.mark.model
@pytest.mark.slow
def test_on_sick_contradictions_are_found_where_cosine_misses_them(embedder: Embedder, shared_data: Path) -> None:
    rows = _read_tsv(shared_data / "sick" / "sick_train_trial.tsv")[:800]
    found = ChangeDetector(embedder=embedder).assess_pairs([(r["sentence_A"], r["sentence_B"]) for r in rows])
    labels = np.array([r["entailment_label"] for r in rows])
    hard = (labels == "CONTRADICTION") & (np.array([float(r["relatedness_score"]) for r in rows]) >= 3.5)

    def hard_recall(score: np.ndarray) -> float:
        threshold = np.quantile(score[labels == "ENTAILMENT"], 0.9)
        return float((score[hard] > threshold).mean())

    detector = hard_recall(np.array([a.score for a in found]))
    cosine = hard_recall(np.array([1 - (a.similarity or 0.0) for a in found]))
    assert hard.sum() >= 50
    assert detector >= 0.8
    assert detector >= cosine + 0.4


@pytest.mark.model
@pytest.mark.slow
def test_on_stsb_the_score_keeps_what_cosine_gets_right(embedder: Embedder, shared_data: Path) -> None:
    rows = _read_tsv(shared_data / "stsb" / "dev.tsv")[:500]
    found = ChangeDetector(embedder=embedder).assess_pairs([(r["sentence1"], r["sentence2"]) for r in rows])
    human = [float(r["score"]) for r in rows]
    detector = spearmanr([1 - a.score for a in found], human).correlation
    cosine = spearmanr([a.similarity for a in found], human).correlation
    assert detector >= 0.8
    assert detector >= cosine - 0.02


def test_sentences_end_at_full_stops_and_line_breaks_but_not_after_titles_or_initials() -> None:
    text = "Dr. J. Smith was kind. Mr. Lee was not!\nThe wait was long"
    assert stance.sentences(text) == ["Dr. J. Smith was kind.", "Mr. Lee was not!", "The wait was long"]
    assert stance.clauses(text) == ["Dr. J. Smith was kind", "Mr. Lee was not", "The wait was long"]


def test_the_evaluation_says_so_and_succeeds_without_the_shared_data(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "RAPPORT_SHARED_DATA": str(tmp_path / "absent")}
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "evaluate_changes.py")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert "no evaluation data" in done.stderr
    assert done.stdout == ""
