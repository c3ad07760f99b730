"""Calendar rules: RFC 5545 recurrence text, fired in the wall-clock time of a job's zone.

Accepted text (read with python-dateutil's `rrule` engine; property and rule-part names are
case-insensitive, blank lines and surrounding whitespace are ignored, lines are separated by
real newlines):

- a bare rule, ``FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1``, optionally ``RRULE:``-prefixed;
- or property lines: at most one ``DTSTART``, any number of ``RRULE``, ``RDATE`` and
  ``EXDATE``. Date-times are ``YYYYMMDDTHHMMSS`` (wall-clock), ``YYYYMMDDTHHMMSSZ`` (UTC) or
  ``YYYYMMDD`` (a date); ``DTSTART``, ``RDATE`` and ``EXDATE`` take ``;TZID=<IANA zone>`` and
  ``;VALUE=DATE-TIME|DATE``, and ``RDATE``/``EXDATE`` take comma-separated lists.

Semantics:

- Recurrence is expanded in the WALL-CLOCK time of the job's zone (`zone`): BYHOUR=9 means 09:00
  local, every day, whatever the UTC offset. Date-times without ``Z`` or ``TZID`` are wall-clock
  times in `zone`.
- Without DTSTART the rule starts at 00:00 local time on the local day of `anchor` (the job's
  creation), so the times of day it inherits from DTSTART (BYHOUR/BYMINUTE/BYSECOND) are
  midnight. An explicit DTSTART is itself an occurrence only if it matches the rule (dateutil's
  reading; RFC 5545 leaves an unsynchronised DTSTART undefined).
- ``Z`` values, and values whose TZID is another zone, are converted to the wall-clock time in
  `zone` of the same instant. This is a deliberate simplification: RFC 5545 would expand a
  ``TZID=Europe/London`` rule in London time, while here it keeps the *job zone* wall-clock time
  of DTSTART, which drifts by an hour from London time while the two zones disagree on DST. A
  TZID that reads the wall-clock time as the same instant as `zone` does (the same zone, or an
  alias such as US/Eastern for America/New_York) is taken as-is, so a DTSTART inside a DST gap
  stays inside it (see below) instead of being moved to the end of the gap.
- UNTIL is inclusive. A ``Z`` UNTIL is converted to wall-clock time in `zone` (dateutil refuses
  an aware UNTIL with a naive DTSTART) and compared in wall-clock time like everything else. A
  UNTIL without ``Z`` is read in DTSTART's TZID (or `zone`). A date-only UNTIL includes that
  whole day. ``EXDATE;VALUE=DATE`` removes every occurrence on that local day; an
  ``RDATE;VALUE=DATE`` adds one at DTSTART's time of day.
- Wall-clock times map to instants per RFC 5545 §3.3.5: a time repeated when the clocks fall back
  means its FIRST occurrence (the hour that repeats fires once, not twice); a time inside a
  spring-forward gap is read with the UTC offset in force before the gap (02:30 on the US
  spring-forward day is 07:30Z = 03:30 EDT). Wall-clock order is then not always instant order,
  so the next fire time is found with `tzmath.first_instant_after`.
- RFC 5545 restrictions are enforced rather than silently ignored (dateutil ignores them):
  BYWEEKNO only with YEARLY, no BYYEARDAY with DAILY/WEEKLY/MONTHLY, no BYMONTHDAY with WEEKLY,
  numbered BYDAY (``-1FR``) only with MONTHLY/YEARLY, BYSETPOS only with another BYxxx part,
  COUNT and UNTIL not together, EXRULE (deprecated by RFC 5545) not at all. FREQ=SECONDLY is
  refused: sub-minute schedules are interval jobs.

Bounds (the module never hangs):

- dateutil checks UNTIL only against occurrences it has produced, so a rule that matches
  nothing (``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``) walks period by period to year 9999 whatever
  UNTIL says: seconds for DAILY, longer for MINUTELY. Each search therefore looks `HORIZON` (100
  years) ahead of its start -- long enough for a rule that fires every 28 to 40 years, such as
  "Feb 29 when it is a Monday" -- and runs dateutil on a copy of the problem moved forward by a
  multiple of 400 years. The Gregorian calendar repeats exactly every 400 years (146097 days, a
  whole number of weeks), so the moved copy has the same occurrences, and dateutil's own stop at
  year 9999 then comes at most 400 years after the end of the search instead of thousands.
- dateutil always walks from DTSTART, so a minutely rule started years ago would be walked minute
  by minute; each search restarts the rule at the start of its last period (respecting INTERVAL
  and WKST) before the search start, with the defaults DTSTART implies made explicit.
- COUNT is resolved once, when parsing, into the wall-clock time of the last counted occurrence
  (which then acts as UNTIL); it is capped at `MAX_COUNT`, and counts only occurrences within
  `HORIZON` of DTSTART.
- Nothing fires after the end of year 9998 (dateutil cannot represent the dates past 9999 that
  its walk reaches).

A rule, or a whole calendar rule, that does not fire within `HORIZON` after `anchor` is refused
when parsed ("calendar_rule never fires ...").

Work budget (issue 11: ``FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29`` from 1900 took 35 s to preview):

- Every evaluation spends from a `WorkBudget`: one step per occurrence dateutil produces and
  one per period dateutil steps over inside a day (its ``__mod_distance``, the costly part of
  HOURLY and MINUTELY walks), plus a wall-time cap as a backstop. Past either,
  `BudgetExceeded` (a `CalendarRuleError`) is raised: the API answers 422, the tick records the
  job's `schedule_error`. A caller that evaluates many times (a preview, a job's creation)
  shares one budget with `work_budget()`; otherwise each call gets its own.
- A rule may fire at most once a minute: BYSECOND takes one value, as FREQ=SECONDLY is
  refused. Sub-minute schedules are interval jobs, and a rule firing every second costs 21,600
  occurrences per search (the search looks `MAX_OFFSET_JUMP` either side).

Pure: nothing here reads the clock.
"""

