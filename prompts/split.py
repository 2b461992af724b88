"""Long Telegram HTML messages cut where Telegram will accept them.

Telegram refuses a message over 4,096 characters, and one whose HTML is broken: a cut inside
``&amp;`` or ``<i>…</i>`` fails for good, however often it is retried. Here a message is cut only
between pieces (a tag, an entity, a word), preferably at a line break, then at a space; tags open
at a cut are closed at the end of the part and opened again at the start of the next. Lengths are
counted in UTF-16 code units of the HTML source, as Telegram counts (and the source is never
shorter than the text Telegram shows), so a part that fits here fits there.

python-telegram-bot has no such helper (``telegram.helpers`` escapes and builds mentions only).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

TELEGRAM_LIMIT = 4096

# A tag, an entity, a line break, a run of spaces, a word (long words come in pieces), or any
# other single character (a stray "<" or "&" is never glued to what follows).
_TOKEN = re.compile(r"<[^<>]*>|&#?\w{1,32};|\n|[ \t]+|[^<&\s]{1,64}|.", re.DOTALL)
_TAG = re.compile(r"<(/?)([a-zA-Z][\w-]*)")

Stack = tuple[tuple[str, str], ...]  # (tag name, opening tag as written), outermost first


def units(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le")) // 2


def _closers(stack: Stack) -> str:
    return "".join(f"</{name}>" for name, _ in reversed(stack))


def _openers(stack: Stack) -> str:
    return "".join(tag for _, tag in stack)


def _after(stack: Stack, piece: str) -> Stack:
    tag = _TAG.match(piece) if piece.startswith("<") else None
    if tag is None:
        return stack
    closing, name = tag.group(1) == "/", tag.group(2).lower()
    if not closing:
        return (*stack, (name, piece))
    for depth in range(len(stack) - 1, -1, -1):
        if stack[depth][0] == name:
            return stack[:depth]
    return stack


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """``text`` as parts of at most ``limit`` units each, every part well-formed on its own."""
    if units(text) <= limit:
        return [text]
    pieces = _TOKEN.findall(text)
    parts: list[str] = []
    # The next part begins at pieces[start], inside the tags of ``stack``.
    start, stack = 0, cast(Stack, ())
    while start < len(pieces):
        size, current, end = units(_openers(stack)), stack, start
        # The best cut so far, before pieces[index]: (rank, index, tags open there). A line break
        # ranks above a space, a space above any other piece boundary; the latest wins a tie.
        best: tuple[int, int, Stack] | None = None
        while end < len(pieces):
            piece = pieces[end]
            rank = 2 if piece == "\n" else 1 if piece[0] in " \t" else 0
            if end > start and (best is None or rank >= best[0]):
                best = (rank, end, current)
            after = _after(current, piece)
            if size + units(piece) + units(_closers(after)) > limit:
                break
            size, current, end = size + units(piece), after, end + 1
        else:
            parts.append(_openers(stack) + "".join(pieces[start:]))
            break
        if best is None:  # not one piece fits beside the open tags: let it through on its own
            best = (0, start + 1, _after(stack, pieces[start]))
        _, cut, cut_stack = best
        parts.append((_openers(stack) + "".join(pieces[start:cut])).rstrip() + _closers(cut_stack))
        start, stack = cut, cut_stack
        while start < len(pieces) and pieces[start].isspace():
            start += 1
    return parts


def fit_html(text: str, more: Callable[[int], str], limit: int = TELEGRAM_LIMIT) -> str:
    """One message of at most ``limit`` units: ``text`` itself if it fits, else its first safe part
    followed by ``more(n)``, where n counts the non-empty lines left out, so nobody is dropped
    without a word."""
    if units(text) <= limit:
        return text
    note = "\n\n" + more(0)
    # The note's number may grow by a few digits; keep room for them.
    room = limit - units(note) - 8
    first = split_html(text, room)[0]
    shown = _plain_lines(first)
    left = len(_plain_lines(text)) - len(shown)
    return first + "\n\n" + more(max(left, 1))


def _plain_lines(html_text: str) -> list[str]:
    return [line for line in re.sub(r"<[^<>]*>", "", html_text).splitlines() if line.strip()]
