"""Owner digests over Slack: the real ``SlackChannel`` posts the Block Kit digest (with an escaped
mrkdwn fallback text) to the owner's linked Slack account, and people's words stay inert."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bot.channels.base import Address, Outbound
from bot.digests import DigestDelivery
from bot.engine.owners import link_owner
from memory import db
from memory.models import OutboxMessage, Owner
from scheduler.digests import DigestSchedule, plan_digests
from tests.channels.slack_kit import SlackRig
from tests.history_builder import T0, History

MONDAY_9 = dt.datetime(2025, 9, 1, 9, 0, tzinfo=dt.UTC)


def _digest_row(rig: SlackRig, *, link: bool = True) -> OutboxMessage:
    with db.transaction(rig.app.sessions) as s:
        h = History(s)
        dana = h.person("dana", owner="lead@example.com", name="Dana <script>")
        h.checkin(dana, "customers", T0, rating=9, text="Support answers within the hour.")
        h.checkin(dana, "customers", MONDAY_9 - dt.timedelta(days=3), rating=3, text="<!channel> *Support* is slow.")
        if link:
            owner = s.scalar(select(Owner))
            assert owner is not None
            link_owner(s, owner=owner, channel="slack", external_id="U0LEAD", now=T0)
        (row,) = plan_digests(s, schedule=DigestSchedule(channel="slack"), now=MONDAY_9)
        s.flush()
        s.expunge(row)
        return row


def _texts(blocks: list[dict]) -> list[tuple[str, str]]:
    """(text type, text) of every text in the blocks, context elements included."""
    out = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            out.append((block["text"]["type"], block["text"]["text"]))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element and isinstance(element["text"], str):
                out.append((element["type"], element["text"]))
    return out


async def test_a_digest_arrives_as_block_kit_with_people_s_words_inert(slack_rig: SlackRig) -> None:
    row = _digest_row(slack_rig)
    deliver = DigestDelivery(sessions=slack_rig.app.sessions, config=slack_rig.app.config,
                             channels={"slack": slack_rig.channel})  # fmt: skip
    ref = await deliver(row)
    (post,) = slack_rig.posted("D0LEAD")
    assert ref == post["ts"]
    blocks = post["blocks"]
    assert isinstance(blocks, list)
    assert blocks[0]["type"] == "header"
    texts = _texts(blocks)
    # The person's words are in plain_text blocks, exactly as typed: Slack shows them literally.
    words = [t for kind, t in texts if "Support* is slow" in t]
    assert words, texts
    assert all(kind == "plain_text" for kind, t in texts if "Support* is slow" in t or "Dana" in t)
    assert any("“<!channel> *Support* is slow”" in t for t in words)
    # No mrkdwn text anywhere carries a live mention, link or the person's formatting.
    for kind, text in texts:
        if kind == "mrkdwn":
            assert "<!channel>" not in text
            assert "*Support*" not in text
    # The fallback text (notifications, old clients) is mrkdwn, escaped.
    assert "&lt;!channel&gt;" in post["text"]
    assert "<!channel>" not in post["text"]
    assert "Dana &lt;script&gt;" in post["text"]


async def test_outbound_blocks_are_posted_and_text_alone_without_them(slack_rig: SlackRig) -> None:
    address = Address(channel="slack", external_id="U0ADA")
    blocks = ({"type": "section", "text": {"type": "plain_text", "text": "<!here> as typed", "emoji": False}},)
    await slack_rig.channel.send(address, [Outbound(text="&lt;!here&gt; as typed", blocks=blocks)])
    await slack_rig.channel.send(address, [Outbound(text="just text")])
    with_blocks, plain = slack_rig.posted("D0ADA")
    assert with_blocks["text"] == "&lt;!here&gt; as typed"
    assert with_blocks["blocks"] == [dict(b) for b in blocks]
    assert plain["text"] == "just text"
    assert "blocks" not in plain
