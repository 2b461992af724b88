"""Slack payloads -> ``Inbound``: pure functions, shared by HTTP and Socket Mode, and tested on
every recorded payload. Nothing here does I/O or reads a clock (``now`` is passed in).

Slack sends ``&``, ``<`` and ``>`` escaped in message text; the person's words are unescaped
here, and escaped again by every sink that shows them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from bot.channels.base import Inbound
from bot.channels.slack.blocks import JSON

log = logging.getLogger("bot.channels.slack")

NAME = "slack"
# "<check-in id>:<value>": both whole numbers; anything else is refused (the value is untrusted).
_RATING_VALUE = re.compile(r"^(\d{1,12}):(-?\d{1,3})$")
_CHECKIN_ID = re.compile(r"^\d{1,12}$")
_CONFIRM_VALUE = re.compile(r"^(\d{1,12}):(yes|no)$")
# Message subtypes that carry a person's own words. Other subtypes are Slack's notices
# (channel_join, pinned_item, ...) and are not answers.
_TEXT_SUBTYPES = frozenset({None, "file_share", "thread_broadcast", "me_message"})


def workspace_of(body: JSON, *, multi_workspace: bool) -> str:
    """The identity's workspace: the team id with several workspaces, "" with one."""
    if not multi_workspace:
        return ""
    team = body.get("team_id") or dig(body, "team", "id") or dig(body, "user", "team_id")
    return str(team or "")


def translate_message(body: JSON, *, workspace: str, now: dt.datetime) -> tuple[Inbound, str, str | None] | None:
    """A ``message`` event as (Inbound, DM channel, thread), or None when it is not for us."""
    event = body.get("event")
    if not isinstance(event, dict):
        return None
    if event.get("channel_type") != "im" or not isinstance(event.get("channel"), str):
        return None  # channels, group DMs: Rapport talks to people one to one
    subtype = event.get("subtype")
    common: JSON = {
        "channel": NAME,
        "workspace": workspace,
        "received_at": now,
        "event_key": text_of(body.get("event_id")),
    }
    channel = event["channel"]
    if subtype == "message_changed":
        message = event.get("message")
        previous = event.get("previous_message")
        if not isinstance(message, dict) or is_bot(message):
            return None
        user, ts = text_of(message.get("user")), text_of(message.get("ts"))
        text = text_of(message.get("text")) or ""
        if not user or not ts:
            return None
        if isinstance(previous, dict) and previous.get("text") == text:
            return None  # a link preview or a thread reply count changed, not the words
        return Inbound(sender=user, kind="edit", ref=ts, text=unescape_slack(text), **common), channel, None
    if subtype == "message_deleted":
        previous = event.get("previous_message")
        user = text_of(previous.get("user")) if isinstance(previous, dict) else None
        ts = text_of(event.get("deleted_ts")) or (text_of(previous.get("ts")) if isinstance(previous, dict) else None)
        if not user or not ts or (isinstance(previous, dict) and is_bot(previous)):
            return None
        return Inbound(sender=user, kind="delete", ref=ts, **common), channel, None
    if is_bot(event) or subtype not in _TEXT_SUBTYPES:
        return None
    user = text_of(event.get("user"))
    if not user:
        return None
    text = text_of(event.get("text")) or ""
    thread = text_of(event.get("thread_ts"))
    if not text.strip():
        if event.get("files") or subtype == "file_share":
            return Inbound(sender=user, kind="non_text", ref=text_of(event.get("ts")), **common), channel, thread
        return None
    inbound = Inbound(sender=user, kind="text", text=unescape_slack(text), ref=text_of(event.get("ts")), **common)
    return inbound, channel, thread


def translate_rating(body: JSON, *, workspace: str, now: dt.datetime) -> tuple[Inbound, str, str] | None:
    """A rating (or Yes/No) button click as (Inbound, channel, message ts), or None when it is not
    valid."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else None
    user = text_of(dig(body, "user", "id"))
    channel = text_of(dig(body, "container", "channel_id")) or text_of(dig(body, "channel", "id"))
    message_ts = text_of(dig(body, "container", "message_ts")) or text_of(dig(body, "message", "ts"))
    if action is None or not user or not channel or not message_ts:
        return None
    confirm = _CONFIRM_VALUE.match(str(action.get("value") or ""))
    if confirm is not None:
        # Yes/No under "stop?": the ``yes``/``no`` command, once per message as a rating is.
        inbound = Inbound(
            channel=NAME, sender=user, workspace=workspace, kind="command", command=confirm.group(2),
            checkin_id=int(confirm.group(1)), received_at=now, event_key=f"confirm:{channel}:{message_ts}",
        )  # fmt: skip
        return inbound, channel, message_ts
    match = _RATING_VALUE.match(str(action.get("value") or ""))
    if match is None:
        log.warning("slack: rating button with an invalid value refused")
        return None
    checkin_id, value = int(match.group(1)), int(match.group(2))
    inbound = Inbound(
        channel=NAME, sender=user, workspace=workspace, kind="choice", value=value, checkin_id=checkin_id,
        ref=message_ts, received_at=now,
        # One answer per rating message: a second click on the same buttons is a duplicate.
        event_key=f"rating:{channel}:{message_ts}",
    )  # fmt: skip
    return inbound, channel, message_ts


def translate_stop(body: JSON, *, workspace: str, now: dt.datetime) -> tuple[Inbound, str] | None:
    """The "Stop check-ins" button under a question as (Inbound, channel): the ``stop`` command,
    which the conversation confirms like a typed "stop". None when it is not valid."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else None
    user = text_of(dig(body, "user", "id"))
    channel = text_of(dig(body, "container", "channel_id")) or text_of(dig(body, "channel", "id"))
    message_ts = text_of(dig(body, "container", "message_ts")) or text_of(dig(body, "message", "ts"))
    value = str(action.get("value") or "") if action is not None else ""
    if not user or not channel or not message_ts or not _CHECKIN_ID.match(value):
        return None
    inbound = Inbound(
        channel=NAME, sender=user, workspace=workspace, kind="command", command="stop", checkin_id=int(value),
        received_at=now,
        # One stop per message: a double click asks once, and never confirms by itself.
        event_key=f"stop:{channel}:{message_ts}",
    )  # fmt: skip
    return inbound, channel


def chosen_view(message: Any, inbound: Inbound) -> tuple[str, list[JSON]] | None:
    """The rating (or Yes/No) message with its buttons replaced by the choice made: (text, blocks)."""
    if not isinstance(message, dict):
        return None
    blocks = [b for b in (message.get("blocks") or []) if isinstance(b, dict) and b.get("type") not in ("actions",)]
    answer = str(inbound.command).capitalize() if inbound.kind == "command" else str(int(inbound.value or 0))
    chosen = f"Your answer: *{answer}*"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": chosen}]})
    return f"{text_of(message.get('text')) or ''}\n{chosen}", blocks


# Small helpers for partial payloads ------------------------------------------------------------


def dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def unescape_slack(text: str) -> str:
    """The words as the person typed them. (Mentions and links stay in Slack's ``<…>`` form;
    they are escaped again whenever shown.)"""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def text_of(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def is_bot(event: JSON) -> bool:
    return (
        bool(event.get("bot_id"))
        or event.get("subtype") == "bot_message"
        or bool(event.get("bot_profile"))
        or event.get("user") == "USLACKBOT"
    )