from __future__ import annotations

import bisect
import contextvars
import heapq
import itertools
import re
import time as _time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from dateutil.rrule import DAILY, HOURLY, MINUTELY, MONTHLY, WEEKLY, YEARLY, rrule, weekdays

from chalicelib.tzmath import (
    MAX_OFFSET_JUMP,
    Zone,
    first_instant_after,
    get_zone,
    is_known_zone,
    resolve,
    to_local,
    zone_name,
)

HORIZON = timedelta(days=36_525)  # 100 Julian years
MAX_COUNT = 10_000
_HORIZON_TEXT = "100 years"

# The calendar repeats every 400 years: moving a search by a multiple of this keeps every weekday,
# leap day and ISO week number in place.
_CYCLE_YEARS = 400
# dateutil's walk fails once it reaches dates in year 10000; keeping searches out of year 9999
# means every occurrence a search asks for is produced before that happens.
_LAST_WALL = datetime(9998, 12, 31, 23, 59, 59)

_FREQUENCIES = {
    "YEARLY": YEARLY,
    "MONTHLY": MONTHLY,
    "WEEKLY": WEEKLY,
    "DAILY": DAILY,
    "HOURLY": HOURLY,
    "MINUTELY": MINUTELY,
}
_WEEKDAY_NAMES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Rule part -> (dateutil keyword, smallest and largest magnitude, negatives allowed).
_INT_LIST_PARTS = {
    "BYSECOND": ("bysecond", 0, 59, False),  # 60 (a leap second) would crash dateutil
    "BYMINUTE": ("byminute", 0, 59, False),
    "BYHOUR": ("byhour", 0, 23, False),
    "BYMONTHDAY": ("bymonthday", 1, 31, True),
    "BYYEARDAY": ("byyearday", 1, 366, True),
    "BYWEEKNO": ("byweekno", 1, 53, True),
    "BYMONTH": ("bymonth", 1, 12, False),
    "BYSETPOS": ("bysetpos", 1, 366, True),
}
_RULE_PARTS = ("FREQ", "UNTIL", "COUNT", "INTERVAL", *_INT_LIST_PARTS, "BYDAY", "WKST")
_PROPERTIES = ("DTSTART", "RRULE", "RDATE", "EXDATE")
_DATE_TIME_FORMS = "YYYYMMDDTHHMMSS (wall-clock), YYYYMMDDTHHMMSSZ (UTC) or YYYYMMDD (a date)"
_DATE_TIME = re.compile(r"([0-9]{8})(?:T([0-9]{6})(Z?))?", re.ASCII)
_BYDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)", re.ASCII)


class CalendarRuleError(ValueError):
    """Message says what is wrong and what is accepted."""


# Steps and seconds one evaluation may use (a preview of 100 runs, a job's creation, one
# next-run search of the tick). A daily rule's search costs tens of steps; an every-minute
# rule's about 400; Feb 29 at 23:59 as a MINUTELY rule about 25,000.
MAX_STEPS = 100_000
MAX_SECONDS = 5.0


