"""Holiday calendars (chalicelib.holidays): days and ranges, iCalendar files, and refusals
that name the field, the entry or the line, and say what is accepted."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.holidays import (
    MAX_ICS_BYTES,
    HolidayCalendar,
    merge_spans,
    parse_dates,
    parse_ics,
)

LOC = ("body", "dates")
ICS_LOC = ("body", "ics")


def d(text: str) -> date:
    return date.fromisoformat(text)


def texts(spans: tuple[tuple[date, date], ...]) -> list[str]:
    return HolidayCalendar("c", "UTC", spans).dates_text()


def calendar(*events: str, crlf: bool = True) -> str:
    """An iCalendar file of these VEVENT bodies (each a block of content lines)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for event in events:
        lines += ["BEGIN:VEVENT", *event.strip().splitlines(), "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n" if crlf else "\n").join(lines) + "\r\n"


def ics_days(*events: str) -> list[str]:
    return texts(parse_ics(calendar(*events), ICS_LOC))


def refusal(call: object, *args: object) -> dict[str, object]:
    with pytest.raises(InvalidInput) as caught:
        call(*args)  # type: ignore[operator]
    assert len(caught.value.errors) == 1, caught.value.errors
    return caught.value.errors[0].as_dict()


# -- the calendar ------------------------------------------------------------------------------


def test_spans_are_sorted_and_overlapping_or_adjacent_ones_joined():
    spans = merge_spans(
        [
            (d("2027-12-27"), d("2027-12-31")),
            (d("2027-12-24"), d("2027-12-26")),  # adjacent to the one above
            (d("2027-07-04"), d("2027-07-04")),
            (d("2027-07-01"), d("2027-07-05")),  # covers the one above
            (d("2027-07-07"), d("2027-07-07")),  # one day apart: stays apart
        ]
    )
    assert texts(spans) == [
        "2027-07-01/2027-07-05",
        "2027-07-07",
        "2027-12-24/2027-12-31",
    ]


def test_a_calendar_normalizes_the_spans_it_is_made_with():
    made = HolidayCalendar("c", "UTC", ((d("2027-12-26"), d("2027-12-26")), (d("2027-12-25"),) * 2))
    assert made.spans == ((d("2027-12-25"), d("2027-12-26")),)
    assert made.day_count == 2


@pytest.mark.parametrize(
    ("day", "inside"),
    [
        ("2027-07-03", False),
        ("2027-07-04", True),
        ("2027-12-23", False),
        ("2027-12-24", True),
        ("2027-12-28", True),
        ("2027-12-31", True),
        ("2028-01-01", False),
        ("1970-01-01", False),
    ],
)
def test_contains_is_true_on_the_days_of_the_spans_both_ends_included(day, inside):
    holidays = HolidayCalendar(
        "c", "UTC", ((d("2027-07-04"), d("2027-07-04")), (d("2027-12-24"), d("2027-12-31")))
    )
    assert holidays.contains(d(day)) is inside


def test_an_instant_falls_on_the_day_it_is_in_the_calendars_own_zone():
    christmas = HolidayCalendar("c", "Europe/Berlin", ((d("2027-12-25"), d("2027-12-25")),))
    # 23:30 UTC on the 24th is 00:30 on the 25th in Berlin (CET, UTC+1).
    assert christmas.covers(datetime(2027, 12, 24, 23, 30, tzinfo=UTC))
    assert not christmas.covers(datetime(2027, 12, 24, 22, 59, tzinfo=UTC))
    assert christmas.day_of(datetime(2027, 12, 25, 22, 59, tzinfo=UTC)) == d("2027-12-25")
    assert not christmas.covers(datetime(2027, 12, 25, 23, 0, tzinfo=UTC))


# -- dates --------------------------------------------------------------------------------------


def test_dates_take_days_and_inclusive_ranges_and_come_back_merged():
    spans = parse_dates(
        ["2027-12-25", "2027-12-24/2027-12-26", "2027-12-27", "2028-02-29", "2027-01-01"], LOC
    )
    assert texts(spans) == ["2027-01-01", "2027-12-24/2027-12-27", "2028-02-29"]


def test_an_empty_list_is_a_calendar_of_no_days():
    assert parse_dates([], LOC) == ()


