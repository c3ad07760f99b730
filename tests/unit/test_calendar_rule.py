"""Calendar rules: RFC 5545 recurrence text, fired in the wall-clock time of the job's zone.

Every expectation is an exact UTC instant computed by hand from fixed anchors; nothing reads
the clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.calendar_rule import MAX_COUNT, CalendarRule, CalendarRuleError
from chalicelib.tzmath import Zone, get_zone, take

NEW_YORK = get_zone("America/New_York")
US_EASTERN = get_zone("US/Eastern")  # an alias of America/New_York
US_PACIFIC = get_zone("US/Pacific")
LONDON = get_zone("Europe/London")
UTC_ZONE = get_zone("UTC")

JAN_10 = datetime(2026, 1, 10, 15, 0, tzinfo=UTC)  # a Saturday


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def fire_times(
    text: str, zone: Zone, anchor: datetime, count: int, after: datetime | None = None
) -> list[datetime]:
    rule = CalendarRule.parse(text, zone, anchor)
    return take(rule.iter_after(anchor if after is None else after), count + 1)


def test_the_last_business_day_of_each_month() -> None:
    times = fire_times("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", US_EASTERN, JAN_10, 6)[:6]

    assert times == [
        utc(2026, 1, 30, 5),  # Friday; Jan 31 is a Saturday. Midnight EST is 05:00Z
        utc(2026, 2, 27, 5),  # Friday; Feb 28 is a Saturday
        utc(2026, 3, 31, 4),  # Tuesday; daylight saving time since Mar 8: midnight EDT is 04:00Z
        utc(2026, 4, 30, 4),  # Thursday
        utc(2026, 5, 29, 4),  # Friday; May 30-31 is a weekend
        utc(2026, 6, 30, 4),  # Tuesday
    ]
    for instant in times:
        local = instant.astimezone(US_EASTERN)
        assert (local.hour, local.minute) == (0, 0)
        assert local.weekday() < 5
        rest_of_month = [
            local.date() + timedelta(days=n)
            for n in range(1, 4)
            if (local.date() + timedelta(days=n)).month == local.month
        ]
        assert all(day.weekday() >= 5 for day in rest_of_month)


def test_every_other_monday_at_nine_in_london_is_an_hour_earlier_in_utc_in_summer() -> None:
    text = "DTSTART;TZID=Europe/London:20260105T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"

    times = fire_times(text, LONDON, utc(2026, 1, 1), 8)[:8]

    assert times == [
        utc(2026, 1, 5, 9),
        utc(2026, 1, 19, 9),
        utc(2026, 2, 2, 9),
        utc(2026, 2, 16, 9),
        utc(2026, 3, 2, 9),
        utc(2026, 3, 16, 9),
        utc(2026, 3, 30, 8),  # British Summer Time since Sunday Mar 29: 09:00 BST is 08:00Z
        utc(2026, 4, 13, 8),
    ]


def test_an_exdate_removes_one_occurrence() -> None:
    text = (
        "DTSTART;TZID=America/New_York:20260105T090000\n"
        "RRULE:FREQ=DAILY;COUNT=4\n"
        "EXDATE;TZID=America/New_York:20260106T090000"
    )

    assert fire_times(text, NEW_YORK, utc(2026, 1, 1), 3) == [
        utc(2026, 1, 5, 14),
        utc(2026, 1, 7, 14),
        utc(2026, 1, 8, 14),
    ]


def test_an_rdate_adds_occurrences_at_their_own_times() -> None:
    text = (
        "DTSTART:20260105T090000\nRRULE:FREQ=WEEKLY;COUNT=2\nRDATE:20260107T170000,20260201T080000Z"
    )

    assert fire_times(text, NEW_YORK, utc(2026, 1, 1), 4) == [
        utc(2026, 1, 5, 14),  # Monday 09:00 EST
        utc(2026, 1, 7, 22),  # the local RDATE, 17:00 EST
        utc(2026, 1, 12, 14),  # Monday 09:00 EST, the second and last counted
        utc(2026, 2, 1, 8),  # the UTC RDATE
    ]


def test_exdate_and_rdate_as_dates_mean_the_whole_day_and_dtstarts_time_of_day() -> None:
    text = (
        "DTSTART:20260105T090000\n"
        "RRULE:FREQ=DAILY;BYHOUR=9,18;COUNT=6\n"
        "EXDATE;VALUE=DATE:20260106\n"
        "RDATE;VALUE=DATE:20260110"
    )

    assert fire_times(text, NEW_YORK, utc(2026, 1, 1), 5) == [
        utc(2026, 1, 5, 14),
        utc(2026, 1, 5, 23),
        utc(2026, 1, 7, 14),  # both Jan 6 occurrences are gone
        utc(2026, 1, 7, 23),  # the sixth counted occurrence: EXDATEs do not extend COUNT
        utc(2026, 1, 10, 14),  # the RDATE, at DTSTART's 09:00
    ]


def test_a_utc_dtstart_keeps_its_local_time_of_day_across_daylight_saving_time() -> None:
    rule = CalendarRule.parse("DTSTART:20260105T140000Z\nRRULE:FREQ=DAILY", NEW_YORK, JAN_10)

    # 14:00Z on Jan 5 is 09:00 EST, so the rule fires at 09:00 New York time every day.
    assert rule.next_after(JAN_10) == utc(2026, 1, 11, 14)
    assert rule.next_after(utc(2026, 7, 1)) == utc(2026, 7, 1, 13)  # 09:00 EDT


def test_a_utc_until_is_inclusive_and_ends_the_rule() -> None:
    text = "DTSTART;TZID=America/New_York:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260107T140000Z"

    rule = CalendarRule.parse(text, NEW_YORK, utc(2026, 1, 1))

    assert list(rule.iter_after(utc(2026, 1, 1))) == [
        utc(2026, 1, 5, 14),
        utc(2026, 1, 6, 14),
        utc(2026, 1, 7, 14),
    ]
    assert rule.next_after(utc(2030, 1, 1)) is None


def test_a_date_until_includes_that_whole_day() -> None:
    rule = CalendarRule.parse(
        "DTSTART:20260105T090000\nRRULE:FREQ=DAILY;UNTIL=20260106", NEW_YORK, utc(2026, 1, 1)
    )

    assert list(rule.iter_after(utc(2026, 1, 1))) == [utc(2026, 1, 5, 14), utc(2026, 1, 6, 14)]


def test_count_counts_from_dtstart_not_from_the_jobs_creation() -> None:
    rule = CalendarRule.parse(
        "DTSTART:20260101T090000\nRRULE:FREQ=DAILY;COUNT=12", UTC_ZONE, JAN_10
    )

    assert list(rule.iter_after(JAN_10)) == [utc(2026, 1, 11, 9), utc(2026, 1, 12, 9)]


def test_a_time_in_the_spring_forward_gap_fires_with_the_offset_in_force_before_the_gap() -> None:
    text = "DTSTART;TZID=America/New_York:20260308T023000\nRRULE:FREQ=DAILY;COUNT=3"

    assert fire_times(text, NEW_YORK, utc(2026, 3, 1), 3) == [
        utc(2026, 3, 8, 7, 30),  # 02:30 does not exist; read as EST it is 07:30Z = 03:30 EDT
        utc(2026, 3, 9, 6, 30),  # 02:30 EDT
        utc(2026, 3, 10, 6, 30),
    ]


def test_a_tzid_that_is_an_alias_of_the_job_zone_keeps_a_gap_time_in_the_gap() -> None:
    # Converted through its instant, 02:30 would become 03:30 and every later day would fire
    # at 03:30; as an alias of the job zone it stays 02:30.
    text = "DTSTART;TZID=America/New_York:20260308T023000\nRRULE:FREQ=DAILY;COUNT=3"

    assert fire_times(text, US_EASTERN, utc(2026, 3, 1), 3) == [
        utc(2026, 3, 8, 7, 30),
        utc(2026, 3, 9, 6, 30),
        utc(2026, 3, 10, 6, 30),
    ]


def test_a_time_repeated_at_fall_back_fires_once_at_its_first_occurrence() -> None:
    text = "DTSTART;TZID=America/New_York:20261031T013000\nRRULE:FREQ=DAILY"

    assert fire_times(text, NEW_YORK, utc(2026, 10, 1), 3)[:3] == [
        utc(2026, 10, 31, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 happens twice; the first (EDT) one, not 06:30Z
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
    ]


def test_an_hourly_rule_fires_once_in_the_hour_repeated_at_fall_back() -> None:
    # Wall-clock hours 00:00, 01:00, 02:00...; 01:00 means its first occurrence (05:00Z), so the
    # repeated hour (01:00 EST = 06:00Z) is not a fire time. That is RFC 5545 §3.3.5.
    text = "DTSTART:20261101T000000\nRRULE:FREQ=HOURLY"

    assert fire_times(text, US_EASTERN, utc(2026, 10, 1), 4)[:4] == [
        utc(2026, 11, 1, 4),  # 00:00 EDT
        utc(2026, 11, 1, 5),  # 01:00 EDT
        utc(2026, 11, 1, 7),  # 02:00 EST
        utc(2026, 11, 1, 8),  # 03:00 EST
    ]


def test_times_in_and_after_the_spring_forward_gap_fire_in_instant_order_without_repeats() -> None:
    # Wall-clock 02:00-02:40 read as EST land after 03:00 EDT (07:00Z); the same instants come
    # again from 03:00-03:40 EDT and fire once.
    text = "DTSTART:20260308T010000\nRRULE:FREQ=MINUTELY;INTERVAL=20"

    assert fire_times(text, NEW_YORK, utc(2026, 3, 8, 5), 8)[:8] == [
        utc(2026, 3, 8, 6, 0),
        utc(2026, 3, 8, 6, 20),
        utc(2026, 3, 8, 6, 40),
        utc(2026, 3, 8, 7, 0),
        utc(2026, 3, 8, 7, 20),
        utc(2026, 3, 8, 7, 40),
        utc(2026, 3, 8, 8, 0),
        utc(2026, 3, 8, 8, 20),
    ]


def test_without_dtstart_the_rule_starts_at_local_midnight_of_the_anchors_local_day() -> None:
    anchor = utc(2026, 6, 15, 3)  # still June 14, 20:00 PDT in Los Angeles

    daily = CalendarRule.parse("FREQ=DAILY", US_PACIFIC, anchor)
    at_nine_pm = CalendarRule.parse("FREQ=DAILY;BYHOUR=21", US_PACIFIC, anchor)

    assert daily.next_after(anchor) == utc(2026, 6, 15, 7)  # June 15, 00:00 PDT
    assert at_nine_pm.next_after(anchor) == utc(2026, 6, 15, 4)  # June 14, 21:00 PDT


def test_next_after_an_occurrence_is_the_following_occurrence() -> None:
    rule = CalendarRule.parse("FREQ=DAILY;BYHOUR=9", UTC_ZONE, JAN_10)

    assert rule.next_after(utc(2026, 1, 11, 9)) == utc(2026, 1, 12, 9)
    assert rule.next_after(utc(2026, 1, 11, 9) - timedelta(seconds=1)) == utc(2026, 1, 11, 9)


def test_fire_times_are_aware_utc() -> None:
    rule = CalendarRule.parse("FREQ=DAILY", LONDON, JAN_10)

    instant = rule.next_after(JAN_10.astimezone(NEW_YORK))

    assert instant == utc(2026, 1, 11)
    assert instant is not None and instant.tzinfo is UTC


def test_a_tzid_of_another_zone_is_read_as_the_job_zones_wall_clock_time() -> None:
    # 14:00 London on Jan 5 is 09:00 in New York, and the rule stays at 09:00 New York time,
    # even while only New York is on summer time (then it is 13:00 in London).
    text = "DTSTART;TZID=Europe/London:20260105T140000\nRRULE:FREQ=DAILY"
    rule = CalendarRule.parse(text, NEW_YORK, JAN_10)

    assert rule.next_after(JAN_10) == utc(2026, 1, 11, 14)
    assert rule.next_after(utc(2026, 3, 20)) == utc(2026, 3, 20, 13)


@pytest.mark.parametrize(
    "text",
    [
        "FREQ=WEEKLY;BYDAY=TU",
        "RRULE:FREQ=WEEKLY;BYDAY=TU",
        "rrule:freq=weekly;byday=tu",
        "\n  RRULE:FREQ=WEEKLY;BYDAY=TU;  \n\n",
        "DTSTART:20260110T000000\r\nRRULE:FREQ=WEEKLY;BYDAY=TU\r\n",
    ],
)
def test_a_bare_rule_and_its_property_line_forms_read_the_same(text: str) -> None:
    rule = CalendarRule.parse(text, UTC_ZONE, JAN_10)

    assert take(rule.iter_after(JAN_10), 2) == [utc(2026, 1, 13), utc(2026, 1, 20)]


def test_several_rrules_merge_and_a_shared_occurrence_fires_once() -> None:
    text = "DTSTART:20260112T090000\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE\nRRULE:FREQ=WEEKLY;BYDAY=WE,FR"

    assert fire_times(text, UTC_ZONE, JAN_10, 4)[:4] == [
        utc(2026, 1, 12, 9),
        utc(2026, 1, 14, 9),
        utc(2026, 1, 16, 9),
        utc(2026, 1, 19, 9),
    ]


def test_a_dtstart_that_the_rule_does_not_match_is_not_an_occurrence() -> None:
    # dateutil's reading; RFC 5545 leaves an unsynchronised DTSTART undefined.
    text = "DTSTART:20260112T090000\nRRULE:FREQ=WEEKLY;BYDAY=FR"

    assert fire_times(text, UTC_ZONE, JAN_10, 1)[:1] == [utc(2026, 1, 16, 9)]


def test_a_monthly_rule_on_the_31st_skips_shorter_months() -> None:
    assert fire_times("DTSTART:20260131T120000\nRRULE:FREQ=MONTHLY", UTC_ZONE, utc(2026, 1, 1), 3)[
        :3
    ] == [utc(2026, 1, 31, 12), utc(2026, 3, 31, 12), utc(2026, 5, 31, 12)]


def test_a_rule_that_fires_every_28_to_40_years_is_followed_across_its_gaps() -> None:
    # Feb 29 falls on a Monday in 2044 and 2072; 2100 is not a leap year, so the next is 2112.
    rule = CalendarRule.parse("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO", UTC_ZONE, JAN_10)

    assert take(rule.iter_after(JAN_10), 3) == [
        utc(2044, 2, 29),
        utc(2072, 2, 29),
        utc(2112, 2, 29),
    ]


def test_a_minutely_rule_started_long_ago_keeps_its_interval_phase() -> None:
    # Every 7 minutes since 2000: walking from DTSTART minute by minute would take minutes.
    rule = CalendarRule.parse(
        "DTSTART:20000101T000000\nRRULE:FREQ=MINUTELY;INTERVAL=7", UTC_ZONE, JAN_10
    )
    minutes_since_start = (JAN_10 - utc(2000, 1, 1)) // timedelta(minutes=1)
    first = utc(2000, 1, 1) + timedelta(minutes=(minutes_since_start // 7 + 1) * 7)

    assert take(rule.iter_after(JAN_10), 2) == [first, first + timedelta(minutes=7)]


def test_a_rule_that_has_ended_gives_none() -> None:
    rule = CalendarRule.parse("FREQ=DAILY;COUNT=2", UTC_ZONE, JAN_10)

    assert list(rule.iter_after(JAN_10)) == [utc(2026, 1, 11)]  # Jan 10 00:00 was the first
    assert rule.next_after(utc(2500, 1, 1)) is None


def test_nothing_fires_after_the_year_9998() -> None:
    rule = CalendarRule.parse("FREQ=WEEKLY;BYDAY=MO,SU;BYSETPOS=-1", UTC_ZONE, JAN_10)

    assert rule.next_after(utc(9998, 12, 20)) == utc(9998, 12, 27)  # a Sunday
    assert rule.next_after(utc(9998, 12, 27)) is None  # the next Sunday is in 9999


@pytest.mark.parametrize("freq", ["YEARLY", "MONTHLY", "DAILY", "HOURLY", "MINUTELY"])
def test_a_rule_on_a_day_that_does_not_exist_is_refused_without_hanging(freq: str) -> None:
    # Unbounded, dateutil walks to year 9999 on these: 15 s for MINUTELY. A slow test here is
    # a regression.
    with pytest.raises(CalendarRuleError, match="calendar_rule never fires"):
        CalendarRule.parse(f"FREQ={freq};BYMONTH=2;BYMONTHDAY=30", UTC_ZONE, JAN_10)


def test_a_weekly_rule_that_selects_nothing_is_refused_without_hanging() -> None:
    with pytest.raises(CalendarRuleError, match="calendar_rule never fires"):
        CalendarRule.parse("FREQ=WEEKLY;BYDAY=MO;BYSETPOS=2", UTC_ZONE, JAN_10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "calendar_rule is empty; expected an RFC 5545 rule such as"),
        ("  \n \n", "calendar_rule is empty"),
        ("DTSTART:20260105T090000", "no RRULE or RDATE, so it never fires; add a rule such as"),
        ("SUMMARY:Standup\nRRULE:FREQ=DAILY", "unknown property 'SUMMARY'; accepted lines are"),
        ("every day", "neither a property line"),
        ("FREQ=FORTNIGHTLY", "FREQ=FORTNIGHTLY is not a frequency; accepted: YEARLY, MONTHLY"),
        ("FREQ=SECONDLY", "use an interval job for sub-minute schedules"),
        ("BYDAY=MO", "the rule has no FREQ; accepted: FREQ=YEARLY"),
        ("FREQ=DAILY;FOO=1", "unknown rule part FOO; accepted: FREQ, UNTIL, COUNT"),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice"),
        ("FREQ=DAILY;BYHOUR", "rule part 'BYHOUR' is not NAME=VALUE"),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR=24 is not a comma-separated list of integers in 0..23"),
        ("FREQ=DAILY;BYMONTHDAY=0", "integers in 1..31 or -31..-1"),
        ("FREQ=DAILY;BYDAY=XX", "BYDAY=XX is not a list of weekdays; accepted: MO, TU"),
        ("FREQ=DAILY;BYDAY=-1FR", "allows only with FREQ=MONTHLY or FREQ=YEARLY"),
        ("FREQ=MONTHLY;BYDAY=6MO,-60MO", "not a weekday number; accepted: 1..53"),
        ("FREQ=DAILY;WKST=XX", "WKST=XX is not accepted; use one of MO, TU"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0 must be a whole number from 1 to"),
        ("FREQ=DAILY;COUNT=0", f"COUNT=0 must be a whole number from 1 to {MAX_COUNT}"),
        (f"FREQ=DAILY;COUNT={MAX_COUNT + 1}", f"from 1 to {MAX_COUNT}"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20270101T000000Z", "COUNT and UNTIL are both given"),
        ("FREQ=DAILY;UNTIL=2027-01-01", "'2027-01-01' is not a date-time; accepted: YYYYMMDD"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY cannot be used with FREQ=WEEKLY"),
        ("FREQ=MONTHLY;BYWEEKNO=1", "RFC 5545 allows it with FREQ=YEARLY"),
        ("FREQ=DAILY;BYYEARDAY=1", "BYYEARDAY cannot be used with FREQ=DAILY"),
        ("FREQ=MONTHLY;BYSETPOS=1", "BYSETPOS picks from the set another BYxxx part makes"),
        ("FREQ=HOURLY;INTERVAL=2;BYHOUR=1", "dateutil rejects the rule: Invalid rrule byxxx"),
        ("FREQ=MINUTELY;INTERVAL=120;BYHOUR=1", "calendar_rule never fires"),
        ("RRULE;X-A=1:FREQ=DAILY", "RRULE takes no parameters"),
        ("EXRULE:FREQ=WEEKLY\nRRULE:FREQ=DAILY", "EXRULE is deprecated by RFC 5545"),
        (
            "DTSTART:20260105T090000\nDTSTART:20260106T090000\nRRULE:FREQ=DAILY",
            "2 DTSTART lines; at most one is accepted",
        ),
        ("DTSTART:20260105T090000\\nRRULE:FREQ=DAILY", "separate its lines with real newlines"),
        (
            "DTSTART;TZID=Mars/Olympus_Mons:20260105T090000\nRRULE:FREQ=DAILY",
            "TZID 'Mars/Olympus_Mons' is not a known time zone; use an IANA zone name",
        ),
        (
            "DTSTART;TZID=America/New_York:20260105T140000Z\nRRULE:FREQ=DAILY",
            "cannot take a TZID",
        ),
        ("DTSTART;LANG=en:20260105T090000\nRRULE:FREQ=DAILY", "unknown parameter LANG"),
        ("DTSTART:2026-01-05 09:00\nRRULE:FREQ=DAILY", "is not a date-time; accepted:"),
        ("DTSTART:20260230T090000\nRRULE:FREQ=DAILY", "is not a real date and time of day"),
        ("DTSTART:20260105T090000,20260106T090000\nRRULE:FREQ=DAILY", "exactly one date-time"),
        ("RDATE;VALUE=PERIOD:20260205T090000/PT1H", "VALUE=PERIOD is not supported; accepted"),
        ("RDATE;VALUE=DATE:20260205T090000", "does not match VALUE=DATE"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "calendar_rule never fires: the RRULE on line 1"),
        ("DTSTART:20200101T000000\nRRULE:FREQ=DAILY;COUNT=3", "calendar_rule never fires"),
        ("RDATE:20260105T090000", "calendar_rule never fires: nothing is left after"),
        ("RDATE:20260205T090000\nEXDATE:20260205T090000", "once EXDATEs are removed"),
    ],
)
def test_a_bad_calendar_rule_is_refused_with_what_is_wrong_and_what_is_accepted(
    text: str, message: str
) -> None:
    with pytest.raises(CalendarRuleError) as raised:
        CalendarRule.parse(text, NEW_YORK, JAN_10)

    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_naive_instants_are_a_programming_error_not_a_rule_error() -> None:
    rule = CalendarRule.parse("FREQ=DAILY", UTC_ZONE, JAN_10)

    with pytest.raises(ValueError, match="timezone-aware") as raised:
        rule.next_after(datetime(2026, 1, 10))
    assert not isinstance(raised.value, CalendarRuleError)
    with pytest.raises(ValueError, match="anchor must be a timezone-aware"):
        CalendarRule.parse("FREQ=DAILY", UTC_ZONE, datetime(2026, 1, 10))