class BudgetExceeded(CalendarRuleError):
    def __init__(self, steps: int, seconds: float) -> None:
        super().__init__(
            f"calendar_rule needs more work than one evaluation may use ({steps:,} steps or "
            f"{seconds:g} s) to find its runs; write it with a coarser FREQ and explicit BYxxx "
            "parts (FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59 rather than "
            "FREQ=MINUTELY with the same parts), or ask for fewer runs"
        )


@dataclass
class WorkBudget:
    """Steps and a monotonic deadline (not the schedule's clock: a cap on CPU use)."""

    steps: int = MAX_STEPS
    seconds: float = MAX_SECONDS
    spent: int = 0
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.deadline = _time.monotonic() + self.seconds

    def spend(self, steps: int = 1) -> None:
        self.spent += steps
        if self.spent > self.steps or (self.spent % 256 == 0 and _time.monotonic() > self.deadline):
            raise BudgetExceeded(self.steps, self.seconds)


_BUDGET: contextvars.ContextVar[WorkBudget | None] = contextvars.ContextVar(
    "calendar_rule_budget", default=None
)


@contextmanager
def work_budget(budget: WorkBudget | None = None) -> Iterator[WorkBudget]:
    """Every evaluation inside the block spends from one budget (the current one if any)."""
    current = _BUDGET.get()
    if current is not None and budget is None:
        yield current
        return
    own = budget or WorkBudget()
    token = _BUDGET.set(own)
    try:
        yield own
    finally:
        _BUDGET.reset(token)


