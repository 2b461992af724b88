"""Every recorded Slack payload in tests/fixtures/slack gets its defined behaviour, over signed
HTTP and through the Socket Mode path (both go through the same Bolt app and translation).

A payload file this table does not know must still be acknowledged without an error logged:
new captures can be dropped into the folder.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.channels.base import Address, Outbound
from memory.errors import PermanentFailure
from tests.channels.slack_kit import SlackRig, make_channel, sign

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slack"
FILES = sorted(p.name for p in FIXTURES.glob("*.json") if p.name != "MANIFEST.json")

UNKNOWN_PERSON = "don't know who you are"
# file -> (Web API methods Rapport calls in answer, what the first posted text contains)
EXPECTED: dict[str, tuple[list[str], str | None]] = {
    "bolt_url_verification.json": ([], None),
    "bolt_app_mention.json": (["chat.postEphemeral"], "direct message"),
    "bolt_block_actions.json": ([], None),  # a button that is not Rapport's
    "bolt_message_channel_user.json": ([], None),
    "bolt_message_changed_channel.json": ([], None),
    "bolt_message_deleted_channel.json": ([], None),
    "bolt_message_channel_user_for_bot_test.json": ([], None),
    "bolt_message_channel_from_bot_user_bot_id.json": ([], None),
    "bolt_message_bot_message_subtype_classic.json": ([], None),
    "bolt_message_bot_message_via_response_url.json": ([], None),
    "bolt_message_file_share_channel.json": ([], None),
    "bolt_message_thread_broadcast.json": ([], None),
    "bolt_reaction_added.json": ([], None),
    "bolt_app_uninstalled.json": ([], None),
    "bolt_tokens_revoked.json": ([], None),
    # A stranger: their Slack profile is checked for a roster e-mail first (users.info).
    "bolt_message_im_user_top_level.json": (["users.info", "chat.postMessage"], UNKNOWN_PERSON),
    "bolt_message_im_user_in_assistant_thread.json": (["users.info", "chat.postMessage"], UNKNOWN_PERSON),
    "bolt_message_changed_im_assistant_thread.json": ([], None),  # same words: not an edit
    "bolt_message_im_from_bot_user.json": ([], None),
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


def test_fixtures_are_attributed() -> None:
    manifest = {entry["file"]: entry for entry in json.loads((FIXTURES / "MANIFEST.json").read_text())}
    assert set(FILES) <= set(manifest)
    assert all(manifest[f]["licence"] == "MIT" and manifest[f]["repo"] for f in FILES)
    assert set(EXPECTED) <= set(FILES), "a payload named in the table is missing from the fixtures"


def _calls_after(rig: SlackRig, start: int) -> list[str]:
    return [c.method for c in rig.api.calls[start:] if c.method != "auth.test"]


def _assert_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@pytest.mark.parametrize("name", FILES)
async def test_payload_over_http(name: str, slack_rig: SlackRig, caplog: pytest.LogCaptureFixture) -> None:
    payload = load(name)
    start = len(slack_rig.api.calls)
    if payload.get("type") in ("block_actions", "view_submission", "shortcut", "message_action"):
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        ctype = "application/x-www-form-urlencoded"
    else:
        body, ctype = json.dumps(payload), "application/json"
    resp = await slack_rig.post_raw(body, {"Content-Type": ctype, **sign(body)})
    assert resp.status == 200
    _assert_no_errors(caplog)
    methods, text = EXPECTED.get(name, (None, None))
    if methods is not None:
        assert _calls_after(slack_rig, start) == methods
    if text is not None:
        posted = [c.params for c in slack_rig.api.calls[start:] if c.method.startswith("chat.post")]
        assert text in posted[0]["text"]
    if name == "bolt_url_verification.json":
        assert (await resp.json())["challenge"] == payload["challenge"]
    if name == "bolt_message_im_user_in_assistant_thread.json":
        # The reply goes where the person wrote: in their thread.
        assert slack_rig.api.calls_to("chat.postMessage")[-1]["thread_ts"] == payload["event"]["thread_ts"]
    if name in ("bolt_app_uninstalled.json", "bolt_tokens_revoked.json"):
        with pytest.raises(PermanentFailure):
            await slack_rig.channel.send(Address(channel="slack", external_id="U0ADA"), [Outbound(text="hi")])


@pytest.mark.parametrize("name", [f for f in FILES if f != "bolt_url_verification.json"])
async def test_payload_through_socket_mode(name: str, slack_rig: SlackRig, caplog: pytest.LogCaptureFixture) -> None:
    """Socket Mode hands Bolt the same payloads without a signature; the translation is shared."""
    channel = make_channel(slack_rig.app, slack_rig.api, slack_rig.clock, mode="socket", app_token="xapp-1-test")
    start = len(slack_rig.api.calls)
    response = await channel.bolt.async_dispatch(AsyncBoltRequest(body=load(name), mode="socket_mode"))
    await channel.drain()
    assert response.status in (200, 404)  # 404: Bolt's "no listener", acknowledged by the handler
    _assert_no_errors(caplog)
    methods, _text = EXPECTED.get(name, (None, None))
    if methods is not None:
        assert _calls_after(slack_rig, start) == methods


async def test_known_person_writing_outside_a_checkin_is_told_so(slack_rig: SlackRig) -> None:
    await slack_rig.roster("wanda", slack_user="W222")
    payload = load("bolt_message_im_user_top_level.json")
    body = json.dumps(payload)
    await slack_rig.post_raw(body, {"Content-Type": "application/json", **sign(body)})
    text = slack_rig.api.calls_to("chat.postMessage")[-1]["text"]
    assert UNKNOWN_PERSON not in text
    assert text


async def test_a_real_socket_mode_connection(slack_rig: SlackRig) -> None:
    """The Socket Mode client connects (apps.connections.open, then a WebSocket), acknowledges each
    envelope, and the event is handled like its HTTP twin."""
    await slack_rig.roster("wanda", slack_user="W222")
    channel = make_channel(slack_rig.app, slack_rig.api, slack_rig.clock, mode="socket", app_token="xapp-1-test")
    await channel.start()
    try:
        opened = [c for c in slack_rig.api.calls if c.method == "apps.connections.open"]
        assert [c.token for c in opened] == ["xapp-1-test"]
        envelope = await slack_rig.api.socket_send(load("bolt_message_im_user_top_level.json"))
        await slack_rig.api.socket_ack(envelope)
        await channel.drain()
        assert slack_rig.api.calls_to("chat.postMessage")[-1]["channel"] == "D111"
        # The same event again (Slack redelivers over a new connection): acknowledged, done once.
        posts = len(slack_rig.api.calls_to("chat.postMessage"))
        envelope = await slack_rig.api.socket_send(load("bolt_message_im_user_top_level.json"))
        await slack_rig.api.socket_ack(envelope)
        await channel.drain()
        assert len(slack_rig.api.calls_to("chat.postMessage")) == posts
        # Envelopes no listener can take, and malformed ones, are acknowledged too (else redelivered).
        for odd in ({"type": "something_new"}, {"type": "event_callback", "event": "oops"}, {}):
            await slack_rig.api.socket_ack(await slack_rig.api.socket_send(odd))
        await slack_rig.api.socket_ack(await slack_rig.api.socket_send({"type": "x"}, kind="brand_new_kind"))
        await channel.drain()
        assert len(slack_rig.api.calls_to("chat.postMessage")) == posts
    finally:
        await channel.stop()
