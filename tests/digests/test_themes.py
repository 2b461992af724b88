"""Themes across people: hand-made comments (no model needed), a program's themes from the
database, and the real NHS feedback comments with the real model."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from memory import anonymity, db
from memory.anonymity import program_themes
from memory.themes import cluster_themes, ctfidf_labels
from tests.fakes.embedder import HashingEmbedder
from tests.history_builder import T0, History, months

SUPPORT = [
    "Support tickets take days to get a reply",
    "The support team replies to tickets slowly",
    "Slow support, tickets wait for days",
    "Our support tickets sit for days without reply",
    "Support is slow to reply to tickets",
    "Tickets to support wait days for a reply",
]
PRICE = [
    "The price went up again and the invoice is confusing",
    "Invoice errors and a higher price this year",
    "Price is too high for what we get, invoice unclear",
    "The invoice was wrong and the price increased",
    "Too expensive, the price rose and the invoice is a mess",
    "Price increase, invoice hard to read",
]
ONBOARDING = [
    "Onboarding training was excellent and the docs are clear",
    "Great onboarding, training sessions and clear docs",
    "The training during onboarding helped, docs are good",
    "Onboarding docs and training made it easy",
    "Clear docs and a helpful onboarding training",
    "Training and onboarding docs were great",
]


def _from(quote: str, texts: list[str]) -> bool:
    core = quote.rstrip("…").rstrip(".")
    return any(core in " ".join(t.split()) for t in texts)


def test_hand_made_comments_form_readable_themes() -> None:
    texts = SUPPORT + PRICE + ONBOARDING
    vectors = HashingEmbedder().encode(texts)
    themes = cluster_themes(texts, vectors, max_k=5)
    assert 2 <= len(themes) <= 5
    assert sum(t.size for t in themes) == len(texts)
    assert [t.size for t in themes] == sorted((t.size for t in themes), reverse=True)
    labels = " ".join(t.label for t in themes)
    assert "support" in labels or "tickets" in labels
    assert "price" in labels or "invoice" in labels
    for t in themes:
        assert 1 <= len(t.quotes) <= 3
        assert all(_from(q, texts) for q in t.quotes)
        assert all(w not in {"the", "and", "is", "a"} for w in t.words)
        assert t.change is None


def test_change_since_the_last_wave() -> None:
    texts = SUPPORT + PRICE
    previous = PRICE + PRICE + SUPPORT[:1]
    emb = HashingEmbedder()
    themes = cluster_themes(texts, emb.encode(texts), previous=(previous, emb.encode(previous)), max_k=3)
    support = next(t for t in themes if "support" in t.words or "tickets" in t.words)
    assert support.change is not None
    assert support.change > 30
    assert sum(t.previous_size or 0 for t in themes) == len(previous)


def test_few_or_empty_comments() -> None:
    emb = HashingEmbedder()
    assert cluster_themes([], np.zeros((0, 384), dtype=np.float32)) == []
    assert cluster_themes(["", "  "], emb.encode(["", "  "])) == []
    (one,) = cluster_themes(SUPPORT[:3], emb.encode(SUPPORT[:3]))
    assert one.size == 3


def test_ctfidf_prefers_distinctive_words() -> None:
    labels = ctfidf_labels(["support support slow", "price price slow"], [0, 1], top=1)
    assert labels == {0: ("support",), 1: ("price",)}


def test_program_themes_from_the_database_and_never_for_anonymous_programs(make_app) -> None:
    app = make_app()
    with db.transaction(app.sessions) as s:
        h = History(s)
        for i, text in enumerate(SUPPORT + PRICE + ONBOARDING):
            p = h.person(f"p{i}", programs=("customers", "employees"))
            h.checkin(p, "customers", T0 + dt.timedelta(hours=i), rating=5, text=text)
        themes = program_themes(s, program="customers", since=T0, until=T0 + months(1), encode=app.embedder.encode)
        assert sum(t.size for t in themes) == 18
        assert len(themes) >= 2
        with pytest.raises(anonymity.SliceRefused):
            program_themes(s, program="employees", since=T0, until=T0 + months(1), encode=app.embedder.encode)


STAFF_WORDS = {"staff", "nurse", "nurses", "doctor", "doctors", "paramedics", "crew", "friendly", "helpful",
               "professional", "kind", "caring", "polite"}  # fmt: skip


@pytest.mark.model
def test_themes_on_real_feedback(shared_data: Path, embedder) -> None:
    with (shared_data / "feedback" / "v6framework_230831.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = [" ".join(r["FFT answer"].split()) for r in rows if len(r["FFT answer"].strip()) >= 25][:300]
    themes = cluster_themes(texts, embedder.encode(texts), max_k=8)
    assert 2 <= len(themes) <= 8
    assert sum(t.size for t in themes) == len(texts)
    vocabulary = set(" ".join(texts).lower().replace("'", " ").split())
    for t in themes:
        assert t.size >= 2
        assert t.words, "every theme has a label"
        assert all(any(w in v for v in vocabulary) for w in t.words), t.words
        assert 2 <= len(t.quotes) <= 3
        assert all(_from(q, texts) for q in t.quotes)
    staff = [t for t in themes if STAFF_WORDS & (set(t.words) | set(" ".join(t.quotes).lower().split()))]
    assert staff, [t.label for t in themes]
    # Themes differ from each other: no two share their whole label.
    assert len({t.label for t in themes}) == len(themes)


def test_themes_is_pure_clustering_and_imports_nothing_that_imports_it() -> None:
    import ast
    from pathlib import Path

    import memory

    tree = ast.parse((Path(memory.__file__).parent / "themes.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith(("memory.anonymity", "memory.stories", "memory.digests"))}