def test_a_range_may_be_366_days_long_but_not_367():
    assert parse_dates(["2028-01-01/2028-12-31"], LOC)  # a leap year: 366 days
    assert parse_dates(["2027-01-01/2028-01-01"], LOC)  # 365 + 1 days
    problem = refusal(parse_dates, ["2027-01-01/2028-01-02"], LOC)
    assert problem["loc"] == ["body", "dates", 0]
    assert "367 days long" in str(problem["msg"])


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2027-13-01", "'2027-13-01' is not a day of the calendar"),
        ("2027-02-29", "'2027-02-29' is not a day of the calendar"),
        ("2027-12-31/2027-12-01", "'2027-12-31/2027-12-01' ends before it starts"),
        ("1969-12-31", "outside the years 1970-8999"),
        ("9000-01-01", "outside the years 1970-8999"),
        ("20271225", "is not a date or a range of dates"),
        ("2027-12-25T00:00", "is not a date or a range of dates"),
        ("2027-12-24/", "is not a date or a range of dates"),
        ("2027-12-24/2027-12-25/2027-12-26", "has more than one '/'"),
        ("", "is not a date or a range of dates"),
    ],
)
def test_a_bad_entry_is_refused_naming_its_index_and_what_is_accepted(value, says):
    problem = refusal(parse_dates, ["2027-01-01", value], LOC)
    assert problem["loc"] == ["body", "dates", 1]
    assert says in str(problem["msg"])
    assert 'accepted: "YYYY-MM-DD" or "YYYY-MM-DD/YYYY-MM-DD"' in str(problem["msg"])
    assert problem["type"] == "value_error.date"


def test_every_bad_entry_is_named_at_once():
    with pytest.raises(InvalidInput) as caught:
        parse_dates(["x", "2027-01-01", "2027-02-30"], LOC)
    assert [e.loc for e in caught.value.errors] == [("body", "dates", 0), ("body", "dates", 2)]


def test_more_than_a_thousand_entries_are_refused_naming_the_field():
    problem = refusal(parse_dates, ["2027-01-01"] * 1001, LOC)
    assert problem["loc"] == ["body", "dates"]
    assert "at most 1,000 entries (got 1,001)" in str(problem["msg"])


# -- iCalendar: events -------------------------------------------------------------------------


def test_an_all_day_event_ends_the_day_before_its_exclusive_dtend():
    days = ics_days(
        "DTSTART;VALUE=DATE:20271224\nDTEND;VALUE=DATE:20271227",
        "DTSTART;VALUE=DATE:20270704\nDTEND;VALUE=DATE:20270705",
    )
    assert days == ["2027-07-04", "2027-12-24/2027-12-26"]


def test_an_all_day_event_without_an_end_is_one_day_and_so_is_one_ending_as_it_starts():
    assert ics_days("DTSTART;VALUE=DATE:20270101") == ["2027-01-01"]
    assert ics_days("DTSTART:20270101") == ["2027-01-01"]  # no VALUE=DATE: read as a date
    assert ics_days("DTSTART;VALUE=DATE:20270101\nDTEND;VALUE=DATE:20270101") == ["2027-01-01"]


def test_a_timed_event_is_the_day_it_starts_as_written():
    days = ics_days(
        "DTSTART;TZID=Europe/Berlin:20270704T090000\nDTEND;TZID=Europe/Berlin:20270704T170000",
        "DTSTART:20271224T230000Z",  # no end: its start's day, not moved into any zone
    )
    assert days == ["2027-07-04", "2027-12-24"]


def test_a_timed_event_past_midnight_covers_both_days_but_an_end_at_midnight_does_not():
    assert ics_days("DTSTART:20270704T220000\nDTEND:20270705T020000") == ["2027-07-04/2027-07-05"]
    assert ics_days("DTSTART:20270704T220000\nDTEND:20270705T000000") == ["2027-07-04"]


def test_a_duration_sets_the_end():
    assert ics_days("DTSTART;VALUE=DATE:20271224\nDURATION:P3D") == ["2027-12-24/2027-12-26"]
    assert ics_days("DTSTART;VALUE=DATE:20271224\nDURATION:P1W") == ["2027-12-24/2027-12-30"]
    assert ics_days("DTSTART:20271224T200000\nDURATION:PT8H") == ["2027-12-24/2027-12-25"]


def test_components_other_than_events_and_an_events_alarms_are_skipped():
    text = calendar("DTSTART;VALUE=DATE:20271225").replace(
        "VERSION:2.0",
        "VERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n"
        "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
        "END:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VTODO\r\nDTSTART:20270301\r\nEND:VTODO",
    )
    text = text.replace(
        "END:VEVENT",
        "BEGIN:VALARM\r\nTRIGGER:-PT15M\r\nDTSTART:20270601\r\nEND:VALARM\r\nEND:VEVENT",
    )
    assert texts(parse_ics(text, ICS_LOC)) == ["2027-12-25"]


