"""Owners asking for a one-time dashboard login link: the rule, written once.

Every way of asking (``rapport owner login-link OWNER --send``, an owner's ``login`` or ``/login``
in Slack or Telegram, "E-mail me a login link" on the login page) calls :func:`request_login_link`.
It decides where the link goes and queues one outbox row (kind ``login_link``): the row names
the owner and the address, never a token. The link itself is made when the row is sent
(:mod:`bot.dashboard.link_delivery`), so no usable token is ever at rest: the database keeps only
its SHA-256, and a retry after a failed send makes a fresh link rather than repeating one.

Where a link goes: a chat account the owner linked (``rapport owners link``) on the channel
asked for, or the owner's e-mail address. Without a channel named, the first of the owner's
Slack and Telegram accounts, else e-mail. At most :data:`MAX_PER_WINDOW` links per owner are
queued within :data:`WINDOW`, whoever asks, so nobody can flood an owner's inbox.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from memory.models import OutboxMessage, Owner
from memory.models_promises import OwnerIdentity

KIND = "login_link"
#: The channels a login link can go by, in the order tried when none is named.
CHAT_VIAS = ("slack", "telegram")
VIAS = (*CHAT_VIAS, "email")
MAX_PER_WINDOW = 5
WINDOW = dt.timedelta(hours=1)

Outcome = Literal["queued", "too_many", "no_route"]


@dataclass(frozen=True, kw_only=True)
class Requested:
    outcome: Outcome
    #: The channel the link goes by (None when there is no way to reach the owner).
    via: str | None = None
    outbox_id: int | None = None


def route(s: Session, owner: Owner, via: str | None = None) -> tuple[str, dict[str, str]] | None:
    """Where a link for ``owner`` goes: (channel, address payload), or None when it cannot."""
    for channel in (via,) if via else VIAS:
        if channel == "email":
            if owner.email:
                return "email", {}
            continue
        identity = s.scalar(
            select(OwnerIdentity)
            .where(OwnerIdentity.owner_id == owner.id, OwnerIdentity.channel == channel)
            .order_by(OwnerIdentity.id)
            .limit(1)
        )
        if identity is not None:
            return channel, {"external_id": identity.external_id, "workspace": identity.workspace}
    return None


def recent_requests(s: Session, owner: Owner, now: dt.datetime) -> int:
    mine = (OutboxMessage.kind == KIND, OutboxMessage.owner_id == owner.id, OutboxMessage.created_at > now - WINDOW)
    return s.scalar(select(func.count()).select_from(OutboxMessage).where(*mine)) or 0


def request_login_link(
    s: Session, *, owner: Owner, now: dt.datetime, via: str | None = None, identity: OwnerIdentity | None = None
) -> Requested:
    """Queue one login link for ``owner``: by ``identity`` (the chat account that asked), by
    ``via``, or by the first way the owner can be reached."""
    if identity is not None:
        found: tuple[str, dict[str, str]] | None = (
            identity.channel, {"external_id": identity.external_id, "workspace": identity.workspace},
        )  # fmt: skip
    else:
        found = route(s, owner, via)
    if found is None:
        return Requested(outcome="no_route")
    channel, address = found
    if recent_requests(s, owner, now) >= MAX_PER_WINDOW:
        return Requested(outcome="too_many", via=channel)
    row = OutboxMessage(
        key=f"{KIND}:{owner.id}:{secrets.token_hex(8)}", kind=KIND, owner_id=owner.id, channel=channel,
        payload={"owner": owner.key, **address}, status="pending", not_before=now, created_at=now,
    )  # fmt: skip
    s.add(row)
    s.flush()
    return Requested(outcome="queued", via=channel, outbox_id=row.id)
