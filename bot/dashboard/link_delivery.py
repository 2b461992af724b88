"""Sending one-time login links: the outbox handler for ``login_link`` rows.

A row is queued by :func:`bot.engine.owner_login.request_login_link` and names the owner and
where the link goes. The handler makes the link as it sends (:func:`bot.dashboard.auth.make_login_token`
stores only the token's SHA-256), renders ``prompts/owner/login_link`` for the channel, and sends:

* by Slack or Telegram, through the running channel adapter, to the owner's linked account
  (the same place digests go);
* by e-mail, through Rapport's one mail seam (:mod:`bot.mail`) when ``email.host`` is set, else
  as an ``.eml`` file in ``channels.web.directory``, like web-link invitations on the defaults.

Unlike invitations, the rendered message is not stored on the row (``outbox_contents``): it
holds a usable token. A retry after a failed send makes a new link; the unsent one is never seen
and expires. A row that waited longer than a link lives is skipped: the owner asked for a link
to use now. No token reaches a log: log lines carry the row and owner ids only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.channels.web import links, transport
from bot.config import Config
from bot.dashboard import auth
from bot.engine.owner_login import KIND
from bot.extensions import RunnerExtension
from memory.db import transaction
from memory.errors import PermanentFailure
from memory.models import OutboxMessage, Owner
from memory.models_promises import OwnerIdentity
from scheduler.dispatch import NotNow, SkipMessage

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

#: How long a row waits when its chat channel is not running in this process.
CHANNEL_OFF_RETRY = 30.0


def login_url(config: Config, token: str) -> str:
    return f"{links.base_url(config)}/dashboard/login/link?token={token}"


def link_for(url: str, markup: prompts.Markup) -> str:
    """The link as the sink shows it. Slack gets ``<url|label>`` (its own link syntax, with only
    ``&``, ``<`` and ``>`` escaped: the word escaper would break ``_`` in the token)."""
    if markup == "slack_mrkdwn":
        safe = url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return prompts.Trusted(f"<{safe}|Log in to Rapport>")
    return url


@dataclass(frozen=True)
class _Ready:
    channel: str
    to: str
    workspace: str
    text: str
    subject: str


class LoginLinkDelivery:
    """``handlers["login_link"] = LoginLinkDelivery(sessions=..., config=..., channels=...)``."""

    def __init__(
        self, *, sessions: sessionmaker[Session], config: Config, channels: Mapping[str, Any] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:  # fmt: skip
        self.sessions, self.config, self.clock = sessions, config, clock
        self.channels = dict(channels or {})
        self.ttl = dt.timedelta(minutes=config.web.dashboard.login_link_minutes)

    async def __call__(self, row: OutboxMessage) -> str | None:
        channel = row.channel or ""
        adapter = self.channels.get(channel)
        if channel != "email" and adapter is None:
            # Checked before a link is made, so a process without the channel makes none.
            raise NotNow(f"the {channel} channel is not running here", retry_after=CHANNEL_OFF_RETRY)
        markup: prompts.Markup = "plain" if adapter is None else adapter.markup
        ready = await asyncio.to_thread(self._prepare, row, markup)
        log.info("login link made", extra={"outbox_id": row.id, "owner_id": row.owner_id, "channel": channel})
        if adapter is None:
            return await self._mail(ready)
        from bot.channels.base import Address
        from bot.engine.ports import Outbound

        sent = await adapter.send(
            Address(channel=channel, external_id=ready.to, workspace=ready.workspace), [Outbound(text=ready.text)]
        )
        return getattr(sent, "external_ref", None)

    def _prepare(self, row: OutboxMessage, markup: prompts.Markup) -> _Ready:
        now = self.clock()
        with transaction(self.sessions) as s:
            owner = s.get(Owner, row.owner_id) if row.owner_id is not None else None
            if owner is None:
                raise SkipMessage("the owner is gone")
            if now - row.created_at > self.ttl:
                raise SkipMessage("asked for longer ago than a login link lives")
            payload = row.payload or {}
            if row.channel == "email":
                if not owner.email:
                    raise PermanentFailure("the owner has no e-mail address")
                to, workspace = owner.email, ""
            else:
                to, workspace = str(payload.get("external_id", "")), str(payload.get("workspace", ""))
                if not self._still_theirs(s, owner, row.channel or "", to, workspace):
                    raise SkipMessage(f"the {row.channel} account is no longer linked to the owner")
            token = auth.make_login_token(s, owner_key=owner.key, now=now, ttl=self.ttl)
            name = owner.name if owner.name and owner.name != owner.key else None
        minutes = self.config.web.dashboard.login_link_minutes
        text = prompts.render("owner/login_link", markup, name=name, minutes=minutes,
                              link=link_for(login_url(self.config, token), markup))  # fmt: skip
        subject = "Your Rapport login link"
        return _Ready(channel=row.channel or "", to=to, workspace=workspace, text=text, subject=subject)

    @staticmethod
    def _still_theirs(s: Session, owner: Owner, channel: str, external_id: str, workspace: str) -> bool:
        found = s.scalar(
            select(OwnerIdentity.owner_id).where(
                OwnerIdentity.channel == channel,
                OwnerIdentity.workspace == workspace,
                OwnerIdentity.external_id == external_id,
            )
        )
        return found == owner.id

    async def _mail(self, ready: _Ready) -> str:
        sender = self.config.email.from_address
        message = EmailMessage()
        message["Subject"] = ready.subject
        message["From"] = sender
        message["To"] = ready.to
        message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "rapport")
        message.set_content(ready.text + "\n")
        if transport.delivery_mode(self.config) == "smtp":
            return await transport.send_smtp(message, self.config.email)
        folder = self.config.channels.web.directory
        return await transport.write_file(message, folder, "login-link", self.clock())


def login_links_extension(
    app: App, channels: Mapping[str, Any], clock: Callable[[], dt.datetime] | None = None
) -> RunnerExtension:
    """What ``rapport run`` plugs in: the handler for ``login_link`` rows (no periodic job)."""
    deliver = LoginLinkDelivery(sessions=app.sessions, config=app.config, channels=channels,
                                clock=clock or app.service.clock)  # fmt: skip
    return RunnerExtension(handlers={KIND: deliver})
