"""What owners can say to the bot: ``promise @person text [by YYYY-MM-DD]``, and ``login`` (a
one-time dashboard login link, :func:`handle_login`).

Only a sender whose channel account is linked to an owner (``rapport owners link``) is treated
as an owner. Anyone else's ``promise ...`` is an ordinary message, handled as a person's answer:
people never get owner powers. The person is named by key or e-mail after ``@``, or by a Slack
mention (``<@U123>``) of someone whose Slack account Rapport knows.

Owners act only on their own people (:func:`theirs`): a command about someone on another owner's
roster gets exactly the answer an unknown name gets, so chat never tells an owner who else is on
the roster. (Dashboard admins see every person on the web; chat has no admins.)
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import prompts
from bot.engine import owner_login
from bot.engine.ports import Inbound, Outbound
from memory import promises, store
from memory.db import transaction
from memory.models import Owner, Person, ProcessedEvent
from memory.models_promises import OwnerIdentity

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"^\s*/?promise(?:@\w+)?(?:\s+(?P<rest>.*))?$", re.IGNORECASE | re.DOTALL)
_TARGET = re.compile(r"^(?:<@(?P<slack>[A-Z0-9]+)(?:\|[^>]*)?>|@(?P<ref>\S+))\s*(?P<text>.*)$", re.DOTALL)
_LOGIN = re.compile(r"^\s*/?log\s?in(?:@\w+)?\s*[.!]?\s*$", re.IGNORECASE)
_DUE = re.compile(r"\s+by\s+(?P<date>\d{4}-\d{2}-\d{2})\s*[.!]?\s*$", re.IGNORECASE)

#: What became of a promise an owner gave: recorded, nobody by that name, or no words.
PromiseOutcome = Literal["recorded", "unknown_person", "usage"]
#: What became of a promise form: as above, or not an owner, or this form was already recorded.
FormOutcome = Literal["recorded", "unknown_person", "usage", "not_owner", "duplicate"]


def owner_of(s: Session, inbound: Inbound) -> Owner | None:
    identity = s.scalar(
        select(OwnerIdentity).where(
            OwnerIdentity.channel == inbound.channel,
            OwnerIdentity.workspace == inbound.workspace,
            OwnerIdentity.external_id == inbound.sender,
        )
    )
    return identity.owner if identity is not None else None


def link_owner(
    s: Session, *, owner: Owner, channel: str, external_id: str, now: dt.datetime, workspace: str = ""
) -> OwnerIdentity:
    """Bind a channel account to an owner (moving it from another owner if need be)."""
    identity = s.scalar(
        select(OwnerIdentity).where(
            OwnerIdentity.channel == channel,
            OwnerIdentity.workspace == workspace,
            OwnerIdentity.external_id == external_id,
        )
    )
    if identity is None:
        identity = OwnerIdentity(
            owner_id=owner.id, channel=channel, workspace=workspace, external_id=external_id, created_at=now
        )
        s.add(identity)
    identity.owner_id = owner.id
    s.flush()
    return identity


def theirs(owner: Owner, person: Person | None) -> Person | None:
    """The person, when they are this owner's; None (as for an unknown name) otherwise."""
    return person if person is not None and person.owner_id == owner.id else None


def handle_owner_message(s: Session, inbound: Inbound, markup: prompts.Markup) -> list[Outbound] | None:
    """Replies to an owner's command, or None when this is not one (handle it as a person's)."""
    if inbound.kind not in ("text", "command"):
        return None
    login = handle_login(s, inbound, markup)
    if login is not None:
        return login
    text = inbound.text or (f"/{inbound.command}" if inbound.command else "")
    match = _COMMAND.match(text)
    if match is None:
        return None
    owner = owner_of(s, inbound)
    if owner is None:
        return None
    rest = (match.group("rest") or "").strip()

    def say(template: str, **params: object) -> list[Outbound]:
        return [Outbound(text=prompts.render(f"owner/{template}", markup, **params))]

    target = _TARGET.match(rest)
    if target is None:
        return say("promise_usage")
    words = target.group("text").strip()
    due_at = None
    due = _DUE.search(words)
    if due is not None:
        try:
            day = dt.date.fromisoformat(due.group("date"))
        except ValueError:
            return say("promise_bad_date", value=due.group("date"))
        due_at = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
        words = words[: due.start()].strip()
    slack_user = target.group("slack")
    ref = slack_user or target.group("ref")
    _, replies = _record(
        s, owner, inbound, ref=ref, slack_user=bool(slack_user), words=words, due_at=due_at, markup=markup
    )
    return replies


