"""The plain values the scheduler works from, built by the bot side from ``bot.config``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from scheduler.cadence import Period
from scheduler.windows import Window


@dataclass(frozen=True, kw_only=True)
class ProgramSchedule:
    """One program's cadence, open window, reminders, send window and channels."""

    name: str
    # Exactly one of these: a staggered period, or a crontab line for fixed waves.
    period: Period | None = None
    cron: str | None = None
    # Time zone the cron expression is read in.
    timezone: str = "UTC"
    open_for: dt.timedelta = dt.timedelta(days=14)
    reminders: int = 2
    window: Window = field(default_factory=Window)
    # Channels in order of preference; a person is reachable if they have one of them.
    channels: tuple[str, ...] = ("slack", "telegram")
    # Least time between two invitations to one person from different programs (0: no limit);
    # see scheduler.frequency.
    contact_gap: dt.timedelta = dt.timedelta(0)

    def __post_init__(self) -> None:
        if (self.period is None) == (self.cron is None):
            raise ValueError("a program has either a period or a cron expression")


def outbox_key(kind: str, program: str, wave: str, person: str, n: int | None = None) -> str:
    """The unique key of a scheduled message: (kind, program, wave, person[, n])."""
    key = f"{kind}:{program}:{wave}:{person}"
    return f"{key}:{n}" if n is not None else key
