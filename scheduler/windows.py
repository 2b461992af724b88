"""A decent hour: send windows in each person's own time zone.

Pure functions on aware datetimes. A window is a local time of day (start-end) on some days of
the week, minus the program's holidays and the person's out-of-office dates. Local times are
turned into instants with :mod:`zoneinfo`, so a DST switch moves the window with the clock: 09:00
in Berlin is 08:00 UTC in winter and 07:00 UTC in summer, and a window that starts inside the
skipped spring hour starts at the first valid local time after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: How far ahead ``next_open`` looks before it gives up (a window that never opens).
HORIZON_DAYS = 400


@dataclass(frozen=True, kw_only=True)
class Window:
    """When a program may contact people, in their own local time."""

    start: dt.time = dt.time(9, 0)
    end: dt.time = dt.time(17, 0)
    days: frozenset[int] = frozenset(range(5))  # 0 = Monday
    holidays: frozenset[dt.date] = frozenset()

    @classmethod
    def parse(cls, *, start: str, end: str, days: Iterable[str], holidays: Iterable[str] = ()) -> Window:
        return cls(
            start=dt.time.fromisoformat(start),
            end=dt.time.fromisoformat(end),
            days=frozenset(WEEKDAYS.index(d) for d in days),
            holidays=frozenset(dt.date.fromisoformat(h) for h in holidays),
        )


@dataclass(frozen=True, kw_only=True)
class Away:
    """A person's dates off, inclusive, in their own calendar."""

    ranges: tuple[tuple[dt.date, dt.date], ...] = field(default_factory=tuple)

    def covers(self, day: dt.date) -> bool:
        return any(a <= day <= b for a, b in self.ranges)


NOWHERE = Away()


def zone(name: str | None) -> ZoneInfo:
    """The person's time zone; an unknown or empty name falls back to UTC rather than failing."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_instant(day: dt.date, at: dt.time, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant of a wall-clock time on a local date.

    A time that does not exist (inside the spring-forward gap) becomes the first valid time after
    the gap; a repeated time (autumn) is its first occurrence.
    """
    naive = dt.datetime.combine(day, at)
    aware = naive.replace(tzinfo=tz, fold=0)
    utc = aware.astimezone(dt.UTC)
    back = utc.astimezone(tz).replace(tzinfo=None)
    if back != naive:
        utc = _gap_end(naive, tz)
    return utc


def _gap_end(naive: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    # Walk forward minute by minute (a gap is at most a couple of hours) to the first real time.
    probe = naive
    for _ in range(24 * 60):
        probe += dt.timedelta(minutes=1)
        utc = probe.replace(tzinfo=tz).astimezone(dt.UTC)
        if utc.astimezone(tz).replace(tzinfo=None) == probe:
            return utc
    return naive.replace(tzinfo=dt.UTC)


def is_open_day(day: dt.date, window: Window, away: Away = NOWHERE) -> bool:
    return day.weekday() in window.days and day not in window.holidays and not away.covers(day)


def is_open(moment: dt.datetime, window: Window, tz: ZoneInfo, away: Away = NOWHERE) -> bool:
    """True if ``moment`` lies inside the window, in the zone's local time."""
    local = moment.astimezone(tz)
    day = local.date()
    if not is_open_day(day, window, away):
        return False
    return local_instant(day, window.start, tz) <= moment < local_instant(day, window.end, tz)


def next_open(
    after: dt.datetime, window: Window, tz: ZoneInfo, away: Away = NOWHERE, *, horizon_days: int = HORIZON_DAYS
) -> dt.datetime | None:
    """The earliest instant at or after ``after`` inside the window; None if it never opens."""
    if after.tzinfo is None:
        raise ValueError("pass an aware datetime")
    day = after.astimezone(tz).date()
    for _ in range(horizon_days):
        if is_open_day(day, window, away):
            opens = local_instant(day, window.start, tz)
            closes = local_instant(day, window.end, tz)
            candidate = max(after, opens)
            if candidate < closes:
                return candidate.astimezone(dt.UTC)
        day += dt.timedelta(days=1)
    return None