def handle_login(s: Session, inbound: Inbound, markup: prompts.Markup) -> list[Outbound] | None:
    """An owner's ``login`` or ``/login``: a one-time dashboard link, sent to this chat account
    through the outbox (:mod:`bot.engine.owner_login`). The link is the only message, so a
    queued request replies nothing now. None when this is not the command or not an owner."""
    if not _LOGIN.match(inbound.text or (f"/{inbound.command}" if inbound.command else "")):
        return None
    identity = s.scalar(
        select(OwnerIdentity).where(
            OwnerIdentity.channel == inbound.channel,
            OwnerIdentity.workspace == inbound.workspace,
            OwnerIdentity.external_id == inbound.sender,
        )
    )
    if identity is None:
        return None
    done = owner_login.request_login_link(s, owner=identity.owner, now=inbound.received_at, identity=identity)
    log.info("login link requested from chat", extra={"owner_id": identity.owner_id, "outcome": done.outcome})
    if done.outcome == "queued":
        return []
    return [Outbound(text=prompts.render("owner/login_link_too_many", markup))]


def promise_from_form(
    s: Session, inbound: Inbound, *, person: str, text: str, due: dt.date | None, markup: prompts.Markup
) -> tuple[PromiseOutcome, list[Outbound]] | None:
    """A promise given in a form (Slack's promise shortcut) rather than typed: the same owner
    check and recording as ``promise @person text [by DATE]``. ``person`` is a roster key or
    e-mail; None when the sender is not an owner (nothing is recorded)."""
    owner = owner_of(s, inbound)
    if owner is None:
        return None
    due_at = dt.datetime(due.year, due.month, due.day, 12, tzinfo=dt.UTC) if due is not None else None
    ref = person.strip().removeprefix("@")
    return _record(s, owner, inbound, ref=ref, slack_user=False, words=text.strip(), due_at=due_at, markup=markup)


def _record(
    s: Session,
    owner: Owner,
    inbound: Inbound,
    *,
    ref: str,
    slack_user: bool,
    words: str,
    due_at: dt.datetime | None,
    markup: prompts.Markup,
) -> tuple[PromiseOutcome, list[Outbound]]:
    def say(template: str, **params: object) -> list[Outbound]:
        return [Outbound(text=prompts.render(f"owner/{template}", markup, **params))]

    if not words:
        return "usage", say("promise_usage")
    if slack_user:
        identity = store.find_identity(s, channel="slack", external_id=ref, workspace=inbound.workspace)
        person = identity.person if identity is not None else None
    else:
        person = store.find_person(s, ref) if ref else None
    # Someone else's person is answered exactly as a name nobody has.
    person = theirs(owner, person)
    if person is None:
        return "unknown_person", say("promise_unknown_person", ref=ref)
    try:
        promise = promises.add_promise(
            s, person=person, owner=owner, text=words, now=inbound.received_at, due_at=due_at, source=inbound.channel
        )
    except promises.DueBeforeMade as exc:
        return "usage", say("promise_due_before_made", due_at=exc.due_at, made_at=exc.made_at)
    log.info("promise recorded from chat", extra={"promise_id": promise.id, "owner_id": owner.id})
    return "recorded", say("promise_recorded", name=person.name or person.key, promise=promise.text, due_at=due_at)


class OwnerCommands:
    """Owner commands for channel adapters that take them as forms rather than typed text
    (Slack's "Record a promise" shortcut). Every method is one transaction; the rule is the
    same as for ``promise @person ...`` (:func:`handle_owner_message`)."""

    def __init__(self, *, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def promise_prefill(
        self, *, channel: str, sender: str, workspace: str, author: str | None, now: dt.datetime
    ) -> str | None:
        """None when ``sender`` is not an owner; otherwise the roster key of the message's
        ``author`` when Rapport knows them on the channel and they are this owner's, else ""."""
        with transaction(self.sessions) as s:
            owner = owner_of(s, _as_inbound(channel, sender, workspace, now))
            if owner is None:
                return None
            if not author:
                return ""
            identity = store.find_identity(s, channel=channel, external_id=author, workspace=workspace)
            person = theirs(owner, identity.person if identity is not None else None)
            return person.key if person is not None else ""

    def record_promise(
        self, *, channel: str, sender: str, workspace: str, person: str, text: str, due: dt.date | None,
        key: str | None, now: dt.datetime,
    ) -> tuple[FormOutcome, str]:  # fmt: skip
        """Record the promise, once per form ``key``: the outcome and what to tell the owner (plain
        text). Two racing submissions of one form: the second fails to commit its key
        (``IntegrityError``, left to the caller) and records nothing."""
        with transaction(self.sessions) as s:
            event = f"{channel}:promise:{key}" if key is not None else None
            if event is not None and s.get(ProcessedEvent, event) is not None:
                return "duplicate", ""
            result = promise_from_form(
                s, _as_inbound(channel, sender, workspace, now), person=person, text=text, due=due, markup="plain"
            )
            if result is None:
                return "not_owner", prompts.render("owner/promise_not_owner", "plain")
            outcome, replies = result
            # Only a recorded promise keeps the key: a refused form can be corrected and sent again.
            if outcome == "recorded" and event is not None:
                store.claim_event(s, event, now)
            return outcome, "\n".join(r.text for r in replies)


def _as_inbound(channel: str, sender: str, workspace: str, now: dt.datetime) -> Inbound:
    return Inbound(channel=channel, sender=sender, workspace=workspace, kind="command", received_at=now)
