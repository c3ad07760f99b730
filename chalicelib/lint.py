"""Schedule lint: what a schedule will really do in the year after `start`, as warnings. Pure.

`lint_schedule` looks at the 365 days from `start` and returns warnings, each
``{"code": ..., "message": ..., "dates": ["YYYY-MM-DD", ...]}``: dates are local to the
job's zone, at most `MAX_DATES` of them (the message gives the total when there are more).
Warnings never refuse a job; the API returns them beside it.

- ``dst_gap`` / ``dst_overlap``: a wall-clock time the job names falls in a spring-forward
  gap or a fall-back overlap. Which jobs, and what then happens, follows each type's own rule:
  a fixed-time cron job (`chalicelib.cron`: minute and hour do not start with ``*``) runs a
  skipped time at the first instant after the gap and a repeated time once, at its first
  occurrence; a cron job that runs every minute (or second) of named hours loses the gap's
  runs and runs the overlap twice; a ``date`` job, and a calendar rule of DAILY or coarser
  frequency, read a skipped time with the offset in force before the gap (RFC 5545) and a
  repeated one as its first occurrence. Jobs that follow real time (``*/15 * * * *``, hourly
  calendar rules, interval jobs) have nothing to warn about.
- ``missing_day``: cron day-of-month 29, 30 or 31 (also ``31W``) in a month that lacks it;
  the dates are the 1st of each such month, and the message names the months.
- ``dom_and_dow``: cron with both day-of-month and day-of-week restricted: the fields combine
  with OR (Vixie/Debian cron), so the message gives days it runs because of each.
- ``interval_shorter_than_timeout``: runs closer together than the task's timeout while
  ``concurrency_policy`` is ``allow``, so runs can overlap. Interval jobs are decided by
  arithmetic and cron jobs over the whole year from their fields (the gaps within a day, the
  gaps between matching days, and the runs at each clock change). Calendar jobs by their
  first `GAP_WALK` runs and the `GAP_WALK_AT_CHANGE` runs around each clock change: a rule
  whose shortest gap comes less than every 100 runs or so can be missed.
- ``date_in_blackout`` / ``calendar_excludes_all``: through ``schedule.decide(t)`` (holiday
  calendars and blackout windows), when the schedule has it: a date job whose one run is
  skipped or deferred; a job whose every run in the window is skipped (at most
  `EXCLUSION_WALK` runs are looked at, and the message says so when that cut the walk short).

`count_runs` counts the runs in a span, and `walk_runs` lists them, without the engine's
per-run search where they can: arithmetic for interval jobs; for cron, the matching wall
times of each matching day, mapped to instants by cron's DST rules at each clock change
(counting a ``* * * * * *`` year costs what ``@daily`` does); for calendar rules, the rule's
stream of wall-clock occurrences, counted up to `COUNT_WALK` and extrapolated beyond.

Speed: a preview calls both, and must answer in well under 100 ms for any job. The engine's
own search costs 70 us a run for cron (up to 8 ms next to a clock change that splits an
hour) and up to 5 ms for a MINUTELY calendar rule, so nothing here uses it for more than a
handful of runs. Clock changes are found from the zone's offsets, day by day, then bisected
to the second.

Tests (tests/unit/test_lint.py) check the counts, the lists and what the warnings say
against the engine, around the clock changes of three zones.
"""

from __future__ import annotations

import calendar
import heapq
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any, Protocol, TypedDict

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY

from chalicelib import cron as _cron
from chalicelib import tzmath
from chalicelib.calendar_rule import CalendarRule, CalendarRuleError, WorkBudget, work_budget
from chalicelib.cron import CronExpression
from chalicelib.schedules import ScheduleSpec, parse_cron

WINDOW = timedelta(days=365)
MAX_DATES = 20
# Runs looked at for the shortest gap: from `start`, and around each clock change.
GAP_WALK = 100
GAP_WALK_AT_CHANGE = 30
# Runs handed to `decide` before `calendar_excludes_all` gives up looking for one that runs:
# every run of a job that runs at most twice a day.
EXCLUSION_WALK = 1_000
# Calendar occurrences counted in wall-clock time before the rest are extrapolated (~12 us
# each), and runs walked through `next_after` for a schedule of any other kind.
COUNT_WALK = 2_000
GENERIC_WALK = 500
# Every walk of a calendar rule here spends from a budget of its own (steps are dateutil's
# work, see chalicelib.calendar_rule); a walk that runs out is treated as cut short.
_CALENDAR_STEPS = 50_000
_CALENDAR_SECONDS = 0.05

_ONE_MICRO = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_DAY_SECONDS = 86_400
# How far `_CronShape.walls_near` looks: a run further away than this is no neighbour that
# matters to a gap shorter than a task's timeout.
_NEAR_DAYS = timedelta(days=400)
# Runs looked at at each end of a clock change's hours (see `_cron_runs_near`).
_CHANGE_ENDS = 300
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_COARSE_FREQUENCIES = frozenset({YEARLY, MONTHLY, WEEKLY, DAILY})


class LintWarning(TypedDict):
    code: str
    message: str
    dates: list[str]


class Decision(Protocol):
    """What `schedule.decide(t)` answers: when the run happens (None: skipped), and why."""

    @property
    def at(self) -> datetime | None: ...
    @property
    def reason(self) -> str | None: ...


class Walkable(Protocol):
    """The part of `chalicelib.schedules.Schedule` this module needs."""

    def next_after(self, after: datetime) -> datetime | None: ...


# -- clock changes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    """A change of a zone's UTC offset at the instant `at` (aware, UTC)."""

    at: datetime
    before: timedelta
    after: timedelta

    @property
    def gap(self) -> bool:
        return self.after > self.before

    @property
    def walls(self) -> tuple[datetime, datetime]:
        """The naive wall-clock times `[lo, hi)` that the change skips (a gap) or repeats."""
        base = self.at.replace(tzinfo=None)
        lo, hi = sorted((base + self.before, base + self.after))
        return lo, hi


