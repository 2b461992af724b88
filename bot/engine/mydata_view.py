"""A person's own answers as they see them, and cut into messages a channel accepts.

Every value is escaped for the sink by ``prompts`` (a person's ``<b>`` or ``<!channel>`` shows as
typed). A summary is one header and one block per check-in; blocks are packed into messages of at
most :data:`LIMITS` characters, and a block longer than that on its own is cut at a line break or
a space (never inside an entity or a tag, with :func:`prompts.split.split_html` for the markup
sinks).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

import prompts
from bot.engine.ports import Outbound
from bot.engine.script import Script
from memory import store
from memory.models import Outcome, Person, Promise
from prompts.split import split_html, units

#: Characters (Telegram: UTF-16 units) per message. Telegram refuses more than 4,096; Slack
#: truncates a message's text beyond 40,000 and shows long ones collapsed, so a few thousand reads
#: best. The web page (``html``) shows the summary on a page of its own and is not cut.
LIMITS: dict[str, int] = {"telegram_html": 4000, "slack_mrkdwn": 3500, "plain": 3500, "markdown": 3500}


@dataclass(frozen=True)
class Item:
    """One answer: its number (the answer's id), the question, and what the person said."""

    id: int
    label: str
    kind: str
    rating: int | None
    text: str | None
    skipped: bool
    followups: tuple[str, ...] = ()


#: How a verdict on a promise reads to the person who gave it.
VERDICTS = {"yes": "kept", "partly": "partly kept", "no": "not kept"}


@dataclass(frozen=True)
class Kept:
    """The person's verdict on a promise, given at a check-in, with their comment. Its number is
    ``p`` and the outcome's id (``p12``), distinct from the answers' numbers."""

    id: int
    promise: str
    verdict: str
    comment: str | None

    @property
    def ref(self) -> str:
        return f"p{self.id}"


@dataclass(frozen=True)
class Entry:
    """One check-in, as its person sees it."""

    checkin_id: int
    when: dt.datetime
    title: str
    anonymous: bool
    items: tuple[Item, ...]
    outcomes: tuple[Kept, ...] = ()


def entries_of(s: Session, person: Person, scripts: Mapping[str, Script]) -> list[Entry]:
    """Every check-in with an answer or a verdict on a promise, newest first; answers in the order
    they were given, then the verdicts."""
    kept: dict[int, list[Kept]] = {}
    for outcome, text in s.execute(
        select(Outcome, Promise.text)
        .join(Promise, Outcome.promise_id == Promise.id)
        .where(Promise.person_id == person.id, Outcome.checkin_id.is_not(None))
        .order_by(Outcome.id)
    ):
        verdict = VERDICTS.get(outcome.verdict, outcome.verdict)
        kept.setdefault(outcome.checkin_id or 0, []).append(Kept(outcome.id, text, verdict, outcome.comment))
    entries: list[Entry] = []
    for checkin in reversed(store.history(s, person.id)):
        outcomes = tuple(kept.get(checkin.id, ()))
        if not checkin.answers and not outcomes:
            continue
        script = scripts.get(checkin.program.name)
        items = []
        for answer in checkin.answers:
            question = script.question(answer.question) if script else None
            replies = tuple(f.answer_text for f in checkin.followups if f.answer_id == answer.id and f.answer_text)
            items.append(
                Item(id=answer.id, label=question.text if question else answer.question, kind=answer.kind,
                     rating=answer.rating, text=answer.text, skipped=answer.skipped, followups=replies)
            )  # fmt: skip
        title = (script.title if script else None) or checkin.program.name
        entries.append(Entry(checkin_id=checkin.id, when=checkin.started_at, title=title,
                             anonymous=checkin.program.anonymous, items=tuple(items), outcomes=outcomes))  # fmt: skip
    return entries


def render_entry(entry: Entry, markup: prompts.Markup) -> str:
    return prompts.render("person/mydata_entry", markup, when=entry.when, title=entry.title,
                          anonymous=entry.anonymous, items=entry.items, outcomes=entry.outcomes)  # fmt: skip


def render_item(entry: Entry, item: Item, markup: prompts.Markup) -> str:
    """One answer on its own (what a confirmation shows)."""
    return prompts.render("person/mydata_entry", markup, when=entry.when, title=entry.title,
                          anonymous=entry.anonymous, items=(item,))  # fmt: skip


def render_summary(entries: list[Entry], markup: prompts.Markup, *, cmd: str) -> list[Outbound]:
    """The header and every check-in, packed into as few messages as the channel accepts."""
    header = prompts.render("person/mydata_header", markup, count=len(entries), cmd=cmd)
    return [Outbound(text=part) for part in pack([header, *(render_entry(e, markup) for e in entries)], markup)]


def pack(blocks: list[str], markup: prompts.Markup) -> list[str]:
    """Blocks joined by blank lines into messages of at most ``LIMITS[markup]``; a block too long
    for one message is cut on its own."""
    limit = LIMITS.get(markup)
    if limit is None:
        return ["\n\n".join(blocks)]
    parts: list[str] = []
    current = ""
    for block in blocks:
        for piece in cut(block, limit, markup):
            joined = f"{current}\n\n{piece}" if current else piece
            if units(joined) <= limit:
                current = joined
            else:
                parts.append(current)
                current = piece
    if current:
        parts.append(current)
    return parts


def cut(text: str, limit: int, markup: prompts.Markup) -> list[str]:
    """``text`` in parts of at most ``limit`` units. Markup sinks: at safe boundaries (tags and
    entities whole). Plain text has no markup to keep whole: a line break, else a space, else
    anywhere (a person's ``<b>`` there is words, not a tag to close)."""
    if units(text) <= limit:
        return [text]
    if markup != "plain":
        return split_html(text, limit)
    parts: list[str] = []
    while units(text) > limit:
        room = limit
        while units(text[:room]) > limit:  # characters outside the BMP count twice
            room -= 1
        at = max(text.rfind("\n", 0, room), text.rfind(" ", 0, room))
        at = at if at > 0 else room
        parts.append(text[:at].rstrip())
        text = text[at:].lstrip()
    return [*parts, text] if text else parts
