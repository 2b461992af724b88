"""``translate``: every shape of update, legacy, partial or malformed, gets one defined action.

Pure tests (no database, no network), plus a mutation sweep over the recorded payloads: each field
is removed or replaced with the wrong type, and translation must still answer with an action.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.channels.telegram import Deliver, Explain, Ignore, Link, Membership, Press, keyboard, translate
from bot.engine.ports import Choice, Outbound
from tests.channels.telegram_kit import T0, press_update, text_update

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"


def act(update: Any) -> Any:
    return translate(update, now=T0)


def test_private_text_is_delivered_with_its_keys() -> None:
    action = act(text_update("Great support", chat_id=5, message_id=77, update_id=9))
    assert isinstance(action, Deliver)
    assert action.chat_id == 5
    inbound = action.inbound
    assert (inbound.channel, inbound.sender, inbound.kind, inbound.text) == ("telegram", "5", "text", "Great support")
    assert (inbound.event_key, inbound.ref, inbound.received_at) == ("9", "77", T0)


@pytest.mark.parametrize(
    ("text", "kind", "command"),
    [
        ("/help", "command", "help"),
        ("/SKIP", "command", "skip"),
        ("/stop@RapportTestBot", "command", "stop"),
        ("/start", "command", "start"),
        ("/settings", "command", "help"),
        ("/", "text", None),
        ("8", "text", None),
        ("stop", "text", None),  # the engine reads plain-word commands itself
    ],
)
def test_commands(text: str, kind: str, command: str | None) -> None:
    action = act(text_update(text))
    assert isinstance(action, Deliver)
    assert (action.inbound.kind, action.inbound.command) == (kind, command)


@pytest.mark.parametrize("text", ["/start abc_DEF-123", "/start\nabc_DEF-123", "/start@RapportBot   abc_DEF-123 "])
def test_start_with_an_argument_is_a_link(text: str) -> None:
    action = act(text_update(text, update_id=4))
    assert isinstance(action, Link)
    assert (action.token, action.event_key) == ("abc_DEF-123", "4")


def test_edited_text_is_an_edit_of_that_message() -> None:
    action = act(text_update("6", message_id=10, edited=True))
    assert isinstance(action, Deliver)
    assert (action.inbound.kind, action.inbound.ref, action.inbound.text) == ("edit", "10", "6")


@pytest.mark.parametrize(
    ("data", "checkin", "value"),
    [("r:12:7", 12, 7), ("r:0:3", None, 3), ("r:5:-2", 5, -2)],
)
def test_rating_buttons(data: str, checkin: int | None, value: int) -> None:
    action = act(press_update(data, message_id=3))
    assert isinstance(action, Press)
    assert action.inbound is not None
    assert (action.inbound.kind, action.inbound.checkin_id, action.inbound.value) == ("choice", checkin, value)
    assert action.message_id == 3


@pytest.mark.parametrize("data", ["r:1:7:8", "r:x:1", "r:1:", "x", "r:1:1234", None, 7, "r:1:7" + " " * 100])
def test_untrusted_callback_data_is_answered_but_not_handled(data: object) -> None:
    update = press_update("r:1:1")
    update["callback_query"]["data"] = data
    action = act(update)
    assert isinstance(action, Press)
    assert action.inbound is None


def test_private_chat_type_is_inferred_from_the_id_when_missing() -> None:
    update = text_update("hi", chat_id=42)
    del update["message"]["chat"]["type"]
    assert isinstance(act(update), Deliver)
    update["message"]["chat"]["id"] = -42
    assert isinstance(act(update), Explain)


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        (None, Ignore),
        ([], Ignore),
        ({}, Ignore),
        ({"update_id": 1}, Ignore),
        ({"update_id": "1", "message": "hello"}, Ignore),
        ({"message": {"text": "no chat"}}, Ignore),
        ({"message": {"chat": {"id": "12"}, "text": "string id"}}, Ignore),
        ({"message": {"chat": {"id": True}, "text": "bool id"}}, Ignore),
        ({"message": {"chat": {"id": 1, "type": "private"}, "text": 5}}, Deliver),  # non-text
        ({"message": {"chat": {"id": 1, "type": "private"}, "from": {"is_bot": True}, "text": "x"}}, Ignore),
        ({"message": {"chat": {"id": 1, "type": "private"}, "pinned_message": {}}}, Ignore),
        ({"message": {"chat": {"id": -1, "type": "group"}, "new_chat_members": []}}, Ignore),
        ({"message": {"chat": {"id": -1, "type": "channel"}, "text": "post"}}, Ignore),
        ({"channel_post": {"chat": {"id": -1}, "text": "x"}}, Ignore),
        ({"edited_message": {"chat": {"id": 1, "type": "private"}, "caption": "x"}}, Ignore),
        ({"edited_message": {"chat": {"id": -1, "type": "group"}, "text": "x"}}, Ignore),
        ({"callback_query": {"data": "r:1:1"}}, Ignore),  # no id: cannot even be answered
        ({"callback_query": {"id": "c", "data": "r:1:1"}}, Press),
        ({"my_chat_member": {"chat": {"id": 1}, "new_chat_member": {}}}, Ignore),
        ({"my_chat_member": {"chat": {"id": 1}, "new_chat_member": {"status": "kicked"}}}, Membership),
        ({"my_chat_member": {"chat": {"id": 1}, "new_chat_member": {"status": "left"}}}, Membership),
        ({"my_chat_member": {"chat": {"id": 1}, "new_chat_member": {"status": "member"}}}, Membership),
        ({"my_chat_member": {"chat": {"id": -1, "type": "supergroup"}, "new_chat_member": {"status": "left"}}}, Ignore),
        ({"inline_query": {"id": "1", "query": "x"}}, Ignore),
        ({"poll_answer": {"poll_id": "1"}}, Ignore),
        ({"chat_join_request": {}}, Ignore),
        ({"business_message": {"chat": {"id": 1}, "text": "x"}}, Ignore),
    ],
)
def test_odd_and_partial_updates(update: Any, expected: type) -> None:
    assert isinstance(act(update), expected)


def test_membership_changes() -> None:
    kicked = act({"update_id": 3, "my_chat_member": {"chat": {"id": 8, "type": "private"},
                                                     "new_chat_member": {"status": "kicked"}}})  # fmt: skip
    assert kicked == Membership(chat_id=8, reachable=False, event_key="3", received_at=T0)


def _mutations(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every (path, replacement) that deletes a field or swaps in a value of the wrong type."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*path, key), "<delete>"
            for wrong in (None, "x", 0, [], {}, True):
                yield (*path, key), wrong
            yield from _mutations(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _mutations(child, (*path, i))


def _apply(payload: Any, path: tuple[Any, ...], replacement: Any) -> Any:
    mutated = copy.deepcopy(payload)
    node = mutated
    for part in path[:-1]:
        node = node[part]
    if replacement == "<delete>":
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    return mutated


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "MANIFEST.json"))
def test_mutated_payloads_always_translate(name: str) -> None:
    payload = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    count = 0
    for path, replacement in _mutations(payload):
        action = act(_apply(payload, path, replacement))
        assert isinstance(action, Ignore | Explain | Deliver | Link | Press | Membership)
        count += 1
    assert count > 10


def test_keyboard_rows_and_callback_data() -> None:
    choices = tuple(Choice(str(v), v) for v in range(11))
    markup = keyboard(Outbound(text="?", choices=choices, checkin_id=123456789))
    assert markup is not None
    rows = markup.inline_keyboard
    assert [len(r) for r in rows] == [6, 5, 1]
    assert rows[-1][0].callback_data == "s:123456789"  # "Stop check-ins"
    data = [b.callback_data for r in rows for b in r]
    assert all(isinstance(d, str) and len(d.encode()) <= 64 for d in data)
    assert data[7] == "r:123456789:7"
    assert keyboard(Outbound(text="no buttons")) is None


def test_updates_without_update_id_get_a_stable_content_key() -> None:
    update = text_update("hello", message_id=5)
    first, again = act(update), act(copy.deepcopy(update))
    assert isinstance(first, Deliver)
    assert isinstance(again, Deliver)
    assert first.inbound.event_key is not None
    assert first.inbound.event_key.startswith("sha256:")
    assert first.inbound.event_key == again.inbound.event_key
    other = act(text_update("hello", message_id=6))
    assert isinstance(other, Deliver)
    assert other.inbound.event_key != first.inbound.event_key
