"""Slack's "Record a promise" message shortcut: an owner picks it on a message, a modal asks for
the person, the promise (prefilled with the message's words) and an optional due date, and the
submission records the promise through the engine's owner commands (``bot.engine.owners``), the
same rule as the ``promise @person ...`` chat command. Only senders linked as owners get the form;
anyone else gets a modal saying so, and nothing is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import IntegrityError

import prompts
from bot.channels.slack.blocks import JSON, TEXT_BLOCK, errors_for, notice_modal, promise_modal, read_form
from bot.channels.slack.receiver import Ack
from bot.channels.slack.translate import NAME, dig, obj, text_of, unescape_slack

if TYPE_CHECKING:
    from bot.channels.slack.channel import SlackChannel

log = logging.getLogger("bot.channels.slack")


async def open_form(channel: SlackChannel, body: JSON, client: AsyncWebClient) -> None:
    """An owner picked "Record a promise" on a message: open the form (anyone else: a notice)."""
    user, trigger = text_of(dig(body, "user", "id")), text_of(body.get("trigger_id"))
    if not user or not trigger:
        return
    message = obj(body.get("message"))
    text = unescape_slack(text_of(message.get("text")) or "")
    person = await asyncio.to_thread(
        lambda: channel.owners.promise_prefill(
            channel=NAME, sender=user, workspace=channel.workspace(body), author=text_of(message.get("user")),
            now=channel.clock(),
        )
    )  # fmt: skip
    if person is None:
        log.info("slack: the promise shortcut was refused to someone who is not an owner")
        view = notice_modal(prompts.render("owner/promise_not_owner", "plain"))
    else:
        view = promise_modal(text=text, person=person)
    try:
        await client.views_open(trigger_id=trigger, view=view)
    except (SlackApiError, aiohttp.ClientError, TimeoutError):
        log.warning("slack: the promise form could not be opened")


async def submit(channel: SlackChannel, ack: Ack, body: JSON) -> None:
    form, user = read_form(body.get("view")), text_of(dig(body, "user", "id"))
    if form is None or not user:
        log.warning("slack: an unreadable promise form was closed")
        await ack()
        return
    try:
        outcome, message = await asyncio.to_thread(
            lambda: channel.owners.record_promise(
                channel=NAME, sender=user, workspace=channel.workspace(body), person=form.person, text=form.text,
                due=form.due, key=text_of(dig(body, "view", "id")), now=channel.clock(),
            )
        )  # fmt: skip
    except IntegrityError:
        outcome, message = "duplicate", ""  # the same form, recorded by a racing submission
    except Exception:
        log.exception("slack: recording a promise from the form failed")
        await ack(response_action="errors", errors={TEXT_BLOCK: prompts.render("person/try_again", "plain")})
        return
    log.info("slack: promise form handled", extra={"outcome": outcome})
    if outcome in ("unknown_person", "usage"):
        await ack(response_action="errors", errors=errors_for(outcome, message))
    elif outcome == "duplicate":
        await ack(response_action="clear")
    else:
        await ack(response_action="update", view=notice_modal(message))
