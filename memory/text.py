"""The one rule for text that comes from people (chat messages, names, imported rows).

It is applied where the text enters Rapport: ``bot.engine.ports.Inbound`` for every channel, and
the importers for CSV rows. What it removes can never be a person's meaning, and what it keeps
can always be stored: PostgreSQL refuses NUL in text, and a lone surrogate (which JSON's
``"\\ud800"`` produces) cannot be encoded as UTF-8.

Bidirectional controls (U+202E and friends) are *kept*: right-to-left writers use them. They
are made inert where text is shown, by each sink's escaping in ``prompts``.
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls except tab and newline, DEL, and C1 controls (some terminals act on U+009B as ESC[).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NEWLINES = re.compile(r"\r\n?")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Text as a person meant it: CR LF and CR become LF, lone surrogates become U+FFFD, other
    control characters (NUL, ESC, BEL, ...) are dropped, and the result is NFC-normalised (so
    "é" typed two ways compares equal)."""
    text = _NEWLINES.sub("\n", text)
    text = _SURROGATES.sub("\ufffd", text)
    text = _CONTROLS.sub("", text)
    return unicodedata.normalize("NFC", text)


def clean_optional(text: str | None) -> str | None:
    return None if text is None else clean_text(text)
