"""The Slack channel's roster work in the database: linking Slack users to people (by e-mail),
the App Home's history, a stop from the App Home, and marking a person unreachable.

Synchronous, one transaction per call: the channel runs these in a worker thread
(``asyncio.to_thread``). Slack Web API calls stay in ``bot.channels.slack``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.base import Address
from bot.channels.slack_blocks import JSON, HomeEntry, home_view
from bot.config import ProgramConfig
from memory import store
from memory.db import transaction
from memory.models import OPEN_STATUSES, ChannelIdentity, Person

log = logging.getLogger("bot.channels.slack")

NAME = "slack"
# The App Home shows at most this many check-ins (newest first).
HOME_CHECKINS = 12


class SlackPeople:
    """People and their Slack identities (``channel == "slack"``), per workspace ("" with one)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def has_identity(self, user: str, workspace: str) -> bool:
        with transaction(self.sessions) as s:
            return store.find_identity(s, channel=NAME, external_id=user, workspace=workspace) is not None

    def link_by_email(self, email: str, user: str, workspace: str, now: dt.datetime) -> bool:
        """Link the roster entry with this e-mail to the Slack user; False when there is none, or
        when it is already linked to another Slack user in the workspace (an e-mail never moves it)."""
        with transaction(self.sessions) as s:
            person = store.find_person(s, email.lower())
            if person is None or person.email != email.lower():
                return False
            if any(i.channel == NAME and i.workspace == workspace for i in store.identities_of(s, person.id)):
                return False
            store.link_identity(s, person=person, channel=NAME, external_id=user, workspace=workspace, now=now)
            return True

    def people_to_link(self, workspace: str) -> list[tuple[str, str]]:
        """(key, e-mail) of people with an e-mail and no Slack identity in the workspace, by key."""
        with transaction(self.sessions) as s:
            linked = select(ChannelIdentity.person_id).where(
                ChannelIdentity.channel == NAME, ChannelIdentity.workspace == workspace
            )
            rows = s.execute(
                select(Person.key, Person.email)
                .where(Person.email.is_not(None), Person.id.not_in(linked))
                .order_by(Person.key)
            ).all()
            return [(k, e) for k, e in rows if e]

    def link(self, person_key: str, user: str, workspace: str, now: dt.datetime) -> None:
        with transaction(self.sessions) as s:
            person = store.find_person(s, person_key)
            if person is not None:
                store.link_identity(s, person=person, channel=NAME, external_id=user, workspace=workspace, now=now)

    def remember_dm(self, address: Address, conversation: str) -> None:
        with transaction(self.sessions) as s:
            identity = store.find_identity(
                s, channel=NAME, external_id=address.external_id, workspace=address.workspace
            )
            if identity is not None:
                identity.address = conversation

    def opt_out(self, user: str, workspace: str, now: dt.datetime) -> bool:
        """Record the person's stop, as the engine's confirmed ``stop`` does. False if unknown."""
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=NAME, external_id=user, workspace=workspace)
            if identity is None:
                return False
            person: Person = identity.person
            if person.opted_out_at is None:
                person.opted_out_at = now
            for checkin in store.open_checkins(s, person.id):
                if checkin.status in OPEN_STATUSES:
                    checkin.status, checkin.updated_at = "opted_out", now
            return True

    def mark_unreachable(self, address: Address, reason: str, now: dt.datetime) -> None:
        with transaction(self.sessions) as s:
            identity = store.find_identity(
                s, channel=NAME, external_id=address.external_id, workspace=address.workspace
            )
            if identity is not None:
                store.mark_unreachable(s, identity, reason, now)
        log.warning("slack: person unreachable", extra={"reason": reason})

    def home_view(self, user: str, workspace: str, programs: Mapping[str, ProgramConfig]) -> JSON:
        """The person's App Home: their newest check-ins and a stop/resume button."""
        with transaction(self.sessions) as s:
            identity = store.find_identity(s, channel=NAME, external_id=user, workspace=workspace)
            if identity is None:
                return home_view(entries=None, opted_out=False)
            person = identity.person
            entries: list[HomeEntry] = []
            for checkin in reversed(store.history(s, person.id)):
                program = programs.get(checkin.program.name)
                lines: list[tuple[str, str]] = []
                for answer in checkin.answers:
                    question = program.question(answer.question) if program else None
                    label = question.text if question else answer.question
                    if answer.skipped:
                        lines.append((label, "(skipped)"))
                    elif answer.rating is not None:
                        lines.append((label, str(answer.rating) + (f" — {answer.text}" if answer.text else "")))
                    elif answer.text:
                        lines.append((label, answer.text))
                for followup in checkin.followups:
                    if followup.answer_text:
                        lines.append(("What changed", followup.answer_text))
                title = (program.title if program else None) or checkin.program.name
                entries.append(HomeEntry(when=checkin.started_at, title=title, status=checkin.status, lines=lines))
                if len(entries) >= HOME_CHECKINS:
                    break
            return home_view(entries=entries, opted_out=person.opted_out_at is not None)
