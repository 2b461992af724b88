"""When a program is due: staggered periods with per-person anchors, or fixed cron waves.

Pure functions on aware UTC datetimes; nothing here reads the clock.

*Staggered* (``every: 6 months``): time is cut into periods counted from a fixed epoch, and each
person has a stable slot inside the period, from a hash of program and person key. So 5,000
people enrolled on one day spread evenly over the six months, a restart or a second process
computes the same slots, and a person enrolled mid-cycle gets the next occurrence of their slot.
A person with earlier check-ins (imported history) continues their own rhythm instead: one
period after their last check-in, or at once when that is already past (overdue). The slot is
stored as ``Enrollment.anchor_at``; due dates are ``anchor + k periods``. The wave of a
staggered check-in is the period it falls in.

*Fixed* (``cron: "0 10 1-7 1,4,7,10 mon"``): APScheduler's ``CronTrigger`` computes fire times
in the cadence's time zone; each fire time opens a wave that everyone enrolled joins.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

Unit = Literal["day", "week", "month"]

#: Periods are counted from here (a Monday, so weekly periods start on Mondays).
EPOCH = dt.datetime(2000, 1, 3, tzinfo=dt.UTC)
_MONTH_EPOCH = (2000, 1)
_PERIOD = re.compile(r"^\s*(\d+)\s+(day|week|month)s?\s*$")


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """Calendar months later; the day is clamped (31 January + 1 month = 28/29 February)."""
    total = moment.year * 12 + (moment.month - 1) + months
    year, month = divmod(total, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class Period:
    n: int
    unit: Unit

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.match(text)
        if not match or int(match.group(1)) < 1:
            raise ValueError(f"not a period: {text!r} (expected e.g. '6 months', '2 weeks', '30 days')")
        units: dict[str, Unit] = {"day": "day", "week": "week", "month": "month"}
        return cls(int(match.group(1)), units[match.group(2)])

    def __str__(self) -> str:
        return f"{self.n} {self.unit}{'s' if self.n != 1 else ''}"

    def add(self, moment: dt.datetime, k: int = 1) -> dt.datetime:
        if self.unit == "month":
            return add_months(moment, self.n * k)
        days = self.n * k * (7 if self.unit == "week" else 1)
        return moment + dt.timedelta(days=days)

    def index(self, moment: dt.datetime) -> int:
        """Which period (counted from the epoch) contains ``moment``."""
        moment = moment.astimezone(dt.UTC)
        if self.unit == "month":
            months = (moment.year - _MONTH_EPOCH[0]) * 12 + moment.month - _MONTH_EPOCH[1]
            return months // self.n
        length = dt.timedelta(days=self.n * (7 if self.unit == "week" else 1))
        return (moment - EPOCH) // length

    def start(self, index: int) -> dt.datetime:
        if self.unit == "month":
            return add_months(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), index * self.n)
        return EPOCH + dt.timedelta(days=index * self.n * (7 if self.unit == "week" else 1))

    def wave_key(self, index: int) -> str:
        """A readable, stable name for a period: ``2026-01-01/6m``."""
        return f"{self.start(index):%Y-%m-%d}/{self.n}{self.unit[0]}"


def spread(program: str, person_key: str) -> float:
    """A stable fraction in [0, 1): where in each period this person's check-in falls."""
    digest = hashlib.sha256(f"{program}\x00{person_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def slot_in(period: Period, index: int, fraction: float) -> dt.datetime:
    start = period.start(index)
    return start + (period.start(index + 1) - start) * fraction


def first_anchor(
    *,
    period: Period,
    program: str,
    person_key: str,
    enrolled_at: dt.datetime,
    last_checkin_at: dt.datetime | None = None,
) -> dt.datetime:
    """A person's first due date in a staggered program.

    With earlier check-ins, one period after the last one; if that is already past, the person
    is overdue and due at once, so the planner invites them at the next good moment (their send
    window), not at their slot up to a whole period later. Their rhythm then continues from
    there. Without check-ins, the next occurrence of their slot at or after enrolment.
    """
    if last_checkin_at is not None:
        return max(period.add(last_checkin_at, 1), enrolled_at)
    fraction = spread(program, person_key)
    index = period.index(enrolled_at)
    anchor = slot_in(period, index, fraction)
    if anchor < enrolled_at:
        anchor = slot_in(period, index + 1, fraction)
    return anchor


def latest_due(anchor: dt.datetime, period: Period, now: dt.datetime) -> dt.datetime | None:
    """The most recent due date ``anchor + k periods`` (k >= 0) at or before ``now``."""
    if anchor > now:
        return None
    if period.unit == "month":
        months = (now.year - anchor.year) * 12 + now.month - anchor.month
        k = max(0, months // period.n)
    else:
        k = max(0, (now - anchor) // dt.timedelta(days=period.n * (7 if period.unit == "week" else 1)))
    while k > 0 and period.add(anchor, k) > now:
        k -= 1
    while period.add(anchor, k + 1) <= now:
        k += 1
    return period.add(anchor, k)


# Cron ------------------------------------------------------------------------------------------

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_weekdays(field: str) -> str:
    """Crontab weekday numbers (0 or 7 = Sunday) as names, which APScheduler 3 reads correctly.

    APScheduler 3 numbers weekdays from Monday = 0, unlike crontab; names mean the same in both.
    """

    def name_range(token: str) -> str:
        if re.fullmatch(r"\d", token):
            return _DOW_NAMES[int(token)]
        m = re.fullmatch(r"(\d)-(\d)", token)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            return ",".join(_DOW_NAMES[i] for i in range(a, b + 1))
        return token

    return ",".join(name_range(t) for t in field.split(","))


def cron_trigger(expr: str, timezone: str = "UTC") -> CronTrigger:
    """A CronTrigger from a 5-field crontab line, evaluated in ``timezone``.

    As in APScheduler, a restricted day of month *and* day of week must both match
    (``1-7 ... mon`` is the first Monday of the month).
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day month weekday); got {len(fields)}")
    fields[4] = _crontab_weekdays(fields[4])
    return CronTrigger(
        minute=fields[0], hour=fields[1], day=fields[2], month=fields[3], day_of_week=fields[4],
        timezone=ZoneInfo(timezone),
    )  # fmt: skip


def fire_times(trigger: CronTrigger, start: dt.datetime, end: dt.datetime) -> Iterator[dt.datetime]:
    """Fire times t with start <= t <= end, in UTC, oldest first."""
    previous: dt.datetime | None = None
    cursor = start
    while True:
        fire = trigger.get_next_fire_time(previous, cursor)
        if fire is None or fire > end:
            return
        fire = fire.astimezone(dt.UTC)
        if fire >= start:
            yield fire
        previous = fire
        cursor = fire


def latest_fire(trigger: CronTrigger, now: dt.datetime, lookback: dt.timedelta) -> dt.datetime | None:
    """The most recent fire time within ``lookback`` before ``now`` (a wave that is still open)."""
    last = None
    for fire in fire_times(trigger, now - lookback, now):
        last = fire
    return last


def cron_wave_key(fire: dt.datetime) -> str:
    return f"{fire.astimezone(dt.UTC):%Y-%m-%dT%H:%MZ}"
