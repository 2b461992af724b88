"""Telegram updates -> actions: pure, never raises on odd shapes, reads no clock (``now`` is passed).

:func:`translate` turns one raw update (a JSON object, whatever its shape) into one :data:`Action`;
the channel carries the action out. PTB does not parse updates here: one malformed update must not
stop polling, and unknown or partial payloads must still get their defined behaviour.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.channels.base import Inbound
from bot.engine import mydata_requests
from bot.engine.flow import COMMANDS

NAME = "telegram"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
# Rating buttons: "r:<checkin id>:<value>". Callback data comes back from the client untrusted.
CALLBACK_DATA = re.compile(r"^r:(\d{1,12}):(-?\d{1,3})$")
# The "Stop check-ins" button under a question: "s:<check-in id>".
STOP_DATA_PREFIX = "s:"
STOP_DATA = re.compile(r"^s:(\d{1,12})$")
# Yes/No under "Do you want to stop all check-ins?": "c:<check-in id>:yes" or ":no".
CONFIRM_DATA = re.compile(r"^c:(\d{1,12}):(yes|no)$")
_PRIVATE = "private"
# Messages Telegram itself writes into a chat (pins, joins, payments...): nothing to answer.
SERVICE_KEYS = frozenset({
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "channel_chat_created", "message_auto_delete_timer_changed",
    "migrate_to_chat_id", "migrate_from_chat_id", "pinned_message", "successful_payment", "refunded_payment",
    "users_shared", "chat_shared", "connected_website", "write_access_allowed", "proximity_alert_triggered",
    "boost_added", "chat_background_set", "forum_topic_created", "forum_topic_edited", "forum_topic_closed",
    "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden", "giveaway_created",
    "giveaway_completed", "video_chat_scheduled", "video_chat_started", "video_chat_ended",
    "video_chat_participants_invited", "web_app_data", "passport_data", "gift", "unique_gift",
    "paid_message_price_changed", "checklist_tasks_done", "checklist_tasks_added",
})  # fmt: skip
_GONE = frozenset({"kicked", "left"})
_PRESENT = frozenset({"member", "administrator", "creator", "restricted"})


@dataclass(frozen=True, kw_only=True)
class Ignore:
    """Nothing to do (unknown kinds, service messages, channel posts); logged at debug."""

    kind: str
    why: str


@dataclass(frozen=True, kw_only=True)
class Explain:
    """A polite fixed reply that reveals and stores nothing (groups, channels)."""

    chat_id: int
    template: str
    event_key: str | None = None


@dataclass(frozen=True, kw_only=True)
class Deliver:
    """Something a person did in their private chat, for the check-in service."""

    chat_id: int
    inbound: Inbound


@dataclass(frozen=True, kw_only=True)
class Link:
    """``/start <token>``: bind this private chat to the person the invite names."""

    chat_id: int
    token: str
    event_key: str | None
    received_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class Press:
    """A button press: always answered; the keyboard closed; a valid rating handled."""

    callback_id: str
    chat_id: int | None
    message_id: int | None
    inbound: Inbound | None


@dataclass(frozen=True, kw_only=True)
class Membership:
    """The person blocked (kicked) the bot in their private chat, or unblocked it."""

    chat_id: int
    reachable: bool
    event_key: str | None
    received_at: dt.datetime


Action = Ignore | Explain | Deliver | Link | Press | Membership


def as_int(value: object) -> int | None:
    # bool is an int in Python; a JSON true is not an id.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_private(chat: Mapping[str, Any], chat_id: int) -> bool:
    kind = chat.get("type")
    # Legacy or partial payloads may lack the type; private chat ids are the user's (positive) id.
    return kind == _PRIVATE if isinstance(kind, str) else chat_id > 0


def update_kind(update: Mapping[str, Any]) -> str:
    kinds = [k for k in update if k != "update_id"]
    return kinds[0] if kinds else "empty"


def content_key(update: Mapping[str, Any]) -> str:
    """An idempotency key for an update that lacks ``update_id`` (legacy or hand-made payloads):
    the same payload delivered again is still processed once."""
    canonical = json.dumps(update, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def translate(update: Mapping[str, Any], *, now: dt.datetime) -> Action:
    """What one raw update asks for. Never raises on odd shapes: anything unreadable is Ignore."""
    if not isinstance(update, Mapping):
        return Ignore(kind="invalid", why="not a JSON object")
    update_id = as_int(update.get("update_id"))
    key = str(update_id) if update_id is not None else content_key(update)
    if isinstance(update.get("message"), Mapping):
        return _message(update["message"], key, now, edited=False)
    if isinstance(update.get("edited_message"), Mapping):
        return _message(update["edited_message"], key, now, edited=True)
    if isinstance(update.get("callback_query"), Mapping):
        return _callback(update["callback_query"], key, now)
    if isinstance(update.get("my_chat_member"), Mapping):
        return _membership(update["my_chat_member"], key, now)
    return Ignore(kind=update_kind(update), why="update kind not handled")


def _message(msg: Mapping[str, Any], key: str | None, now: dt.datetime, *, edited: bool) -> Action:
    kind = "edited_message" if edited else "message"
    chat = _dict(msg.get("chat"))
    chat_id = as_int(chat.get("id"))
    if chat_id is None:
        return Ignore(kind=kind, why="no chat id")
    text = msg.get("text")
    text = text if isinstance(text, str) else None
    if not _is_private(chat, chat_id):
        if edited or chat.get("type") == "channel" or text is None:
            return Ignore(kind=kind, why="not a private chat")
        return Explain(chat_id=chat_id, template="telegram/group_chat", event_key=key)
    if _dict(msg.get("from")).get("is_bot") is True:
        return Ignore(kind=kind, why="sent by a bot")
    message_id = as_int(msg.get("message_id"))
    ref = str(message_id) if message_id is not None else None
    base = functools.partial(Inbound, channel=NAME, sender=str(chat_id), received_at=now, event_key=key, ref=ref)
    if edited:
        if text is None:
            return Ignore(kind=kind, why="edit without text")
        return Deliver(chat_id=chat_id, inbound=base(kind="edit", text=text))
    if text is None:
        if any(k in msg for k in SERVICE_KEYS):
            return Ignore(kind=kind, why="service message")
        # Stickers, photos, voice, dice, contacts, polls, kinds not invented yet, even an empty message.
        return Deliver(chat_id=chat_id, inbound=base(kind="non_text"))
    command = _command(text)
    if command is not None:
        name, argument = command
        if name == "start" and argument:
            return Link(chat_id=chat_id, token=argument, event_key=key, received_at=now)
        if name in mydata_requests.COMMANDS:
            # "/mydata", "/delete 3", "/correct 3 new words": the engine reads the words.
            return Deliver(chat_id=chat_id, inbound=base(kind="text", text=text))
        # Unknown commands get the help text rather than being stored as an answer. The text
        # goes along for owners' commands (``/login``, ``/promise @dana ...``), read by the engine.
        name = name if name in COMMANDS else "help"
        return Deliver(chat_id=chat_id, inbound=base(kind="command", command=name, text=text))
    return Deliver(chat_id=chat_id, inbound=base(kind="text", text=text))


def _command(text: str) -> tuple[str, str] | None:
    """``/name@Bot argument`` -> (name, argument); None when the text is not a command."""
    if not text.startswith("/"):
        return None
    parts = text.strip().split(maxsplit=1)
    name = parts[0][1:].split("@", 1)[0].lower()
    if not name:
        return None
    return name, parts[1].strip() if len(parts) > 1 else ""


def _callback(query: Mapping[str, Any], key: str | None, now: dt.datetime) -> Action:
    callback_id = query.get("id")
    if not isinstance(callback_id, str) or not callback_id:
        return Ignore(kind="callback_query", why="no callback id")
    msg = _dict(query.get("message"))
    chat = _dict(msg.get("chat"))
    chat_id = as_int(chat.get("id"))
    message_id = as_int(msg.get("message_id"))
    if chat_id is None or not _is_private(chat, chat_id):
        # An inline message (no chat) or a group: answer the press so the client stops spinning.
        return Press(callback_id=callback_id, chat_id=None, message_id=None, inbound=None)
    data = query.get("data")
    data = data if isinstance(data, str) and len(data) <= 64 else ""
    match = CALLBACK_DATA.match(data)
    stop = STOP_DATA.match(data)
    confirm = CONFIRM_DATA.match(data)
    inbound = None
    if confirm is not None:
        # The ``yes``/``no`` command, as typed; one answer per message, whatever the taps.
        inbound = Inbound(
            channel=NAME, sender=str(chat_id), kind="command", command=confirm.group(2),
            checkin_id=int(confirm.group(1)) or None, received_at=now,
            event_key=f"confirm:{chat_id}:{message_id}" if message_id is not None else key,
        )  # fmt: skip
    elif stop is not None:
        # The stop command: the conversation asks to confirm, exactly as for a typed /stop.
        inbound = Inbound(
            channel=NAME, sender=str(chat_id), kind="command", command="stop",
            checkin_id=int(stop.group(1)) or None, received_at=now,
            # One stop per message: a double tap asks once, and never confirms by itself.
            event_key=f"stop:{chat_id}:{message_id}" if message_id is not None else key,
        )  # fmt: skip
    elif match is not None:
        checkin_id, value = int(match.group(1)), int(match.group(2))
        inbound = Inbound(
            channel=NAME, sender=str(chat_id), kind="choice", value=value, checkin_id=checkin_id or None,
            received_at=now, event_key=key,
        )  # fmt: skip
    return Press(callback_id=callback_id, chat_id=chat_id, message_id=message_id, inbound=inbound)


def _membership(change: Mapping[str, Any], key: str | None, now: dt.datetime) -> Action:
    chat = _dict(change.get("chat"))
    chat_id = as_int(chat.get("id"))
    status = _dict(change.get("new_chat_member")).get("status")
    if chat_id is None or not isinstance(status, str):
        return Ignore(kind="my_chat_member", why="no chat or status")
    if _is_private(chat, chat_id):
        if status in _GONE:
            return Membership(chat_id=chat_id, reachable=False, event_key=key, received_at=now)
        if status in _PRESENT:
            return Membership(chat_id=chat_id, reachable=True, event_key=key, received_at=now)
        return Ignore(kind="my_chat_member", why=f"status {status}")
    if chat.get("type") in ("group", "supergroup") and status in _PRESENT:
        # Added to a group: say once that this is not a place for check-ins.
        return Explain(chat_id=chat_id, template="telegram/group_chat", event_key=key)
    return Ignore(kind="my_chat_member", why="not a private chat")
