"""Slack Block Kit payloads Rapport builds: pure functions of their inputs, no I/O.

Every word a person wrote is escaped for mrkdwn before it goes into a block, so ``<!channel>``,
a link or ``*bold*`` shows as typed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import prompts
from bot.engine.ports import Outbound

JSON = dict[str, Any]

RATING_ACTION = "rapport_rating"
HOME_STOP_ACTION = "rapport_home_stop"
HOME_RESUME_ACTION = "rapport_home_resume"
# Characters of each answer the App Home shows.
HOME_TEXT_CHARS = 600
# Slack refuses a message with more blocks than this.
MAX_BLOCKS = 50


def message_payload(message: Outbound) -> JSON:
    """``chat.postMessage`` arguments: mrkdwn text, plus buttons for a rating question, or the
    message's own Block Kit ``blocks`` (a digest) with ``text`` as the notification fallback.

    ``message.text`` is already rendered for ``slack_mrkdwn`` (people's words escaped), and
    ``message.blocks`` are built by Rapport with people's words inert.
    """
    if message.blocks:
        return {"text": message.text, "blocks": [dict(b) for b in message.blocks[:MAX_BLOCKS]]}
    if not message.choices or message.checkin_id is None:
        return {"text": message.text}
    blocks: list[JSON] = [{"type": "section", "text": {"type": "mrkdwn", "text": message.text[:3000]}}]
    buttons = [
        {
            "type": "button",
            "action_id": f"{RATING_ACTION}_{choice.value}",
            "text": {"type": "plain_text", "text": choice.label[:75] or str(choice.value)},
            "value": f"{message.checkin_id}:{int(choice.value)}",
        }
        for choice in message.choices
    ]
    for start in range(0, len(buttons), 25):  # Slack allows 25 elements per actions block
        elements = buttons[start : start + 25]
        blocks.append({"type": "actions", "block_id": f"{RATING_ACTION}_{start}", "elements": elements})
    return {"text": message.text, "blocks": blocks}


@dataclass(frozen=True)
class HomeEntry:
    when: dt.datetime
    title: str
    status: str
    lines: list[tuple[str, str]]


def home_view(*, entries: list[HomeEntry] | None, opted_out: bool) -> JSON:
    """The App Home: the person's own check-ins, newest first, and a stop/resume button.

    Every word a person wrote is escaped for mrkdwn, so ``<!channel>`` or a link shows as typed.
    """
    esc = prompts.escape_slack
    blocks: list[JSON] = [{"type": "header", "text": {"type": "plain_text", "text": "Your check-ins"}}]
    if entries is None:
        text = prompts.render("person/unknown_person", "slack_mrkdwn")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        return {"type": "home", "blocks": blocks}
    if opted_out:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "You have stopped check-ins. You can start them again any time."},
                "accessory": _button("Resume check-ins", HOME_RESUME_ACTION, style="primary"),
            }
        )
    else:
        stop = _button("Stop check-ins", HOME_STOP_ACTION, style="danger")
        stop["confirm"] = {
            "title": {"type": "plain_text", "text": "Stop check-ins?"},
            "text": {"type": "mrkdwn", "text": "You will not hear from us again until you resume them here."},
            "confirm": {"type": "plain_text", "text": "Stop"},
            "deny": {"type": "plain_text", "text": "Keep them"},
        }
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Short check-ins, in your own words. Only you see this page."},
                "accessory": stop,
            }
        )
    if not entries:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No check-ins yet."}})
    for entry in entries or []:
        blocks.append({"type": "divider"})
        when = f"{entry.when.day} {entry.when.strftime('%B %Y')}"
        head = f"*{esc(entry.title)}* · {when} · {esc(entry.status.replace('_', ' '))}"
        body = "\n".join(f"{_quote_label(label)}\n{_quote(value)}" for label, value in entry.lines)
        text = head + ("\n" + body if body else "\n_No answers._")
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return {"type": "home", "blocks": blocks[:100]}


def _quote_label(label: str) -> str:
    return f"*{prompts.escape_slack(label)}*"


def _quote(value: str) -> str:
    lines = prompts.escape_slack(_clip(value)).splitlines() or [""]
    return "\n".join(f">{line}" for line in lines)


def _clip(text: str) -> str:
    return text if len(text) <= HOME_TEXT_CHARS else text[: HOME_TEXT_CHARS - 1] + "…"


def _button(text: str, action_id: str, *, style: str | None = None) -> JSON:
    button: JSON = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}
    if style:
        button["style"] = style
    return button
