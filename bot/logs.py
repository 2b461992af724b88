"""Structured logging. Log records carry ids and counts, never people's words or secrets."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from bot import redaction

_STANDARD = set(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extra = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if extra:
            base += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


class StderrHandler(logging.StreamHandler):
    """Writes to stderr as it was when logging was set up, and to the current ``sys.stderr`` once
    that stream is closed.

    A handler holding a stream that was swapped and closed (a test runner's capture, a CLI
    runner's buffer) would print "--- Logging error --- I/O operation on closed file" for every
    later record instead of the record itself.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.stream, "closed", False):
            self.stream = sys.stderr  # not setStream: it would flush the closed stream first
        super().emit(record)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request bodies at DEBUG; those can hold people's words and tokens.
    for noisy in ("httpx", "httpcore", "telegram", "slack_bolt", "slack_sdk"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLevelName(level)))
    # Migrations and the scheduler's own job bookkeeping say nothing an operator needs at INFO.
    for chatty in ("alembic", "apscheduler", "sentence_transformers"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # Secrets and request bodies out of every line, whoever logs it (bot/redaction.py).
    redaction.install(root.handlers)
