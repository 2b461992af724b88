"""The composition root: builds every part from the validated config, once.

Everything else receives plain values and objects. Nothing here sends or schedules by itself.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, EmbeddingsConfig, ProgramConfig, resolve_secret, secret_name
from bot.engine.script import Limits, Question, Script
from bot.engine.service import CheckinService
from memory import crypto, db, rekey, store
from memory.batching import BatchingEmbedder
from memory.changes import ChangeDetector, DetectorSettings
from memory.embeddings import Embedder, SentenceTransformerEmbedder, preload
from memory.errors import EncryptionError

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.engine.marks import Marks
    from bot.engine.owners import OwnerCommands
    from bot.engine.people import People

log = logging.getLogger(__name__)


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

    def model_exported(self) -> bool:
        """False while the onnx-int8 model still has to be exported (a first start); loading then
        takes 10 to 30 s instead of about one."""
        inner = getattr(self.embedder, "inner", self.embedder)
        is_exported = getattr(inner, "is_exported", None)
        return bool(is_exported()) if callable(is_exported) else True

    def load_model(self) -> float:
        """Load the embedding model now, outside any transaction (``rapport run`` does this before
        it starts receiving, so the first answer does not wait for it). Returns the seconds taken."""
        # The first start on onnx-int8 exports the model first (memory.embeddings_onnx logs it).
        log.info(
            "loading the embedding model", extra={"model": self.embedder.model_id, "exported": self.model_exported()}
        )
        started = time.perf_counter()
        preload(self.embedder)
        seconds = time.perf_counter() - started
        log.info("embedding model loaded", extra={"model": self.embedder.model_id, "seconds": round(seconds, 1)})
        return seconds


def make_embedder(config: Config) -> Embedder:
    """The configured backend behind the micro-batching layer that concurrent answers share."""
    return embedder_from(config.embeddings)


def embedder_from(e: EmbeddingsConfig) -> Embedder:
    """The backend ``embeddings:`` names (onnx-int8 by default), behind the batching layer."""
    inner: Embedder
    if e.backend == "onnx-int8":
        from memory.embeddings_onnx import OnnxInt8Embedder

        inner = OnnxInt8Embedder(model=e.model, cache_dir=e.cache_dir, batch_size=e.batch_size, threads=e.threads)
    else:
        inner = SentenceTransformerEmbedder(model=e.model, device=e.device, batch_size=e.batch_size)
    return BatchingEmbedder(inner, max_wait=e.batch_wait_ms / 1000, max_batch=e.batch_size)


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
    return Script(
        name=name, title=program.title or name, questions=questions, anonymous=program.anonymous, k=program.k,
        owner_role=program.owner_role,
    )  # fmt: skip


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
    # Keys first: "encryption: on" without one stops here, before anything is read or written.
    crypto.load(required=config.privacy.encryption == "on")
    engine = db.make_engine(database_url or config.database_url)
    if config.database.migrate_on_start if migrate is None else migrate:
        db.migrate(engine)
    sessions = db.make_sessionmaker(engine)
    try:
        rekey.verify(sessions)
    except EncryptionError:
        engine.dispose()
        raise
    with db.transaction(sessions) as s:
        specs = {name: (p.anonymous, p.k, p.k_comments) for name, p in config.programs.items()}
        store.ensure_programs(s, specs, clock())
    embedder = embedder or make_embedder(config)
    detector = make_detector(config, embedder)
    service = CheckinService(
        sessions=sessions,
        scripts=scripts_from_config(config),
        detector=detector,
        limits=limits_from_config(config),
        clock=clock,
        digest_folder=Path(config.digests.directory),
    )
    return App(config=config, engine=engine, sessions=sessions, embedder=embedder, detector=detector, service=service)


# Channels ---------------------------------------------------------------------------------------
#
# The one place chat channels are built: each from the config, its secrets read from the
# environment, through the channel's typed keyword-only constructor. The chat SDKs are imported
# only when a channel is on.


def build_channels(app: App) -> tuple[dict[str, Channel], list[str]]:
    """The configured channels that can run, and one line per channel saying why (or why not)."""
    from bot.engine.marks import Marks
    from bot.engine.owners import OwnerCommands
    from bot.engine.people import People

    parts = _EngineParts(
        people=People(service=app.service),
        owners=OwnerCommands(sessions=app.sessions),
        marks=Marks(app.sessions),
    )
    channels: dict[str, Channel] = {}
    notes: list[str] = []
    builders: tuple[tuple[str, bool, Callable[[App, _EngineParts], Channel | str]], ...] = (
        ("telegram", app.config.channels.telegram.enabled, _telegram),
        ("slack", app.config.channels.slack.enabled, _slack),
    )
    for name, enabled, make in builders:
        if not enabled:
            log.info("channel disabled in config", extra={"channel": name})
            notes.append(f"{name}: off (disabled in config: channels.{name}.enabled)")
            continue
        built = make(app, parts)
        if isinstance(built, str):
            if not built.startswith("set "):
                log.warning("%s channel off: %s", name, built)
            notes.append(f"{name}: off — {built}")
            continue
        channels[name] = built
        notes.append(f"{name}: on")
    if app.config.channels.web.enabled and any("web" in p.channels for p in app.config.programs.values()):
        from bot.channels.web import WebChannel

        web = channels["web"] = WebChannel.build(service=app.service, config=app.config)
        notes.append(web.describe())
    if any("terminal" in program.channels for program in app.config.programs.values()):
        from bot.channels.console import ConsoleChannel

        channels["terminal"] = ConsoleChannel()
        notes.append("terminal: on (messages are printed; answer with `rapport chat PERSON`)")
    return channels, notes


@dataclass(frozen=True, kw_only=True)
class _EngineParts:
    """The engine calls channels use (one of each, shared by every channel)."""

    people: People
    owners: OwnerCommands
    marks: Marks


def _telegram(app: App, parts: _EngineParts) -> Channel | str:
    from bot.channels.telegram import SECRET_TOKEN, TelegramChannel, TelegramSettings
    from bot.channels.telegram.transport import OVERALL_RATE
    from bot.invites import derive_key

    config = app.config.channels.telegram
    token = resolve_secret(config.token)
    if token is None:
        return f"set {secret_name(config.token)}"
    secret = resolve_secret(config.secret_token)
    public_url = app.config.web.public_url
    webhook_url = config.webhook_url or (public_url.rstrip("/") + "/telegram/webhook" if public_url else None)
    if config.mode == "webhook":
        if secret is None:
            needed = secret_name(config.secret_token) or "channels.telegram.secret_token"
            return f"webhook mode needs a secret token: set {needed} (channels.telegram.secret_token)"
        if not SECRET_TOKEN.match(secret):
            return "channels.telegram.secret_token must be 1-256 characters of A-Z, a-z, 0-9, _ and -"
        if webhook_url is None:
            return "webhook mode needs channels.telegram.webhook_url or web.public_url"
    settings = TelegramSettings(
        token=token, invite_key=derive_key(invite_secret=resolve_secret(config.invite_secret), bot_token=token),
        mode=config.mode, api_base_url=config.api_base_url, webhook_url=webhook_url, secret_token=secret,
        overall_rate=app.config.scheduler.rate_per_second.get("telegram", OVERALL_RATE),
    )  # fmt: skip
    return TelegramChannel(settings=settings, service=app.service, people=parts.people, marks=parts.marks)


def _slack(app: App, parts: _EngineParts) -> Channel | str:
    from bot.channels.slack import SlackChannel, SlackOAuth

    config = app.config.channels.slack
    client_id, client_secret = resolve_secret(config.client_id), resolve_secret(config.client_secret)
    bot_token, app_token = resolve_secret(config.bot_token), resolve_secret(config.app_token)
    signing_secret = resolve_secret(config.signing_secret)
    oauth = None
    if client_id and client_secret:
        public = app.config.web.public_url
        oauth = SlackOAuth(
            client_id=client_id, client_secret=client_secret, engine=app.engine,
            redirect_uri=f"{public.rstrip('/')}/slack/oauth_redirect" if public else None,
        )  # fmt: skip
    elif os.environ.get("SLACK_CLIENT_ID") and os.environ.get("SLACK_CLIENT_SECRET"):
        # slack-bolt reads these two by itself and would switch to its own install flow with a
        # file store: Rapport's choice must be explicit in the config.
        return (
            "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set but channels.slack.client_id/client_secret do "
            "not reference them; reference them (several workspaces) or unset them (one workspace)"
        )
    elif not bot_token:
        return f"set {secret_name(config.bot_token)}"
    if config.mode == "socket" and not app_token:
        return f"Socket Mode needs {secret_name(config.app_token)} (an xapp- token)"
    if config.mode == "http" and not signing_secret:
        return f"HTTP mode needs {secret_name(config.signing_secret)}"
    return SlackChannel(
        service=app.service, people=parts.people, owners=parts.owners, marks=parts.marks, bot_token=bot_token,
        signing_secret=signing_secret, mode=config.mode, app_token=app_token, api_base_url=config.api_base_url,
        oauth=oauth, pace_seconds=config.pace_seconds,
        overall_rate=app.config.scheduler.rate_per_second.get("slack", 0.0), max_wait_seconds=config.max_wait_seconds,
        retries=config.retries, link_every_seconds=config.link_every_minutes * 60.0,
    )  # fmt: skip
