"""People and their channel identities: the rules channels used to carry themselves.

Each rule is written once here, and every channel reaches it through :class:`People` (one short
transaction per call; async adapters call it through ``asyncio.to_thread``):

* link an identity: from a signed one-time invite (Telegram's ``/start <token>``), by e-mail
  (Slack's ``users.lookupByEmail`` and a first message), or by roster key;
* remember a DM address (Slack's conversation id);
* opt out and opt back in (:func:`opt_out`, :func:`opt_in`): the person stops hearing from us,
  and every open check-in is closed *with its flow state*, so resuming later never finds a
  check-in whose status and state disagree;
* mark an identity unreachable and reachable again (:func:`mark_unreachable`,
  :func:`mark_reachable`), including membership changes (a blocked or unblocked bot);
* the person's own history (Slack's App Home).

The session-level functions are the rules; :class:`People` is the door channels use.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.engine import flow
from bot.engine.mydata_view import Entry, entries_of
from bot.engine.ports import Inbound, Outbound
from bot.engine.script import Script
from bot.invites import InvalidInvite, read_token
from memory import store
from memory.db import transaction
from memory.models import OPEN_STATUSES, ChannelIdentity, Checkin, Person

if TYPE_CHECKING:
    from bot.engine.service import CheckinService

log = logging.getLogger(__name__)

#: The App Home shows at most this many check-ins (newest first).
HISTORY_CHECKINS = 12


# The rules (inside the caller's transaction) -------------------------------------------------


def opt_out(s: Session, person: Person, now: dt.datetime, *, keep: int | None = None) -> None:
    """The person stops check-ins: no invitation or reminder reaches them until they opt back in.

    Every open check-in (but ``keep``, the one whose flow is closing itself) is closed as
    ``opted_out`` in its status *and* its flow state.
    """
    if person.opted_out_at is None:
        person.opted_out_at = now
    for checkin in store.open_checkins(s, person.id):
        if checkin.id == keep:
            continue
        state = replace(flow.State.from_dict(checkin.state), stage="opted_out", paused_stage=None)
        checkin.state = state.to_dict()
        checkin.status, checkin.updated_at = flow.db_status(state), now


def opt_in(s: Session, person: Person) -> bool:
    """The person resumes check-ins. False when they had not stopped."""
    if person.opted_out_at is None:
        return False
    person.opted_out_at = None
    return True


def mark_unreachable(s: Session, identity: ChannelIdentity, reason: str, now: dt.datetime) -> None:
    """The channel cannot reach this identity (blocked, account gone): the planner skips it."""
    store.mark_unreachable(s, identity, reason[:200], now)


def mark_reachable(identity: ChannelIdentity) -> None:
    identity.reachable, identity.unreachable_reason, identity.unreachable_at = True, None, None


# What the App Home shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class OwnHistory:
    """The person's newest check-ins with their answers (``bot.engine.mydata_view``, the one view
    of a person's own answers, numbered for "delete" and "correct"), and whether they stopped."""

    entries: list[Entry] = field(default_factory=list)
    opted_out: bool = False


def own_history(
    s: Session, person: Person, programs: Mapping[str, Script], limit: int = HISTORY_CHECKINS
) -> OwnHistory:
    return OwnHistory(entries=entries_of(s, person, programs)[:limit], opted_out=person.opted_out_at is not None)


# The door channels use -------------------------------------------------------------------------


