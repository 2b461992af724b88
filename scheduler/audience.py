"""Who can be reached, and how a tick counts what it did: shared by the planner (invitations)
and the upkeep (reminders, expiry), and by delivery and the status report."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from memory.models import ChannelIdentity, Person
from memory.models_scheduler import Absence
from scheduler.plans import ProgramSchedule
from scheduler.windows import Away

# Reasons recorded on skipped rows (``OutboxMessage.last_error``); ``rapport status`` counts them.
OPTED_OUT = "opted out"
UNREACHABLE = "unreachable: no reachable identity on the program's channels"
NO_WINDOW = "no send window before the wave closes"
EXPIRED = "check-in expired"
ANSWERED_RECENTLY = "answered recently"
#: Channels reached by e-mail (the web link): reachable when the person has an e-mail address.
BY_EMAIL = frozenset({"web"})
#: Channels that need no identity row: delivery routes to them by the person's key.
ALWAYS_REACHABLE = frozenset({"terminal"}) | BY_EMAIL


@dataclass
class TickReport:
    waves: int = 0
    invitations: int = 0
    reminders: int = 0
    expired: int = 0
    opted_out: int = 0
    unreachable: int = 0
    no_window: int = 0
    answered_recently: int = 0
    # Delayed or skipped by the contact limit across programs (scheduler.frequency).
    held_back: int = 0
    # Not invited: an invitation of the same program from another wave is still waiting to go out.
    already_invited: int = 0

    def add(self, other: TickReport) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class PlanningPeople:
    """What planning needs about people, loaded in bulk."""

    channels: dict[int, list[str]] = field(default_factory=dict)
    away: dict[int, Away] = field(default_factory=dict)


def load_people(s: Session, person_ids: Iterable[int], on: dt.date) -> PlanningPeople:
    ids = list(set(person_ids))
    out = PlanningPeople()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for person_id, channel in s.execute(
            select(ChannelIdentity.person_id, ChannelIdentity.channel).where(
                ChannelIdentity.person_id.in_(chunk), ChannelIdentity.reachable.is_(True)
            )
        ):
            out.channels.setdefault(person_id, []).append(channel)
        for person_id in s.scalars(
            select(Person.id).where(Person.id.in_(chunk), Person.email.is_not(None), Person.email != "")
        ):
            out.channels.setdefault(person_id, []).extend(BY_EMAIL)
        ranges: dict[int, list[tuple[dt.date, dt.date]]] = defaultdict(list)
        for absence in s.scalars(
            select(Absence).where(Absence.person_id.in_(chunk), Absence.ends_on >= on - dt.timedelta(days=1))
        ):
            ranges[absence.person_id].append((absence.starts_on, absence.ends_on))
        for person_id, spans in ranges.items():
            out.away[person_id] = Away(ranges=tuple(sorted(spans)))
    return out


def away_of(s: Session, person_id: int) -> Away:
    spans = s.execute(select(Absence.starts_on, Absence.ends_on).where(Absence.person_id == person_id)).all()
    return Away(ranges=tuple(sorted((a, b) for a, b in spans)))


def pick_channel(program: ProgramSchedule, reachable: Sequence[str]) -> str | None:
    for channel in program.channels:
        if channel in reachable or (channel in ALWAYS_REACHABLE and channel not in BY_EMAIL):
            return channel
    return None
