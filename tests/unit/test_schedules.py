"""Interval and date schedules, and the start/end bounds every type shares. Fixed instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from chalicelib.errors import InvalidInput
from chalicelib.schedules import compile_schedule, local_instant
from chalicelib.tzmath import get_zone


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@dataclass
class Spec:
    job_type: str
    cron_expression: str | None = None
    interval_seconds: int | None = None
    scheduled_time: datetime | None = None
    calendar_rule: str | None = None
    timezone: str = "UTC"
    start_time: datetime | None = None
    end_time: datetime | None = None


CREATED = utc(2026, 3, 8, 6, 59, 30, 250000)


def test_an_interval_runs_every_n_seconds_from_one_interval_after_creation():
    schedule = compile_schedule(Spec("interval", interval_seconds=45), anchor=CREATED)
    assert schedule.upcoming(CREATED, 3) == [
        utc(2026, 3, 8, 7, 0, 15),
        utc(2026, 3, 8, 7, 1, 0),
        utc(2026, 3, 8, 7, 1, 45),
    ]


def test_an_interval_ignores_dst_it_counts_real_seconds():
    # US/Eastern springs forward at 07:00Z on 2026-03-08; an hourly interval does not care.
    spec = Spec(
        "interval", interval_seconds=3600, timezone="US/Eastern", start_time=utc(2026, 3, 8, 5, 0)
    )
    schedule = compile_schedule(spec, anchor=CREATED)
    assert schedule.upcoming(utc(2026, 3, 8, 4), 4) == [
        utc(2026, 3, 8, 5),
        utc(2026, 3, 8, 6),
        utc(2026, 3, 8, 7),
        utc(2026, 3, 8, 8),
    ]


def test_the_next_interval_run_after_a_long_gap_is_on_the_grid_not_a_burst():
    schedule = compile_schedule(Spec("interval", interval_seconds=10), anchor=utc(2026, 1, 1))
    assert schedule.next_after(utc(2026, 1, 2, 0, 0, 5)) == utc(2026, 1, 2, 0, 0, 10)
    assert schedule.next_after(utc(2026, 1, 2, 0, 0, 10)) == utc(2026, 1, 2, 0, 0, 20)


def test_a_date_job_runs_once():
    schedule = compile_schedule(Spec("date", scheduled_time=utc(2026, 5, 1, 12)), anchor=CREATED)
    assert schedule.upcoming(CREATED, 5) == [utc(2026, 5, 1, 12)]
    assert schedule.next_after(utc(2026, 5, 1, 12)) is None


@pytest.mark.parametrize(
    "zone, wall, expected",
    [
        ("US/Eastern", datetime(2026, 7, 4, 9, 30), utc(2026, 7, 4, 13, 30)),
        # Repeated at fall-back (2026-11-01 02:00 EDT -> 01:00 EST): the first occurrence.
        ("US/Eastern", datetime(2026, 11, 1, 1, 30), utc(2026, 11, 1, 5, 30)),
        # In the spring-forward gap (2026-03-08 02:00 EST -> 03:00 EDT): the offset before it.
        ("US/Eastern", datetime(2026, 3, 8, 2, 30), utc(2026, 3, 8, 7, 30)),
        ("Europe/London", datetime(2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 30)),
        ("Australia/Lord_Howe", datetime(2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 45)),
    ],
)
def test_a_time_without_offset_is_wall_clock_time_in_the_jobs_zone(zone, wall, expected):
    assert local_instant(wall, get_zone(zone)) == expected


def test_start_and_end_bound_every_run():
    spec = Spec(
        "cron",
        cron_expression="0 * * * *",
        start_time=utc(2026, 1, 1, 10, 30),
        end_time=utc(2026, 1, 1, 13, 0),
    )
    schedule = compile_schedule(spec, anchor=CREATED)
    assert schedule.upcoming(utc(2026, 1, 1), 10) == [
        utc(2026, 1, 1, 11),
        utc(2026, 1, 1, 12),
        utc(2026, 1, 1, 13),
    ]


def test_a_start_that_matches_the_schedule_is_itself_a_run():
    spec = Spec("cron", cron_expression="0 * * * *", start_time=utc(2026, 1, 1, 11))
    schedule = compile_schedule(spec, anchor=CREATED)
    assert schedule.next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 11)


def test_an_end_before_the_start_is_refused_naming_end_time():
    spec = Spec(
        "interval", interval_seconds=5, start_time=utc(2026, 2, 1), end_time=utc(2026, 1, 1)
    )
    with pytest.raises(InvalidInput) as raised:
        compile_schedule(spec, anchor=CREATED)
    assert [e.loc for e in raised.value.errors] == [("body", "end_time")]


def test_every_error_is_reported_at_once():
    spec = Spec(
        "cron",
        cron_expression="99 * * * *",
        timezone="UTC",
        start_time=utc(2026, 2, 1),
        end_time=utc(2026, 1, 1),
    )
    with pytest.raises(InvalidInput) as raised:
        compile_schedule(spec, anchor=CREATED)
    assert {e.loc[-1] for e in raised.value.errors} == {"end_time", "cron_expression"}
