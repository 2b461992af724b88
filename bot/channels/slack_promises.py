"""Slack's "Record a promise" message shortcut: an owner picks it on a message, a modal asks for
the person, the promise (prefilled with the message's words) and an optional due date, and the
submission records the promise through the same code as the ``promise @person ...`` chat command
(``bot.engine.owners``). Only senders linked as owners (``rapport owners link``) get the form;
anyone else gets a modal saying so, and nothing is recorded.

The modals are built here as Python objects; every text that can hold someone's words is
``plain_text`` (shown exactly as typed) or an input's value.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.channels.slack_blocks import JSON
from bot.engine import owners
from bot.engine.ports import Inbound
from memory import store
from memory.db import transaction
from memory.models import ProcessedEvent

log = logging.getLogger("bot.channels.slack")

NAME = "slack"
#: The callback_id of the message shortcut (slack-manifest.yaml) and of its modal.
PROMISE_SHORTCUT = "rapport_promise"
PERSON_BLOCK, TEXT_BLOCK, DUE_BLOCK, VALUE = "person", "promise", "due", "value"
# Slack's limits: an input's value and a plain_text section hold at most 3,000 characters, a
# modal's title and buttons 24, private_metadata 3,000.
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
        "type": "plain_text_input",
        "action_id": VALUE,
        "max_length": 320,
        "placeholder": _plain("dana@example.com"),
    }
    if person:
        person_input["initial_value"] = person[:320]
    text_input: JSON = {"type": "plain_text_input", "action_id": VALUE, "multiline": True, "max_length": INPUT_CHARS}
    if text.strip():
        text_input["initial_value"] = text.strip()[:INPUT_CHARS]
    return {
        "type": "modal",
        "callback_id": PROMISE_SHORTCUT,
        "title": _plain("Record a promise"),
        "submit": _plain("Record"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "input",
                "block_id": PERSON_BLOCK,
                "label": _plain("Person (roster id or e-mail)"),
                "element": person_input,
            },
            {"type": "input", "block_id": TEXT_BLOCK, "label": _plain("What was promised"), "element": text_input},
            {
                "type": "input",
                "block_id": DUE_BLOCK,
                "optional": True,
                "label": _plain("Due"),
                "element": {"type": "datepicker", "action_id": VALUE},
            },
        ],
    }


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


Outcome = Literal["recorded", "unknown_person", "usage", "not_owner", "duplicate"]


class SlackPromises:
    """The database side of the shortcut, one transaction per call (run in a worker thread)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def prefill(self, user: str, workspace: str, author: str | None, now: dt.datetime) -> str | None:
        """None when ``user`` is not an owner; otherwise the roster key of the message's author
        when Rapport knows them on Slack, else ""."""
        with transaction(self.sessions) as s:
            if owners.owner_of(s, _inbound(user, workspace, now)) is None:
                return None
            if not author:
                return ""
            identity = store.find_identity(s, channel=NAME, external_id=author, workspace=workspace)
            return identity.person.key if identity is not None else ""

    def record(
        self, form: PromiseForm, *, user: str, workspace: str, now: dt.datetime, key: str | None
    ) -> tuple[Outcome, str]:
        """Record the promise (once per ``key``, the view's id): the outcome and what to tell the
        owner, rendered for plain text. Two racing submissions of one view: the second fails to
        commit its key (IntegrityError) and records nothing."""
        with transaction(self.sessions) as s:
            event = f"{NAME}:promise:{key}" if key is not None else None
            if event is not None and s.get(ProcessedEvent, event) is not None:
                return "duplicate", ""
            result = owners.promise_from_form(
                s, _inbound(user, workspace, now), person=form.person, text=form.text, due=form.due, markup="plain"
            )
            if result is None:
                return "not_owner", prompts.render("owner/promise_not_owner", "plain")
            outcome, replies = result
            # Only a recorded promise keeps the key: a refused form can be corrected and sent again.
            if outcome == "recorded" and event is not None:
                store.claim_event(s, event, now)
            return outcome, "\n".join(r.text for r in replies)


def errors_for(outcome: Outcome, message: str) -> dict[str, str]:
    """``response_action: errors`` for a refused submission: the message under the field at fault."""
    return {TEXT_BLOCK if outcome == "usage" else PERSON_BLOCK: message[:INPUT_CHARS]}


def _inbound(user: str, workspace: str, now: dt.datetime) -> Inbound:
    return Inbound(channel=NAME, sender=user, workspace=workspace, kind="command", received_at=now)


def _plain(text: str) -> JSON:
    return {"type": "plain_text", "text": text, "emoji": False}


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
