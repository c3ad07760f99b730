"""When a job runs: the next run after a given instant, for every job type. Pure.

Nothing here reads the clock: the caller passes `now` or `after`. Every result is an aware
UTC instant on a whole second.

- cron: see `chalicelib.cron` (Debian cron's day and DST rules, in the job's time zone).
- interval: every `interval_seconds` of real time from an anchor: `start_time` if given,
  otherwise one interval after the job's creation (truncated to the second).
- date: once, at `scheduled_time`; a time without an offset is wall-clock time in the job's
  zone (read as RFC 5545 reads local times: a repeated time is its first occurrence, a time
  in a spring-forward gap uses the offset in force before the gap).
- calendar: see `chalicelib.calendar_rule` (RFC 5545 via python-dateutil).

`start_time` and `end_time` bound every type: no run before the first or after the second.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

from chalicelib import tzmath
from chalicelib.calendar_rule import CalendarRule, CalendarRuleError
from chalicelib.cron import CronError, CronExpression
from chalicelib.errors import FieldError, InvalidInput
from chalicelib.exclusions import Decision, Exclusions
from chalicelib.holidays import HolidayCalendar

_ONE_MICRO = timedelta(microseconds=1)


class ScheduleSpec(Protocol):
    """The schedule fields of a job or a preview request (read-only here)."""

    @property
    def job_type(self) -> str: ...
    @property
    def cron_expression(self) -> str | None: ...
    @property
    def interval_seconds(self) -> int | None: ...
    @property
    def scheduled_time(self) -> datetime | None: ...
    @property
    def calendar_rule(self) -> str | None: ...
    @property
    def timezone(self) -> str: ...
    @property
    def start_time(self) -> datetime | None: ...
    @property
    def end_time(self) -> datetime | None: ...


class _Rule(Protocol):
    def next_after(self, after: datetime) -> datetime | None: ...


@dataclass(frozen=True)
class _CronRule:
    expression: CronExpression
    zone: tzmath.Zone

    def next_after(self, after: datetime) -> datetime | None:
        return self.expression.next_after(self.zone, after)


@dataclass(frozen=True)
class _IntervalRule:
    first: datetime
    every: timedelta

    def next_after(self, after: datetime) -> datetime | None:
        if after < self.first:
            return self.first
        periods = (after - self.first) // self.every + 1
        return self.first + periods * self.every


@dataclass(frozen=True)
class _DateRule:
    at: datetime

    def next_after(self, after: datetime) -> datetime | None:
        return self.at if self.at > after else None


@dataclass(frozen=True)
class Schedule:
    """A job's compiled schedule: its occurrences (`next_after`), and what its exclusions
    make of each (`decide`: calendars and blackout windows, chalicelib.exclusions)."""

    rule: _Rule
    start: datetime | None
    end: datetime | None
    exclusions: Exclusions | None = None

    def decide(self, t: datetime) -> Decision:
        """Whether the occurrence `t` runs, and when (a blackout may defer it)."""
        if self.exclusions is None:
            return Decision(t)
        return self.exclusions.decide(t, lambda at: self.next_after(at - _ONE_MICRO))

    def runs_after(self, after: datetime, count: int, scan: int = 10_000) -> list[datetime]:
        """The next `count` times the job really runs after `after`: occurrences its
        exclusions skip are left out, deferred ones are at their new time. Looks at most at
        `scan` occurrences."""
        if self.exclusions is None:
            return self.upcoming(after, count)
        runs: list[datetime] = []
        t: datetime | None = after
        for _ in range(scan):
            assert t is not None
            t = self.next_after(t)
            if t is None or (len(runs) >= count and t > sorted(runs)[count - 1]):
                break
            at = self.decide(t).at
            if at is not None and at > after and at not in runs:
                runs.append(at)
        return sorted(runs)[:count]

    def next_after(self, after: datetime) -> datetime | None:
        if self.start is not None and after < self.start:
            after = self.start - _ONE_MICRO
        instant = self.rule.next_after(after)
        if instant is None or (self.end is not None and instant > self.end):
            return None
        return instant

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        runs: list[datetime] = []
        while len(runs) < count:
            nxt = self.next_after(after)
            if nxt is None:
                break
            runs.append(nxt)
            after = nxt
        return runs


def zone_error(name: str, loc: tuple[str | int, ...]) -> FieldError | None:
    if tzmath.is_known_zone(name):
        return None
    return FieldError(
        loc,
        f"unknown time zone '{name}'; use an IANA name such as 'UTC', 'US/Eastern' "
        "or 'Europe/London'",
        "value_error.timezone",
    )


def local_instant(value: datetime, zone: tzmath.Zone) -> datetime:
    """An aware UTC instant for `value`; a naive value is wall-clock time in `zone`."""
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    resolution = tzmath.resolve(zone, value)
    if resolution.instants:
        return resolution.instants[0]
    assert resolution.offset_before is not None
    return (value - resolution.offset_before).replace(tzinfo=UTC)


def compile_schedule(
    spec: ScheduleSpec,
    *,
    anchor: datetime,
    loc: tuple[str | int, ...] = ("body",),
    spread_key: str | None = None,
    calendars: dict[str, HolidayCalendar] | None = None,
) -> Schedule:
    """Check `spec` and compile it; `InvalidInput` names every field that is wrong.

    `anchor` is the job's creation instant: interval and calendar jobs without an explicit
    start are anchored on it. `spread_key`: what a cron `H` hashes (default: the job's id, a
    stored job's `id`). `calendars`: the holiday calendars the job names, as read.
    """
    job_id = getattr(spec, "id", None)
    if spread_key is None and job_id is not None:
        spread_key = str(job_id)
    zone_problem = zone_error(spec.timezone, (*loc, "timezone"))
    if zone_problem:
        raise InvalidInput([zone_problem])
    zone = tzmath.get_zone(spec.timezone)
    start = None if spec.start_time is None else local_instant(spec.start_time, zone)
    end = None if spec.end_time is None else local_instant(spec.end_time, zone)
    errors: list[FieldError] = []
    if start is not None and end is not None and end <= start:
        errors.append(FieldError((*loc, "end_time"), "end_time must be after start_time"))

    rule: _Rule | None = None
    kind = spec.job_type
    required = {
        "cron": ("cron_expression", "a cron expression such as '0 9 * * 1-5'"),
        "interval": ("interval_seconds", "an integer number of seconds >= 1"),
        "date": ("scheduled_time", "an ISO-8601 date and time"),
        "calendar": ("calendar_rule", "an RFC 5545 rule such as 'FREQ=WEEKLY;BYDAY=MO'"),
    }
    field, accepted = required[kind]
    if getattr(spec, field) is None:
        errors.append(
            FieldError(
                (*loc, field),
                f"field required: a '{kind}' job needs {field} ({accepted})",
                "value_error.missing",
            )
        )
        raise InvalidInput(errors)

    if kind == "cron":
        assert spec.cron_expression is not None
        try:
            text = spec.cron_expression
            rule = _CronRule(parse_cron(text, spread_key if "H" in text.upper() else None), zone)
        except CronError as exc:
            errors.append(FieldError((*loc, "cron_expression"), str(exc), "value_error.cron"))
    elif kind == "interval":
        assert spec.interval_seconds is not None
        every = timedelta(seconds=spec.interval_seconds)
        first = start if start is not None else anchor.replace(microsecond=0) + every
        rule = _IntervalRule(first.replace(microsecond=0), every)
    elif kind == "date":
        assert spec.scheduled_time is not None
        rule = _DateRule(local_instant(spec.scheduled_time, zone).replace(microsecond=0))
    else:
        assert spec.calendar_rule is not None
        try:
            rule = CalendarRule.parse(spec.calendar_rule, zone, anchor)
        except CalendarRuleError as exc:
            errors.append(FieldError((*loc, "calendar_rule"), str(exc), "value_error.calendar"))
    if errors:
        raise InvalidInput(errors)
    assert rule is not None
    return Schedule(rule, start, end, Exclusions.of(spec, zone, calendars))


@lru_cache(maxsize=4096)
def parse_cron(text: str, spread_key: str | None = None) -> CronExpression:
    """Parse, with a cache: a tick evaluates the same few expressions over and over.

    `spread_key` is the job's id, which picks the values of H fields (None: the key "0");
    the cache is keyed on both, since one H text resolves differently per job.
    """
    return CronExpression.parse(text, spread_key)


_DESCRIBE_LOCK = threading.Lock()


@lru_cache(maxsize=1024)
def describe_cron(text: str, spread_key: str | None = None) -> str:
    """A sentence such as 'Every 5 minutes' for a valid expression (macros included); H
    fields are described as resolved for `spread_key` (see `parse_cron`)."""
    # Only the API describes schedules: the tick and the workers never load cron-descriptor.
    from cron_descriptor import ExpressionDescriptor, Options

    canonical = parse_cron(text, spread_key).canonical
    options = Options()
    # cron-descriptor follows the system locale unless told otherwise.
    options.locale_code = "en_US"
    options.use_24hour_time_format = True
    with _DESCRIBE_LOCK:
        try:
            return str(ExpressionDescriptor(canonical, options).get_description())
        except Exception:  # a description is a convenience; never fail a request over it
            return canonical
