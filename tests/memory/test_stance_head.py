"""The learned stance head: shipped weights, their provenance, storage and the change of reading it measures."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from memory import stance_head
from memory.changes import ChangeDetector, DetectorSettings
from memory.stance_head import StanceHead, StanceHeadUnavailable
from tests.fakes.embedder import HashingEmbedder


def test_the_shipped_head_loads_with_its_provenance_and_licence() -> None:
    head = StanceHead.load()
    assert "MIT" in head.provenance["licence"]
    assert "pxtextmining" in head.provenance["trained_on"]
    assert "SICK" not in head.provenance["trained_on"]
    assert head.provenance["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    # An ensemble of a linear member and five small MLPs: well under a megabyte, numpy only.
    assert stance_head.WEIGHTS.stat().st_size < 1_000_000
    assert len(head.members) >= 2


def test_probabilities_are_a_distribution_over_praise_neutral_criticism() -> None:
    head = StanceHead.load()
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    p = head.probabilities(vectors, ["Great", "Awful wait", "", "ok"])
    assert p.shape == (4, 3)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (p >= 0).all()


def test_a_saved_head_reads_back_the_same(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    layers = [(rng.normal(size=(5, 4)).astype(np.float32), np.zeros(4, np.float32)),
              (rng.normal(size=(4, 3)).astype(np.float32), np.ones(3, np.float32))]  # fmt: skip
    linear = [(rng.normal(size=(5, 3)).astype(np.float32), np.zeros(3, np.float32))]
    head = StanceHead([layers, linear])  # an ensemble of an MLP and a linear member
    path = head.save(tmp_path / "head.npz", {"licence": "test"})
    again = StanceHead.load(path)
    x = rng.normal(size=(3, 5)).astype(np.float32)
    assert np.allclose(head.probabilities_of(x), again.probabilities_of(x))
    assert again.provenance["licence"] == "test"


def test_a_missing_or_broken_weights_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(StanceHeadUnavailable, match=r"missing\.npz"):
        StanceHead.load(tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(StanceHeadUnavailable):
        StanceHead.load(broken)


def test_change_is_how_far_the_reading_moved_from_praise_towards_criticism() -> None:
    praise, neutral, criticism = np.eye(3)
    assert stance_head.change(praise, criticism) == 1.0
    assert stance_head.change(criticism, praise) == 1.0
    assert stance_head.change(praise, praise) == 0.0
    assert stance_head.change(neutral, criticism) == 0.5
    unsure = np.array([0.45, 0.1, 0.45])
    assert stance_head.change(unsure, unsure) == 0.0
    assert stance_head.reads_as(criticism) == "criticism"
    assert stance_head.valence(praise) == 1.0


class WordHead(StanceHead):
    """A stand-in head that reads "good" as praise and "bad" as criticism, whatever the embedding."""

    def __init__(self) -> None:
        super().__init__([[(np.zeros((384, 3), np.float32), np.zeros(3, np.float32))]])

    def probabilities(self, embeddings: object, texts: Sequence[str]) -> np.ndarray:
        rows = {"good": [0.9, 0.05, 0.05], "bad": [0.05, 0.05, 0.9]}
        return np.array([next((v for k, v in rows.items() if k in t), [0.1, 0.8, 0.1]) for t in texts])


def test_the_detector_names_a_flip_the_head_reads_and_asks_about_it() -> None:
    detector = ChangeDetector(embedder=HashingEmbedder(), stance_head=WordHead())
    [flipped, same] = detector.assess_pairs(
        [("the service was good", "the service was bad"), ("the service was good", "the service was good")]
    )
    assert flipped.changed
    assert "last time this read as praise; today as a complaint" in flipped.reason_texts
    assert flipped.stance is not None
    assert flipped.stance["change"] == pytest.approx(0.85)
    assert not same.changed
    assert same.reasons == ()


def test_a_shift_of_zero_turns_the_head_off() -> None:
    settings = dataclasses.replace(DetectorSettings(), learned_shift=0.0)
    detector = ChangeDetector(embedder=HashingEmbedder(), settings=settings, stance_head=WordHead())
    [found] = detector.assess_pairs([("the service was good", "the service was bad")])
    assert found.stance is None
    assert not any(r.data.get("signal") == "learned" for r in found.reasons)
