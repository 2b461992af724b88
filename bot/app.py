"""The composition root: builds every part from the validated config, once.

Everything else receives plain values and objects. Nothing here sends or schedules by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.engine.service import CheckinService
from memory import db, store
from memory.changes import ChangeDetector, DetectorSettings
from memory.embeddings import BatchingEmbedder, Embedder, SentenceTransformerEmbedder


@dataclass(kw_only=True)
class App:
    config: Config
    engine: Engine
    sessions: sessionmaker[Session]
    embedder: Embedder
    detector: ChangeDetector
    service: CheckinService

    def close(self) -> None:
        self.engine.dispose()


def make_embedder(config: Config) -> Embedder:
    """The configured backend behind the micro-batching layer that concurrent answers share."""
    e = config.embeddings
    inner: Embedder
    if e.backend == "onnx-int8":
        from memory.embeddings_onnx import OnnxInt8Embedder

        inner = OnnxInt8Embedder(model=e.model, cache_dir=e.cache_dir, batch_size=e.batch_size)
    else:
        inner = SentenceTransformerEmbedder(model=e.model, device=e.device, batch_size=e.batch_size)
    return BatchingEmbedder(inner, max_wait=e.batch_wait_ms / 1000, max_batch=e.batch_size)


def make_detector(config: Config, embedder: Embedder) -> ChangeDetector:
    c = config.changes
    settings = DetectorSettings(rating_delta=c.rating_delta, threshold=c.threshold, quote_chars=c.quote_chars)
    return ChangeDetector(embedder=embedder, settings=settings)


def build(
    config: Config,
    *,
    embedder: Embedder | None = None,
    database_url: str | None = None,
    migrate: bool | None = None,
) -> App:
    engine = db.make_engine(database_url or config.database_url)
    if config.database.migrate_on_start if migrate is None else migrate:
        db.migrate(engine)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        store.ensure_programs(s, {name: (p.anonymous, p.k) for name, p in config.programs.items()}, db.utcnow())
    embedder = embedder or make_embedder(config)
    detector = make_detector(config, embedder)
    service = CheckinService(
        sessions=sessions,
        programs=config.programs,
        detector=detector,
        max_followups=config.changes.max_followups,
        max_answer_chars=config.conversation.max_answer_chars,
        quote_chars=config.changes.quote_chars,
    )
    return App(config=config, engine=engine, sessions=sessions, embedder=embedder, detector=detector, service=service)
