"""Slack Block Kit payloads Rapport builds: pure functions of their inputs, no I/O.

Every word a person wrote is escaped for mrkdwn before it goes into a block, so ``<!channel>``,
a link or ``*bold*`` shows as typed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import prompts
from bot.engine.mydata_view import Entry, Item
from bot.engine.ports import Outbound

JSON = dict[str, Any]

RATING_ACTION = "rapport_rating"
# The stop button under every check-in question: the ``stop`` command, confirmed in the
# conversation as a typed "stop" is (``bot.engine.flow``).
STOP_ACTION = "rapport_stop"
HOME_STOP_ACTION = "rapport_home_stop"
# Yes/No under "Do you want to stop all check-ins?": the ``yes``/``no`` commands (value
# "<check-in id>:yes"), answered once per message like a rating.
CONFIRM_ACTION = "rapport_confirm"
HOME_RESUME_ACTION = "rapport_home_resume"
# A "Delete" button beside each answer on the App Home (its value: the answer's number).
HOME_DELETE_ACTION = "rapport_home_delete"
# Characters of each answer the App Home shows.
HOME_TEXT_CHARS = 600
# Slack refuses a message with more blocks than this.
MAX_BLOCKS = 50


def message_payload(message: Outbound) -> JSON:
    """``chat.postMessage`` arguments: mrkdwn text, plus buttons for a rating question and a
    "Stop check-ins" button under every question (text questions and follow-ups too), Yes/No
    under "stop?", or the message's own Block Kit ``blocks`` (a digest) with ``text`` as the
    notification fallback.

    ``message.text`` is already rendered for ``slack_mrkdwn`` (people's words escaped), and
    ``message.blocks`` are built by Rapport with people's words inert.
    """
    if message.blocks:
        return {"text": message.text, "blocks": [dict(b) for b in message.blocks[:MAX_BLOCKS]]}
    if message.confirm and message.checkin_id is not None:
        answers = []
        for label, word in (("Yes", "yes"), ("No", "no")):
            button = _button(label, f"{CONFIRM_ACTION}_{word}", style="danger" if word == "yes" else None)
            button["value"] = f"{int(message.checkin_id)}:{word}"
            answers.append(button)
        return {"text": message.text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": message.text[:3000]}},
            {"type": "actions", "block_id": CONFIRM_ACTION, "elements": answers},
        ]}  # fmt: skip
    if message.checkin_id is None or not (message.choices or message.kind in ("question", "followup")):
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
    stop = _button("Stop check-ins", STOP_ACTION)
    stop["value"] = str(int(message.checkin_id))
    blocks.append({"type": "actions", "block_id": STOP_ACTION, "elements": [stop]})
    return {"text": message.text, "blocks": blocks}


#: One check-in on the App Home (the engine's view of a person's own answers).
HomeEntry = Entry


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
                "text": {
                    "type": "mrkdwn",
                    "text": "Short check-ins, in your own words. Only you see this page. To correct an answer, send "
                    "“correct” and its number in our chat (say “my data” there for help).",
                },
                "accessory": stop,
            }
        )
    if not entries:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No check-ins yet."}})
    for entry in entries or []:
        when = f"{entry.when.day} {entry.when.strftime('%B %Y')}"
        note = " · anonymous: owners see groups, never your name" if entry.anonymous else ""
        blocks += [
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"*{esc(entry.title)}* · {when}{note}"}]},
        ]
        for item in entry.items:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _item_text(item)[:3000]},
                           "accessory": _delete_button(item)})  # fmt: skip
    # Slack refuses a Home tab of more than 100 blocks: the newest check-ins come first.
    return {"type": "home", "blocks": blocks[:100]}


def _item_text(item: Item) -> str:
    if item.skipped:
        value = "(skipped)"
    elif item.rating is not None:
        value = str(item.rating) + (f" — {item.text}" if item.text else "")
    else:
        value = item.text or ""
    text = f"*#{item.id}* {_quote_label(item.label)}\n{_quote(value)}"
    for reply in item.followups:
        text += f"\n_What changed:_\n{_quote(reply)}"
    return text


def _delete_button(item: Item) -> JSON:
    button = _button("Delete", HOME_DELETE_ACTION, style="danger")
    button["value"] = str(item.id)
    button["confirm"] = {
        "title": {"type": "plain_text", "text": f"Delete answer #{item.id}?"},
        "text": {"type": "mrkdwn", "text": "It goes for good, with every quote of it we kept"
                 + (" and your answer to “What changed?”." if item.followups else ".")},
        "confirm": {"type": "plain_text", "text": "Delete"},
        "deny": {"type": "plain_text", "text": "Keep it"},
    }  # fmt: skip
    return button


def _quote_label(label: str) -> str:
    return f"*{prompts.escape_slack(label)}*"


def _quote(value: str) -> str:
    lines = prompts.escape_slack(_clip(value)).splitlines() or [""]
    return "\n".join(f">{line}" for line in lines)


def _clip(text: str) -> str:
    return text if len(text) <= HOME_TEXT_CHARS else text[: HOME_TEXT_CHARS - 1] + "…"


# The "Record a promise" shortcut's modals --------------------------------------------------------
#
# Every text that can hold someone's words is ``plain_text`` (shown exactly as typed) or an
# input's value.

#: The callback_id of the message shortcut (slack-manifest.yaml) and of its modal.
PROMISE_SHORTCUT = "rapport_promise"
PERSON_BLOCK, TEXT_BLOCK, DUE_BLOCK, VALUE = "person", "promise", "due", "value"
# Slack's limits: an input's value and a plain_text section hold at most 3,000 characters.
INPUT_CHARS = 3000


@dataclass(frozen=True)
class PromiseForm:
    """What the owner submitted (unchecked: the engine decides)."""

    person: str
    text: str
    due: dt.date | None


def promise_modal(*, text: str, person: str | None) -> JSON:
    """The form, prefilled with the message's words and, when Rapport knows its author, them."""
    person_input: JSON = {
        "type": "plain_text_input", "action_id": VALUE, "max_length": 320, "placeholder": _plain("dana@example.com"),
    }  # fmt: skip
    if person:
        person_input["initial_value"] = person[:320]
    text_input: JSON = {"type": "plain_text_input", "action_id": VALUE, "multiline": True, "max_length": INPUT_CHARS}
    if text.strip():
        text_input["initial_value"] = text.strip()[:INPUT_CHARS]
    due: JSON = {"type": "datepicker", "action_id": VALUE}
    return {
        "type": "modal",
        "callback_id": PROMISE_SHORTCUT,
        "title": _plain("Record a promise"),
        "submit": _plain("Record"),
        "close": _plain("Cancel"),
        "blocks": [
            {"type": "input", "block_id": PERSON_BLOCK, "label": _plain("Person (roster id or e-mail)"),
             "element": person_input},
            {"type": "input", "block_id": TEXT_BLOCK, "label": _plain("What was promised"), "element": text_input},
            {"type": "input", "block_id": DUE_BLOCK, "optional": True, "label": _plain("Due"), "element": due},
        ],
    }  # fmt: skip


def notice_modal(text: str) -> JSON:
    """A modal that only says something (``text`` rendered for plain text) and closes."""
    return {
        "type": "modal",
        "title": _plain("Record a promise"),
        "close": _plain("Close"),
        "blocks": [{"type": "section", "text": _plain(text[:INPUT_CHARS])}],
    }


def read_form(view: Any) -> PromiseForm | None:
    """The submitted values, or None when the payload is not the promise form as Rapport built it."""
    if not isinstance(view, dict) or view.get("callback_id") != PROMISE_SHORTCUT:
        return None
    values = _get(view, "state", "values")
    if not isinstance(values, dict):
        return None
    person = _get(values, PERSON_BLOCK, VALUE, "value")
    text = _get(values, TEXT_BLOCK, VALUE, "value")
    due_value = _get(values, DUE_BLOCK, VALUE, "selected_date")
    if not isinstance(person, str) or not isinstance(text, str):
        return None
    due = None
    if isinstance(due_value, str) and due_value:
        try:
            due = dt.date.fromisoformat(due_value)
        except ValueError:
            return None
    return PromiseForm(person=person, text=text, due=due)


def errors_for(outcome: str, message: str) -> dict[str, str]:
    """``response_action: errors`` for a refused submission: the message under the field at fault."""
    return {TEXT_BLOCK if outcome == "usage" else PERSON_BLOCK: message[:INPUT_CHARS]}


def _plain(text: str) -> JSON:
    return {"type": "plain_text", "text": text, "emoji": False}


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _button(text: str, action_id: str, *, style: str | None = None) -> JSON:
    button: JSON = {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}}
    if style:
        button["style"] = style
    return button
