"""Cron expressions: syntax, day rules and, above all, runs across DST transitions.

Every test uses fixed instants and asserts exact UTC instants. DST tables carry a comment with
the transition as pytz (the tz database) records it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from itertools import islice

import pytest
from croniter import croniter

from chalicelib.cron import MACROS, CronError, CronExpression
from chalicelib.tzmath import Zone, get_zone

EASTERN = get_zone("US/Eastern")
LONDON = get_zone("Europe/London")
LORD_HOWE = get_zone("Australia/Lord_Howe")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def runs(expr: str, zone: Zone, start: datetime, n: int) -> list[datetime]:
    """The first `n` runs of `expr` in `zone` strictly after `start`."""
    return list(islice(CronExpression.parse(expr).iter_after(zone, start), n))


def check_runs(expr: str, zone: Zone, start: datetime, expected: list[datetime]) -> None:
    got = runs(expr, zone, start, len(expected))
    assert got == expected
    assert all(run.tzinfo is UTC and run.microsecond == 0 for run in got)


# --- parsing: what an expression is ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical", "has_seconds", "fixed_time"),
    [
        ("0 9 * * 1-5", "0 9 * * 1-5", False, True),
        ("  0\t9   * *  MON-FRI ", "0 9 * * MON-FRI", False, True),
        ("*/15 * * * *", "*/15 * * * *", False, False),
        ("0 */2 * * *", "0 */2 * * *", False, False),
        ("30 * * * *", "30 * * * *", False, False),
        # Debian's rule looks only at the first character: '0-59' is a fixed-time field.
        ("0-59 2 * * *", "0-59 2 * * *", False, True),
        ("30 0 9 * * *", "30 0 9 * * *", True, True),
        ("*/10 0 9 * * *", "*/10 0 9 * * *", True, True),
        ("0 * 9 * * *", "0 * 9 * * *", True, False),
        ("@daily", "0 0 * * *", False, True),
        ("@DAILY", "0 0 * * *", False, True),
        ("@hourly", "0 * * * *", False, False),
    ],
)
def test_an_expression_knows_its_canonical_form_and_kind(
    text: str, canonical: str, has_seconds: bool, fixed_time: bool
) -> None:
    expression = CronExpression.parse(text)
    assert expression.text == text.strip()
    assert expression.canonical == canonical
    assert expression.has_seconds is has_seconds
    assert expression.fixed_time is fixed_time


def test_parsed_fields_stay_out_of_the_repr_and_equal_texts_parse_equal() -> None:
    expression = CronExpression.parse("0 9 * * 1-5")
    assert "_minutes" not in repr(expression)
    assert expression == CronExpression.parse("0 9 * * 1-5")
    assert hash(expression) == hash(CronExpression.parse("0 9 * * 1-5"))


# --- macros ---------------------------------------------------------------------------------------

# Monday 2026-06-15 12:34:56 UTC.
MACRO_START = utc(2026, 6, 15, 12, 34, 56)


@pytest.mark.parametrize(
    ("macro", "expected"),
    [
        ("@yearly", utc(2027, 1, 1)),
        ("@annually", utc(2027, 1, 1)),
        ("@monthly", utc(2026, 7, 1)),
        ("@weekly", utc(2026, 6, 21)),  # the next Sunday
        ("@daily", utc(2026, 6, 16)),
        ("@midnight", utc(2026, 6, 16)),
        ("@hourly", utc(2026, 6, 15, 13)),
        ("@Weekly", utc(2026, 6, 21)),
    ],
)
def test_each_macro_runs_as_its_expansion(macro: str, expected: datetime) -> None:
    assert CronExpression.parse(macro).next_after(get_zone("UTC"), MACRO_START) == expected
    expansion = MACROS[macro.lower()]
    assert runs(macro, EASTERN, MACRO_START, 5) == runs(expansion, EASTERN, MACRO_START, 5)


# --- field syntax (in UTC, so only the fields matter) ---------------------------------------------


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "5-5 * * * *",
            utc(2026, 1, 1),
            [utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 1, 5), utc(2026, 1, 1, 2, 5)],
            id="a-a is the single value a",
        ),
        pytest.param(
            "*/25 * * * *",
            utc(2026, 1, 1),
            [utc(2026, 1, 1, 0, 25), utc(2026, 1, 1, 0, 50), utc(2026, 1, 1, 1, 0)],
            id="*/n steps from the field's minimum",
        ),
        pytest.param(
            "10-30/10 * * * *",
            utc(2026, 1, 1),
            [utc(2026, 1, 1, 0, 10), utc(2026, 1, 1, 0, 20), utc(2026, 1, 1, 0, 30)],
            id="a-b/n",
        ),
        pytest.param(
            "0 0 1 3/4 *",
            utc(2026, 1, 1),
            [utc(2026, 3, 1), utc(2026, 7, 1), utc(2026, 11, 1), utc(2027, 3, 1)],
            id="a/n runs from a to the field's maximum",
        ),
        pytest.param(
            "0 22-23,0-1 * * *",
            utc(2026, 1, 1, 12),
            [utc(2026, 1, 1, 22), utc(2026, 1, 1, 23), utc(2026, 1, 2, 0), utc(2026, 1, 2, 1)],
            id="a comma list of ranges",
        ),
        pytest.param(
            "0 0 * * 7",
            utc(2026, 1, 1),
            [utc(2026, 1, 4), utc(2026, 1, 11), utc(2026, 1, 18)],
            id="7 is Sunday",
        ),
        pytest.param(
            "0 0 * * 0",
            utc(2026, 1, 1),
            [utc(2026, 1, 4), utc(2026, 1, 11), utc(2026, 1, 18)],
            id="0 is Sunday",
        ),
        pytest.param(
            "0 0 * * 5-7",
            utc(2026, 1, 1),
            [utc(2026, 1, 2), utc(2026, 1, 3), utc(2026, 1, 4), utc(2026, 1, 9)],
            id="a range ending at 7 ends on Sunday",
        ),
        pytest.param(
            "0 0 * * 1/2",
            utc(2026, 1, 1),
            [utc(2026, 1, 2), utc(2026, 1, 4), utc(2026, 1, 5), utc(2026, 1, 7)],
            id="1/2 in day-of-week is Mon Wed Fri Sun",
        ),
        pytest.param(
            "0 9 * JAN,JUL MON-FRI",
            utc(2026, 1, 29, 12),
            [utc(2026, 1, 30, 9), utc(2026, 7, 1, 9), utc(2026, 7, 2, 9), utc(2026, 7, 3, 9)],
            id="month and weekday names",
        ),
        pytest.param(
            "0 9 * jan,Jul mon-fri",
            utc(2026, 1, 29, 12),
            [utc(2026, 1, 30, 9), utc(2026, 7, 1, 9), utc(2026, 7, 2, 9), utc(2026, 7, 3, 9)],
            id="names are case-insensitive",
        ),
    ],
)
def test_field_syntax(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, get_zone("UTC"), start, expected)


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "*/15 * * * * *",
            utc(2026, 1, 1),
            [
                utc(2026, 1, 1, 0, 0, 15),
                utc(2026, 1, 1, 0, 0, 30),
                utc(2026, 1, 1, 0, 0, 45),
                utc(2026, 1, 1, 0, 1, 0),
            ],
            id="every 15 seconds",
        ),
        pytest.param(
            "30 0 9 * * *",
            utc(2026, 1, 1),
            [utc(2026, 1, 1, 9, 0, 30), utc(2026, 1, 2, 9, 0, 30)],
            id="the seconds come first",
        ),
        pytest.param(
            "59 59 23 31 12 *",
            utc(2026, 1, 1),
            [utc(2026, 12, 31, 23, 59, 59), utc(2027, 12, 31, 23, 59, 59)],
            id="the last second of the year",
        ),
        pytest.param(
            "* * * * * *",
            datetime(2026, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC),
            [utc(2026, 1, 1, 12, 0, 1), utc(2026, 1, 1, 12, 0, 2)],
            id="a start with microseconds",
        ),
    ],
)
def test_six_field_expressions_have_seconds_first(
    expr: str, start: datetime, expected: list[datetime]
) -> None:
    check_runs(expr, get_zone("UTC"), start, expected)


# --- day-of-month specials, month ends and leap years ---------------------------------------------
# 2026: Jan 31, Feb 28 and Aug 1 and 15 are Saturdays; Feb 1 and 15, Mar 1 and 15 and May 31
# are Sundays.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "0 0 31 * *",
            utc(2026, 1, 1),
            [utc(2026, m, 31) for m in (1, 3, 5, 7, 8, 10, 12)],
            id="the 31st skips shorter months",
        ),
        pytest.param(
            "0 0 L * *",
            utc(2027, 12, 15),
            [
                utc(2027, 12, 31),
                utc(2028, 1, 31),
                utc(2028, 2, 29),
                utc(2028, 3, 31),
                utc(2028, 4, 30),
            ],
            id="L is the last day, Feb 29 in a leap year",
        ),
        pytest.param(
            "0 0 L 2 *",
            utc(2026, 1, 1),
            [utc(2026, 2, 28), utc(2027, 2, 28), utc(2028, 2, 29)],
            id="L in February",
        ),
        pytest.param(
            "0 0 29 2 *",
            utc(2026, 1, 1),
            [utc(2028, 2, 29), utc(2032, 2, 29), utc(2036, 2, 29)],
            id="Feb 29 waits for leap years",
        ),
        pytest.param(
            "0 0 29 2 *",
            utc(2097, 1, 1),
            [utc(2104, 2, 29)],
            id="2100 is not a leap year",
        ),
        pytest.param(
            "0 0 LW * *",
            utc(2026, 1, 1),
            [
                utc(2026, 1, 30),
                utc(2026, 2, 27),
                utc(2026, 3, 31),
                utc(2026, 4, 30),
                utc(2026, 5, 29),
            ],
            id="LW is the last Mon-Fri of the month",
        ),
        pytest.param(
            "0 0 15W 8 *",
            utc(2026, 1, 1),
            [utc(2026, 8, 14)],
            id="15W on a Saturday is Friday the 14th",
        ),
        pytest.param(
            "0 0 15W 2 *",
            utc(2026, 1, 1),
            [utc(2026, 2, 16)],
            id="15W on a Sunday is Monday the 16th",
        ),
        pytest.param(
            "0 0 15W 1 *",
            utc(2026, 1, 1),
            [utc(2026, 1, 15)],
            id="15W on a weekday is the 15th",
        ),
        pytest.param(
            "0 0 1W 8 *",
            utc(2026, 1, 1),
            [utc(2026, 8, 3)],
            id="1W on a Saturday is Monday the 3rd, not a day of July",
        ),
        pytest.param(
            "0 0 1W * *",
            utc(2026, 1, 15),
            [utc(2026, 2, 2), utc(2026, 3, 2), utc(2026, 4, 1)],
            id="1W on a Sunday is Monday the 2nd",
        ),
        pytest.param(
            "0 0 31W 5 *",
            utc(2026, 1, 1),
            [utc(2026, 5, 29)],
            id="31W on a Sunday is Friday the 29th, not a day of June",
        ),
        pytest.param(
            "0 0 31W * *",
            utc(2026, 1, 1),
            [
                utc(2026, 1, 30),
                utc(2026, 3, 31),
                utc(2026, 5, 29),
                utc(2026, 7, 31),
                utc(2026, 8, 31),
            ],
            id="31W skips months without a 31st",
        ),
        pytest.param(
            "0 0 L,15 * *",
            utc(2026, 1, 1),
            [utc(2026, 1, 15), utc(2026, 1, 31), utc(2026, 2, 15), utc(2026, 2, 28)],
            id="L as a list item",
        ),
        pytest.param(
            "0 0 * * 5#3",
            utc(2026, 1, 1),
            [utc(2026, 1, 16), utc(2026, 2, 20), utc(2026, 3, 20)],
            id="5#3 is the third Friday",
        ),
        pytest.param(
            "0 0 * * FRI#3",
            utc(2026, 1, 1),
            [utc(2026, 1, 16), utc(2026, 2, 20), utc(2026, 3, 20)],
            id="FRI#3 is the third Friday",
        ),
        pytest.param(
            "0 0 * * 5L",
            utc(2026, 1, 1),
            [utc(2026, 1, 30), utc(2026, 2, 27), utc(2026, 3, 27)],
            id="5L is the last Friday",
        ),
        pytest.param(
            "0 0 * 7 5L",
            utc(2026, 7, 1),
            [utc(2026, 7, 31), utc(2027, 7, 30)],
            id="5L when the month ends on a Friday is that day, not a week before",
        ),
        pytest.param(
            "0 0 * * 1#1,5L",
            utc(2026, 1, 1),
            [utc(2026, 1, 5), utc(2026, 1, 30), utc(2026, 2, 2), utc(2026, 2, 27)],
            id="# and L as list items",
        ),
        pytest.param(
            "0 0 * 2 MON#5",
            utc(2026, 1, 1),
            [utc(2044, 2, 29), utc(2072, 2, 29)],
            id="a fifth Monday in February needs a leap year starting on Monday",
        ),
    ],
)
def test_day_specials_month_ends_and_leap_years(
    expr: str, start: datetime, expected: list[datetime]
) -> None:
    check_runs(expr, get_zone("UTC"), start, expected)


# --- day-of-month with day-of-week: Vixie's AND / OR ----------------------------------------------
# June 2026: Mondays are the 1st, 8th, 15th, 22nd and 29th; July 1st is a Wednesday.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "0 0 1 * MON",
            utc(2026, 6, 1),
            [
                utc(2026, 6, 8),
                utc(2026, 6, 15),
                utc(2026, 6, 22),
                utc(2026, 6, 29),
                utc(2026, 7, 1),
                utc(2026, 7, 6),
            ],
            id="both restricted: the 1st OR a Monday",
        ),
        pytest.param(
            "0 0 */1 * MON",
            utc(2026, 6, 1),
            [
                utc(2026, 6, 8),
                utc(2026, 6, 15),
                utc(2026, 6, 22),
                utc(2026, 6, 29),
                utc(2026, 7, 6),
            ],
            id="day-of-month starting with * ANDs: Mondays only",
        ),
        pytest.param(
            "0 0 */2 * MON",
            utc(2026, 6, 1),
            [utc(2026, 6, 15), utc(2026, 6, 29), utc(2026, 7, 13), utc(2026, 7, 27)],
            id="odd days AND Mondays",
        ),
        pytest.param(
            "0 0 1-7 * MON",
            utc(2026, 6, 25),
            [utc(2026, 6, 29)] + [utc(2026, 7, d) for d in range(1, 8)] + [utc(2026, 7, 13)],
            id="the first seven days OR a Monday",
        ),
        pytest.param(
            "0 0 1 * */1",
            utc(2026, 6, 1),
            [utc(2026, 7, 1), utc(2026, 8, 1)],
            id="day-of-week starting with * ANDs: the 1st only",
        ),
        pytest.param(
            "0 0 L * MON",
            utc(2026, 6, 22),
            [utc(2026, 6, 29), utc(2026, 6, 30), utc(2026, 7, 6)],
            id="L OR a Monday",
        ),
    ],
)
def test_day_of_month_and_day_of_week_combine_as_in_vixie_cron(
    expr: str, start: datetime, expected: list[datetime]
) -> None:
    check_runs(expr, get_zone("UTC"), start, expected)


def test_croniter_ors_a_stepped_day_of_month_where_vixie_cron_ands() -> None:
    start = utc(2026, 6, 1)
    theirs = croniter("0 0 */2 * MON", start)
    assert theirs.get_next(datetime) == utc(2026, 6, 3)  # an odd day, but a Wednesday
    assert CronExpression.parse("0 0 */2 * MON").next_after(get_zone("UTC"), start) == utc(
        2026, 6, 15
    )


# --- US/Eastern -----------------------------------------------------------------------------------
# Spring forward: 2026-03-08 07:00Z, 02:00 EST (-5) -> 03:00 EDT (-4); 02:00-02:59 never happen.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)],
            id="fixed 02:30 runs once, at 03:00 EDT",
        ),
        pytest.param(
            "0 2 * * *",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6)],
            id="fixed 02:00 runs at 03:00 EDT",
        ),
        pytest.param(
            "0,30 2 * * *",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6), utc(2026, 3, 9, 6, 30)],
            id="two fixed times in the gap make one run",
        ),
        pytest.param(
            "0,30 2,3 * * *",
            utc(2026, 3, 8, 5),
            [
                utc(2026, 3, 8, 7),
                utc(2026, 3, 8, 7, 30),
                utc(2026, 3, 9, 6),
                utc(2026, 3, 9, 6, 30),
            ],
            id="the gap's run and 03:00 EDT are one run",
        ),
        pytest.param(
            "0 30 2 * * *",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30)],
            id="six-field fixed time runs at the gap end too",
        ),
        pytest.param(
            "*/20 30 2 * * *",
            utc(2026, 3, 7, 12),
            [utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30), utc(2026, 3, 9, 6, 30, 20)],
            id="six-field fixed times in the gap make one run",
        ),
        pytest.param(
            "*/30 * * * *",
            utc(2026, 3, 8, 5),
            [
                utc(2026, 3, 8, 5, 30),
                utc(2026, 3, 8, 6),
                utc(2026, 3, 8, 6, 30),
                utc(2026, 3, 8, 7),
                utc(2026, 3, 8, 7, 30),
            ],
            id="every 30 minutes skips 02:00 and 02:30 but never pauses in real time",
        ),
        pytest.param(
            "0 * * * *",
            utc(2026, 3, 8, 4),
            [utc(2026, 3, 8, 5), utc(2026, 3, 8, 6), utc(2026, 3, 8, 7), utc(2026, 3, 8, 8)],
            id="hourly: 00:00 01:00 EST, 03:00 04:00 EDT",
        ),
        pytest.param(
            "30 * * * *",
            utc(2026, 3, 8, 5),
            [utc(2026, 3, 8, 5, 30), utc(2026, 3, 8, 6, 30), utc(2026, 3, 8, 7, 30)],
            id="every hour at :30 skips 02:30",
        ),
        pytest.param(
            "* 2 * * *",
            utc(2026, 3, 8, 5),
            [utc(2026, 3, 9, 6), utc(2026, 3, 9, 6, 1)],
            id="every minute of hour 2 is not fixed-time: no run on the spring day",
        ),
    ],
)
def test_us_eastern_spring_forward(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, EASTERN, start, expected)


# Fall back: 2026-11-01 06:00Z, 02:00 EDT (-4) -> 01:00 EST (-5); 01:00-01:59 happen twice,
# first at 05:00-05:59Z, then at 06:00-06:59Z.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "30 1 * * *",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
            id="fixed 01:30 runs once, at its first occurrence",
        ),
        pytest.param(
            "0 1 * * *",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5), utc(2026, 11, 2, 6)],
            id="fixed 01:00 runs once",
        ),
        pytest.param(
            "30 1 * * *",
            utc(2026, 11, 1, 5, 30),
            [utc(2026, 11, 2, 6, 30)],
            id="fixed 01:30 after its first occurrence waits for the next day",
        ),
        pytest.param(
            "30 1 * * *",
            utc(2026, 11, 1, 6, 15),
            [utc(2026, 11, 2, 6, 30)],
            id="fixed 01:30 seen from the second pass waits for the next day",
        ),
        pytest.param(
            "15 30 1 * * *",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30, 15), utc(2026, 11, 2, 6, 30, 15)],
            id="six-field fixed time runs once too",
        ),
        pytest.param(
            "*/30 * * * *",
            utc(2026, 11, 1, 4),
            [
                utc(2026, 11, 1, 4, 30),
                utc(2026, 11, 1, 5),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 6),
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 1, 7),
            ],
            id="every 30 minutes runs 01:00 and 01:30 twice",
        ),
        pytest.param(
            "*/30 * * * *",
            utc(2026, 11, 1, 5, 45),
            [utc(2026, 11, 1, 6), utc(2026, 11, 1, 6, 30), utc(2026, 11, 1, 7)],
            id="from inside the first pass, the second pass still runs",
        ),
        pytest.param(
            "0 * * * *",
            utc(2026, 11, 1, 3),
            [
                utc(2026, 11, 1, 4),
                utc(2026, 11, 1, 5),
                utc(2026, 11, 1, 6),
                utc(2026, 11, 1, 7),
                utc(2026, 11, 1, 8),
            ],
            id="hourly: 00:00 01:00 EDT, 01:00 02:00 03:00 EST",
        ),
        pytest.param(
            "30 * * * *",
            utc(2026, 11, 1, 4),
            [
                utc(2026, 11, 1, 4, 30),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 1, 7, 30),
            ],
            id="every hour at :30 runs 01:30 twice",
        ),
    ],
)
def test_us_eastern_fall_back(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, EASTERN, start, expected)


def test_a_fixed_time_job_runs_once_on_fall_back_day_where_croniter_runs_it_twice() -> None:
    # Fall back: 2026-11-01 06:00Z, 02:00 EDT -> 01:00 EST. croniter's known bug: it fires
    # 01:30 at both occurrences. Debian cron, cronsim and we fire only the first.
    start = datetime(2026, 10, 31, 12, tzinfo=EASTERN)
    theirs = croniter("30 1 * * *", start)
    croniter_runs = [theirs.get_next(datetime).astimezone(UTC) for _ in range(3)]
    assert croniter_runs == [
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6, 30),
        utc(2026, 11, 2, 6, 30),
    ]
    assert runs("30 1 * * *", EASTERN, start, 2) == [
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


# --- Europe/London --------------------------------------------------------------------------------
# Spring forward: 2026-03-29 01:00Z, 01:00 GMT (+0) -> 02:00 BST (+1); 01:00-01:59 never happen.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "30 1 * * *",
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)],
            id="fixed 01:30 runs once, at 02:00 BST",
        ),
        pytest.param(
            "0 1 * * *",
            utc(2026, 3, 28, 12),
            [utc(2026, 3, 29, 1), utc(2026, 3, 30, 0)],
            id="fixed 01:00 runs at 02:00 BST",
        ),
        pytest.param(
            "*/30 * * * *",
            utc(2026, 3, 29, 0),
            [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1), utc(2026, 3, 29, 1, 30)],
            id="every 30 minutes skips 01:00 and 01:30",
        ),
        pytest.param(
            "0 * * * *",
            utc(2026, 3, 28, 23),
            [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)],
            id="hourly: 00:00 GMT, 02:00 03:00 BST",
        ),
    ],
)
def test_london_spring_forward(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, LONDON, start, expected)


# Fall back: 2026-10-25 01:00Z, 02:00 BST (+1) -> 01:00 GMT (+0); 01:00-01:59 happen twice,
# first at 00:00-00:59Z, then at 01:00-01:59Z.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "30 1 * * *",
            utc(2026, 10, 24, 12),
            [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)],
            id="fixed 01:30 runs once, at its first occurrence",
        ),
        pytest.param(
            "*/30 * * * *",
            utc(2026, 10, 24, 23),
            [
                utc(2026, 10, 24, 23, 30),
                utc(2026, 10, 25, 0),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 1),
                utc(2026, 10, 25, 1, 30),
                utc(2026, 10, 25, 2),
            ],
            id="every 30 minutes runs 01:00 and 01:30 twice",
        ),
        pytest.param(
            "0 * * * *",
            utc(2026, 10, 24, 22),
            [
                utc(2026, 10, 24, 23),
                utc(2026, 10, 25, 0),
                utc(2026, 10, 25, 1),
                utc(2026, 10, 25, 2),
            ],
            id="hourly: 00:00 01:00 BST, 01:00 02:00 GMT",
        ),
    ],
)
def test_london_fall_back(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, LONDON, start, expected)


# --- Australia/Lord_Howe: a 30-minute DST ---------------------------------------------------------
# Spring forward: 2026-10-03 15:30Z, Oct 4 02:00 (+10:30) -> 02:30 (+11); 02:00-02:29 never happen.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "15 2 * * *",
            utc(2026, 10, 2, 12),
            [utc(2026, 10, 2, 15, 45), utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15, 15)],
            id="fixed 02:15 runs once, at 02:30",
        ),
        pytest.param(
            "0,15 2 * * *",
            utc(2026, 10, 3, 12),
            [utc(2026, 10, 3, 15, 30), utc(2026, 10, 4, 15), utc(2026, 10, 4, 15, 15)],
            id="two fixed times in the gap make one run",
        ),
        pytest.param(
            "*/15 * * * *",
            utc(2026, 10, 3, 15),
            [utc(2026, 10, 3, 15, 15), utc(2026, 10, 3, 15, 30), utc(2026, 10, 3, 15, 45)],
            id="every 15 minutes skips 02:00 and 02:15",
        ),
        pytest.param(
            "0 * * * *",
            utc(2026, 10, 3, 13),
            [utc(2026, 10, 3, 13, 30), utc(2026, 10, 3, 14, 30), utc(2026, 10, 3, 16)],
            id="hourly: 00:00 01:00 (+10:30), 03:00 (+11)",
        ),
    ],
)
def test_lord_howe_spring_forward(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, LORD_HOWE, start, expected)


# Fall back: 2026-04-04 15:00Z, Apr 5 02:00 (+11) -> 01:30 (+10:30); 01:30-01:59 happen twice,
# first at 14:30-14:59Z, then at 15:00-15:29Z.


@pytest.mark.parametrize(
    ("expr", "start", "expected"),
    [
        pytest.param(
            "45 1 * * *",
            utc(2026, 4, 3, 12),
            [utc(2026, 4, 3, 14, 45), utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)],
            id="fixed 01:45 runs once, at its first occurrence",
        ),
        pytest.param(
            "30 1 * * *",
            utc(2026, 4, 4, 12),
            [utc(2026, 4, 4, 14, 30), utc(2026, 4, 5, 15)],
            id="fixed 01:30 runs once",
        ),
        pytest.param(
            "*/15 * * * *",
            utc(2026, 4, 4, 13, 50),
            [
                utc(2026, 4, 4, 14),
                utc(2026, 4, 4, 14, 15),
                utc(2026, 4, 4, 14, 30),
                utc(2026, 4, 4, 14, 45),
                utc(2026, 4, 4, 15),
                utc(2026, 4, 4, 15, 15),
                utc(2026, 4, 4, 15, 30),
            ],
            id="every 15 minutes runs 01:30 and 01:45 twice",
        ),
        pytest.param(
            "30 * * * *",
            utc(2026, 4, 4, 13),
            [
                utc(2026, 4, 4, 13, 30),
                utc(2026, 4, 4, 14, 30),
                utc(2026, 4, 4, 15),
                utc(2026, 4, 4, 16),
            ],
            id="every hour at :30 runs 01:30 twice",
        ),
        pytest.param(
            "0 * * * *",
            utc(2026, 4, 4, 12, 30),
            [
                utc(2026, 4, 4, 13),
                utc(2026, 4, 4, 14),
                utc(2026, 4, 4, 15, 30),
                utc(2026, 4, 4, 16, 30),
            ],
            id="hourly: 00:00 01:00 (+11), 02:00 03:00 (+10:30)",
        ),
    ],
)
def test_lord_howe_fall_back(expr: str, start: datetime, expected: list[datetime]) -> None:
    check_runs(expr, LORD_HOWE, start, expected)


# --- next_after itself ----------------------------------------------------------------------------


def test_a_run_at_exactly_the_start_instant_is_not_returned() -> None:
    expression = CronExpression.parse("0 12 * * *")
    assert expression.next_after(get_zone("UTC"), utc(2026, 1, 1, 12)) == utc(2026, 1, 2, 12)


def test_a_start_a_microsecond_past_a_run_skips_that_run() -> None:
    start = datetime(2026, 1, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert CronExpression.parse("0 12 * * *").next_after(get_zone("UTC"), start) == utc(
        2026, 1, 2, 12
    )


def test_the_start_may_be_in_any_offset() -> None:
    start = datetime(2026, 3, 8, 16, 0, tzinfo=timezone(timedelta(hours=9)))  # 07:00Z
    expression = CronExpression.parse("*/30 * * * *")
    assert expression.next_after(EASTERN, start) == utc(2026, 3, 8, 7, 30)


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        CronExpression.parse("* * * * *").next_after(get_zone("UTC"), datetime(2026, 1, 1))


@pytest.mark.parametrize("zone", [get_zone("UTC"), EASTERN, LORD_HOWE])
def test_there_is_no_run_past_the_end_of_datetime(zone: Zone) -> None:
    expression = CronExpression.parse("0 0 1 1 *")
    assert expression.next_after(zone, utc(9999, 6, 1)) is None
    assert list(expression.iter_after(zone, utc(9999, 6, 1))) == []


# --- agreement with croniter where croniter is right ----------------------------------------------
# In UTC there is no DST, and with day-of-month or day-of-week exactly '*' (or both restricted)
# croniter's day rule is Vixie's, so the two must agree run for run.

CRONITER_AGREES = [
    "* * * * *",
    "*/5 * * * *",
    "*/7 * * * *",
    "1-5 * * * *",
    "15,45 * * * *",
    "10/20 * * * *",
    "0 * * * *",
    "0 */3 * * *",
    "23 0-20/2 * * *",
    "59 23 * * *",
    "5 4 * * sun",
    "0 22 * * 1-5",
    "0 9-17 * * MON-FRI",
    "*/15 9-17 * * 1-5",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * 6,0",
    "45 23 * * 6",
    "0 0 1 * *",
    "0 0 1 1 *",
    "15 14 1 * *",
    "0 0,12 1 */2 *",
    "30 6 * JAN-MAR *",
    "0 12 * 2 *",
    "0 18 * 12 5",
    "0 12 31 * *",
    "30 3 28-31 * *",
    "0 8 10-20 * *",
    "0 0 */10 * *",
    "0 0 29 2 *",
    "0 0 13 * 5",
    "0 0 1,15 * 3",
]


@pytest.mark.parametrize("expr", CRONITER_AGREES)
def test_in_utc_ordinary_expressions_agree_with_croniter(expr: str) -> None:
    start = utc(2026, 2, 27, 13, 47, 11)
    theirs = croniter(expr, start)
    expected = [theirs.get_next(datetime) for _ in range(20)]
    assert runs(expr, get_zone("UTC"), start, 20) == expected


# --- invalid expressions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("* * * * * * *", "5 or 6 fields"),
        ("* * * *", "5 or 6 fields"),
        ("", "5 or 6 fields"),
        ("   ", "5 or 6 fields"),
        ("garbage", "5 or 6 fields"),
        ("x * * * *", "minute 'x' is not valid; accepted:"),
        ("* * * * garbage", "day-of-week 'garbage' is not valid"),
        ("1.5 * * * *", "minute '1.5' is not valid"),
        ("? * * * *", "minute '?' is not valid"),
        ("0 0 ? * *", "day-of-month '?' is not valid"),
        ("* * * JANUARY *", "month 'JANUARY' is not valid"),
        ("MON * * * *", "minute 'MON' is not valid"),
        ("61 * * * *", "minute '61' is out of range 0-59"),
        ("60 * * * * *", "second '60' is out of range 0-59"),
        ("* 24 * * *", "hour '24' is out of range 0-23"),
        ("* * 0 * *", "day-of-month '0' is out of range 1-31"),
        ("* * 32 * *", "day-of-month '32' is out of range 1-31"),
        ("* * * 0 *", "month '0' is out of range 1-12 (or JAN-DEC)"),
        ("* * * 13 *", "month '13' is out of range 1-12"),
        ("* * * * 8", "day-of-week '8' is out of range 0-7 (or SUN-SAT)"),
        ("50-61 * * * *", "minute '61' in '50-61' is out of range 0-59"),
        ("99999999999 * * * *", "minute '99999999999' is out of range 0-59"),
        ("5-1 * * * *", "minute range '5-1' is reversed"),
        ("* * * * FRI-MON", "day-of-week range 'FRI-MON' is reversed"),
        ("* * * * MON-SUN", "write it as 7 at the end of a range"),
        ("1- * * * *", "minute range '1-' is incomplete"),
        ("1-2-3 * * * *", "minute '1-2-3' is not valid"),
        ("*/0 * * * *", "minute '*/0' has a step of 0"),
        ("*/60 * * * *", "step 60 is out of range 1-59"),
        ("*/x * * * *", "the step after '/' must be a whole number 1-59"),
        ("*/ * * * *", "the step after '/' must be a whole number"),
        ("1,,2 * * * *", "minute '1,,2' has an empty list item"),
        ("1, * * * *", "has an empty list item"),
        ("-1 * * * *", "minute '-1': negative numbers are not accepted"),
        ("* * -5-10 * *", "negative numbers are not accepted"),
        ("0 0 30 2 *", "can never fire"),
        ("0 0 31 4,6,9,11 *", "can never fire"),
        ("0 0 0 31 4 *", "can never fire"),
        ("0 0 31W 2 *", "can never fire"),
        ("0 0 */31 2 MON#5", "can never fire"),
        ("0 0 30 2 */1", "can never fire"),
        ("@reboot", "'@reboot' is not supported"),
        ("@reboot", "accepted macros: @yearly, @annually, @monthly, @weekly, @daily"),
        ("@fortnightly", "unknown macro '@fortnightly'; accepted macros:"),
        ("@daily 0", "unknown macro '@daily 0'"),
        ("0 0 * * MON#6", "day-of-week 'MON#6': the number after '#' must be 1-5"),
        ("0 0 * * 1#0", "the number after '#' must be 1-5"),
        ("0 0 * * 1#", "the number after '#' must be 1-5"),
        ("0 0 * * #1", "needs a weekday before '#'"),
        ("0 0 * * 8#1", "day-of-week '8' in '8#1' is out of range 0-7"),
        ("0 0 * * 8L", "day-of-week '8' in '8L' is out of range 0-7"),
        ("0 0 * * L", "day-of-week 'L' needs a weekday before it"),
        ("0 0 32W * *", "day-of-month '32' in '32W' is out of range 1-31"),
        ("0 0 0W * *", "day-of-month '0' in '0W' is out of range 1-31"),
        ("0 0 1-5W * *", "W follows a single day"),
        ("0 0 W * *", "W follows a single day"),
        ("0 0 L-2 * *", "day-of-month 'L-2' is not valid"),
        ("L * * * *", "minute 'L': L, W and # are only accepted in day-of-month"),
        ("0 0 * 1#2 *", "month '1#2': L, W and # are only accepted"),
        ("0 15W * * *", "hour '15W': L, W and # are only accepted"),
        ("0 0 1#1 * *", "day-of-month '1#1' is not valid"),
        ("0 0 * * 1W", "day-of-week '1W' is not valid"),
    ],
)
def test_an_invalid_expression_is_refused_with_a_message_saying_why(
    text: str, message: str
) -> None:
    with pytest.raises(CronError) as raised:
        CronExpression.parse(text)
    assert message in str(raised.value)


def test_a_cron_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        CronExpression.parse("61 * * * *")


# --- nothing hangs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "zone", "start"),
    [
        # Every second, through the hours a transition splits.
        ("* * * * * *", EASTERN, utc(2026, 11, 1, 5, 59, 58)),
        ("* * * * * *", EASTERN, utc(2026, 3, 8, 6, 59, 58)),
        ("* * * * * *", LORD_HOWE, utc(2026, 4, 4, 14, 59, 58)),
        ("* * * * * *", LORD_HOWE, utc(2026, 10, 3, 15, 29, 58)),
        # Rare dates: decades between runs.
        ("0 0 * 2 MON#5", EASTERN, utc(2026, 1, 1)),
        ("0 0 29 2 */7", EASTERN, utc(2026, 1, 1)),
        ("59 59 23 29 2 *", LORD_HOWE, utc(2026, 1, 1)),
        ("0 0 31W 2,4,6,8 SUN#5", EASTERN, utc(2026, 1, 1)),
        # Every time it matches falls in the US spring-forward gap (second Sunday of March,
        # 02:00-02:59) and it is not fixed-time, so it is skipped every year
        # (zoneinfo keeps applying the rule after 2037, where pytz would stop).
        ("*/30 2 * 3 SUN#2", EASTERN, utc(2026, 1, 1)),
        ("* 2 * 3 SUN#2", EASTERN, utc(2026, 1, 1)),
    ],
)
def test_the_nastiest_expressions_still_answer(expr: str, zone: Zone, start: datetime) -> None:
    found = runs(expr, zone, start, 3)
    assert found == sorted(set(found))
    assert all(run > start for run in found)


@pytest.mark.parametrize("expr", ["0 0 31 2,4,6,9,11 *", "0 0 30 2 *", "0 0 */31 2 MON#5"])
def test_proving_an_expression_never_fires_terminates(expr: str) -> None:
    with pytest.raises(CronError, match="can never fire"):
        CronExpression.parse(expr)
