"""The web page's form, translated: a POST body -> :class:`Inbound` for the engine. Pure.

The page posts one of four things: a rating button (``rating``), free text (``text``), the
opt-out button (``action=stop``), or, once opted out, the button to take part again
(``action=start``). Every form carries a fresh random ``nonce``; it becomes the
event key, so a refresh that posts the same form again is one event, not two answers.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from bot.engine.ports import Inbound

NAME = "web"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_RATING = re.compile(r"^-?[0-9]{1,4}$")


class BadForm(ValueError):
    """The form is not one this page made (no nonce, or a value no button carries)."""


def inbound_from_form(
    form: Mapping[str, str], *, person_key: str, checkin_id: int | None, received_at: dt.datetime
) -> Inbound:
    nonce = form.get("nonce", "")
    if not _NONCE.match(nonce):
        raise BadForm("missing nonce")
    common = {
        "channel": NAME, "sender": person_key, "received_at": received_at, "event_key": nonce,
        "checkin_id": checkin_id,
    }  # fmt: skip
    if form.get("action") == "stop":
        return Inbound(kind="text", text="stop", **common)  # type: ignore[arg-type]
    if form.get("action") == "start":
        # "Start check-ins again" after an opt-out: the engine's start command (its opt-in rule).
        return Inbound(kind="command", command="start", **common)  # type: ignore[arg-type]
    rating = form.get("rating")
    if rating is not None:
        if not _RATING.match(rating):
            raise BadForm("not a rating")
        return Inbound(kind="choice", value=int(rating), text=rating, **common)  # type: ignore[arg-type]
    text = form.get("text", "")
    return Inbound(kind="text", text=text, **common)  # type: ignore[arg-type]


def said(inbound: Inbound) -> str:
    """What the person said, as the conversation shows it."""
    if inbound.kind == "choice":
        return str(inbound.value)
    if inbound.kind == "command":
        return "Start check-ins again" if inbound.command == "start" else f"/{inbound.command}"
    return inbound.text or ""
