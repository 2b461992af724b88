"""What crosses between channels and the engine: plain frozen values, no SDK types.

The engine owns these (channels depend on the engine, never the reverse); ``bot.channels.base``
re-exports them for adapters.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from memory.text import clean_optional

InboundKind = Literal["text", "choice", "command", "edit", "delete", "non_text"]


@dataclass(frozen=True, kw_only=True)
class Inbound:
    """One thing a person did in a channel, translated by the adapter."""

    channel: str
    # The channel's id for the sender (Telegram chat id, Slack user id, terminal person key).
    sender: str
    kind: InboundKind
    received_at: dt.datetime
    # Slack team id; empty for channels without workspaces.
    workspace: str = ""
    text: str | None = None
    value: int | None = None
    command: str | None = None
    # The channel's id of the message (for edits), and the event's idempotency key.
    ref: str | None = None
    event_key: str | None = None
    # Buttons carry the check-in they belong to.
    checkin_id: int | None = None

    def __post_init__(self) -> None:
        # The boundary for people's words: no NUL or other controls reach the engine or storage.
        object.__setattr__(self, "text", clean_optional(self.text))


@dataclass(frozen=True)
class Choice:
    label: str
    value: int


@dataclass(frozen=True, kw_only=True)
class Outbound:
    """One message to a person, already rendered for the channel's markup."""

    text: str
    choices: tuple[Choice, ...] = ()
    checkin_id: int | None = None
    # "question" (a core question), "followup", or "message".
    kind: Literal["question", "followup", "message"] = "message"
    question: str | None = None
    # A yes/no question (confirming a stop): channels with buttons add Yes and No, which send the
    # ``yes``/``no`` commands (the words a person could type); needs ``checkin_id``.
    confirm: bool = False
    # Slack Block Kit blocks, built by Rapport (people's words already made inert). Channels that
    # understand them (Slack) post them, with ``text`` as the notification fallback; all other
    # channels send ``text`` alone, so ``text`` must always be the whole message on its own.
    blocks: tuple[dict[str, Any], ...] | None = None


class RepliesPending(Exception):
    """``handle(replies_pending_for=...)``: the event was stored moments ago (by another process)
    and its replies are not confirmed yet, so they are most likely on their way; the channel asks
    for a later redelivery instead of showing the person the question a second time."""
