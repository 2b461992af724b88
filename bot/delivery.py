"""Invitations and reminders from the outbox: open the check-in, then send through the channel.

These are the dispatcher's handlers for the ``invitation`` and ``reminder`` row kinds
(:mod:`scheduler.dispatch`). Each one first does its database work in one short transaction (in a
worker thread): it checks the person can still be contacted, opens or resumes the check-in with
``CheckinService.start_in`` and renders the messages for the channel's markup. It then sends
them through the person's channel adapter and returns the channel's message id.

The outbox carries the message: the first time a row is prepared, the rendered messages and the
address are stored on it (``outbox_contents``) in the same transaction that opens the check-in.
A retry sends exactly that, so a person whose first invitation failed with a 5xx still gets the
greeting, once, and never a "welcome back" rendered from the state the first attempt committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import prompts
from bot.app import App
from bot.channels.base import Address, Channel, Outbound
from bot.engine import people
from bot.engine.ports import Choice
from memory import store
from memory.db import transaction
from memory.errors import NotEnrolled, OptedOut, Unreachable
from memory.models import OPEN_STATUSES, ChannelIdentity, Checkin, OutboxMessage, Person
from memory.models_scheduler import OutboxContent
from scheduler.audience import ALWAYS_REACHABLE, BY_EMAIL
from scheduler.dispatch import Handler, NotNow, SkipMessage

log = logging.getLogger(__name__)

#: How long a row waits when the person's only channels are switched off in this process.
CHANNEL_OFF_RETRY = 300.0


@dataclass(frozen=True)
class _Prepared:
    channel: str
    address: Address
    messages: list[Outbound]
    identity_id: int | None


def as_one_message(messages: Sequence[Outbound]) -> list[Outbound]:
    """An invitation or reminder goes out as one message (greeting and question together).

    A send of several messages can fail half-way; the outbox then retries the whole row, and the
    person would get the greeting twice. One message is delivered whole or not at all. Buttons
    belong to the last message, so only messages without buttons are folded into it.
    """
    if len(messages) <= 1 or any(m.choices for m in messages[:-1]):
        return list(messages)
    return [replace(messages[-1], text="\n\n".join(m.text for m in messages))]


def _encode(prepared: _Prepared) -> dict[str, Any]:
    return {
        "address": dataclasses.asdict(prepared.address),
        "messages": [dataclasses.asdict(m) for m in prepared.messages],
        "identity_id": prepared.identity_id,
    }


def _decode(content: OutboxContent) -> _Prepared:
    body = content.body
    messages = [
        Outbound(**{**m, "choices": tuple(Choice(**c) for c in m.get("choices", ())),
                    "blocks": tuple(m["blocks"]) if m.get("blocks") is not None else None})
        for m in body["messages"]
    ]  # fmt: skip
    return _Prepared(
        channel=content.channel, address=Address(**body["address"]), messages=messages,
        identity_id=body.get("identity_id"),
    )  # fmt: skip


class Delivery:
    """The bot side of dispatch: handlers that know about check-ins and channels."""

    def __init__(
        self,
        *,
        app: App,
        channels: Mapping[str, Channel],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.app = app
        self.channels = channels
        self.clock = clock

    def handlers(self) -> dict[str, Handler]:
        return {"invitation": self.invitation, "reminder": self.reminder}

    async def invitation(self, row: OutboxMessage) -> str | None:
        return await self._deliver(row)

    async def reminder(self, row: OutboxMessage) -> str | None:
        return await self._deliver(row)

    async def _deliver(self, row: OutboxMessage) -> str | None:
        prepared = await asyncio.to_thread(self._stored_or_prepare, row)
        channel = self.channels.get(prepared.channel)
        if channel is None:
            raise NotNow("the prepared message's channel is not running here", retry_after=CHANNEL_OFF_RETRY)
        try:
            sent = await channel.send(prepared.address, prepared.messages)
        except Unreachable as exc:
            if prepared.identity_id is not None:
                await asyncio.to_thread(self._mark_unreachable, prepared.identity_id, exc.reason)
            raise
        return sent.external_ref

    # Database work (in a worker thread) -------------------------------------------------------

    def _stored_or_prepare(self, row: OutboxMessage) -> _Prepared:
        """The row's stored message if it has one (a retry), else prepare and store it."""
        with transaction(self.app.sessions) as s:
            content = s.get(OutboxContent, row.id)
            if content is not None:
                self._still_wanted(s, row)
                return _decode(content)
        return self._prepare(row)

    def _still_wanted(self, s: Session, row: OutboxMessage) -> None:
        """A retry of a stored message: skip it if the person left or the check-in closed meanwhile."""
        person = s.get(Person, row.person_id) if row.person_id is not None else None
        if person is None:
            raise SkipMessage("person deleted")
        if person.opted_out_at is not None:
            raise SkipMessage("opted out")
        checkin = s.get(Checkin, row.checkin_id) if row.checkin_id is not None else None
        if checkin is not None and checkin.status not in OPEN_STATUSES:
            raise SkipMessage(f"the check-in is {checkin.status}")
        if checkin is not None and checkin.expires_at is not None and checkin.expires_at <= self.clock():
            raise SkipMessage("the check-in expired")

    def _prepare(self, row: OutboxMessage) -> _Prepared:
        now = self.clock()
        program = str(row.payload.get("program", ""))
        config = self.app.config.programs.get(program)
        if config is None:
            raise SkipMessage(f"program {program!r} is no longer configured")
        with transaction(self.app.sessions) as s:
            person = s.get(Person, row.person_id) if row.person_id is not None else None
            if person is None:
                raise SkipMessage("person deleted")
            if person.opted_out_at is not None:
                raise SkipMessage("opted out")
            name, identity = self._route(s, person, config.channels)
            channel = self.channels[name]
            address = (
                Address(
                    channel=name, external_id=identity.external_id, workspace=identity.workspace,
                    conversation=identity.address,
                )
                if identity is not None
                else Address(channel=name, external_id=person.key)
            )  # fmt: skip
            try:
                if row.kind == "reminder":
                    messages = self._reminder(s, row, person, program, name, channel)
                else:
                    messages = self._invitation(s, row, person, program, name, channel, now)
            except (OptedOut, NotEnrolled) as exc:
                raise SkipMessage(str(exc)) from None
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == row.id)
                .values(channel=name)
                .execution_options(synchronize_session=False)
            )
            prepared = _Prepared(
                channel=name, address=address, messages=as_one_message(messages),
                identity_id=identity.id if identity else None,
            )  # fmt: skip
            s.add(OutboxContent(outbox_id=row.id, channel=name, body=_encode(prepared), prepared_at=now))
            return prepared

    def _route(self, s: Session, person: Person, preference: Sequence[str]) -> tuple[str, ChannelIdentity | None]:
        """The first of the program's channels that runs here and knows the person."""
        identities = {
            i.channel: i
            for i in s.scalars(
                select(ChannelIdentity).where(
                    ChannelIdentity.person_id == person.id, ChannelIdentity.reachable.is_(True)
                )
            )
        }
        # E-mail channels (the web link) reach only people with an e-mail address, as in the planner.
        by_email = BY_EMAIL if (person.email or "").strip() else frozenset()
        for name in preference:
            if name in self.channels and (name in identities or name in (ALWAYS_REACHABLE - BY_EMAIL) | by_email):
                return name, identities.get(name)
        if any(name in identities for name in preference):
            # Reachable, but not from this process (a token is missing): wait, do not give up.
            raise NotNow("the person's channel is not running in this process", retry_after=CHANNEL_OFF_RETRY)
        raise Unreachable("no reachable identity on the program's channels")

    def _invitation(
        self, s: Session, row: OutboxMessage, person: Person, program: str, name: str, channel: Channel,
        now: dt.datetime,
    ) -> list[Outbound]:  # fmt: skip
        if row.wave_id is not None:
            earlier = s.scalar(
                select(Checkin).where(
                    Checkin.person_id == person.id, Checkin.program_id == row.program_id,
                    Checkin.wave_id == row.wave_id,
                )
            )  # fmt: skip
            if earlier is not None and earlier.status not in OPEN_STATUSES:
                raise SkipMessage(f"already {earlier.status} in this wave")
        started = self.app.service.start_in(
            s, person=person, program=program, now=now, channel=name, markup=channel.markup,
            wave_id=row.wave_id, expires_at=row.not_after,
        )  # fmt: skip
        s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row.id)
            .values(checkin_id=started.checkin_id)
            .execution_options(synchronize_session=False)
        )
        return started.messages

    def _reminder(
        self, s: Session, row: OutboxMessage, person: Person, program: str, name: str, channel: Channel
    ) -> list[Outbound]:
        checkin = s.get(Checkin, row.checkin_id) if row.checkin_id is not None else None
        if checkin is None or checkin.status not in OPEN_STATUSES:
            raise SkipMessage("the check-in is no longer open")
        if checkin.expires_at is not None and checkin.expires_at <= self.clock():
            raise SkipMessage("the check-in expired")
        open_now = store.open_checkin(s, person.id, checkin.program_id)
        if open_now is None or open_now.id != checkin.id:
            raise SkipMessage("another check-in is open")
        started = self.app.service.start_in(
            s, person=person, program=program, now=self.clock(), channel=name, markup=channel.markup,
            wave_id=checkin.wave_id, expires_at=checkin.expires_at,
        )  # fmt: skip
        config = self.app.config.programs[program]
        nudge = prompts.render(
            "person/reminder", channel.markup, name=person.name, program_title=config.title or program
        )
        # The pending question follows; the greeting and "welcome back" are left out.
        return [Outbound(text=nudge), *(m for m in started.messages if m.kind != "message")]

    def _mark_unreachable(self, identity_id: int, reason: str) -> None:
        with transaction(self.app.sessions) as s:
            identity = s.get(ChannelIdentity, identity_id)
            if identity is not None:
                people.mark_unreachable(s, identity, reason, self.clock())