def _offset(zone: tzmath.Zone, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def zone_transitions(zone: tzmath.Zone, start: datetime, end: datetime) -> list[Transition]:
    """Every change of `zone`'s UTC offset at an instant in `[start, end)`.

    The offset is sampled once a day and each change bisected to the second (the tz database
    has no zone that changes its offset and back within a day). zoneinfo, not pytz's table,
    so the years after 2037 have their daylight-saving time too (see `chalicelib.tzmath`).
    """
    found: list[Transition] = []
    t = start
    offset = _offset(zone, t)
    while t < end:
        nxt = min(t + _DAY, end)
        new = _offset(zone, nxt)
        if new != offset:
            lo, hi = int(t.timestamp()), int(nxt.timestamp()) + 1
            while hi - lo > 1:  # offset(lo) is the old one, offset(hi) is not
                mid = (lo + hi) // 2
                if _offset(zone, datetime.fromtimestamp(mid, UTC)) == offset:
                    lo = mid
                else:
                    hi = mid
            at = datetime.fromtimestamp(hi, UTC)
            if start <= at < end:
                found.append(Transition(at, offset, _offset(zone, at)))
            offset = new
        t = nxt
    return found


# -- cron, read field by field ----------------------------------------------------------------


@dataclass(frozen=True)
class _CronShape:
    """A parsed cron expression's values, for counting its wall-clock times without a search.

    Reads `CronExpression`'s parsed fields and its day matcher, which cron.py keeps private;
    `_cron_shape` returns None if they are not there, and callers then walk the runs instead.
    tests/unit/test_lint.py checks the counts against `CronExpression.iter_after`.
    """

    expression: CronExpression
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    days: Any  # cron._DaySpec

    @property
    def per_day(self) -> int:
        return len(self.seconds) * len(self.minutes) * len(self.hours)

    @property
    def fields(self) -> list[str]:
        """minute, hour, day-of-month, month, day-of-week, as the canonical text has them."""
        return self.expression.canonical.split()[-5:]

    def month_days(self, year: int, month: int, days: Any = None) -> tuple[int, ...]:
        if month not in self.months:
            return ()
        first_weekday, length = calendar.monthrange(year, month)
        matching: Callable[[Any, int, int], tuple[int, ...]] = _cron._matching_days
        return matching(self.days if days is None else days, length, first_weekday)

    def dates(self, first: date, last: date, days: Any = None) -> Iterator[date]:
        """Matching dates in `[first, last]`; `days` replaces the expression's day fields."""
        year, month = first.year, first.month
        while (year, month) <= (last.year, last.month):
            for day in self.month_days(year, month, days):
                if first <= date(year, month, day) <= last:
                    yield date(year, month, day)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)

    def count_in_day(self, lo: int, hi: int) -> int:
        """Matching times of day, in seconds after midnight, in `[lo, hi)`."""
        if lo <= 0 and hi >= _DAY_SECONDS:
            return self.per_day
        count = 0
        whole_hour = len(self.minutes) * len(self.seconds)
        for hour in self.hours:
            base = hour * 3600
            if base + 3600 <= lo or base >= hi:
                continue
            if lo <= base and base + 3600 <= hi:
                count += whole_hour
                continue
            for minute in self.minutes:
                m = base + minute * 60
                if m + 60 <= lo or m >= hi:
                    continue
                count += bisect_left(self.seconds, hi - m) - bisect_left(self.seconds, lo - m)
        return count

    def count_walls(self, lo: datetime, hi: datetime) -> int:
        """Matching naive wall-clock times in `[lo, hi)` (both on whole seconds)."""
        if hi <= lo:
            return 0
        total = 0
        for day in self.dates(lo.date(), hi.date()):
            begin = _seconds_of_day(lo) if day == lo.date() else 0
            finish = _seconds_of_day(hi) if day == hi.date() else _DAY_SECONDS
            total += self.count_in_day(begin, finish)
        return total

    def walls(self, lo: datetime, hi: datetime, limit: int) -> list[datetime]:
        """The first `limit` matching wall-clock times in `[lo, hi)`."""
        found: list[datetime] = []
        for day in self.dates(lo.date(), hi.date()):
            for wall in self.walls_of(day, lambda w, span: w + span > lo and w < hi):
                found.append(wall)
                if len(found) >= limit:
                    return found
        return found

    def walls_near(self, wall: datetime, count: int, *, before: bool) -> list[datetime]:
        """The `count` matching wall times nearest `wall`: the last ones before it, or the
        first ones at or after it; within `_NEAR_DAYS` days."""
        found: list[datetime] = []
        if before:
            days = list(self.dates(wall.date() - _NEAR_DAYS, wall.date()))[::-1]
            walls = (
                w for day in days for w in self.walls_of(day, lambda w, _: w < wall, reverse=True)
            )
        else:
            days = list(self.dates(wall.date(), wall.date() + _NEAR_DAYS))
            walls = (w for day in days for w in self.walls_of(day, lambda w, s: w + s > wall))
        for candidate in walls:
            found.append(candidate)
            if len(found) >= count:
                break
        return found

    def walls_of(
        self, day: date, keep: Callable[[datetime, timedelta], bool], *, reverse: bool = False
    ) -> Iterator[datetime]:
        """The matching wall times of `day` in `keep`, which is asked of each hour, minute
        and second as (its start, its length), so that spans outside it are skipped whole."""
        step = -1 if reverse else 1
        midnight = datetime(day.year, day.month, day.day)
        for hour in self.hours[::step]:
            hour_start = midnight.replace(hour=hour)
            if not keep(hour_start, _HOUR):
                continue
            for minute in self.minutes[::step]:
                minute_start = hour_start.replace(minute=minute)
                if not keep(minute_start, _MINUTE):
                    continue
                for second in self.seconds[::step]:
                    wall = minute_start.replace(second=second)
                    if keep(wall, _SECOND):
                        yield wall

    def shortest_gap_in_a_day(self) -> int | None:
        """Seconds between the two closest matching times of one day (None: one a day)."""
        gaps = []
        s, m, h = self.seconds, self.minutes, self.hours
        if len(s) > 1:
            gaps.append(min(b - a for a, b in pairwise(s)))
        if len(m) > 1:
            gaps.append(min(b - a for a, b in pairwise(m)) * 60 - (s[-1] - s[0]))
        if len(h) > 1:
            spread = (m[-1] * 60 + s[-1]) - (m[0] * 60 + s[0])
            gaps.append(min(b - a for a, b in pairwise(h)) * 3600 - spread)
        return min(gaps) if gaps else None

    def matches(self, wall: datetime) -> bool:
        return (
            wall.hour in self.hours
            and wall.minute in self.minutes
            and wall.second in self.seconds
            and wall.day in self.month_days(wall.year, wall.month)
        )