def test_folded_lines_are_unfolded_with_crlf_or_lf_line_ends():
    event = (
        "SUMMARY:Christmas\n  Day, with a long folded summary\n"
        "DTSTART;VALUE=DA\n TE:20271225\nRRULE:FREQ=YEARLY;\n\tCOUNT=2"
    )
    for crlf in (True, False):
        text = calendar(event, crlf=crlf)
        assert texts(parse_ics(text, ICS_LOC)) == ["2027-12-25", "2028-12-25"]


def test_cancelled_events_count_for_nothing():
    days = ics_days("DTSTART;VALUE=DATE:20270101", "STATUS:CANCELLED\nDTSTART;VALUE=DATE:20270102")
    assert days == ["2027-01-01"]


# -- iCalendar: recurrence ---------------------------------------------------------------------


def test_a_yearly_rule_without_an_end_is_expanded_for_ten_years():
    days = ics_days("DTSTART;VALUE=DATE:20271225\nRRULE:FREQ=YEARLY")
    assert days == [f"{year}-12-25" for year in range(2027, 2037)]


def test_a_yearly_rule_by_weekday_keeps_its_weekdays():
    # US Thanksgiving: the fourth Thursday of November.
    days = ics_days("DTSTART;VALUE=DATE:20271125\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=4")
    assert days == ["2027-11-25", "2028-11-23", "2029-11-22", "2030-11-28"]


def test_a_leap_day_rule_fires_in_leap_years_only():
    days = ics_days("DTSTART;VALUE=DATE:20280229\nRRULE:FREQ=YEARLY")
    assert days == ["2028-02-29", "2032-02-29", "2036-02-29"]


def test_until_is_included_and_count_bounds_a_rule():
    until = ics_days("DTSTART;VALUE=DATE:20270101\nRRULE:FREQ=YEARLY;UNTIL=20290101")
    assert until == ["2027-01-01", "2028-01-01", "2029-01-01"]
    utc_until = ics_days("DTSTART:20270101T090000\nRRULE:FREQ=YEARLY;UNTIL=20280101T000000Z")
    assert utc_until == ["2027-01-01", "2028-01-01"]
    count = ics_days("DTSTART;VALUE=DATE:20270105\nRRULE:FREQ=WEEKLY;COUNT=3")
    assert count == ["2027-01-05", "2027-01-12", "2027-01-19"]


def test_a_multi_day_event_repeats_with_its_length():
    days = ics_days(
        "DTSTART;VALUE=DATE:20271224\nDTEND;VALUE=DATE:20271227\nRRULE:FREQ=YEARLY;COUNT=2"
    )
    assert days == ["2027-12-24/2027-12-26", "2028-12-24/2028-12-26"]


def test_exdate_removes_rdate_adds_and_a_recurrence_id_moves_an_occurrence():
    days = ics_days(
        "UID:standup\nDTSTART;VALUE=DATE:20270104\nRRULE:FREQ=WEEKLY;COUNT=4\n"
        "EXDATE;VALUE=DATE:20270111\nRDATE;VALUE=DATE:20270201,20270202",
        "UID:standup\nRECURRENCE-ID;VALUE=DATE:20270118\nDTSTART;VALUE=DATE:20270120",
    )
    assert days == ["2027-01-04", "2027-01-20", "2027-01-25", "2027-02-01/2027-02-02"]


def test_dtstart_is_an_occurrence_even_when_the_rule_does_not_match_it():
    days = ics_days("DTSTART;VALUE=DATE:20270102\nRRULE:FREQ=MONTHLY;BYMONTHDAY=1;COUNT=2")
    assert days == ["2027-01-02", "2027-02-01", "2027-03-01"]


def test_byeaster_gives_days_relative_to_easter():
    # Easter Monday; DTSTART itself is an occurrence (RFC 5545).
    days = ics_days("DTSTART;VALUE=DATE:20270329\nRRULE:FREQ=YEARLY;BYEASTER=1;COUNT=3")
    assert days == ["2027-03-29", "2028-04-17", "2029-04-02"]


def test_a_rule_that_never_fires_is_answered_quickly_with_its_start_day():
    began = time.monotonic()
    days = ics_days("DTSTART;VALUE=DATE:20270101\nRRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30")
    assert days == ["2027-01-01"]
    assert time.monotonic() - began < 1.5


