"""Every sentence a person or an owner reads, as Jinja2 templates, rendered for one sink.

People's words are data, never markup. Templates are written in plain text (or the sink's own
markup, for owner-facing formats); *every* ``{{ value }}`` is escaped for the sink through Jinja's
``finalize`` hook, so a person's ``<b>``, ``*``, ``<!channel>`` or ``=HYPERLINK(...)`` shows as
typed and never changes a message.

Characters that act instead of showing are inert in every sink too: control characters (ESC
could rewrite a terminal, BEL rings it) and the bidirectional embedding, override and isolate
controls (U+202A-U+202E, U+2066-U+2069), with which "U+202E gnp.exe" reads as "exe.png" and can
spoof the text after it. Plain text (the terminal, e-mail text, Slack ``plain_text``) shows them
as visible escapes such as ``\\u202e``; the markup sinks drop them. Right-to-left *marks*
(U+200E, U+200F, U+061C) change no order beyond themselves and stay.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2

TEMPLATES = Path(__file__).parent

Markup = Literal["plain", "telegram_html", "slack_mrkdwn", "html", "markdown"]
MARKUPS: tuple[Markup, ...] = ("plain", "telegram_html", "slack_mrkdwn", "html", "markdown")

# Characters that are markup anywhere in a CommonMark/GFM line: emphasis, code, links, images,
# table cells and strikethrough. "<", ">" and "&" (raw HTML, quotes, entities) become entities.
# Everything else (".", "-", "(", "@") is only markup in a few places and is left as typed.
_MD_INLINE = re.compile(r"([\\`*_\[\]|~])")
# At the start of a line a few more characters open a block: a heading (#), a list
# item ("- ", "+ ", "1. ", "1) "), a setext underline or rule (= or -). Templates never put a
# value at the start of a line, so only the lines a value itself begins (after a newline) count;
# "(-4)" and "-4 points" mid-line stay as typed.
_MD_LINE_START = re.compile(r"(?<=\n)([ \t]*)(#|[-+=]|\d+[.)])")
# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings/overrides/isolates.
_ACTIVE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Slack mrkdwn has no escape for its markers. It formats *bold*, _italic_, ~strike~ and `code`
# only where the marker touches a non-space character on its inner side, and it treats U+200B
# (zero-width space) as a word boundary: the usual trick to *force* formatting mid-word puts one
# outside the markers. One on both sides of every marker leaves none that can open or close a
# span, and shows nothing. (A look-alike such as U+2217 would be inert too, but changes the text.)
_SLACK_MARKERS = re.compile(r"([*_~`])")
ZWSP = "\u200b"


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def inert(text: str) -> str:
    """Drop the characters that act instead of showing (for markup sinks)."""
    return _ACTIVE.sub("", text)


def escape_terminal(text: str) -> str:
    """Plain text for a terminal or any plain-text field: controls shown as visible escapes."""
    return _ACTIVE.sub(_visible, text)


def escape_plain(text: str) -> str:
    return escape_terminal(text)


def escape_telegram_html(text: str) -> str:
    # Telegram's HTML parse mode needs exactly &, < and > escaped (quotes are fine).
    return html.escape(inert(text), quote=False)


def escape_slack(text: str) -> str:
    # Slack mrkdwn: &, < and > are its control characters (escaping them stops pings and links);
    # formatting markers are disarmed with zero-width spaces (see _SLACK_MARKERS).
    text = inert(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SLACK_MARKERS.sub(ZWSP + r"\1" + ZWSP, text)


def escape_html(text: str) -> str:
    return html.escape(inert(text), quote=True)


def escape_markdown(text: str) -> str:
    """Escape what Markdown would read as markup, and no more (``alex@example.com`` stays as is)."""
    escaped = _MD_INLINE.sub(r"\\\1", inert(text))
    escaped = _MD_LINE_START.sub(_escape_line_start, escaped)
    return html.escape(escaped, quote=False)


def _escape_line_start(match: re.Match[str]) -> str:
    lead, mark = match.group(1), match.group(2)
    # "1. item" is a list only with its full stop: escaping the stop leaves the number as typed.
    return f"{lead}{mark[:-1]}\\{mark[-1]}" if mark[0].isdigit() else f"{lead}\\{mark}"


ESCAPERS: dict[str, Callable[[str], str]] = {
    "plain": escape_plain,
    "telegram_html": escape_telegram_html,
    "slack_mrkdwn": escape_slack,
    "html": escape_html,
    "markdown": escape_markdown,
}


def neutralise_formula(text: str) -> str:
    """CSV/spreadsheet exports: a leading = + - @ would run as a formula; prefix a quote. Controls
    and bidi overrides are dropped, as in every markup sink (a spreadsheet shows them live)."""
    text = inert(text)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@lru_cache(maxsize=len(MARKUPS))
def environment(markup: Markup) -> jinja2.Environment:
    escape = ESCAPERS[markup]

    def finalize(value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, Trusted):
            return str(value)
        return escape(str(value))

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        # Escaping is done per sink by finalize, for every sink alike (HTML included).
        autoescape=False,  # noqa: S701
        finalize=finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["month_year"] = lambda d: d.strftime("%B %Y") if d else ""
    env.filters["day_month_year"] = lambda d: f"{d.day} {d.strftime('%B %Y')}" if d else ""
    return env


class Trusted(str):
    """Text that is already safe for the sink (a rendered fragment); finalize leaves it alone."""


def render(name: str, markup: Markup = "plain", /, **context: Any) -> str:
    """Render ``prompts/<name>.j2`` for one sink."""
    template = environment(markup).get_template(f"{name}.j2")
    return template.render(**context).strip()


def exists(name: str) -> bool:
    return (TEMPLATES / f"{name}.j2").is_file()
