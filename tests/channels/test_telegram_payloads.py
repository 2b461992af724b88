"""Every recorded Telegram payload in tests/fixtures/telegram gets its defined behaviour.

Each file is posted to the real webhook route (with the secret), as Telegram would. The chats in
the payloads are linked to a person with an open check-in where that matters, so the behaviour
asserted is the one a real person would see. See tests/fixtures/telegram/MANIFEST.json for where
each payload comes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import prompts
from tests.channels.telegram_kit import (
    T0,
    add_person,
    answers,
    identity,
    make_channel,
    post_update,
    webhook_client,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "telegram"
NOT_TEXT = ("reply", "person/not_text")
# file -> (chat to link to a person with an open check-in, or None; expected behaviour)
EXPECTED: dict[str, tuple[int | None, tuple[str, str]]] = {
    "tlx_message_text_private.json": (None, ("reply", "person/unknown_person")),
    "tlx_message_text_private_link_preview.json": (None, ("reply", "person/unknown_person")),
    "tlx_message_text_private_effect_id.json": (1459074222, ("reply", "person/rating_not_a_number")),
    "tlx_my_chat_member_kicked_private_bot_blocked.json": (0, ("unreachable", "")),
    "autogram_my_chat_member_private_kicked_bot_blocked.json": (5342492667, ("unreachable", "")),
    "tlx_message_dice.json": (None, ("silent", "")),
    "tlx_message_pinned.json": (None, ("silent", "")),
    "tlx_unknown_update_kind.json": (None, ("silent", "")),
    "getupdates_channel_post.json": (None, ("silent", "")),
    "tlx_message_sticker.json": (250918540, NOT_TEXT),
    "tlx_message_photo.json": (250918540, NOT_TEXT),
    "tlx_message_photo_caption_entities.json": (27433968, NOT_TEXT),
    "tlx_message_video_forwarded.json": (250918540, NOT_TEXT),
    "tlx_message_location_venue.json": (0, NOT_TEXT),
    "tlx_message_empty_private.json": (1234567890, NOT_TEXT),
    "tlx_message_supergroup_sender_chat_forward_origin.json": (None, ("reply", "telegram/group_chat")),
    "tlx_callback_query_inline_message.json": (None, ("callback_only", "")),
}


def payload_files() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "MANIFEST.json")


def test_every_fixture_has_a_defined_behaviour_and_attribution() -> None:
    assert payload_files() == sorted(EXPECTED)
    manifest = json.loads((FIXTURES / "MANIFEST.json").read_text(encoding="utf-8"))
    assert sorted(m["file"] for m in manifest) == sorted(EXPECTED)
    assert all(m["licence"] == "MIT" and m["repo"] and m["commit"] for m in manifest)


@pytest.mark.parametrize("name", payload_files())
async def test_payload_gets_its_defined_behaviour(make_app, telegram_api, name: str) -> None:
    payload: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    chat, (behaviour, template) = EXPECTED[name]
    app = make_app()
    if chat is not None:
        add_person(app, chat_id=chat)
        app.service.start(person_ref="ann", program="customers", now=T0, channel="telegram", markup="telegram_html")
    channel = make_channel(app, telegram_api, mode="webhook")
    await channel.start()
    client = await webhook_client(channel)
    try:
        assert await post_update(client, payload) == 200
        sent = telegram_api.calls_to("sendMessage")
        if behaviour == "reply":
            assert sent, "a reply"
            assert sent[0]["text"] == prompts.render(template, "telegram_html", rating=True, low=0, high=10)
        else:
            assert sent == []
        if behaviour == "unreachable":
            found = identity(app, chat or 0)
            assert found is not None
            assert not found.reachable
            assert found.unreachable_reason == "blocked"
        if behaviour == "callback_only":
            assert len(telegram_api.calls_to("answerCallbackQuery")) == 1
            assert telegram_api.calls_to("editMessageReplyMarkup") == []
        assert answers(app) == [], "no payload here is a valid answer"
    finally:
        await client.close()
        await channel.stop()
