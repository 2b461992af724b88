"""Cadence: staggered periods with per-person anchors, and fixed waves from cron expressions."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from scheduler.cadence import (
    Period,
    add_months,
    cron_trigger,
    fire_times,
    first_anchor,
    latest_due,
    latest_fire,
    spread,
)

UTC = dt.UTC
SIX_MONTHS = Period.parse("6 months")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_period_parsing() -> None:
    assert Period.parse("6 months") == Period(6, "month")
    assert Period.parse(" 2 weeks ") == Period(2, "week")
    assert Period.parse("1 day") == Period(1, "day")
    for bad in ("0 days", "six months", "3 years", ""):
        with pytest.raises(ValueError, match="not a period"):
            Period.parse(bad)


def test_months_clamp_to_the_end_of_a_short_month() -> None:
    assert add_months(utc(2026, 1, 31, 10), 1) == utc(2026, 2, 28, 10)
    assert add_months(utc(2028, 1, 31, 10), 1) == utc(2028, 2, 29, 10)
    assert add_months(utc(2026, 8, 31), 6) == utc(2027, 2, 28)


def test_five_thousand_people_enrolled_on_one_day_spread_over_six_months() -> None:
    enrolled = utc(2026, 1, 1)
    anchors = [
        first_anchor(period=SIX_MONTHS, program="customers", person_key=f"c{i}", enrolled_at=enrolled)
        for i in range(5000)
    ]
    assert all(enrolled <= a < utc(2026, 7, 1) for a in anchors)
    per_day = Counter(a.date() for a in anchors)
    # 181 days in the period: about 28 a day; never a pile-up on one day.
    assert len(per_day) >= 175
    assert max(per_day.values()) < 60
    per_month = Counter(a.month for a in anchors)
    assert min(per_month.values()) > 700


def test_slots_are_stable_across_restarts_and_processes() -> None:
    a = first_anchor(period=SIX_MONTHS, program="customers", person_key="alice", enrolled_at=utc(2026, 1, 1))
    b = first_anchor(period=SIX_MONTHS, program="customers", person_key="alice", enrolled_at=utc(2026, 1, 1))
    assert a == b
    assert spread("customers", "alice") != spread("employees", "alice")


def test_enrolled_mid_cycle_gets_the_next_occurrence_of_their_slot() -> None:
    key = "bob"
    slot = first_anchor(period=SIX_MONTHS, program="customers", person_key=key, enrolled_at=utc(2026, 1, 1))
    # Enrolled a day before their slot this period: due at the slot.
    just_before = slot - dt.timedelta(days=1)
    assert first_anchor(period=SIX_MONTHS, program="customers", person_key=key, enrolled_at=just_before) == slot
    # Enrolled a day after it: the same slot next period, within six months.
    just_after = slot + dt.timedelta(days=1)
    later = first_anchor(period=SIX_MONTHS, program="customers", person_key=key, enrolled_at=just_after)
    assert just_after < later <= just_after + dt.timedelta(days=185)


def test_a_person_with_history_keeps_their_own_rhythm() -> None:
    last = utc(2025, 11, 20, 14)
    anchor = first_anchor(
        period=SIX_MONTHS, program="customers", person_key="carol", enrolled_at=utc(2026, 1, 10), last_checkin_at=last
    )
    assert anchor == utc(2026, 5, 20, 14)
    # Overdue (last answered in September 2025, twice a year): due at once, not at their slot
    # in May 2027. The send window picks the moment.
    overdue = first_anchor(
        period=SIX_MONTHS, program="customers", person_key="carol", enrolled_at=utc(2026, 11, 30, 22),
        last_checkin_at=utc(2025, 9, 15),
    )  # fmt: skip
    assert overdue == utc(2026, 11, 30, 22)


def test_latest_due_steps_one_period_at_a_time() -> None:
    anchor = utc(2026, 1, 31, 10)
    month = Period.parse("1 month")
    assert latest_due(anchor, month, utc(2026, 1, 30)) is None
    assert latest_due(anchor, month, utc(2026, 1, 31, 10)) == anchor
    assert latest_due(anchor, month, utc(2026, 3, 1)) == utc(2026, 2, 28, 10)
    assert latest_due(anchor, month, utc(2026, 4, 15)) == utc(2026, 3, 31, 10)
    week = Period.parse("2 weeks")
    assert latest_due(utc(2026, 1, 5), week, utc(2026, 2, 3)) == utc(2026, 2, 2)


def test_wave_keys_name_the_period() -> None:
    assert SIX_MONTHS.wave_key(SIX_MONTHS.index(utc(2026, 3, 15))) == "2026-01-01/6m"
    assert SIX_MONTHS.wave_key(SIX_MONTHS.index(utc(2026, 7, 1))) == "2026-07-01/6m"
    weeks = Period.parse("2 weeks")
    start = weeks.start(weeks.index(utc(2026, 3, 15)))
    assert start.weekday() == 0
    assert start <= utc(2026, 3, 15) < weeks.start(weeks.index(utc(2026, 3, 15)) + 1)


def test_cron_waves_come_from_apscheduler_crontrigger() -> None:
    trigger = cron_trigger("0 10 1-7 1,4,7,10 mon")
    fires = list(fire_times(trigger, utc(2026, 1, 1), utc(2027, 1, 1)))
    assert fires == [utc(2026, 1, 5, 10), utc(2026, 4, 6, 10), utc(2026, 7, 6, 10), utc(2026, 10, 5, 10)]


def test_cron_weekday_numbers_follow_crontab_not_apscheduler() -> None:
    # In crontab 1-5 is Monday to Friday and 0 is Sunday (APScheduler 3 alone would read 0 as Monday).
    weekdays = list(fire_times(cron_trigger("0 9 * * 1-5"), utc(2026, 6, 1), utc(2026, 6, 8)))
    assert [f.weekday() for f in weekdays] == [0, 1, 2, 3, 4]
    sundays = list(fire_times(cron_trigger("0 9 * * 0"), utc(2026, 6, 1), utc(2026, 6, 15)))
    assert [f.date() for f in sundays] == [dt.date(2026, 6, 7), dt.date(2026, 6, 14)]


def test_cron_in_a_time_zone_follows_dst() -> None:
    trigger = cron_trigger("0 9 * * mon", "Europe/Berlin")
    fires = list(fire_times(trigger, utc(2026, 3, 20), utc(2026, 4, 1)))
    assert fires == [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]


def test_latest_fire_finds_the_open_wave_only() -> None:
    trigger = cron_trigger("0 10 1 * *")
    assert latest_fire(trigger, utc(2026, 3, 5), dt.timedelta(days=7)) == utc(2026, 3, 1, 10)
    assert latest_fire(trigger, utc(2026, 3, 20), dt.timedelta(days=7)) is None


def test_bad_cron_expressions_are_refused() -> None:
    with pytest.raises(ValueError, match="5 fields"):
        cron_trigger("0 10 * *")
    with pytest.raises(ValueError, match="maximum value"):
        cron_trigger("0 25 * * *")