class People:
    """People and identities for channel adapters. Every method is one transaction."""

    def __init__(self, *, service: CheckinService) -> None:
        self.service = service
        self.sessions: sessionmaker[Session] = service.sessions

    # Finding and linking

    def has_identity(self, channel: str, external_id: str, workspace: str = "") -> bool:
        with transaction(self.sessions) as s:
            return store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace) is not None

    def person_key(self, channel: str, external_id: str, workspace: str = "") -> str | None:
        """The roster key of whoever this identity belongs to, or None."""
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
            return identity.person.key if identity is not None else None

    def to_link(self, channel: str, workspace: str = "") -> list[tuple[str, str]]:
        """(key, e-mail) of people with an e-mail and no identity on the channel (and workspace)."""
        with transaction(self.sessions) as s:
            linked = select(ChannelIdentity.person_id).where(
                ChannelIdentity.channel == channel, ChannelIdentity.workspace == workspace
            )
            rows = s.execute(
                select(Person.key, Person.email)
                .where(Person.email.is_not(None), Person.id.not_in(linked))
                .order_by(Person.key)
            ).all()
            return [(k, e) for k, e in rows if e]

    def link_by_key(self, channel: str, person_key: str, external_id: str, workspace: str, now: dt.datetime) -> bool:
        with transaction(self.sessions) as s:
            person = store.find_person(s, person_key)
            if person is None:
                return False
            store.link_identity(s, person=person, channel=channel, external_id=external_id, workspace=workspace,
                                now=now)  # fmt: skip
            return True

    def link_by_email(self, channel: str, email: str, external_id: str, workspace: str, now: dt.datetime) -> bool:
        """Link the roster entry with this e-mail; False when there is none, or when it already
        has an identity on the channel in the workspace (an e-mail never moves a link)."""
        with transaction(self.sessions) as s:
            person = store.find_person(s, email.lower())
            if person is None or person.email != email.lower():
                return False
            if any(i.channel == channel and i.workspace == workspace for i in store.identities_of(s, person.id)):
                return False
            store.link_identity(s, person=person, channel=channel, external_id=external_id, workspace=workspace,
                                now=now)  # fmt: skip
            return True

    def link_from_invite(
        self, *, channel: str, external_id: str, token: str, key: bytes, event_key: str | None,
        now: dt.datetime, markup: prompts.Markup,
    ) -> list[Outbound]:  # fmt: skip
        """A signed one-time invite binds this identity to the person it names (one transaction
        spends the token and links), then the open check-in resumes. Returns what to say."""

        def say(template: str, **params: object) -> list[Outbound]:
            return [Outbound(text=prompts.render(f"telegram/{template}", markup, **params))]

        with transaction(self.sessions) as s:
            if event_key and not store.claim_event(s, f"{channel}:{event_key}", now):
                return []
            try:
                invite = read_token(token, key=key, now=now)
            except InvalidInvite as exc:
                log.info("invite refused", extra={"channel": channel, "reason": exc.reason})
                return say("invite_expired" if exc.reason == "expired" else "invite_invalid")
            person = s.get(Person, invite.person_id)
            if person is None:
                log.info("invite refused", extra={"channel": channel, "reason": "unknown person"})
                return say("invite_invalid")
            if not store.claim_event(s, invite.event_key, now):
                identity = store.find_identity(s, channel=channel, external_id=external_id)
                if identity is None or identity.person_id != person.id:
                    log.info("invite refused", extra={"channel": channel, "reason": "used"})
                    return say("invite_used")
                # The same person tapping their own link again: already linked, just greet.
            store.link_identity(s, person=person, channel=channel, external_id=external_id, now=now)
            resume = person.opted_out_at is None and bool(store.open_checkins(s, person.id))
            out = say("linked", name=person.name, resume=resume)
            log.info("identity linked from an invite", extra={"channel": channel, "person_id": person.id})
        if resume:
            start = Inbound(channel=channel, sender=external_id, kind="command", command="start", received_at=now)
            out += self.service.handle(start, markup=markup)
        return out

    def remember_address(self, channel: str, external_id: str, workspace: str, address: str) -> None:
        """The conversation to write to (a Slack DM channel), so sends skip opening it."""
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
            if identity is not None:
                identity.address = address[:200]

    # Opting out

    def opt_out(self, channel: str, external_id: str, workspace: str, now: dt.datetime) -> bool:
        """A stop given outside a conversation (Slack's App Home button, which has its own
        confirmation). False when Rapport does not know the sender."""
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
            if identity is None:
                return False
            opt_out(s, identity.person, now)
            return True

    # Reachability

    def mark_unreachable(self, channel: str, external_id: str, workspace: str, reason: str, now: dt.datetime) -> None:
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
            if identity is not None:
                mark_unreachable(s, identity, reason, now)
        log.warning("person unreachable", extra={"channel": channel, "reason": reason[:80]})

    def membership(
        self, channel: str, external_id: str, *, reachable: bool, event_key: str | None, now: dt.datetime,
        workspace: str = "",
    ) -> None:  # fmt: skip
        """The person blocked the bot (or left), or came back: processed once per ``event_key``."""
        with transaction(self.sessions) as s:
            if event_key and not store.claim_event(s, f"{channel}:{event_key}", now):
                return
            identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
            if identity is None:
                return
            if reachable:
                mark_reachable(identity)
            else:
                mark_unreachable(s, identity, "blocked", now)
            log.info("reachability changed", extra={"channel": channel, "person_id": identity.person_id,
                                                    "reachable": reachable})  # fmt: skip

    # The person's own view

    def checkin_open(self, checkin_id: int | None) -> bool:
        """Whether the check-in still waits for the person (``rapport chat`` stops when it does not)."""
        if checkin_id is None:
            return False
        with transaction(self.sessions) as s:
            checkin = s.get(Checkin, checkin_id)
            return checkin is not None and checkin.status in OPEN_STATUSES

    def history(self, channel: str, external_id: str, workspace: str = "") -> OwnHistory | None:
        """The person's newest check-ins, for their own eyes; None when Rapport does not know them."""
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=channel, external_id=external_id, workspace=workspace)
            if identity is None:
                return None
            return own_history(s, identity.person, self.service.scripts)