def _spend(steps: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(steps)


class _CountedRRule(rrule):
    """dateutil's rrule, spending one step of the current budget per in-day period step."""

    def _rrule__mod_distance(self, value: int, byxxx: Any, base: int) -> Any:
        _spend()
        return rrule._rrule__mod_distance(self, value, byxxx, base)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class CalendarRule:
    text: str
    _recurrence: _Recurrence = field(repr=False, kw_only=True)

    @classmethod
    def parse(cls, text: str, zone: Zone, anchor: datetime) -> CalendarRule:
        """Read `text` for a job in `zone` created at the aware instant `anchor`."""
        _require_aware(anchor, "anchor")
        with work_budget():  # COUNT's resolution and the checks below spend from one budget
            return cls._checked(text, _read(text, zone, anchor), zone, anchor)

    @classmethod
    def _checked(
        cls, text: str, recurrence: _Recurrence, zone: Zone, anchor: datetime
    ) -> CalendarRule:
        start = to_local(zone, anchor) - MAX_OFFSET_JUMP
        for one in recurrence.rules:
            # Checked one by one: a rule that never matches would cost a full bounded walk
            # on every later search, even when the other lines keep the calendar rule alive.
            if next(one.walls_from(start), None) is None:
                raise CalendarRuleError(
                    f"calendar_rule never fires: the RRULE on {one.label} has no occurrence "
                    f"in the {_HORIZON_TEXT} after {anchor.isoformat()}; a rule must match at "
                    "least one real date and time (BYMONTH=2;BYMONTHDAY=30, for one, never does)"
                )
        rule = cls(text, _recurrence=recurrence)
        if rule.next_after(anchor) is None:
            raise CalendarRuleError(
                f"calendar_rule never fires: nothing is left after {anchor.isoformat()} once "
                "EXDATEs are removed; it needs an RRULE or RDATE occurrence after the job's "
                "creation"
            )
        return rule

    def next_after(self, after: datetime) -> datetime | None:
        """The first occurrence strictly after the aware `after`, in UTC; None if none is left.

        "None" also covers a rule that does not fire within `HORIZON` after `after`.
        """
        _require_aware(after, "after")
        recurrence = self._recurrence
        # first_instant_after needs wall-clock times from MAX_OFFSET_JUMP before `after`.
        start = to_local(recurrence.zone, after) - MAX_OFFSET_JUMP
        with work_budget():
            return first_instant_after(recurrence.walls_from(start), recurrence.instants, after)

    def iter_after(self, after: datetime) -> Iterator[datetime]:
        """The occurrences strictly after the aware `after`, ascending, in UTC."""
        current = self.next_after(after)
        while current is not None:
            yield current
            current = self.next_after(current)


@dataclass(frozen=True)
class _Rule:
    """One RRULE, with its defaults from DTSTART made explicit and COUNT turned into UNTIL."""

    label: str
    dtstart: datetime
    until: datetime | None  # inclusive wall-clock bound
    freq: int
    interval: int
    wkst: int
    engine: rrule = field(compare=False)

    def walls_from(self, start: datetime) -> Iterator[datetime]:
        """Ascending wall-clock occurrences from `start`, at most `HORIZON` ahead of it."""
        begin = max(start, self.dtstart)
        end = _horizon_end(begin)
        if self.until is not None:
            end = min(end, self.until)
        if begin > end:
            return
        for wall in _walk(self.engine, self._period_start(begin), end):
            if wall >= begin:
                yield wall

    def _period_start(self, wall: datetime) -> datetime:
        """The start of the last period of the rule that begins at or before `wall`.

        Restarting dateutil there gives the same occurrences from `wall` on as walking from
        DTSTART: periods are counted from DTSTART's period in steps of INTERVAL, and every
        period after the first is whole (the first is cut at DTSTART, hence kept as it is).
        """
        first, n = self.dtstart, self.interval
        if self.freq == YEARLY:
            years = (wall.year - first.year) // n * n
            return datetime(first.year + years, 1, 1) if years else first
        if self.freq == MONTHLY:
            months = (wall.year * 12 + wall.month - first.year * 12 - first.month) // n * n
            if not months:
                return first
            year, month0 = divmod(first.year * 12 + first.month - 1 + months, 12)
            return datetime(year, month0 + 1, 1)
        if self.freq == WEEKLY:
            week = datetime.combine(first.date(), time()) - timedelta(
                days=(first.weekday() - self.wkst) % 7
            )
            weeks = (wall - week).days // 7 // n * n
            return week + timedelta(weeks=weeks) if weeks else first
        if self.freq == DAILY:
            day = datetime.combine(first.date(), time())
            days = (wall - day).days // n * n
            return day + timedelta(days=days) if days else first
        step = timedelta(hours=1) if self.freq == HOURLY else timedelta(minutes=1)
        grid = first.replace(minute=0, second=0) if self.freq == HOURLY else first.replace(second=0)
        steps = (wall - grid) // step // n * n
        return grid + steps * step if steps else first


@dataclass(frozen=True)
class _Recurrence:
    zone_name: str
    rules: tuple[_Rule, ...]
    rdates: tuple[datetime, ...]  # ascending wall-clock times
    exdates: frozenset[datetime]
    exdays: frozenset[datetime]  # EXDATE;VALUE=DATE, as midnight of the day
    zone: Zone = field(compare=False)

    def walls_from(self, start: datetime) -> Iterator[datetime]:
        """Ascending, distinct wall-clock occurrences from `start`, EXDATEs removed."""
        streams = [rule.walls_from(start) for rule in self.rules]
        streams.append(iter(self.rdates[bisect.bisect_left(self.rdates, start) :]))
        previous = None
        for wall in heapq.merge(*streams):
            if wall == previous:
                continue
            previous = wall
            midnight = datetime.combine(wall.date(), time())
            if wall not in self.exdates and midnight not in self.exdays:
                yield wall

    def instants(self, wall: datetime) -> tuple[datetime, ...]:
        return (_instant(self.zone, wall),)


def _read(text: str, zone: Zone, anchor: datetime) -> _Recurrence:
    if "\\n" in text:
        raise CalendarRuleError(
            "calendar_rule contains the two characters \\n; separate its lines with real "
            "newlines, e.g. 'DTSTART:20260105T090000' newline 'RRULE:FREQ=DAILY'"
        )
    lines = [
        _split_line(number, line.strip())
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not lines:
        raise CalendarRuleError(
            "calendar_rule is empty; expected an RFC 5545 rule such as "
            "'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9', or lines such as "
            "'DTSTART;TZID=America/New_York:20260105T090000' and 'RRULE:FREQ=DAILY'"
        )
    by_name: dict[str, list[_Line]] = {name: [] for name in _PROPERTIES}
    for line in lines:
        if line.name == "EXRULE":
            raise CalendarRuleError(
                f"{line.where}: EXRULE is deprecated by RFC 5545 and not supported; "
                "remove single occurrences with EXDATE, or narrow the RRULE instead"
            )
        if line.name not in by_name:
            raise CalendarRuleError(
                f"{line.where}: unknown property {line.name!r}; accepted lines are "
                f"{', '.join(_PROPERTIES)} (NAME[;PARAM=VALUE]:VALUE), or a bare rule "
                "'FREQ=...'"
            )
        by_name[line.name].append(line)

    if len(by_name["DTSTART"]) > 1:
        raise CalendarRuleError(
            f"calendar_rule has {len(by_name['DTSTART'])} DTSTART lines; at most one is accepted"
        )
    if by_name["DTSTART"]:
        start_line = by_name["DTSTART"][0]
        values = _read_values(start_line, zone)
        if len(values) != 1:
            raise CalendarRuleError(f"{start_line.where}: DTSTART takes exactly one date-time")
        dtstart = values[0][0]
        tzid = _tzid(start_line)
        until_zone = zone if tzid is None else tzid
    else:
        dtstart = datetime.combine(to_local(zone, anchor).date(), time())
        until_zone = zone

    rules = tuple(_read_rule(line, dtstart, until_zone, zone) for line in by_name["RRULE"])
    rdates = {
        datetime.combine(wall.date(), dtstart.time()) if is_date else wall
        for line in by_name["RDATE"]
        for wall, is_date in _read_values(line, zone)
    }
    exdates: set[datetime] = set()
    exdays: set[datetime] = set()
    for line in by_name["EXDATE"]:
        for wall, is_date in _read_values(line, zone):
            (exdays if is_date else exdates).add(wall)
    if not rules and not rdates:
        raise CalendarRuleError(
            "calendar_rule has no RRULE or RDATE, so it never fires; add a rule such as "
            "'RRULE:FREQ=DAILY;BYHOUR=9' or explicit times such as 'RDATE:20260105T090000'"
        )
    return _Recurrence(
        zone_name=zone_name(zone),
        rules=rules,
        rdates=tuple(sorted(rdates)),
        exdates=frozenset(exdates),
        exdays=frozenset(exdays),
        zone=zone,
    )


@dataclass(frozen=True)
class _Line:
    number: int
    text: str
    name: str
    params: dict[str, str]
    value: str

    @property
    def label(self) -> str:
        return f"line {self.number} ({self.text!r})"

    @property
    def where(self) -> str:
        return f"calendar_rule {self.label}"


def _split_line(number: int, text: str) -> _Line:
    if ":" not in text:
        if "=" in text:
            return _Line(number, text, "RRULE", {}, text)  # a bare rule
        raise CalendarRuleError(
            f"calendar_rule line {number} ({text!r}) is neither a property line "
            f"(NAME[;PARAM=VALUE]:VALUE, NAME one of {', '.join(_PROPERTIES)}) nor a bare "
            "rule ('FREQ=...')"
        )
    head, value = text.split(":", 1)
    name, *raw_params = head.split(";")
    params: dict[str, str] = {}
    for raw in raw_params:
        key, equals, param = raw.partition("=")
        if not equals:
            raise CalendarRuleError(
                f"calendar_rule line {number} ({text!r}): parameter {raw!r} is not NAME=VALUE"
            )
        params[key.strip().upper()] = param.strip().strip('"')
    return _Line(number, text, name.strip().upper(), params, value.strip())


def _tzid(line: _Line) -> Zone | None:
    name = line.params.get("TZID")
    if name is None:
        return None
    if not is_known_zone(name):
        raise CalendarRuleError(
            f"{line.where}: TZID {name!r} is not a known time zone; use an IANA zone name "
            "such as America/New_York or Europe/London"
        )
    return get_zone(name)


def _read_values(line: _Line, zone: Zone) -> list[tuple[datetime, bool]]:
    """The (wall-clock time in `zone`, is a date) values of a DTSTART, RDATE or EXDATE line."""
    unknown = sorted(set(line.params) - {"TZID", "VALUE"})
    if unknown:
        raise CalendarRuleError(
            f"{line.where}: unknown parameter {unknown[0]}; {line.name} accepts TZID and VALUE"
        )
    kind = line.params.get("VALUE", "").upper()
    if kind not in ("", "DATE-TIME", "DATE"):
        raise CalendarRuleError(
            f"{line.where}: VALUE={kind} is not supported; accepted: VALUE=DATE-TIME or VALUE=DATE"
        )
    source = _tzid(line)
    values = []
    for text in line.value.split(","):
        wall, is_date, is_utc = _parse_date_time(text.strip(), line.where)
        if kind and is_date != (kind == "DATE"):
            raise CalendarRuleError(
                f"{line.where}: {text!r} does not match VALUE={kind}; a DATE is YYYYMMDD, "
                "a DATE-TIME is YYYYMMDDTHHMMSS[Z]"
            )
        if source is not None and (is_utc or is_date):
            raise CalendarRuleError(
                f"{line.where}: {text!r} cannot take a TZID; TZID applies to wall-clock "
                "date-times (YYYYMMDDTHHMMSS), not to UTC (...Z) values or dates"
            )
        if is_utc:
            wall = to_local(zone, wall.replace(tzinfo=UTC))
        elif source is not None:
            wall = _rezone(wall, source, zone)
        values.append((wall, is_date))
    return values


def _parse_date_time(text: str, where: str) -> tuple[datetime, bool, bool]:
    """(naive date-time, is a date, is UTC) of one RFC 5545 DATE or DATE-TIME value."""
    match = _DATE_TIME.fullmatch(text.upper())
    if match is None:
        raise CalendarRuleError(
            f"{where}: {text!r} is not a date-time; accepted: {_DATE_TIME_FORMS}"
        )
    day, clock, utc = match.groups()
    try:
        value = datetime.strptime(day + (clock or "000000"), "%Y%m%d%H%M%S")
    except ValueError:
        raise CalendarRuleError(
            f"{where}: {text!r} is not a real date and time of day; accepted: {_DATE_TIME_FORMS}"
        ) from None
    return value, clock is None, utc == "Z"


def _read_rule(line: _Line, dtstart: datetime, until_zone: Zone, zone: Zone) -> _Rule:
    where = line.where
    if line.params:
        raise CalendarRuleError(f"{where}: RRULE takes no parameters; write 'RRULE:FREQ=...'")
    parts: dict[str, str] = {}
    for chunk in line.value.upper().split(";"):
        if not chunk.strip():
            continue  # tolerate a trailing ';'
        name, equals, value = (piece.strip() for piece in chunk.partition("="))
        if not equals or not value:
            raise CalendarRuleError(f"{where}: rule part {chunk!r} is not NAME=VALUE")
        if name not in _RULE_PARTS:
            raise CalendarRuleError(
                f"{where}: unknown rule part {name}; accepted: {', '.join(_RULE_PARTS)}"
            )
        if name in parts:
            raise CalendarRuleError(f"{where}: {name} is given twice; each part may appear once")
        parts[name] = value

    freq_name = parts.get("FREQ")
    accepted = ", ".join(_FREQUENCIES)
    if freq_name is None:
        raise CalendarRuleError(f"{where}: the rule has no FREQ; accepted: FREQ={accepted}")
    if freq_name == "SECONDLY":
        raise CalendarRuleError(
            f"{where}: FREQ=SECONDLY is not supported; use an interval job for sub-minute "
            f"schedules (calendar rules accept FREQ={accepted})"
        )
    if freq_name not in _FREQUENCIES:
        raise CalendarRuleError(
            f"{where}: FREQ={freq_name} is not a frequency; accepted: {accepted}"
        )
    freq = _FREQUENCIES[freq_name]
    if "COUNT" in parts and "UNTIL" in parts:
        raise CalendarRuleError(
            f"{where}: COUNT and UNTIL are both given; RFC 5545 allows one or the other"
        )
    interval = _positive_int(parts.get("INTERVAL", "1"), "INTERVAL", 10**6, where)
    wkst = _WEEKDAY_NAMES.index(_one_of(parts.get("WKST", "MO"), "WKST", _WEEKDAY_NAMES, where))

    kwargs: dict[str, Any] = {"freq": freq}
    for name, (keyword, low, high, signed) in _INT_LIST_PARTS.items():
        if name in parts:
            kwargs[keyword] = _int_list(parts[name], name, low, high, signed, where)
    if len(kwargs.get("bysecond", ())) > 1:
        raise CalendarRuleError(
            f"{where}: BYSECOND={parts['BYSECOND']} fires more than once a minute; a calendar "
            "rule fires at most once a minute (BYSECOND takes one value), as FREQ=SECONDLY is "
            "refused: use an interval job (interval_seconds) for sub-minute schedules"
        )
    if "BYDAY" in parts:
        kwargs["byweekday"] = _byday(parts["BYDAY"], freq_name, "BYWEEKNO" in parts, where)
    _check_rfc_combinations(parts, freq_name, where)
    _make_dtstart_defaults_explicit(kwargs, freq, dtstart)
    try:
        # WKST is always passed: dateutil's own default is calendar.firstweekday(), process-wide
        # state, while RFC 5545's default is MO.
        engine = _CountedRRule(dtstart=dtstart, interval=interval, wkst=wkst, **kwargs)
    except ValueError as exc:
        raise CalendarRuleError(
            f"{where}: dateutil rejects the rule: {exc} (check INTERVAL against BYHOUR/BYMINUTE)"
        ) from None

    until = None
    if "UNTIL" in parts:
        until = _read_until(parts["UNTIL"], until_zone, zone, where)
    rule = _Rule(line.label, dtstart, until, freq, interval, wkst, engine)
    if "COUNT" in parts:
        count = _positive_int(parts["COUNT"], "COUNT", MAX_COUNT, where)
        rule = _Rule(
            line.label, dtstart, _count_end(engine, dtstart, count), freq, interval, wkst, engine
        )
    return rule


def _check_rfc_combinations(parts: dict[str, str], freq: str, where: str) -> None:
    # RFC 5545 §3.3.10 forbids these; dateutil would quietly give them a meaning of its own.
    forbidden = {
        "BYWEEKNO": ("MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY"),
        "BYYEARDAY": ("MONTHLY", "WEEKLY", "DAILY"),
        "BYMONTHDAY": ("WEEKLY",),
    }
    for name, frequencies in forbidden.items():
        if name in parts and freq in frequencies:
            allowed = [f for f in _FREQUENCIES if f not in frequencies]
            raise CalendarRuleError(
                f"{where}: {name} cannot be used with FREQ={freq}; RFC 5545 allows it with "
                f"FREQ={', '.join(allowed)}"
            )
    if "BYSETPOS" in parts and not any(
        name.startswith("BY") and name != "BYSETPOS" for name in parts
    ):
        raise CalendarRuleError(
            f"{where}: BYSETPOS picks from the set another BYxxx part makes (e.g. "
            "BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1); the rule has none"
        )


def _make_dtstart_defaults_explicit(kwargs: dict[str, Any], freq: int, dtstart: datetime) -> None:
    # dateutil fills parts the rule leaves out from DTSTART (RFC 5545: "the missing ... are
    # taken from DTSTART"). Searches restart the rule at a later period start, so the parts must
    # stay tied to the real DTSTART: give them explicitly, exactly as dateutil would fill them.
    if not any(k in kwargs for k in ("byweekno", "byyearday", "bymonthday", "byweekday")):
        if freq == YEARLY:
            kwargs.setdefault("bymonth", (dtstart.month,))
            kwargs["bymonthday"] = (dtstart.day,)
        elif freq == MONTHLY:
            kwargs["bymonthday"] = (dtstart.day,)
        elif freq == WEEKLY:
            kwargs["byweekday"] = (dtstart.weekday(),)
    # dateutil numbers frequencies from YEARLY = 0 up to SECONDLY = 6: "<" means "coarser".
    if freq < HOURLY:
        kwargs.setdefault("byhour", (dtstart.hour,))
    if freq < MINUTELY:
        kwargs.setdefault("byminute", (dtstart.minute,))
    kwargs.setdefault("bysecond", (dtstart.second,))


def _read_until(text: str, source: Zone, zone: Zone, where: str) -> datetime:
    wall, is_date, is_utc = _parse_date_time(text, f"{where} UNTIL")
    if is_date:
        wall = wall.replace(hour=23, minute=59, second=59)  # the whole day is included
    if is_utc:
        # dateutil refuses an aware UNTIL next to a naive DTSTART, and everything here is
        # compared in the job zone's wall-clock time anyway.
        return to_local(zone, wall.replace(tzinfo=UTC))
    return _rezone(wall, source, zone)


def _count_end(engine: rrule, dtstart: datetime, count: int) -> datetime:
    """The wall-clock time of the COUNT-th occurrence, or the horizon if fewer come by then."""
    end = _horizon_end(dtstart)
    counted = list(
        itertools.takewhile(lambda wall: wall <= end, _walk(engine, dtstart, end, count))
    )
    if not counted:
        # An UNTIL before DTSTART: the rule is empty, and searches see so without walking.
        return dtstart - timedelta(seconds=1)
    return counted[-1] if len(counted) == count else end


def _walk(
    engine: rrule, first: datetime, end: datetime, count: int | None = None
) -> Iterator[datetime]:
    """`engine`'s occurrences from `first` on, for a search that needs none after `end`.

    The search is moved forward by whole 400-year cycles, as close to year 9999 as it goes, so
    that dateutil's walk (which stops at year 9999, but not at UNTIL when nothing matches) ends
    at most one cycle after `end`.
    """
    years = (_LAST_WALL.year - end.year) // _CYCLE_YEARS * _CYCLE_YEARS
    moved = engine.replace(
        dtstart=first.replace(year=first.year + years),
        # With COUNT, dateutil stops by itself; it deprecates COUNT and UNTIL together.
        until=None if count else end.replace(year=end.year + years),
        count=count,
    )
    moved.__class__ = _CountedRRule  # rrule.replace builds a plain rrule
    occurrences = iter(moved)
    while True:
        _spend()
        try:
            wall = next(occurrences)
        except StopIteration:
            return
        except BudgetExceeded:
            raise  # a ValueError too, but not the end of the walk
        except ValueError:
            # dateutil's walk ends by building a date in year 10000 ("year 10000 is out of
            # range"): past `end`, because `end` is in year 9998 at the latest.
            return
        yield wall.replace(year=wall.year - years)


def _horizon_end(begin: datetime) -> datetime:
    return begin + HORIZON if begin <= _LAST_WALL - HORIZON else _LAST_WALL


def _instant(zone: Zone, wall: datetime) -> datetime:
    """The instant RFC 5545 §3.3.5 gives the wall-clock time `wall` in `zone`, in UTC."""
    resolution = resolve(zone, wall)
    if resolution.kind == "gap":
        # Read with the offset in force before the gap: 02:30 EST on a spring-forward day is
        # 07:30Z, i.e. 03:30 EDT.
        assert resolution.offset_before is not None
        return (wall - resolution.offset_before).replace(tzinfo=UTC)
    return resolution.instants[0]  # at a fall-back, the first of the two


def _rezone(wall: datetime, source: Zone, zone: Zone) -> datetime:
    """The wall-clock time in `zone` of the wall-clock time `wall` in `source`."""
    instant = _instant(source, wall)
    if _instant(zone, wall) == instant:
        # Same zone, an alias of it, or a zone that agrees at that time: keep the wall-clock
        # time, which also keeps a time in a DST gap in the gap (converting the instant would
        # move it to the other side, changing the time of day every later occurrence inherits).
        return wall
    return to_local(zone, instant)


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")


def _positive_int(text: str, name: str, maximum: int, where: str) -> int:
    if not re.fullmatch(r"[0-9]{1,9}", text, re.ASCII) or not 1 <= int(text) <= maximum:
        raise CalendarRuleError(
            f"{where}: {name}={text} must be a whole number from 1 to {maximum}"
        )
    return int(text)


def _one_of(text: str, name: str, accepted: tuple[str, ...], where: str) -> str:
    if text not in accepted:
        raise CalendarRuleError(
            f"{where}: {name}={text} is not accepted; use one of {', '.join(accepted)}"
        )
    return text


def _int_list(
    text: str, name: str, low: int, high: int, signed: bool, where: str
) -> tuple[int, ...]:
    numbers = []
    for item in text.split(","):
        item = item.strip()
        number = int(item) if re.fullmatch(r"[+-]?[0-9]{1,3}", item, re.ASCII) else None
        ok = number is not None and (
            low <= abs(number) <= high if signed else low <= number <= high
        )
        if number is None or not ok:
            span = f"{low}..{high} or -{high}..-{low}" if signed else f"{low}..{high}"
            raise CalendarRuleError(
                f"{where}: {name}={text} is not a comma-separated list of integers in {span}"
            )
        numbers.append(number)
    return tuple(numbers)


def _byday(text: str, freq: str, has_weekno: bool, where: str) -> tuple[Any, ...]:
    days = []
    for item in text.split(","):
        item = item.strip()
        match = _BYDAY.fullmatch(item)
        if match is None:
            raise CalendarRuleError(
                f"{where}: BYDAY={text} is not a list of weekdays; accepted: MO, TU, WE, TH, "
                "FR, SA, SU, optionally numbered within the month or year (1MO, -1FR)"
            )
        ordinal, name = match.groups()
        day = weekdays[_WEEKDAY_NAMES.index(name)]
        if ordinal is None:
            days.append(day)
            continue
        n = int(ordinal)
        if freq not in ("MONTHLY", "YEARLY") or has_weekno:
            raise CalendarRuleError(
                f"{where}: BYDAY={text} numbers a weekday ({item}), which RFC 5545 allows only "
                "with FREQ=MONTHLY or FREQ=YEARLY (without BYWEEKNO); use plain weekdays"
            )
        if not 1 <= abs(n) <= 53:
            raise CalendarRuleError(
                f"{where}: BYDAY={text}: {item} is not a weekday number; accepted: 1..53 or "
                "-53..-1 before the weekday"
            )
        days.append(day(n))
    return tuple(days)
