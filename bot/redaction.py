"""Secrets and people's words kept out of every log line, whoever writes it.

Rapport's own log calls carry ids and counts only. The libraries under it are less careful:
httpx logs every request URL at INFO, and the Bot API puts the bot token in the URL; Bolt logs the
whole body of a request whose signature fails (people's words, e-mail addresses) at INFO, so
anyone who can reach the endpoint can write such lines; slack_sdk logs request and response
bodies at DEBUG. ``install`` (called by ``bot.logs.setup``) closes all three doors:

* every record is cleaned as it is *created* (a log-record factory), so every handler sees the
  clean record: the real ones, and pytest's ``caplog`` alike;
* the real handlers' output is cleaned once more as formatted text (extra fields, tracebacks);
* library messages known to carry bodies are rewritten without them, and httpx/httpcore request
  lines are not logged below WARNING.

"Cleaned" means: the value of every secret in the environment (any variable named like a token,
secret, password or key, and every ``${VAR}`` the configuration refers to) becomes ``[redacted]``,
and so does anything shaped like a token (Telegram bot tokens, Slack ``xox…`` tokens, signatures,
bearer credentials, a password in a URL, the token of a dashboard login link).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
# Secrets shorter than this are not searched for: "abc" would shred every line it appears in.
MIN_SECRET_CHARS = 6

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
# The variables Rapport's own configuration refers to by default (config.yaml may add others).
KNOWN_SECRETS = (
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "RAPPORT_INVITE_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_CLIENT_SECRET",
    "SLACK_STATE_SECRET",
    "SMTP_PASSWORD",
)

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # The Bot API URL: https://api.telegram.org/bot<token>/sendMessage (and /file/bot<token>/).
    (re.compile(r"(/bot)[^/\s\"']+(?=/)"), rf"\1{REDACTED}"),
    (re.compile(r"\b\d{5,12}:[A-Za-z0-9_-]{30,}"), REDACTED),  # a Telegram bot token anywhere
    (re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]{8,}"), REDACTED),  # Slack tokens
    (re.compile(r"\bv0=[0-9a-f]{64}\b"), REDACTED),  # a Slack request signature
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {REDACTED}"),
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), rf"\1{REDACTED}@"),  # scheme://user:pw@
    (re.compile(r"([?&]token=)[A-Za-z0-9_-]{16,}"), rf"\1{REDACTED}"),  # a one-time login link's token
)

# Library messages that carry a request or response body, rewritten to what they say without it.
_BODY_MESSAGES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("slack_bolt", re.compile(r"^Invalid request signature detected.*", re.DOTALL),
     "Invalid request signature detected (signature, timestamp and body withheld)"),
    ("slack_bolt", re.compile(r"(without providing a response for the request) \(.*", re.DOTALL),
     r"\1 (body withheld)"),
    ("slack_sdk", re.compile(r"^(Sending a request|Received the following response)\b.*", re.DOTALL),
     r"\1 (details withheld)"),
)  # fmt: skip

# Request lines: the URL is all they say, and it may hold a token.
QUIET_LIBRARIES = ("httpx", "httpcore")


def secret_values(environ: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> list[str]:
    """The secrets to look for, longest first (so a secret containing another is caught whole)."""
    env = os.environ if environ is None else environ
    wanted = set(KNOWN_SECRETS) | set(names)
    values = {value for name, value in env.items() if (name in wanted or _SECRET_NAME.search(name)) and value}
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` without any secret value or token-shaped string."""
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _without_bodies(name: str, message: str) -> str:
    for prefix, pattern, replacement in _BODY_MESSAGES:
        if name.startswith(prefix):
            message = pattern.sub(replacement, message)
    return message


def clean_record(record: logging.LogRecord) -> None:
    """Rewrite one record in place: its message (with args merged in) and its traceback text."""
    try:
        message = record.getMessage()
    except Exception:  # a library's bad format string must not lose the line, nor leak its args
        message = f"{record.msg} (arguments withheld)"
    secrets = secret_values()
    record.msg = redact(_without_bodies(record.name, message), secrets)
    record.args = None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when it is set, so the traceback is cleaned once, here.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info), secrets)


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and cleans the finished line: extra fields, tracebacks."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


_Factory = Callable[..., logging.LogRecord]
_installed: list[_Factory] = []


def _factory(previous: _Factory) -> _Factory:
    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        clean_record(record)
        return record

    make.rapport_redaction = True  # type: ignore[attr-defined]
    return make


def install(handlers: Iterable[logging.Handler] = ()) -> None:
    """Clean every record from now on, wrap these handlers' formatters, quiet request loggers.

    Safe to call again (``logs.setup`` may run more than once in a process): nothing is wrapped
    twice.
    """
    current = logging.getLogRecordFactory()
    if not getattr(current, "rapport_redaction", False):
        logging.setLogRecordFactory(_factory(current))
        _installed.append(current)
    for handler in handlers:
        formatter = handler.formatter or logging.Formatter()
        if not isinstance(formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(formatter))
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.level))


def uninstall() -> None:
    """Restore the record factory (for tests that check the difference)."""
    if _installed:
        logging.setLogRecordFactory(_installed.pop())
