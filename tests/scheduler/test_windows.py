"""Send windows in the person's local time: weekdays, holidays, time off, and DST switches."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler.windows import Away, Window, is_open, local_instant, next_open, zone

UTC = dt.UTC
WORKDAYS = Window.parse(start="09:00", end="17:00", days=["mon", "tue", "wed", "thu", "fri"])
BERLIN, NEW_YORK, TOKYO = zone("Europe/Berlin"), zone("America/New_York"), zone("Asia/Tokyo")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def test_inside_the_window_is_sent_now() -> None:
    now = utc(2026, 6, 10, 10, 0)  # Wednesday 12:00 in Berlin (CEST)
    assert next_open(now, WORKDAYS, BERLIN) == now
    assert is_open(now, WORKDAYS, BERLIN)


def test_quiet_hours_wait_for_the_morning_in_local_time() -> None:
    late = utc(2026, 6, 10, 20, 0)  # Wednesday 22:00 in Berlin
    assert next_open(late, WORKDAYS, BERLIN) == utc(2026, 6, 11, 7, 0)  # Thursday 09:00 CEST
    # The same instant is 16:00 in New York: still inside their window.
    assert next_open(late, WORKDAYS, NEW_YORK) == late
    # And 05:00 Thursday in Tokyo: wait for 09:00 there.
    assert next_open(late, WORKDAYS, TOKYO) == utc(2026, 6, 11, 0, 0)


def test_weekend_waits_for_monday() -> None:
    saturday = utc(2026, 6, 13, 10, 0)
    assert next_open(saturday, WORKDAYS, BERLIN) == utc(2026, 6, 15, 7, 0)


def test_end_of_window_is_exclusive() -> None:
    five_pm = utc(2026, 6, 10, 15, 0)  # 17:00 CEST
    assert not is_open(five_pm, WORKDAYS, BERLIN)
    assert next_open(five_pm, WORKDAYS, BERLIN) == utc(2026, 6, 11, 7, 0)


def test_program_holidays_are_skipped() -> None:
    window = Window.parse(start="09:00", end="17:00", days=["mon", "tue", "wed", "thu", "fri"],
                          holidays=["2026-12-24", "2026-12-25"])  # fmt: skip
    evening = utc(2026, 12, 23, 18, 0)  # Wednesday 19:00 Berlin
    assert next_open(evening, window, BERLIN) == utc(2026, 12, 28, 8, 0)  # Monday 09:00 CET


def test_out_of_office_dates_are_skipped_in_the_persons_calendar() -> None:
    away = Away(ranges=((dt.date(2026, 6, 10), dt.date(2026, 6, 12)),))
    wednesday = utc(2026, 6, 10, 10, 0)
    assert not is_open(wednesday, WORKDAYS, BERLIN, away)
    assert next_open(wednesday, WORKDAYS, BERLIN, away) == utc(2026, 6, 15, 7, 0)


def test_a_window_that_never_opens_gives_none() -> None:
    away = Away(ranges=((dt.date(2026, 1, 1), dt.date(2030, 1, 1)),))
    assert next_open(utc(2026, 6, 1), WORKDAYS, BERLIN, away) is None


@pytest.mark.parametrize(
    ("before", "after", "tz", "opens_before", "opens_after"),
    [
        # Berlin: last Sunday of March 2026 is the 29th (CET +1 -> CEST +2).
        (utc(2026, 3, 27, 18), utc(2026, 3, 29, 18), BERLIN, utc(2026, 3, 30, 7, 0), utc(2026, 3, 30, 7, 0)),
        # Berlin: last Sunday of October 2026 is the 25th (CEST +2 -> CET +1).
        (utc(2026, 10, 23, 18), utc(2026, 10, 25, 18), BERLIN, utc(2026, 10, 26, 8, 0), utc(2026, 10, 26, 8, 0)),
        # New York: second Sunday of March 2026 is the 8th (EST -5 -> EDT -4).
        (utc(2026, 3, 6, 23), utc(2026, 3, 8, 23), NEW_YORK, utc(2026, 3, 9, 13, 0), utc(2026, 3, 9, 13, 0)),
        # New York: first Sunday of November 2026 is the 1st (EDT -4 -> EST -5).
        (utc(2026, 10, 30, 23), utc(2026, 11, 1, 23), NEW_YORK, utc(2026, 11, 2, 14, 0), utc(2026, 11, 2, 14, 0)),
    ],
)
def test_dst_switch_keeps_nine_oclock_local(
    before: dt.datetime, after: dt.datetime, tz: object, opens_before: dt.datetime, opens_after: dt.datetime
) -> None:
    from zoneinfo import ZoneInfo

    assert isinstance(tz, ZoneInfo)
    first = next_open(before, WORKDAYS, tz)
    assert first is not None
    # Friday evening -> Monday 09:00 local, across the weekend of the switch.
    assert first == opens_before
    assert first.astimezone(tz).time() == dt.time(9, 0)
    second = next_open(after, WORKDAYS, tz)
    assert second == opens_after
    assert second is not None
    assert second.astimezone(tz).time() == dt.time(9, 0)


def test_utc_offset_of_the_window_changes_with_dst() -> None:
    winter = next_open(utc(2026, 3, 27, 1), WORKDAYS, BERLIN)  # Friday before the switch
    summer = next_open(utc(2026, 3, 30, 1), WORKDAYS, BERLIN)  # Monday after it
    assert winter == utc(2026, 3, 27, 8, 0)
    assert summer == utc(2026, 3, 30, 7, 0)


def test_a_window_starting_in_the_spring_gap_starts_when_the_clock_resumes() -> None:
    night = Window.parse(start="02:30", end="05:00", days=["sun"])
    # 29 March 2026 in Berlin: 02:00 jumps to 03:00, so 02:30 does not exist.
    opens = next_open(utc(2026, 3, 28, 12), night, BERLIN)
    assert opens == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert local_instant(dt.date(2026, 3, 29), dt.time(2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)


def test_a_repeated_autumn_hour_uses_its_first_occurrence() -> None:
    # 25 October 2026 in Berlin: 03:00 goes back to 02:00; 02:30 happens twice.
    assert local_instant(dt.date(2026, 10, 25), dt.time(2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)


def test_unknown_time_zone_falls_back_to_utc() -> None:
    assert zone("Not/AZone").key == "UTC"
    assert zone("").key == "UTC"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_open(dt.datetime(2026, 1, 1), WORKDAYS, BERLIN)
