"""`H` in cron expressions: a value fixed per job by a stable hash of its id (NEXUS issue 13).

Every test uses fixed instants in UTC, so only the fields matter.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import islice, pairwise

import pytest

from chalicelib.cron import CronError, CronExpression
from chalicelib.schedules import describe_cron, parse_cron
from chalicelib.tzmath import get_zone

UTC_ZONE = get_zone("UTC")
# A second before Thursday 2026-01-01, so that a run at midnight is the first one found.
START = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)
IDS = [f"job-{n}" for n in range(1000)]


def runs(expr: str, key: str | None, n: int, start: datetime = START) -> list[datetime]:
    return list(islice(CronExpression.parse(expr, key).iter_after(UTC_ZONE, start), n))


def field(expr: str, key: str | None, index: int) -> int:
    """One field of the resolved expression, as a number."""
    return int(CronExpression.parse(expr, key).canonical.split()[index])


# --- the same job, the same times -----------------------------------------------------------------


def test_the_same_id_always_gets_the_same_times() -> None:
    first = runs("H H * * *", "job-42", 5)
    assert runs("H H * * *", "job-42", 5) == first
    assert CronExpression.parse("H H * * *", "job-42") == CronExpression.parse(
        "H H * * *", "job-42"
    )


def test_the_hash_is_stable_across_processes_and_python_versions() -> None:
    # A SHA-256 of "job-1:minute", not Python's per-process salted hash(): these values are
    # what a job stored today runs at tomorrow, after a deploy, on another Lambda.
    assert CronExpression.parse("H H * * *", "job-1").canonical == "58 23 * * *"
    assert CronExpression.parse("H * * * *", "0").canonical == "49 * * * *"


def test_without_a_key_the_key_is_zero() -> None:
    assert CronExpression.parse("H/15 H * * *") == CronExpression.parse("H/15 H * * *", "0")
    assert parse_cron("H H * * *") == parse_cron("H H * * *", "0")


# --- different jobs, spread out -----------------------------------------------------------------


def test_a_thousand_hourly_jobs_spread_over_the_minutes_of_the_hour() -> None:
    minutes = Counter(field("H * * * *", key, 0) for key in IDS)
    assert set(minutes) <= set(range(60))
    assert len(minutes) >= 50
    assert max(minutes.values()) <= 40


def test_one_jobs_minute_and_hour_are_hashed_apart() -> None:
    # Were both taken from one number, (h % 60, h % 24) could only be 120 pairs (lcm 60, 24).
    pairs = {(field("H H * * *", key, 0), field("H H * * *", key, 1)) for key in IDS}
    assert len(pairs) > 500


def test_h_in_a_range_stays_in_that_range() -> None:
    minutes = {field("H(0-29) * * * *", key, 0) for key in IDS}
    assert minutes <= set(range(30))
    assert len(minutes) >= 25


def test_h_in_the_hour_field_runs_once_a_day_at_one_hashed_hour() -> None:
    found = runs("0 H * * *", "job-7", 3)
    assert [b - a for a, b in pairwise(found)] == [timedelta(days=1)] * 2
    assert all(r.hour == field("0 H * * *", "job-7", 1) and r.minute == 0 for r in found)
    assert {field("0 H * * *", key, 1) for key in IDS} == set(range(24))


def test_h_slash_15_runs_four_times_an_hour_fifteen_minutes_apart() -> None:
    for key in ("job-1", "job-2", "job-3"):
        hour = [r for r in runs("H/15 * * * *", key, 8) if r < START + timedelta(hours=1)]
        assert len(hour) == 4
        assert [b - a for a, b in pairwise(hour)] == [timedelta(minutes=15)] * 3


def test_h_slash_15_starts_at_a_hashed_minute_below_15() -> None:
    starts = {runs("H/15 * * * *", key, 1)[0].minute for key in IDS}
    assert starts == set(range(15))


def test_h_in_a_range_with_a_step_stays_inside_the_range() -> None:
    for key in IDS[:200]:
        found = runs("H(0-29)/10 * * * *", key, 6)
        minutes = [r.minute for r in found]
        assert all(m < 30 for m in minutes)
        assert minutes[:3] == [minutes[0], minutes[0] + 10, minutes[0] + 20]
        assert found[3] == found[0] + timedelta(hours=1)


def test_h_in_the_seconds_field_of_a_six_field_expression() -> None:
    found = runs("H * * * * *", "job-9", 3)
    second = found[0].second
    assert [b - a for a, b in pairwise(found)] == [timedelta(minutes=1)] * 2
    assert all(r.second == second for r in found)
    assert {runs("H * * * * *", key, 1)[0].second for key in IDS} == set(range(60))


def test_h_in_day_of_month_picks_a_day_every_month_has() -> None:
    days = {field("0 0 H * *", key, 2) for key in IDS}
    assert days == set(range(1, 29))
    # So a monthly job runs in every month, February included.
    found = runs("0 0 H * *", "job-5", 12)
    assert [r.month for r in found] == list(range(1, 13))


def test_an_explicit_day_of_month_range_may_use_the_whole_month() -> None:
    assert {field("0 0 H(29-31) * *", key, 2) for key in IDS} == {29, 30, 31}


def test_h_in_day_of_week_never_picks_7_so_sunday_is_not_twice_as_likely() -> None:
    assert {field("0 0 * * H", key, 4) for key in IDS} == set(range(7))
    weekdays = {field("0 0 * * H(MON-FRI)", key, 4) for key in IDS}
    assert weekdays == {1, 2, 3, 4, 5}


def test_h_in_the_month_field_runs_once_a_year() -> None:
    found = runs("0 0 1 H *", "job-3", 3)
    assert [r.year for r in found] == [found[0].year, found[0].year + 1, found[0].year + 2]
    assert {field("0 0 1 H *", key, 3) for key in IDS} == set(range(1, 13))


def test_h_can_be_a_comma_list_item_and_shares_its_fields_hash() -> None:
    minutes = CronExpression.parse("H(0-9),H(30-39),45 * * * *", "job-1").canonical.split()[0]
    low, high, fixed = (int(m) for m in minutes.split(","))
    assert low < 10 and high == low + 30 and fixed == 45


def test_a_lowercase_h_is_an_h() -> None:
    assert CronExpression.parse("h h * * *", "job-1").canonical == "58 23 * * *"


# --- the canonical form is plain cron -----------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "H * * * *",
        "H H * * *",
        "H/15 * * * *",
        "H(0-29)/10 H(9-17) * * 1-5",
        "H H H H H",
        "H H H H H H",
        "0 0 H/7 * *",
        "H(0-9),H(30-39) * * * *",
    ],
)
def test_the_canonical_form_is_plain_cron_that_runs_the_same(expr: str) -> None:
    for key in ("job-1", "job-2", "5f0c2a9e-1111-4b7e-9d3c-000000000001"):
        expression = CronExpression.parse(expr, key)
        assert "H" not in expression.canonical
        assert expression.text == expr
        plain = CronExpression.parse(expression.canonical)
        assert plain.canonical == expression.canonical
        assert plain.fixed_time is expression.fixed_time
        assert runs(expression.canonical, None, 20) == runs(expr, key, 20)


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        ("job-1", "13/15 * * * *"),  # the start is below the step, then to the end of the hour
        ("job-2", "1/15 * * * *"),
    ],
)
def test_a_stepped_h_is_written_as_a_start_and_a_step(key: str, canonical: str) -> None:
    assert CronExpression.parse("H/15 * * * *", key).canonical == canonical


def test_a_stepped_h_in_a_range_keeps_the_end_of_the_range() -> None:
    assert CronExpression.parse("H(0-29)/10 * * * *", "job-1").canonical == "8-29/10 * * * *"
    assert CronExpression.parse("0 0 H/7 * *", "job-1").canonical.split()[2].endswith("-28/7")


def test_debian_rules_apply_to_the_resolved_expression() -> None:
    assert CronExpression.parse("H H * * *", "job-1").fixed_time is True
    assert CronExpression.parse("H * * * *", "job-1").fixed_time is False
    # Both day fields restricted: a day matching either runs (Vixie's OR).
    either = CronExpression.parse("0 0 H * H", "job-1")
    day, weekday = (int(v) for v in either.canonical.split()[2::2])
    found = runs("0 0 H * H", "job-1", 10)
    assert any(r.day == day for r in found)
    assert any(r.isoweekday() % 7 == weekday and r.day != day for r in found)


# --- describe_cron and the cache ----------------------------------------------------------------


def test_describe_cron_describes_the_resolved_times() -> None:
    assert describe_cron("H/15 * * * *", "job-1") == (
        "Every 15 minutes, starting at 13 minutes past the hour"
    )
    assert describe_cron("H H * * *", "job-1") == "At 23:58"
    assert describe_cron("H H * * *") == describe_cron("H H * * *", "0")


def test_parse_cron_caches_per_key_not_only_per_text() -> None:
    assert parse_cron("H H * * *", "job-1").canonical == "58 23 * * *"
    assert parse_cron("H H * * *", "job-2").canonical != "58 23 * * *"
    assert parse_cron("H H * * *", "job-1") is parse_cron("H H * * *", "job-1")


# --- existing expressions are unchanged ---------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "0 9 * * 1-5",
        "*/15 * * * *",
        "30 0 9 * * *",
        "0 9 * JAN,JUL MON-FRI",
        "0 0 L * *",
        "0 0 15W * THU#2",
        "0 0 * * 5L",
        "@daily",
        "@hourly",
    ],
)
def test_an_expression_without_h_ignores_the_key(expr: str) -> None:
    plain = CronExpression.parse(expr)
    assert CronExpression.parse(expr, "job-1") == plain
    assert CronExpression.parse(expr, "job-2") == plain
    assert describe_cron(expr, "job-1") == describe_cron(expr)


# --- invalid forms --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("H(30-10) * * * *", "minute 'H(30-10)': the H range is reversed"),
        ("H(0-99) * * * *", "minute '99' in 'H(0-99)' is out of range 0-59"),
        ("0 H(0-24) * * *", "hour '24' in 'H(0-24)' is out of range 0-23"),
        ("0 0 H(0-5) * *", "day-of-month '0' in 'H(0-5)' is out of range 1-31"),
        ("0 0 1 H(1-13) *", "month '13' in 'H(1-13)' is out of range 1-12"),
        ("0 0 * * H(1-8)", "day-of-week '8' in 'H(1-8)' is out of range 0-7"),
        ("H/0 * * * *", "minute 'H/0' has a step of 0; a step must be 1-60"),
        ("H(0-9)/0 * * * *", "a step must be 1-10"),
        ("H(0-9)/11 * * * *", "minute 'H(0-9)/11': step 11 is out of range 1-10"),
        ("0 0 H/29 * *", "day-of-month 'H/29': step 29 is out of range 1-28"),
        ("H/x * * * *", "minute 'H/x': the step after '/' must be a whole number 1-60"),
        ("H/ * * * *", "the step after '/' must be a whole number"),
        ("HH * * * *", "minute 'HH' is not a valid H; accepted forms: H, H(A-B), H/S"),
        ("0 0 * * H#2", "day-of-week 'H#2' is not a valid H"),
        ("H5 * * * *", "minute 'H5' is not a valid H"),
        ("H(5) * * * *", "minute 'H(5)': an H range is written H(A-B)"),
        ("H(1-) * * * *", "an H range is written H(A-B) with A and B in 0-59"),
        ("H(0-29 * * * *", "minute 'H(0-29' is not a valid H"),
        ("H(x-9) * * * *", "minute 'H(x-9)' is not valid; accepted: *, a value 0-59"),
        ("H,,5 * * * *", "minute 'H,,5' has an empty list item"),
        ("0 0 H(30-31) 2 *", "can never fire"),
    ],
)
def test_an_invalid_h_is_refused_with_a_message_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        CronExpression.parse(text, "job-1")
    assert message in str(raised.value)


def test_the_accepted_forms_now_mention_h() -> None:
    with pytest.raises(CronError, match=r"a spread value H, H\(A-B\), H/S or H\(A-B\)/S"):
        CronExpression.parse("x * * * *")
