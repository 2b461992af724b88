"""The App Home tab: the person's own check-ins and a stop/resume button.

What a person sees is the engine's view of their own history (``People.history``); the stop
button records the engine's one opt-out rule (``People.opt_out``), and resume is the ``start``
command, exactly as typed in the DM. Each answer's "Delete" button (with Slack's confirmation
dialog) deletes it through the engine's rule (``OwnData.delete``, ``bot.engine.mydata``). A button's
decision is stored before the click is acknowledged; the DM and the refreshed tab follow it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

import prompts
from bot.channels.base import Address, Inbound, Outbound
from bot.channels.slack.blocks import HOME_DELETE_ACTION, HOME_STOP_ACTION, JSON, home_view
from bot.channels.slack.intake import Then
from bot.channels.slack.translate import NAME, dig, obj, text_of
from memory.errors import DeliveryError

if TYPE_CHECKING:
    from bot.channels.slack.channel import SlackChannel

log = logging.getLogger("bot.channels.slack")


async def opened(channel: SlackChannel, body: JSON, client: AsyncWebClient) -> None:
    event = obj(body.get("event"))
    user = text_of(event.get("user"))
    if not user or event.get("tab", "home") != "home":
        return
    await publish(channel, client, user, channel.workspace(body))


async def publish(channel: SlackChannel, client: AsyncWebClient, user: str, workspace: str) -> None:
    history = await asyncio.to_thread(channel.people.history, NAME, user, workspace)
    if history is None:
        view = home_view(entries=None, opted_out=False)
    else:
        view = home_view(entries=history.entries, opted_out=history.opted_out)
    try:
        await client.views_publish(user_id=user, view=view)
    except (SlackApiError, aiohttp.ClientError, TimeoutError):
        log.warning("slack: the App Home could not be published")


async def button(channel: SlackChannel, body: JSON, client: AsyncWebClient) -> Then | None:
    """Carry out a Home tab button (before the acknowledgement); returns the rest (the DM saying
    so, the refreshed tab)."""
    actions = body.get("actions")
    action = actions[0] if isinstance(actions, list) and actions and isinstance(actions[0], dict) else {}
    user = text_of(dig(body, "user", "id"))
    if not user:
        return None
    workspace = channel.workspace(body)
    now = channel.clock()
    if action.get("action_id") == HOME_DELETE_ACTION:
        # Slack's confirmation dialog is on the button; the value is untrusted (the engine only
        # deletes the sender's own answer).
        value = str(action.get("value") or "")
        answer_id = int(value) if value.isdigit() and len(value) <= 12 else None
        deleted = answer_id is not None and await asyncio.to_thread(
            channel.service.own.delete, NAME, user, answer_id, now=now, via="slack_home", workspace=workspace
        )
        replies = [Outbound(text=prompts.render("person/mydata_deleted", channel.markup, answer_id=answer_id,
                                                via_message=False, cmd=""))] if deleted else []  # fmt: skip
    elif action.get("action_id") == HOME_STOP_ACTION:
        # The button carries Slack's own confirmation dialog, so one click here is a decision.
        stopped = await asyncio.to_thread(channel.people.opt_out, NAME, user, workspace, now)
        replies = [Outbound(text=prompts.render("person/opted_out", channel.markup))] if stopped else []
    else:
        replies = await channel.handle(
            Inbound(channel=NAME, sender=user, workspace=workspace, kind="command", command="start", received_at=now)
        )

    async def then() -> None:
        if replies:
            try:
                address = Address(channel=NAME, external_id=user, workspace=workspace)
                dm = await channel.transport.open_dm(client, address)
            except DeliveryError:
                dm = None
            if dm is not None:
                await channel.reply(client, dm, replies, None)
        await publish(channel, client, user, workspace)

    return then