def test_more_than_a_thousand_occurrences_are_refused_naming_the_rule_line():
    text = calendar("DTSTART;VALUE=DATE:20270101\nRRULE:FREQ=DAILY")
    problem = refusal(parse_ics, text, ICS_LOC)
    assert problem["loc"] == ["body", "ics"]
    assert str(problem["msg"]).startswith("line 6: the events come to more than 1,000 occurrences")


# -- iCalendar: refusals -----------------------------------------------------------------------


def file_with(line: str) -> str:
    """A file whose line 6 is `line`, inside an event that has a DTSTART."""
    return calendar(f"DTSTART;VALUE=DATE:20270101\n{line}")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (file_with("DTEND;VALUE=DATE:20261231"), "line 6: DTEND is before DTSTART"),
        (file_with("DTEND;VALUE=DATE:2027011"), "line 6: DTEND '2027011' is not YYYYMMDD"),
        (file_with("DTEND:20270230"), "line 6: DTEND '20270230' is not a real date"),
        (file_with("DURATION:-P1D"), "line 6: DURATION '-P1D' is not a duration"),
        (file_with("DURATION:P400D"), "line 6: the event lasts 400 days; at most 366"),
        (file_with("RRULE:FREQ=HOURLY"), "line 6: RRULE FREQ=HOURLY is not accepted"),
        (file_with("RRULE:FREQ=DAILY;BYHOUR=9"), "line 6: RRULE part BYHOUR is not accepted"),
        (file_with("RRULE:COUNT=3"), "line 6: RRULE has no FREQ"),
        (file_with("RRULE:FREQ=YEARLY;INTERVAL=0"), "line 6: RRULE INTERVAL '0' is not"),
        (file_with("RRULE:FREQ=YEARLY;BYMONTH=13"), "line 6: RRULE BYMONTH '13' is not"),
        (file_with("RRULE:FREQ=YEARLY;BYDAY=XX"), "line 6: RRULE BYDAY 'XX' is not MO..SU"),
        (file_with("RRULE:FREQ=YEARLY;COUNT=2;UNTIL=20300101"), "line 6: RRULE has COUNT and"),
        (file_with("RRULE:FREQ=MONTHLY;BYEASTER=1"), "line 6: RRULE BYEASTER is accepted with"),
        (file_with("RRULE:FREQ"), "line 6: RRULE part 'FREQ' is not NAME=VALUE"),
        (file_with("RDATE;VALUE=PERIOD:20270101T000000Z/PT1H"), "line 6: RDATE;VALUE=PERIOD"),
        (file_with("DTSTART;VALUE=DATE:20270102"), "line 6: a VEVENT has at most one DTSTART"),
        (file_with("no colon here"), "line 6: 'no colon here' has no ':' before its value"),
        (file_with(";X=1:2"), "line 6: ';X=1:2' is not a content line"),
        (calendar("SUMMARY:no start"), "line 4: the VEVENT has no DTSTART"),
        (calendar("DTSTART;VALUE=DATE:19690101"), "line 5: DTSTART '19690101' is outside"),
        (calendar("DTSTART;VALUE=DATE:20270101T090000"), "line 5: DTSTART '20270101T090000'"),
        ("BEGIN:VEVENT\nDTSTART:20270101\nEND:VEVENT", "line 1: BEGIN:VEVENT outside a calendar"),
        ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20270101\nEND:VCALENDAR", "line 4: END:VCALENDAR"),
        ("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20270101\nEND:VEVENT", "line 1: BEGIN:VCALENDAR"),
        ("VERSION:2.0\n", "line 1: VERSION outside a calendar"),
        ("BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR", "the calendar has no VEVENT"),
        ("", "line 1: the text is empty"),
        (" folded\nBEGIN:VCALENDAR", "line 1: a folded line"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_line_and_what_is_accepted(text, says):
    problem = refusal(parse_ics, text, ICS_LOC)
    assert problem["loc"] == ["body", "ics"]
    assert problem["type"] == "value_error.ics"
    assert says in str(problem["msg"]), problem["msg"]


def test_a_file_over_256_kb_is_refused_before_it_is_read():
    text = calendar("DTSTART;VALUE=DATE:20270101\nDESCRIPTION:" + "x" * MAX_ICS_BYTES)
    problem = refusal(parse_ics, text, ICS_LOC)
    assert "at most 262,144 bytes (256 KB)" in str(problem["msg"])
    assert problem["type"] == "value_error.too_long"


def test_text_that_is_not_valid_unicode_is_refused_not_crashed_on():
    problem = refusal(parse_ics, "BEGIN:VCALENDAR\n\ud800\nEND:VCALENDAR", ICS_LOC)
    assert "line 2" in str(problem["msg"])
