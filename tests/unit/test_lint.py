"""Schedule lint: warnings about a schedule's year, and the count of its runs.

Every test starts from a fixed instant and checks what the warning says against what the
engine really does (`CronExpression.iter_after`, `Schedule.next_after`). The clock changes
used, as the tz database records them (zoneinfo):

- America/New_York 2027: 2027-03-14 07:00Z, 02:00 EST -> 03:00 EDT (02:00-03:00 skipped);
  2027-11-07 06:00Z, 02:00 EDT -> 01:00 EST (01:00-02:00 repeated).
- Europe/London 2027: 2027-03-28 01:00Z, 01:00 GMT -> 02:00 BST (01:00-02:00 skipped);
  2027-10-31 01:00Z, 02:00 BST -> 01:00 GMT (01:00-02:00 repeated).
- Australia/Lord_Howe 2027, half-hour shifts: 2027-04-03 15:00Z, 02:00 +11 -> 01:30 +10:30
  (01:30-02:00 repeated, on the local date 2027-04-04); 2027-10-02 15:30Z, 02:00 +10:30 ->
  02:30 +11 (02:00-02:30 skipped, on 2027-10-03).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.cron import CronExpression
from chalicelib.lint import (
    EXCLUSION_WALK,
    WINDOW,
    LintWarning,
    Transition,
    count_runs,
    lint_schedule,
    walk_runs,
    zone_transitions,
)
from chalicelib.models import JobCreate, PreviewRequest
from chalicelib.schedules import Schedule, compile_schedule
from chalicelib.tzmath import get_zone

START = datetime(2027, 1, 1, tzinfo=UTC)
NEW_YORK = get_zone("America/New_York")
LONDON = get_zone("Europe/London")
LORD_HOWE = get_zone("Australia/Lord_Howe")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def job(**fields: Any) -> JobCreate:
    return JobCreate(name="lint", task_name="nexus.echo", **fields)


def lint(
    spec: Any, *, start: datetime = START, timeout: float | None = None, schedule: Any = None
) -> list[LintWarning]:
    compiled = schedule or compile_schedule(spec, anchor=start)
    return lint_schedule(spec, compiled, start, task_timeout=timeout)


def cron(expression: str, timezone: str = "UTC", **fields: Any) -> PreviewRequest:
    return PreviewRequest(job_type="cron", cron_expression=expression, timezone=timezone, **fields)


def by_code(warnings: list[LintWarning]) -> dict[str, LintWarning]:
    found = {w["code"]: w for w in warnings}
    assert len(found) == len(warnings), "one warning per code"
    return found


def engine_runs(expression: str, zone: Any, start: datetime, end: datetime) -> list[datetime]:
    runs = []
    for run in CronExpression.parse(expression).iter_after(zone, start - timedelta(microseconds=1)):
        if run >= end:
            break
        runs.append(run)
    return runs


# -- clock changes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (
            NEW_YORK,
            [
                Transition(utc(2027, 3, 14, 7), timedelta(hours=-5), timedelta(hours=-4)),
                Transition(utc(2027, 11, 7, 6), timedelta(hours=-4), timedelta(hours=-5)),
            ],
        ),
        (
            LONDON,
            [
                Transition(utc(2027, 3, 28, 1), timedelta(0), timedelta(hours=1)),
                Transition(utc(2027, 10, 31, 1), timedelta(hours=1), timedelta(0)),
            ],
        ),
        (
            LORD_HOWE,
            [
                Transition(utc(2027, 4, 3, 15), timedelta(hours=11), timedelta(hours=10.5)),
                Transition(utc(2027, 10, 2, 15, 30), timedelta(hours=10.5), timedelta(hours=11)),
            ],
        ),
    ],
)
def test_the_clock_changes_of_a_year_are_found_to_the_second(
    zone: Any, expected: list[Transition]
) -> None:
    assert zone_transitions(zone, START, START + WINDOW) == expected


def test_a_zone_without_daylight_saving_time_has_no_clock_changes() -> None:
    assert zone_transitions(get_zone("UTC"), START, START + WINDOW) == []
    assert zone_transitions(get_zone("Asia/Tokyo"), START, START + WINDOW) == []


# -- dst_gap and dst_overlap ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timezone", "expression", "code", "day", "says"),
    [
        (
            "America/New_York",
            "30 2 * * *",
            "dst_gap",
            "2027-03-14",
            "its 02:30 run happens at 03:00",
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "dst_overlap",
            "2027-11-07",
            "01:30 happens twice and it runs once, at the first (EDT, UTC-04:00)",
        ),
        ("Europe/London", "30 1 * * *", "dst_gap", "2027-03-28", "its 01:30 run happens at 02:00"),
        (
            "Europe/London",
            "30 1 * * *",
            "dst_overlap",
            "2027-10-31",
            "01:30 happens twice and it runs once, at the first (BST, UTC+01:00)",
        ),
        (
            "Australia/Lord_Howe",
            "15 2 * * *",
            "dst_gap",
            "2027-10-03",
            "jump from 02:00 to 02:30: its 02:15 run happens at 02:30",
        ),
        (
            "Australia/Lord_Howe",
            "45 1 * * *",
            "dst_overlap",
            "2027-04-04",
            "go back from 02:00 to 01:30: 01:45 happens twice and it runs once, at the first "
            "(UTC+11:00)",
        ),
    ],
)
def test_a_fixed_time_job_is_warned_of_the_day_a_clock_change_moves_its_run(
    timezone: str, expression: str, code: str, day: str, says: str
) -> None:
    warning = by_code(lint(cron(expression, timezone)))[code]
    assert warning["dates"] == [day]
    assert says in warning["message"]
    assert "On 1 day in the year after start" in warning["message"]


@pytest.mark.parametrize(
    ("timezone", "expression", "day_start", "expected_runs"),
    [
        # The gap: the run the warning names is the engine's run.
        ("America/New_York", "30 2 * * *", utc(2027, 3, 14, 5), [utc(2027, 3, 14, 7)]),
        ("Australia/Lord_Howe", "15 2 * * *", utc(2027, 10, 2, 13, 30), [utc(2027, 10, 2, 15, 30)]),
        # The overlap: one run, at the first 01:30 (EDT) / 01:45 (+11).
        ("America/New_York", "30 1 * * *", utc(2027, 11, 7, 4), [utc(2027, 11, 7, 5, 30)]),
        ("Australia/Lord_Howe", "45 1 * * *", utc(2027, 4, 3, 13), [utc(2027, 4, 3, 14, 45)]),
    ],
)
def test_what_the_dst_warnings_say_is_what_the_engine_does(
    timezone: str, expression: str, day_start: datetime, expected_runs: list[datetime]
) -> None:
    zone = get_zone(timezone)
    assert engine_runs(expression, zone, day_start, day_start + timedelta(days=1)) == expected_runs


def test_lord_howes_two_changes_are_half_an_hour_wide_so_0215_meets_only_the_gap() -> None:
    # Clocks go back from 02:00 to 01:30 on 2027-04-04: 02:15 happens once that day.
    warnings = by_code(lint(cron("15 2 * * *", "Australia/Lord_Howe")))
    assert set(warnings) == {"dst_gap"}


def test_a_job_that_names_several_times_in_the_gap_lists_them() -> None:
    warning = by_code(lint(cron("0,15,30,45 2 * * *", "America/New_York")))["dst_gap"]
    assert "its 02:00, 02:15, 02:30 and 1 more run happens at 03:00" in warning["message"]


def test_a_job_every_minute_of_a_named_hour_loses_the_gap_and_runs_the_overlap_twice() -> None:
    gap = by_code(lint(cron("*/20 2 * * *", "America/New_York")))["dst_gap"]
    assert gap["dates"] == ["2027-03-14"]
    assert "its runs at 02:00, 02:20, 02:40 do not happen" in gap["message"]
    overlap = by_code(lint(cron("*/30 1 * * *", "America/New_York")))["dst_overlap"]
    assert overlap["dates"] == ["2027-11-07"]
    assert "runs at both, first EDT, UTC-04:00, then EST, UTC-05:00" in overlap["message"]
    assert len(engine_runs("*/30 1 * * *", NEW_YORK, utc(2027, 11, 7, 4), utc(2027, 11, 7, 8))) == 4


@pytest.mark.parametrize(
    ("expression", "timezone"),
    [
        ("*/15 * * * *", "America/New_York"),  # follows real time
        ("0 * * * *", "Europe/London"),
        ("0 12 * * *", "America/New_York"),  # a fixed time no clock change touches
        ("30 2 * * *", "UTC"),
        ("30 2 * * *", "Asia/Tokyo"),
    ],
)
def test_a_job_no_clock_change_touches_gets_no_dst_warning(expression: str, timezone: str) -> None:
    assert lint(cron(expression, timezone)) == []


def test_a_date_in_a_gap_runs_late_read_with_the_offset_before_the_gap() -> None:
    spec = PreviewRequest(
        job_type="date", scheduled_time="2027-03-14T02:30:00", timezone="America/New_York"
    )
    warning = by_code(lint(spec))["dst_gap"]
    assert warning["dates"] == ["2027-03-14"]
    assert "runs late, at 03:30 (EDT, UTC-04:00)" in warning["message"]
    assert compile_schedule(spec, anchor=START).next_after(START) == utc(2027, 3, 14, 7, 30)


def test_a_repeated_date_runs_once_at_the_first() -> None:
    spec = PreviewRequest(
        job_type="date", scheduled_time="2027-11-07T01:30:00", timezone="America/New_York"
    )
    warning = by_code(lint(spec))["dst_overlap"]
    assert warning["dates"] == ["2027-11-07"]
    assert "it runs once, at the first (EDT, UTC-04:00)" in warning["message"]
    assert compile_schedule(spec, anchor=START).next_after(START) == utc(2027, 11, 7, 5, 30)


def test_a_date_with_an_offset_is_an_exact_instant_and_gets_no_dst_warning() -> None:
    spec = PreviewRequest(
        job_type="date", scheduled_time="2027-03-14T02:30:00-05:00", timezone="America/New_York"
    )
    assert lint(spec) == []


def test_a_daily_calendar_rule_in_the_gap_runs_an_hour_late() -> None:
    spec = PreviewRequest(
        job_type="calendar",
        calendar_rule="FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        timezone="America/New_York",
    )
    warning = by_code(lint(spec))["dst_gap"]
    assert warning["dates"] == ["2027-03-14"]
    assert "its 02:30 runs at 03:30" in warning["message"]
    schedule = compile_schedule(spec, anchor=START)
    assert schedule.next_after(utc(2027, 3, 14, 5)) == utc(2027, 3, 14, 7, 30)


def test_an_hourly_calendar_rule_follows_real_time_and_gets_no_dst_warning() -> None:
    spec = PreviewRequest(
        job_type="calendar", calendar_rule="FREQ=HOURLY", timezone="America/New_York"
    )
    assert lint(spec) == []


# -- missing_day -------------------------------------------------------------------------------


def test_day_31_is_missing_from_five_months() -> None:
    warning = by_code(lint(cron("0 0 31 * *")))["missing_day"]
    assert warning["dates"] == [
        "2027-02-01",
        "2027-04-01",
        "2027-06-01",
        "2027-09-01",
        "2027-11-01",
    ]
    assert "day 31 is missing from Feb, Apr, Jun, Sep, Nov 2027" in warning["message"]
    months = {r.month for r in engine_runs("0 0 31 * *", get_zone("UTC"), START, START + WINDOW)}
    assert months == {1, 3, 5, 7, 8, 10, 12}


def test_day_30_is_missing_from_february_only() -> None:
    warning = by_code(lint(cron("0 0 30 * *")))["missing_day"]
    assert warning["dates"] == ["2027-02-01"]
    assert "day 30 is missing from Feb 2027" in warning["message"]


def test_day_29_is_missing_from_february_except_in_a_leap_year() -> None:
    assert by_code(lint(cron("0 0 29 * *")))["missing_day"]["dates"] == ["2027-02-01"]
    assert lint(cron("0 0 29 * *"), start=utc(2028, 1, 1)) == []


def test_each_missing_day_is_named_with_its_months() -> None:
    warning = by_code(lint(cron("0 0 15,30,31 * *")))["missing_day"]
    assert "day 30 is missing from Feb 2027" in warning["message"]
    assert "day 31 is missing from Feb, Apr, Jun, Sep, Nov 2027" in warning["message"]
    assert len(warning["dates"]) == 5


def test_a_year_that_spans_two_februaries_names_both() -> None:
    warning = by_code(lint(cron("0 0 30 * *"), start=utc(2027, 2, 10)))["missing_day"]
    assert warning["dates"] == ["2027-02-01", "2028-02-01"]
    assert "Feb 2027 and Feb 2028" in warning["message"]


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 L * *",  # the last day, whatever the month's length
        "0 0 31 1,3,5 *",  # only months that have a 31st
        "0 0 */10 * *",  # a step over every day, not a chosen date
        "0 0 28 * *",
    ],
)
def test_no_missing_day_warning_when_every_named_month_has_the_day(expression: str) -> None:
    assert lint(cron(expression)) == []


# -- dom_and_dow -------------------------------------------------------------------------------


def test_day_of_month_and_day_of_week_both_restricted_combine_with_or() -> None:
    warning = by_code(lint(cron("0 0 13 * 5")))["dom_and_dow"]
    message = warning["message"]
    assert "combine with OR, not AND" in message
    assert "that is 64 days" in message
    assert "11 only because of day-of-month (e.g. 2027-01-13, 2027-02-13, 2027-03-13)" in message
    assert "52 only because of day-of-week (e.g. 2027-01-01, 2027-01-08, 2027-01-15)" in message
    assert "1 matching both" in message  # Friday 2027-08-13
    assert {"2027-01-13", "2027-01-01"} <= set(warning["dates"])
    assert len(warning["dates"]) == 20
    runs = engine_runs("0 0 13 * 5", get_zone("UTC"), START, START + WINDOW)
    assert len(runs) == 64
    assert {utc(2027, 1, 1), utc(2027, 1, 13), utc(2027, 8, 13)} <= set(runs)


@pytest.mark.parametrize("expression", ["0 0 13 * *", "0 0 * * 5", "0 0 */2 * 5", "0 0 13 * */2"])
def test_one_field_starting_with_a_star_means_and_and_no_warning(expression: str) -> None:
    assert "dom_and_dow" not in by_code(lint(cron(expression)))


# -- interval_shorter_than_timeout ----------------------------------------------------------


def test_an_interval_shorter_than_the_tasks_timeout_overlaps_when_allowed() -> None:
    spec = job(job_type="interval", interval_seconds=60)
    warning = by_code(lint(spec, timeout=300))["interval_shorter_than_timeout"]
    assert "runs every 1 min and its task may run for up to 5 min" in warning["message"]
    assert warning["dates"] == ["2027-01-01"]


@pytest.mark.parametrize(
    ("policy", "interval", "timeout"),
    [
        ("forbid", 60, 300),  # runs never overlap
        ("buffer_one", 60, 300),
        ("allow", 600, 300),  # the interval is longer
        ("allow", 300, 300),  # a run may end just as the next starts
        ("allow", 60, None),  # the task's timeout is unknown
    ],
)
def test_no_overlap_warning_when_runs_cannot_overlap(
    policy: str, interval: int, timeout: float | None
) -> None:
    spec = job(job_type="interval", interval_seconds=interval, concurrency_policy=policy)
    assert lint(spec, timeout=timeout) == []


def test_a_cron_job_closer_together_than_the_timeout_overlaps() -> None:
    warning = by_code(lint(job(job_type="cron", cron_expression="* * * * *"), timeout=300))[
        "interval_shorter_than_timeout"
    ]
    assert "only 1 min apart" in warning["message"]


def test_a_clock_change_that_brings_two_runs_together_is_found() -> None:
    # 02:05 and 02:30 are skipped on 2027-03-14 and run together at 03:00 EDT, 5 minutes
    # before 03:05; on every other day the runs are at least 25 minutes apart.
    spec = job(job_type="cron", cron_expression="5,30 2,3 * * *", timezone="America/New_York")
    warning = by_code(lint(spec, timeout=600))["interval_shorter_than_timeout"]
    assert warning["dates"] == ["2027-03-14"]
    assert "only 5 min apart" in warning["message"]
    day = engine_runs(
        spec.cron_expression or "", NEW_YORK, utc(2027, 3, 14, 5), utc(2027, 3, 14, 9)
    )
    assert day == [utc(2027, 3, 14, 7), utc(2027, 3, 14, 7, 5), utc(2027, 3, 14, 7, 30)]


def test_a_calendar_rule_closer_together_than_the_timeout_overlaps() -> None:
    spec = job(job_type="calendar", calendar_rule="FREQ=MINUTELY;INTERVAL=2")
    warning = by_code(lint(spec, timeout=300))["interval_shorter_than_timeout"]
    assert "only 2 min apart" in warning["message"]


def test_a_daily_job_at_noon_in_utc_has_nothing_to_warn_about() -> None:
    assert lint(job(job_type="cron", cron_expression="0 12 * * *"), timeout=900) == []


# -- date_in_blackout and calendar_excludes_all (through decide) ------------------------------


@dataclass(frozen=True)
class FakeDecision:
    at: datetime | None
    reason: str | None


class ExcludingSchedule:
    """A test double of `Schedule` once it has `decide` (the lead is adding it): a real
    compiled schedule (its `rule`, `start`, `end` and runs), each run skipped or deferred as
    `exclusion` says."""

    def __init__(
        self, schedule: Schedule, exclusion: Callable[[datetime], FakeDecision | None]
    ) -> None:
        self.schedule, self.exclusion = schedule, exclusion

    def next_after(self, after: datetime) -> datetime | None:
        return self.schedule.next_after(after)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.schedule, name)

    def decide(self, t: datetime) -> FakeDecision:
        return self.exclusion(t) or FakeDecision(t, None)


def excluding(spec: Any, exclusion: Callable[[datetime], FakeDecision | None]) -> ExcludingSchedule:
    return ExcludingSchedule(compile_schedule(spec, anchor=START), exclusion)


def skip_all(t: datetime) -> FakeDecision:
    return FakeDecision(None, "blackout window 'freeze'")


DATE_JOB = PreviewRequest(job_type="date", scheduled_time="2027-06-01T09:00:00", timezone="UTC")


def test_a_date_job_whose_run_is_skipped_never_runs() -> None:
    warning = by_code(lint(DATE_JOB, schedule=excluding(DATE_JOB, skip_all)))["date_in_blackout"]
    assert warning["dates"] == ["2027-06-01"]
    assert "is skipped (blackout window 'freeze'): the job will never run" in warning["message"]


def test_a_date_job_whose_run_is_deferred_says_when_it_runs() -> None:
    def defer(t: datetime) -> FakeDecision:
        return FakeDecision(t + timedelta(hours=2), "holiday calendar 'us'")

    warning = by_code(lint(DATE_JOB, schedule=excluding(DATE_JOB, defer)))["date_in_blackout"]
    assert "deferred to 2027-06-01 11:00 (holiday calendar 'us')" in warning["message"]


def test_a_date_job_outside_every_blackout_gets_no_warning() -> None:
    assert lint(DATE_JOB, schedule=excluding(DATE_JOB, lambda t: None)) == []


def test_a_job_whose_every_run_of_the_year_is_skipped_is_warned() -> None:
    spec = cron("0 9 * * 1-5", "US/Eastern")
    warning = by_code(lint(spec, schedule=excluding(spec, skip_all)))["calendar_excludes_all"]
    assert warning["message"].startswith("All 261 of its runs in the year after start, on 261")
    assert "(blackout window 'freeze'): it never runs" in warning["message"]
    assert warning["dates"][:2] == ["2027-01-01", "2027-01-04"]
    assert len(warning["dates"]) == 20


def test_one_run_left_of_the_year_is_enough_to_run() -> None:
    spec = cron("0 9 * * 1-5", "US/Eastern")
    last = utc(2027, 12, 31, 14)

    def all_but_last(t: datetime) -> FakeDecision | None:
        return None if t == last else skip_all(t)

    assert lint(spec, schedule=excluding(spec, all_but_last)) == []


def test_a_deferred_run_still_runs() -> None:
    spec = cron("0 9 * * *")
    schedule = excluding(spec, lambda t: FakeDecision(t + timedelta(days=1), "defer"))
    assert lint(spec, schedule=schedule) == []


def test_a_dense_job_is_checked_up_to_the_walk_limit_and_says_so() -> None:
    spec = cron("*/5 * * * *")
    warning = by_code(lint(spec, schedule=excluding(spec, skip_all)))["calendar_excludes_all"]
    last = START + timedelta(minutes=5 * (EXCLUSION_WALK - 1))
    assert warning["message"].startswith(
        f"Its first {EXCLUSION_WALK} runs, through {last.date().isoformat()}, are all skipped"
    )
    assert "later runs were not checked" in warning["message"]


# -- counting runs -----------------------------------------------------------------------------


# Spans around clock changes (and whole years), for jobs at fixed times, every minute of named
# hours, and every few minutes or seconds of the day.
ENGINE_TABLE = pytest.mark.parametrize(
    ("expression", "zone", "start", "end"),
    [
        ("30 2 * * *", NEW_YORK, utc(2027, 3, 10), utc(2027, 3, 20)),
        ("30 1 * * *", NEW_YORK, utc(2027, 11, 1), utc(2027, 11, 10)),
        ("0,30 2,3 * * *", NEW_YORK, utc(2027, 3, 10), utc(2027, 3, 20)),
        ("0 2 * * 0", NEW_YORK, utc(2027, 3, 1), utc(2027, 4, 1)),
        ("*/20 2 * * *", NEW_YORK, utc(2027, 3, 10), utc(2027, 3, 20)),
        ("*/7 1-3 * * *", NEW_YORK, utc(2027, 11, 1), utc(2027, 11, 10)),
        ("*/7 * * * *", NEW_YORK, utc(2027, 11, 6), utc(2027, 11, 8)),
        ("*/7 * * * *", NEW_YORK, utc(2027, 3, 13), utc(2027, 3, 15)),
        ("15 2 * * *", LORD_HOWE, utc(2027, 9, 25), utc(2027, 10, 10)),
        ("* 1 * * *", LORD_HOWE, utc(2027, 4, 1), utc(2027, 4, 6)),
        ("*/10 * 1-2 * * *", LONDON, utc(2027, 3, 27), utc(2027, 3, 29)),
        ("*/10 0-59 1 * * *", LONDON, utc(2027, 10, 30), utc(2027, 11, 1)),
        ("0 9 * * 1-5", get_zone("US/Eastern"), START, START + WINDOW),
        ("0 0 31 * *", get_zone("UTC"), START, START + WINDOW),
        ("0 0 13 * 5", get_zone("UTC"), START, START + WINDOW),
        ("17 3 1W * *", LONDON, START, START + WINDOW),
        ("0 12 * * 5L", NEW_YORK, utc(2027, 1, 1, 17, 0, 0), utc(2027, 9, 3, 12, 30)),
        ("45 * * * *", LORD_HOWE, utc(2027, 4, 3, 10), utc(2027, 4, 3, 20)),
        ("*/20 * * * * *", LORD_HOWE, utc(2027, 10, 2, 15), utc(2027, 10, 2, 16)),
        ("0,59 1,2 * * *", LORD_HOWE, utc(2027, 4, 2), utc(2027, 4, 5)),
    ],
)


@ENGINE_TABLE
def test_a_cron_job_is_counted_exactly_as_the_engine_runs_it(
    expression: str, zone: Any, start: datetime, end: datetime
) -> None:
    spec = cron(expression, zone.key)
    schedule = compile_schedule(spec, anchor=start)
    assert count_runs(schedule, start, end) == len(engine_runs(expression, zone, start, end))


@ENGINE_TABLE
def test_a_cron_jobs_runs_are_listed_exactly_as_the_engine_runs_them(
    expression: str, zone: Any, start: datetime, end: datetime
) -> None:
    schedule = compile_schedule(cron(expression, zone.key), anchor=start)
    expected = engine_runs(expression, zone, start, end)
    assert walk_runs(schedule, start, end, 10**6) == (expected, False)
    if len(expected) > 3:
        assert walk_runs(schedule, start, end, 3) == (expected[:3], True)


@pytest.mark.parametrize(
    ("spec", "runs"),
    [
        (cron("0 9 * * 1-5", "US/Eastern"), 261),
        (cron("* * * * *"), 525_600),
        (cron("* * * * *", "America/New_York"), 525_600),  # an hour lost, an hour repeated
        (cron("* * * * * *", "Australia/Lord_Howe"), 31_536_000),
        (cron("*/20 2 * * *", "America/New_York"), 3 * 365 - 3),
        (cron("0 9 * * *", start_time="2027-07-01T00:00:00Z"), 184),
        (cron("0 9 * * *", end_time="2027-01-31T09:00:00Z"), 31),
        (PreviewRequest(job_type="interval", interval_seconds=60), 525_599),
        (PreviewRequest(job_type="interval", interval_seconds=60, start_time=START), 525_600),
        (PreviewRequest(job_type="date", scheduled_time="2027-06-01T09:00:00Z"), 1),
        (PreviewRequest(job_type="date", scheduled_time="2028-06-01T09:00:00Z"), 0),
        (PreviewRequest(job_type="calendar", calendar_rule="FREQ=WEEKLY;BYDAY=MO"), 52),
    ],
)
def test_a_years_runs_are_counted_without_walking_them(spec: Any, runs: int) -> None:
    schedule = compile_schedule(spec, anchor=START)
    began = time.perf_counter()
    assert count_runs(schedule, START, START + WINDOW) == runs
    # Walking a year of a job every second would take the engine about 40 minutes.
    assert time.perf_counter() - began < 0.5


def test_a_dense_calendar_rule_is_extrapolated_from_its_first_occurrences() -> None:
    spec = PreviewRequest(job_type="calendar", calendar_rule="FREQ=MINUTELY", timezone="UTC")
    counted = count_runs(compile_schedule(spec, anchor=START), START, START + WINDOW)
    assert counted == pytest.approx(525_600, rel=0.01)


def test_lint_and_count_of_the_densest_jobs_answer_quickly() -> None:
    # Generous bounds on a shared machine; each is a few to 30 ms when alone.
    for spec in (
        job(job_type="cron", cron_expression="* * * * * *", timezone="America/New_York"),
        job(job_type="calendar", calendar_rule="FREQ=MINUTELY", timezone="America/New_York"),
        job(
            job_type="calendar",
            calendar_rule="FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29",
            timezone="America/New_York",
        ),
    ):
        schedule = compile_schedule(spec, anchor=START)
        began = time.perf_counter()
        lint(spec, schedule=schedule, timeout=0.5)
        count_runs(schedule, START, START + WINDOW)
        assert time.perf_counter() - began < 0.5, spec
