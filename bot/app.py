"""The composition root: builds every part from the validated config, once.

Everything else receives plain values and objects. Nothing here sends or schedules by itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, ProgramConfig
from bot.engine.script import Limits, Question, Script
from bot.engine.service import CheckinService
from memory import db, store
from memory.changes import ChangeDetector, DetectorSettings
from memory.embeddings import Embedder, SentenceTransformerEmbedder


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
    e = config.embeddings
    return SentenceTransformerEmbedder(model=e.model, device=e.device, batch_size=e.batch_size)


def make_detector(config: Config, embedder: Embedder) -> ChangeDetector:
    c = config.changes
    settings = DetectorSettings(rating_delta=c.rating_delta, threshold=c.threshold, quote_chars=c.quote_chars)
    return ChangeDetector(embedder=embedder, settings=settings)


def script_of(name: str, program: ProgramConfig) -> Script:
    """A program's plain script (questions, wording) for the engine, from the config file's shape."""
    questions = tuple(
        Question(key=q.key, kind=q.kind, text=q.text, min=q.min, max=q.max, low_label=q.low_label,
                 high_label=q.high_label)
        for q in program.questions
    )  # fmt: skip
    return Script(name=name, title=program.title or name, questions=questions)


def scripts_from_config(config: Config) -> dict[str, Script]:
    return {name: script_of(name, program) for name, program in config.programs.items()}


def limits_from_config(config: Config) -> Limits:
    return Limits(
        max_followups=config.changes.max_followups,
        max_answer_chars=config.conversation.max_answer_chars,
        quote_chars=config.changes.quote_chars,
    )


def build(
    config: Config,
    *,
    embedder: Embedder | None = None,
    database_url: str | None = None,
    migrate: bool | None = None,
    clock: Callable[[], dt.datetime] = db.utcnow,
) -> App:
    engine = db.make_engine(database_url or config.database_url)
    if config.database.migrate_on_start if migrate is None else migrate:
        db.migrate(engine)
    sessions = db.make_sessionmaker(engine)
    with db.transaction(sessions) as s:
        store.ensure_programs(s, {name: (p.anonymous, p.k) for name, p in config.programs.items()}, clock())
    embedder = embedder or make_embedder(config)
    detector = make_detector(config, embedder)
    service = CheckinService(
        sessions=sessions,
        scripts=scripts_from_config(config),
        detector=detector,
        limits=limits_from_config(config),
        clock=clock,
    )
    return App(config=config, engine=engine, sessions=sessions, embedder=embedder, detector=detector, service=service)
