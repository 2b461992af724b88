"""Measure digests and themes; print the figures as JSON.

    .venv/bin/python benchmarks/digests.py

Figures:

* ``digest_ms``: ``memory.digests.build_digest`` for one owner of ``people`` people with two
  completed check-ins each (every tenth moved by 4 points, with a follow-up) on SQLite, plus
  rendering it in every format (``render_ms``).
* ``themes``: ``memory.themes.cluster_themes`` on the first 300 NHS feedback comments of 25+
  characters from ``../shared/data/feedback`` with the real all-MiniLM-L6-v2: embedding time,
  clustering time (k-means for each k in 2..8 plus silhouettes), the chosen k and the labels.
  Skipped when ``../shared/data`` is absent.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app import build  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.digests import FORMATS, render_digest  # noqa: E402
from memory import db  # noqa: E402
from memory.digests import build_digest  # noqa: E402
from tests.fakes.embedder import HashingEmbedder  # noqa: E402
from tests.history_builder import T0, History, months  # noqa: E402


def bench_digest(people: int = 500) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp:
        app = build(load_config(ROOT / "config.yaml"), embedder=HashingEmbedder(),
                    database_url=f"sqlite:///{tmp}/b.db", migrate=True)  # fmt: skip
        with db.transaction(app.sessions) as s:
            h = History(s)
            for i in range(people):
                p = h.person(f"p{i}", owner="lead")
                h.checkin(p, "customers", T0, rating=8, text=f"Support is fine, person {i}.")
                moved = i % 10 == 0
                h.checkin(p, "customers", T0 + months(6), rating=4 if moved else 8,
                          text=f"Slow replies now, person {i}." if moved else "Still fine.",
                          followup="The account manager left." if moved else None)  # fmt: skip
        started = time.perf_counter()
        with db.transaction(app.sessions) as s:
            d = build_digest(s, owner="lead", since=T0 + months(5), until=T0 + months(7))
        digest_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        for fmt in FORMATS:
            render_digest(d, fmt)
        render_ms = (time.perf_counter() - started) * 1000
        app.close()
    return {"people": people, "changes": len(d.changes), "digest_ms": round(digest_ms, 1),
            "render_ms": round(render_ms, 1)}  # fmt: skip


def bench_themes() -> dict[str, object] | str:
    path = ROOT.parent / "shared" / "data" / "feedback" / "v6framework_230831.csv"
    if not path.exists():
        return "skipped: ../shared/data is absent"
    from memory.embeddings import SentenceTransformerEmbedder
    from memory.themes import cluster_themes

    with path.open(encoding="utf-8") as f:
        texts = [" ".join(r["FFT answer"].split()) for r in csv.DictReader(f) if len(r["FFT answer"].strip()) >= 25]
    texts = texts[:300]
    model = SentenceTransformerEmbedder()
    model.load()
    started = time.perf_counter()
    vectors = model.encode(texts)
    embed_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    themes = cluster_themes(texts, vectors, max_k=8)
    cluster_ms = (time.perf_counter() - started) * 1000
    return {"texts": len(texts), "embed_ms": round(embed_ms), "cluster_ms": round(cluster_ms), "k": len(themes),
            "themes": [f"{t.label} ({t.size})" for t in themes]}  # fmt: skip


if __name__ == "__main__":
    print(json.dumps({"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "digest": bench_digest(),
                      "themes": bench_themes()}, indent=2, ensure_ascii=False))  # fmt: skip