def _seconds_of_day(wall: datetime) -> int:
    return wall.hour * 3600 + wall.minute * 60 + wall.second


def _cron_shape(expression: CronExpression) -> _CronShape | None:
    if not hasattr(_cron, "_matching_days"):
        return None
    try:
        return _CronShape(
            expression,
            expression._seconds,
            expression._minutes,
            expression._hours,
            expression._months,
            expression._days,
        )
    except AttributeError:  # cron.py changed its insides: callers fall back to walking
        return None


def _cron_of(spec: ScheduleSpec, schedule: Any) -> tuple[CronExpression, tzmath.Zone] | None:
    """The compiled cron expression (its H fields resolved for the job) and zone."""
    rule = getattr(schedule, "rule", None)
    expression = getattr(rule, "expression", None)
    zone = getattr(rule, "zone", None)
    if isinstance(expression, CronExpression) and zone is not None:
        return expression, zone
    if spec.job_type != "cron" or spec.cron_expression is None:
        return None
    return parse_cron(spec.cron_expression), tzmath.get_zone(spec.timezone)


# -- walking runs ---------------------------------------------------------------------------


def _bounds(schedule: Any, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """`[start, end)` narrowed to the schedule's own start_time and (inclusive) end_time."""
    first, last = getattr(schedule, "start", None), getattr(schedule, "end", None)
    if first is not None:
        start = max(start, first)
    if last is not None:
        end = min(end, last + _ONE_MICRO)
    return start, end


def _calendar_budget() -> WorkBudget:
    return WorkBudget(steps=_CALENDAR_STEPS, seconds=_CALENDAR_SECONDS)


def walk_runs(
    schedule: Walkable, start: datetime, end: datetime, limit: int
) -> tuple[list[datetime], bool]:
    """The runs in `[start, end)`, ascending, at most `limit`; and whether `limit` (or a
    calendar rule's work budget) cut the walk short."""
    start, end = _bounds(schedule, start, end)
    if end <= start:
        return [], False
    rule = getattr(schedule, "rule", None)
    every, first = getattr(rule, "every", None), getattr(rule, "first", None)
    runs: list[datetime] = []
    if isinstance(every, timedelta) and isinstance(first, datetime):
        k = max(0, -(-(start - first) // every))
        while len(runs) < limit and (t := first + k * every) < end:
            runs.append(t)
            k += 1
        return runs, len(runs) >= limit and first + k * every < end
    if isinstance(rule, CalendarRule):
        return _walk_calendar(rule, start, end, limit)
    expression, zone = getattr(rule, "expression", None), getattr(rule, "zone", None)
    source: Iterator[datetime]
    shape = _cron_shape(expression) if isinstance(expression, CronExpression) else None
    if shape is not None and zone is not None:
        source = _cron_runs(shape, zone, start, end)
    elif isinstance(expression, CronExpression) and zone is not None:
        source = expression.iter_after(zone, start - _ONE_MICRO)
    else:
        source = _next_after_chain(schedule, start - _ONE_MICRO)
    runs = []
    for t in source:
        if t >= end:
            return runs, False
        if len(runs) >= limit:
            return runs, True
        runs.append(t)
    return runs, False


def _cron_runs(
    shape: _CronShape, zone: tzmath.Zone, start: datetime, end: datetime
) -> Iterator[datetime]:
    """A cron job's runs in `[start, end)`, ascending, as `CronExpression.iter_after` gives
    them, from its wall times: about 5 us a run where the engine's search takes 70 us (and,
    next to a clock change that splits an hour, up to 8 ms).

    Away from clock changes a wall time has one instant. In a change's hours cron's DST rules
    apply (see chalicelib.cron): a skipped time runs at the change if the job has a fixed
    time, else not at all; a repeated time runs at its first instant, or at both. Instants
    come out of order only around a fall-back, so they wait in a heap until no later wall
    time can map before them.
    """
    changes = zone_transitions(zone, start - _DAY, end + _DAY)
    # Arithmetic on naive UTC: the instant of wall time w at offset o is w - o.
    windows = [(*change.walls, change) for change in changes]
    offset = _offset(zone, start - _DAY)  # until the first change
    widest = max([offset, *(c.before for c in changes), *(c.after for c in changes)])
    fixed = shape.expression.fixed_time
    # A fall-back next to `start` repeats wall times earlier than its own after it.
    behind = max(
        (c.before - c.after for c in changes if not c.gap and abs(c.at - start) <= _DAY),
        default=timedelta(0),
    )
    lo = _ceil_second(tzmath.to_local(zone, start) - behind)
    last_wall = tzmath.to_local(zone, end) + tzmath.MAX_OFFSET_JUMP
    first, stop = start.replace(tzinfo=None), end.replace(tzinfo=None)
    waiting: list[datetime] = []
    previous: datetime | None = None
    walls = (
        wall
        for day in shape.dates(lo.date(), last_wall.date())
        for wall in shape.walls_of(day, lambda w, span: w + span > lo)
    )
    for wall in walls:
        while windows and wall >= windows[0][1]:
            offset = windows.pop(0)[2].after
        if not windows or wall < windows[0][0]:
            heapq.heappush(waiting, wall - offset)
        elif (change := windows[0][2]).gap:
            if fixed:
                heapq.heappush(waiting, change.at.replace(tzinfo=None))
        else:
            heapq.heappush(waiting, wall - change.before)
            if not fixed:
                heapq.heappush(waiting, wall - change.after)
        # Every later wall time maps to at least itself less the widest offset.
        settled = wall - widest
        while waiting and (waiting[0] < settled or wall > last_wall):
            instant = heapq.heappop(waiting)
            if instant >= stop:
                return
            if instant >= first and instant != previous:
                yield instant.replace(tzinfo=UTC)
            previous = instant
        if wall > last_wall:
            return
    for instant in sorted(waiting):
        if instant >= stop:
            return
        if instant >= first and instant != previous:
            yield instant.replace(tzinfo=UTC)
        previous = instant


def _next_after_chain(schedule: Walkable, after: datetime) -> Iterator[datetime]:
    current = schedule.next_after(after)
    while current is not None:
        yield current
        current = schedule.next_after(current)


def _calendar_walls(rule: CalendarRule, lo: datetime) -> Iterator[datetime] | None:
    """The rule's wall-clock occurrences from the naive `lo`, ascending, EXDATEs removed.

    `CalendarRule.next_after` restarts dateutil (and looks three hours back) on every call:
    up to 5 ms a run for a MINUTELY rule. Its recurrence's own stream of wall-clock times
    costs about 12 us a run, so this reads it (cron.py and calendar_rule.py are pure; their
    private parts are stable inputs, and tests/unit/test_lint.py pins the results).
    """
    recurrence = getattr(rule, "_recurrence", None)
    walls_from = getattr(recurrence, "walls_from", None)
    if walls_from is None:
        return None
    walls: Iterator[datetime] = walls_from(lo)
    return walls


def _calendar_zone(rule: CalendarRule) -> tzmath.Zone | None:
    return getattr(getattr(rule, "_recurrence", None), "zone", None)


def _walk_calendar(
    rule: CalendarRule, start: datetime, end: datetime, limit: int
) -> tuple[list[datetime], bool]:
    zone = _calendar_zone(rule)
    # A fall-back repeats wall times earlier than `start`'s own that map after it.
    lo = None if zone is None else tzmath.to_local(zone, start) - tzmath.MAX_OFFSET_JUMP
    walls = None if lo is None else _calendar_walls(rule, lo)
    if zone is None or walls is None:
        chain = _next_after_chain(rule, start - _ONE_MICRO)
        runs: list[datetime] = []
        try:
            for t in chain:
                if t >= end:
                    return runs, False
                if len(runs) >= limit:
                    return runs, True
                runs.append(t)
        except CalendarRuleError:
            return runs, True
        return runs, False
    last_wall = tzmath.to_local(zone, end) + tzmath.MAX_OFFSET_JUMP
    found: set[datetime] = set()
    capped = False
    try:
        with work_budget(_calendar_budget()):
            for wall in walls:
                if wall > last_wall:
                    break
                # RFC 5545's reading, as CalendarRule gives it: with fold=0 a repeated time
                # is its first occurrence, and a time in a gap takes the offset before it.
                instant = wall.replace(tzinfo=zone).astimezone(UTC)
                if start <= instant < end:
                    found.add(instant)
                    if len(found) > limit:
                        capped = True
                        break
    except CalendarRuleError:
        capped = True
    runs = sorted(found)[:limit]
    return runs, capped


def _local_date(zone: tzmath.Zone, instant: datetime) -> str:
    return tzmath.to_local(zone, instant).date().isoformat()


# -- counting runs --------------------------------------------------------------------------


def _ceil_second(wall: datetime) -> datetime:
    return wall.replace(microsecond=0) + (_SECOND if wall.microsecond else timedelta(0))


def count_runs(schedule: Walkable, start: datetime, end: datetime) -> float:
    """How many runs fall in `[start, end)`: exact for interval, date and cron jobs (cron
    within a run or two when the span starts or ends inside a clock change), estimated from
    the first `COUNT_WALK` occurrences for a denser calendar rule."""
    start, end = _bounds(schedule, start, end)
    if end <= start:
        return 0.0
    rule = getattr(schedule, "rule", None)
    every, first = getattr(rule, "every", None), getattr(rule, "first", None)
    if isinstance(every, timedelta) and isinstance(first, datetime):

        def upto(x: datetime) -> int:  # runs before x
            return 0 if x <= first else -(-(x - first) // every)

        return float(upto(end) - upto(start))
    at = getattr(rule, "at", None)
    if isinstance(at, datetime):
        return 1.0 if start <= at < end else 0.0
    expression, zone = getattr(rule, "expression", None), getattr(rule, "zone", None)
    if isinstance(expression, CronExpression) and zone is not None:
        shape = _cron_shape(expression)
        if shape is not None:
            return float(_count_cron(shape, zone, start, end))
    if isinstance(rule, CalendarRule):
        counted = _count_calendar(rule, start, end)
        if counted is not None:
            return counted
    runs, capped = walk_runs(schedule, start, end, GENERIC_WALK)
    return _extrapolated(len(runs), start, runs[-1] if runs else start, end, capped)


def _extrapolated(
    count: int, start: datetime, last: datetime, end: datetime, capped: bool
) -> float:
    """`count` runs seen from `start` through `last`, scaled to `[start, end)` when capped."""
    if not capped or last <= start:
        return float(count)
    return count * ((end - start) / (last - start))


def _count_cron(shape: _CronShape, zone: tzmath.Zone, start: datetime, end: datetime) -> int:
    lo = _ceil_second(tzmath.to_local(zone, start))
    hi = _ceil_second(tzmath.to_local(zone, end))
    count = shape.count_walls(lo, hi)
    fixed = shape.expression.fixed_time
    for change in zone_transitions(zone, start, end):
        gap_lo, gap_hi = change.walls
        inside = shape.count_walls(gap_lo, gap_hi)
        if not inside:
            continue
        if change.gap:
            # Counted as wall times, but none of them exists. A fixed-time job runs them all
            # as one run at the gap's end, which a run at the wall time right after the gap
            # (the same instant) absorbs too; any other job skips them.
            count -= inside - (1 if fixed and not shape.matches(gap_hi) else 0)
        elif not fixed:
            count += inside  # a repeated time runs at both of its instants
    return count


def _count_calendar(rule: CalendarRule, start: datetime, end: datetime) -> float | None:
    zone = _calendar_zone(rule)
    lo = None if zone is None else tzmath.to_local(zone, start)
    walls = None if lo is None else _calendar_walls(rule, lo)
    if zone is None or lo is None or walls is None:
        return None
    hi = tzmath.to_local(zone, end)
    count, last, capped = 0, lo, False
    try:
        with work_budget(_calendar_budget()):
            for wall in walls:
                if wall >= hi:
                    break
                if count >= COUNT_WALK:
                    capped = True
                    break
                count, last = count + 1, wall
    except CalendarRuleError:
        capped = True
    if capped and last > lo:
        return count * ((hi - lo) / (last - lo))
    return float(count)


# -- lint -----------------------------------------------------------------------------------


def lint_schedule(
    spec: ScheduleSpec, schedule: Walkable, start: datetime, *, task_timeout: float | None
) -> list[LintWarning]:
    """Warnings about `spec`'s runs in the 365 days from the aware instant `start`.

    `schedule` is `compile_schedule(spec, anchor=start)`; with `decide` (holiday calendars and
    blackout windows) it also yields the exclusion warnings. `task_timeout` is the task's
    timeout in seconds (None: unknown, no overlap check). See the module docstring.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError(f"'start' must be timezone-aware, got the naive {start.isoformat()}")
    start = start.astimezone(UTC)
    end = start + WINDOW
    zone = tzmath.get_zone(spec.timezone)
    kind = spec.job_type
    found: list[LintWarning | None] = []
    shape = None
    if kind == "cron":
        cron = _cron_of(spec, schedule)
        shape = None if cron is None else _cron_shape(cron[0])
        if cron is not None and shape is not None:
            zone = cron[1]
            found += _cron_dst(shape, zone, start, end)
            found += [
                _missing_day(shape, zone, start, end),
                _dom_and_dow(shape, zone, start, end),
            ]
    elif kind == "date":
        found += _date_dst(spec, schedule, zone, start)
    elif kind == "calendar":
        rule = getattr(schedule, "rule", None)
        if isinstance(rule, CalendarRule):
            found += _calendar_dst(rule, zone, start, end)
    found.append(
        _interval_shorter_than_timeout(spec, schedule, zone, start, end, task_timeout, shape)
    )
    decide = getattr(schedule, "decide", None)
    if decide is not None:
        if kind == "date":
            found.append(_date_in_blackout(schedule, decide, zone, start))
        else:
            found.append(_calendar_excludes_all(schedule, decide, zone, start, end))
    return [warning for warning in found if warning is not None]


def _warning(code: str, message: str, dates: Sequence[str]) -> LintWarning:
    unique = sorted(set(dates))
    return {"code": code, "message": message, "dates": unique[:MAX_DATES]}


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def _clock(wall: datetime) -> str:
    return f"{wall:%H:%M:%S}" if wall.second else f"{wall:%H:%M}"


def _clocks(walls: Sequence[datetime], total: int) -> str:
    shown = ", ".join(_clock(w) for w in walls)
    return shown if total <= len(walls) else f"{shown} and {total - len(walls)} more"


def _utc_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _abbreviation(zone: tzmath.Zone, instant: datetime) -> str:
    name = instant.astimezone(zone).tzname() or ""
    offset = _utc_offset(_offset(zone, instant))
    return offset if not name or name[0] in "+-" else f"{name}, {offset}"


def _change(zone: tzmath.Zone, change: Transition) -> str:
    lo, hi = change.walls
    name = tzmath.zone_name(zone)
    day = lo.date().isoformat()
    if change.gap:
        return f"on {day} the clocks in {name} jump from {_clock(lo)} to {_clock(hi)}"
    return f"on {day} the clocks in {name} go back from {_clock(hi)} to {_clock(lo)}"


def _listing(details: list[str]) -> str:
    if len(details) <= MAX_DATES:
        return "; ".join(details)
    return "; ".join(details[:MAX_DATES]) + f"; and {len(details) - MAX_DATES} more"


def _cron_dst(
    shape: _CronShape, zone: tzmath.Zone, start: datetime, end: datetime
) -> list[LintWarning | None]:
    fixed = shape.expression.fixed_time
    hour_named = not shape.fields[1].startswith("*")
    if not fixed and not hour_named:
        return []  # it follows real time: nothing it names is skipped or repeated
    gaps: list[tuple[str, str]] = []
    overlaps: list[tuple[str, str]] = []
    for change in zone_transitions(zone, start, end):
        lo, hi = change.walls
        total = shape.count_walls(lo, hi)
        if not total:
            continue
        times = _clocks(shape.walls(lo, hi, 3), total)
        day = lo.date().isoformat()
        first = change.at - _SECOND
        if change.gap and fixed:
            gaps.append((day, f"{_change(zone, change)}: its {times} run happens at {_clock(hi)}"))
        elif change.gap:
            gaps.append((day, f"{_change(zone, change)}: its runs at {times} do not happen"))
        elif fixed:
            overlaps.append(
                (
                    day,
                    f"{_change(zone, change)}: {times} happens twice and it runs once, at "
                    f"the first ({_abbreviation(zone, first)})",
                )
            )
        else:
            overlaps.append(
                (
                    day,
                    f"{_change(zone, change)}: {times} happens twice and it runs at both, "
                    f"first {_abbreviation(zone, first)}, then "
                    f"{_abbreviation(zone, change.at)}",
                )
            )
    found: list[LintWarning | None] = []
    if gaps:
        what = (
            "its time falls in a spring-forward gap, so it runs late that day (cron runs a "
            "skipped fixed time at the first instant after the gap)"
            if fixed
            else "the clocks skip some of its runs in the hours it names, and those runs do "
            "not happen (an every-minute job follows real time)"
        )
        found.append(
            _warning(
                "dst_gap",
                f"On {_days(len(gaps))} in the year after start {what}: "
                + _listing([d for _, d in gaps])
                + ".",
                [day for day, _ in gaps],
            )
        )
    if overlaps:
        what = (
            "its time is repeated when the clocks fall back, and it runs once, at the first"
            if fixed
            else "the clocks repeat some of its runs in the hours it names, and it runs at "
            "both instants of each (an every-minute job follows real time)"
        )
        found.append(
            _warning(
                "dst_overlap",
                f"On {_days(len(overlaps))} in the year after start {what}: "
                + _listing([d for _, d in overlaps])
                + ".",
                [day for day, _ in overlaps],
            )
        )
    return found


def _date_dst(
    spec: ScheduleSpec, schedule: Walkable, zone: tzmath.Zone, start: datetime
) -> list[LintWarning | None]:
    """A date job's wall-clock time in a gap or an overlap (a time with an offset is exact).

    The one run is looked at wherever it is after `start`, even past the 365 days.
    """
    wall = spec.scheduled_time
    if wall is None or wall.tzinfo is not None:
        return []
    run = schedule.next_after(start - _ONE_MICRO)
    if run is None:
        return []
    resolution = tzmath.resolve(zone, wall)
    name = tzmath.zone_name(zone)
    day = wall.date().isoformat()
    if resolution.kind == "gap":
        assert resolution.gap_end is not None and resolution.offset_before is not None
        at = tzmath.to_local(zone, run)
        return [
            _warning(
                "dst_gap",
                f"scheduled_time {wall.isoformat()} does not exist in {name}: the clocks "
                f"jump from {_clock(tzmath.to_local(zone, resolution.gap_end - _SECOND) + _SECOND)}"
                f" to {_clock(tzmath.to_local(zone, resolution.gap_end))} that day, so it runs "
                f"late, at {_clock(at)} ({_abbreviation(zone, run)}): a time in a gap is read "
                f"with the offset in force before it "
                f"({_utc_offset(resolution.offset_before)}).",
                [day],
            )
        ]
    if resolution.kind == "ambiguous":
        first, second = resolution.instants
        return [
            _warning(
                "dst_overlap",
                f"scheduled_time {wall.isoformat()} happens twice in {name} (the clocks fall "
                f"back that day): it runs once, at the first ({_abbreviation(zone, first)}), "
                f"not at the second ({_abbreviation(zone, second)}).",
                [day],
            )
        ]
    return []


def _calendar_dst(
    rule: CalendarRule, zone: tzmath.Zone, start: datetime, end: datetime
) -> list[LintWarning | None]:
    """A calendar rule of DAILY or coarser frequency (or its RDATEs) naming a wall-clock
    time that a clock change skips or repeats; HOURLY and MINUTELY rules follow real time
    closely enough that a shifted run is no surprise, and are left alone."""
    recurrence = getattr(rule, "_recurrence", None)
    frequencies = {getattr(one, "freq", None) for one in getattr(recurrence, "rules", ())}
    if not frequencies <= _COARSE_FREQUENCIES:
        return []
    gaps: list[tuple[str, str]] = []
    overlaps: list[tuple[str, str]] = []
    try:
        with work_budget(_calendar_budget()):
            for change in zone_transitions(zone, start, end):
                lo, hi = change.walls
                walls = _calendar_walls(rule, lo)
                if walls is None:
                    return []
                inside: list[datetime] = []
                for wall in walls:
                    if wall >= hi or len(inside) >= 3:
                        break
                    inside.append(wall)
                if not inside:
                    continue
                day = lo.date().isoformat()
                if change.gap:
                    late = [w + (change.after - change.before) for w in inside]
                    gaps.append(
                        (
                            day,
                            f"{_change(zone, change)}: its {_clocks(inside, len(inside))} "
                            f"runs at {_clocks(late, len(late))} (RFC 5545 reads a time in a "
                            "gap with the offset in force before it)",
                        )
                    )
                else:
                    first = change.at - _SECOND
                    overlaps.append(
                        (
                            day,
                            f"{_change(zone, change)}: {_clocks(inside, len(inside))} happens "
                            f"twice and it runs once, at the first ({_abbreviation(zone, first)})",
                        )
                    )
    except CalendarRuleError:
        return []
    found: list[LintWarning | None] = []
    if gaps:
        found.append(
            _warning(
                "dst_gap",
                f"On {_days(len(gaps))} in the year after start a time of its calendar rule "
                "falls in a spring-forward gap, so it runs late that day: "
                + _listing([d for _, d in gaps])
                + ".",
                [day for day, _ in gaps],
            )
        )
    if overlaps:
        found.append(
            _warning(
                "dst_overlap",
                f"On {_days(len(overlaps))} in the year after start a time of its calendar rule "
                "is repeated when the clocks fall back, and it runs once, at the first: "
                + _listing([d for _, d in overlaps])
                + ".",
                [day for day, _ in overlaps],
            )
        )
    return found


def _local_span(zone: tzmath.Zone, start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last local dates of `[start, end)`."""
    return tzmath.to_local(zone, start).date(), tzmath.to_local(zone, end - _ONE_MICRO).date()


def _months_between(first: date, last: date) -> Iterator[tuple[int, int]]:
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _month_list(months: Sequence[tuple[int, int]]) -> str:
    """'Feb, Apr, Jun 2027 and Feb 2028'."""
    by_year: dict[int, list[str]] = {}
    for year, month in months:
        by_year.setdefault(year, []).append(_MONTHS[month - 1])
    return " and ".join(f"{', '.join(names)} {year}" for year, names in by_year.items())


def _missing_day(
    shape: _CronShape, zone: tzmath.Zone, start: datetime, end: datetime
) -> LintWarning | None:
    dom = shape.fields[2]
    if dom.startswith("*"):
        return None  # '*/10' reaching 31 is a step over every day, not a chosen date
    named = sorted(d for d in shape.days.dom | shape.days.dom_nearest if d >= 29)
    if not named:
        return None
    first, last = _local_span(zone, start, end)
    lacking: dict[int, list[tuple[int, int]]] = {}
    for year, month in _months_between(first, last):
        if month not in shape.months:
            continue
        length = calendar.monthrange(year, month)[1]
        for day in named:
            if day > length:
                lacking.setdefault(day, []).append((year, month))
    if not lacking:
        return None
    parts = [f"day {day} is missing from {_month_list(ms)}" for day, ms in lacking.items()]
    months = sorted({m for ms in lacking.values() for m in ms})
    return _warning(
        "missing_day",
        f"Day-of-month '{dom}' names a day that not every month has, so in "
        f"{len(months)} of the months in the year after start there is no run on it "
        f"({'; '.join(parts)}): cron skips a day a month lacks rather than running on the "
        "month's last day (use L for the last day of every month).",
        [date(year, month, 1).isoformat() for year, month in months],
    )


def _dom_and_dow(
    shape: _CronShape, zone: tzmath.Zone, start: datetime, end: datetime
) -> LintWarning | None:
    _, _, dom, _, dow = shape.fields
    if dom.startswith("*") or dow.startswith("*"):
        return None
    empty: frozenset[Any] = frozenset()
    by_dom = replace(shape.days, dow=empty, dow_nth=empty, dow_last=empty, both_required=False)
    by_dow = replace(
        shape.days,
        dom=empty,
        dom_last=False,
        dom_last_weekday=False,
        dom_nearest=empty,
        both_required=False,
    )
    first, last = _local_span(zone, start, end)
    dom_days = set(shape.dates(first, last, by_dom))
    dow_days = set(shape.dates(first, last, by_dow))
    only_dom, only_dow = sorted(dom_days - dow_days), sorted(dow_days - dom_days)
    both = len(dom_days & dow_days)
    half = MAX_DATES // 2

    def examples(days: list[date]) -> str:
        return ", ".join(d.isoformat() for d in days[:3]) if days else "none"

    return _warning(
        "dom_and_dow",
        f"Day-of-month '{dom}' and day-of-week '{dow}' are both restricted, so they combine with "
        "OR, not AND (Vixie/Debian cron): it runs on every day that matches either field. In "
        f"the year after start that is {_days(len(dom_days | dow_days))}: "
        f"{len(only_dom)} only because of day-of-month (e.g. {examples(only_dom)}), "
        f"{len(only_dow)} only because of day-of-week (e.g. {examples(only_dow)}) and "
        f"{both} matching both. For days that match both, use a calendar job with BYMONTHDAY "
        "and BYDAY (e.g. FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR).",
        [d.isoformat() for d in only_dom[:half] + only_dow[:half]],
    )


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _interval_shorter_than_timeout(
    spec: ScheduleSpec,
    schedule: Walkable,
    zone: tzmath.Zone,
    start: datetime,
    end: datetime,
    task_timeout: float | None,
    shape: _CronShape | None,
) -> LintWarning | None:
    policy = getattr(spec, "concurrency_policy", "allow")
    if task_timeout is None or task_timeout <= 0 or policy != "allow":
        return None
    timeout = timedelta(seconds=task_timeout)
    advice = (
        "With concurrency_policy 'allow' a run starts even while the previous one is still "
        "running, so runs can overlap; use 'forbid' (or 'buffer_one'/'replace') or run it "
        "less often."
    )
    if spec.job_type == "interval":
        every = spec.interval_seconds
        if every is None or every >= task_timeout:
            return None
        runs, _ = walk_runs(schedule, start, end, 1)
        return _warning(
            "interval_shorter_than_timeout",
            f"It runs every {_duration(every)} and its task may run for up to "
            f"{_duration(task_timeout)}, so every run can overlap the next. {advice}",
            [_local_date(zone, runs[0])] if runs else [],
        )
    if spec.job_type not in ("cron", "calendar"):
        return None
    if shape is not None:
        shortest, dates, how = _cron_short_gaps(shape, zone, start, end, timeout)
    else:
        shortest, dates = _walked_short_gaps(schedule, zone, start, end, timeout)
        how = f"found among its first {GAP_WALK} runs and the runs around each clock change"
    if shortest is None:
        return None
    return _warning(
        "interval_shorter_than_timeout",
        f"Some of its runs are only {_duration(shortest.total_seconds())} apart and its task "
        f"may run for up to {_duration(task_timeout)} ({how}). {advice}",
        dates,
    )


def _walked_short_gaps(
    schedule: Walkable, zone: tzmath.Zone, start: datetime, end: datetime, timeout: timedelta
) -> tuple[timedelta | None, list[str]]:
    """Gaps shorter than `timeout` among the first `GAP_WALK` runs and those around each clock
    change: the shortest, and the local dates of the runs they follow."""
    segments = [walk_runs(schedule, start, end, GAP_WALK)[0]]
    for change in zone_transitions(zone, start, end):
        around = max(start, change.at - tzmath.MAX_OFFSET_JUMP)
        segments.append(walk_runs(schedule, around, end, GAP_WALK_AT_CHANGE)[0])
    return _short_gaps(segments, zone, timeout)


def _short_gaps(
    segments: list[list[datetime]], zone: tzmath.Zone, timeout: timedelta
) -> tuple[timedelta | None, list[str]]:
    shortest: timedelta | None = None
    dates: set[str] = set()
    # Local dates by UTC quarter hour: every UTC offset in use is a whole number of quarter
    # hours, so no local midnight falls inside one, and a dense job costs 96 lookups a day.
    quarters: dict[datetime, str] = {}
    for runs in segments:
        for before, after in pairwise(runs):
            gap = after - before
            if gap < timeout:
                quarter = before.replace(minute=before.minute // 15 * 15, second=0, microsecond=0)
                if quarter not in quarters:
                    quarters[quarter] = _local_date(zone, quarter)
                dates.add(quarters[quarter])
                shortest = gap if shortest is None else min(shortest, gap)
    return shortest, sorted(dates)


def _cron_short_gaps(
    shape: _CronShape, zone: tzmath.Zone, start: datetime, end: datetime, timeout: timedelta
) -> tuple[timedelta | None, list[str], str]:
    """Like `_walked_short_gaps`, from the expression's fields, over the whole year.

    Walking is no option for cron: next to a clock change that splits an hour (Lord Howe's
    half-hour ones) the engine resolves each second of that hour for every run it finds,
    8 ms a run for ``* * * * * *``. Away from clock changes a day's gaps come from the time
    fields and the gaps between days from the matching dates; at each clock change the runs
    around it are mapped to instants by cron's DST rules (see chalicelib.cron).
    """
    first, last = _local_span(zone, start, end)
    days = list(shape.dates(first, last))
    shortest: timedelta | None = None
    dates: list[str] = []
    in_a_day = shape.shortest_gap_in_a_day()
    if in_a_day is not None and timedelta(seconds=in_a_day) < timeout:
        shortest = timedelta(seconds=in_a_day)
        dates += [day.isoformat() for day in days]
    first_time = shape.hours[0] * 3600 + shape.minutes[0] * 60 + shape.seconds[0]
    last_time = shape.hours[-1] * 3600 + shape.minutes[-1] * 60 + shape.seconds[-1]
    for day, following in pairwise(days):
        gap = timedelta(days=(following - day).days, seconds=first_time - last_time)
        if gap < timeout:
            dates.append(day.isoformat())
            shortest = gap if shortest is None else min(shortest, gap)
    for change in zone_transitions(zone, start, end):
        near, near_dates = _short_gaps([_cron_runs_near(shape, zone, change)], zone, timeout)
        if near is not None:
            dates += near_dates
            shortest = near if shortest is None else min(shortest, near)
    return shortest, dates, f"on {_days(len(set(dates)))} in the year after start"


def _cron_runs_near(shape: _CronShape, zone: tzmath.Zone, change: Transition) -> list[datetime]:
    """A cron job's runs from the two before a clock change's wall times to the two after
    them, as instants, by cron's DST rules."""
    lo, hi = change.walls
    fixed = shape.expression.fixed_time
    instants: set[datetime] = set()
    # Runs inside the change's hours keep their usual spacing but at its two ends, so a dense
    # job (up to 10,800 runs there) is looked at only near them. A pair of runs either side
    # of the part left out is no closer than the pairs between them: nothing false is found.
    inside = set(shape.walls(lo, hi, _CHANGE_ENDS))
    inside.update(w for w in shape.walls_near(hi, _CHANGE_ENDS, before=True) if w >= lo)
    for wall in inside:
        if change.gap:
            if fixed:  # a skipped time runs at the first instant after the gap
                instants.add(change.at)
        else:  # a repeated time runs at its first instant, or at both
            instants.add((wall - change.before).replace(tzinfo=UTC))
            if not fixed:
                instants.add((wall - change.after).replace(tzinfo=UTC))
    outside = shape.walls_near(lo, 2, before=True) + shape.walls_near(hi, 2, before=False)
    for wall in outside:
        resolution = tzmath.resolve(zone, wall)
        if resolution.kind == "gap":
            if fixed and resolution.gap_end is not None:
                instants.add(resolution.gap_end)
        elif resolution.kind == "ambiguous" and fixed:
            instants.add(resolution.instants[0])
        else:
            instants.update(resolution.instants)
    return sorted(instants)


def _date_in_blackout(
    schedule: Walkable, decide: Any, zone: tzmath.Zone, start: datetime
) -> LintWarning | None:
    run = schedule.next_after(start - _ONE_MICRO)
    if run is None:
        return None
    decision: Decision = decide(run)
    local = tzmath.to_local(zone, run)
    why = f" ({decision.reason})" if decision.reason else ""
    if decision.at is None:
        message = (
            f"Its only run, at {local:%Y-%m-%d %H:%M} ({tzmath.zone_name(zone)}), is skipped"
            f"{why}: the job will never run."
        )
    elif decision.at != run:
        moved = tzmath.to_local(zone, decision.at)
        message = (
            f"Its only run, at {local:%Y-%m-%d %H:%M} ({tzmath.zone_name(zone)}), is deferred "
            f"to {moved:%Y-%m-%d %H:%M}{why}."
        )
    else:
        return None
    return _warning("date_in_blackout", message, [local.date().isoformat()])


def _calendar_excludes_all(
    schedule: Walkable, decide: Any, zone: tzmath.Zone, start: datetime, end: datetime
) -> LintWarning | None:
    runs, capped = walk_runs(schedule, start, end, EXCLUSION_WALK)
    if not runs:
        return None
    reasons: list[str] = []
    for run in runs:
        decision: Decision = decide(run)
        if decision.at is not None:
            return None
        if decision.reason and decision.reason not in reasons:
            reasons.append(decision.reason)
    days = sorted({_local_date(zone, run) for run in runs})
    why = f" ({'; '.join(reasons[:3])})" if reasons else ""
    if capped:
        scope = (
            f"Its first {len(runs)} runs, through {days[-1]}, are all skipped by its holiday "
            "calendars or blackout windows (later runs were not checked)"
        )
    else:
        scope = (
            f"All {len(runs)} of its runs in the year after start, on {_days(len(days))}, are "
            "skipped by its holiday calendars or blackout windows"
        )
    return _warning("calendar_excludes_all", f"{scope}{why}: it never runs.", days)
