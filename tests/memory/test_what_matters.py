"""Ask about what matters: a flip of stance is worth a follow-up, a change of wording is not.

The people's own ratings are passed as the product passes them. First short, real-looking comments
written here (always run, with the real model and the shipped stance head); then real NHS patient
comments from the shared data (held-back side of the development set; skipped without the data).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from memory.changes import ChangeDetector
from memory.embeddings import Embedder
from tests.conftest import ROOT

# (earlier answer, earlier rating, new answer, new rating): the rating barely moved, the view flipped.
FLIPPED = [
    ("Staff were lovely and explained everything", 5, "Nobody explained anything and the nurse was rude", 4),
    ("Quick response, the crew were brilliant", 4, "Waited over three hours for the ambulance", 4),
    ("The reception staff were friendly", 4, "The receptionist was rude to my mother", 4),
    ("Appointments were easy to get", 5, "I could not get an appointment for three weeks", 4),
]
# Known misses, kept in docs/change-detection.md: the head learned from patient comments, and
# reads short product complaints such as "Support never replies" as unsure (praise or complaint).
# The same view in other words, with the rating within a point.
REWORDED = [
    ("Staff were lovely and explained everything", 5, "Very kind nurses who took time to explain", 5),
    ("Quick response, the crew were brilliant", 4, "The ambulance came fast and the paramedics were great", 5),
    ("Waited hours and nobody told us why", 2, "Long wait, no updates from anyone", 2),
    ("The app is easy to use and support is helpful", 4, "Simple app, and the help desk sorts things out", 4),
    ("Nothing, all good", 5, "Can't think of anything to improve, great service", 5),
]


def _assess(embedder: Embedder, rows: list[tuple[str, int, str, int]]) -> list[bool]:
    detector = ChangeDetector(embedder=embedder)
    found = detector.assess_pairs([(a, b) for a, _, b, _ in rows], [(ra, rb) for _, ra, _, rb in rows])
    return [a.changed for a in found]


@pytest.mark.model
def test_a_flip_of_stance_with_the_same_rating_is_asked_about(embedder: Embedder) -> None:
    assert _assess(embedder, FLIPPED) == [True] * len(FLIPPED)


@pytest.mark.model
def test_new_words_for_the_same_view_are_not_asked_about(embedder: Embedder) -> None:
    assert _assess(embedder, REWORDED) == [False] * len(REWORDED)


@pytest.mark.model
def test_the_flip_is_named_as_a_reason_a_person_can_read(embedder: Embedder) -> None:
    detector = ChangeDetector(embedder=embedder)
    [found] = detector.assess_pairs([FLIPPED[1][::2]], [FLIPPED[1][1::2]])
    assert any(r.text == "last time this read as praise; today as a complaint" for r in found.reasons)
    assert found.stance is not None
    assert found.stance["change"] >= 0.5


def _feedback_pairs(shared_data: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("feedback_pairs", ROOT / "benchmarks" / "feedback_pairs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("feedback_pairs", module)
    spec.loader.exec_module(module)
    module.FEEDBACK = shared_data / "feedback" / "v6framework_230831.csv"
    return module


@pytest.mark.model
@pytest.mark.slow
def test_on_real_comments_flips_are_asked_and_rewordings_are_not(embedder: Embedder, shared_data: Path) -> None:
    fp = _feedback_pairs(shared_data)
    pairs = fp.build_pairs(fp.split(fp.read_comments(fp.FEEDBACK), "held_back"))

    def close(p: Any) -> bool:  # both rated, within one point
        a, b = p.previous.rating, p.current.rating
        return a is not None and b is not None and abs(a - b) <= 1

    flipped = [p for p in pairs if p.changed and close(p)][:60]
    reworded = [p for p in pairs if p.changed is False and p.previous.stance != 1 and close(p)][:60]
    assert len(flipped) == len(reworded) == 60

    def asked(rows: list[Any]) -> float:
        # The data's rating 1 is "very good"; the product's highest number is the best.
        found = _assess(
            embedder, [(p.previous.text, 6 - p.previous.rating, p.current.text, 6 - p.current.rating) for p in rows]
        )
        return sum(found) / len(found)

    on_flipped, on_reworded = asked(flipped), asked(reworded)
    # The held-back figures over all pairs are 80% and 20% (docs/change-detection.md); these are 60
    # pairs each, so the bounds leave room for sampling.
    assert on_flipped >= 0.75
    assert on_reworded <= 0.4
