"""Holiday calendars: named sets of days, in a zone, that jobs leave out or keep to.

A calendar is a sorted tuple of inclusive date spans (`HolidayCalendar.spans`), merged so that
no two overlap or touch. A job lists calendars by name (`exclude_calendars`: no run on their
days; `only_calendars`: runs on their days only); an occurrence's day is its local date in the
CALENDAR's zone (`HolidayCalendar.day_of`), so "2027-12-25 in Europe/London" means the same
24 hours whatever the job's own zone is.

Two input forms, both refused with a 422 naming the field and what is accepted:

- `dates`: ``"YYYY-MM-DD"`` or ``"YYYY-MM-DD/YYYY-MM-DD"`` (both days included; a range of
  at most 366 days), at most 1,000 entries, years 1970-8999 (`parse_dates`).
- `ics`: the text of an iCalendar file (RFC 5545, at most 256 KB), read by `parse_ics`:

  - the days of its VEVENTs (other components, VTIMEZONE, VTODO, VALARM..., are skipped);
  - an all-day event (``DTSTART;VALUE=DATE:20271225``) ends the day before its DTEND, which
    RFC 5545 makes exclusive (§3.6.1); without DTEND or DURATION it is one day;
  - an event with a time covers the days from its start to its end as written (a time ends
    a day: an end at 00:00 is not a day of it); without an end it is its start's day. The
    date is read as written: a ``Z`` or TZID time is not moved into the calendar's zone;
  - an RRULE is expanded with python-dateutil, in whole days: FREQ DAILY to YEARLY (a
    holiday is a day: BYHOUR/BYMINUTE/BYSECOND are refused), to at most 10 years after
    DTSTART (occurrences starting before DTSTART + 10 years); UNTIL's day is included.
    DTSTART is always an occurrence (RFC 5545 §3.8.5.3). dateutil's BYEASTER (days from
    Easter Sunday: 1 is Easter Monday) is accepted with FREQ=YEARLY alone. RDATE adds days,
    EXDATE removes days, an event with RECURRENCE-ID replaces its master's occurrence, and
    STATUS:CANCELLED events count for nothing;
  - at most 1,000 occurrences in all; folded lines (a line starting with a space or tab
    continues the one before, §3.1) are unfolded; anything malformed is an error naming
    its line.

Bounds (nothing here hangs; issue 11 found a rule that took 35 s): dateutil checks UNTIL
only against the occurrences it produces, so a rule that matches nothing
(``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``) walks on to year 9999 whatever its window. A rule is
therefore expanded on a copy moved forward by a multiple of 400 years -- the Gregorian
calendar repeats exactly every 400 years, weekdays and leap days included (see
calendar_rule) -- to just below year 9999, so such a walk is at most ~400 years of periods
(a third of a second for DAILY). BYEASTER does not repeat every 400 years, so it is not
moved, and is taken only with FREQ=YEARLY alone, which fires every year. At most
`MAX_RULES` rules are expanded per file, within `RULE_SECONDS` of work in all.

Pure: nothing here reads the clock (the work cap measures elapsed time only).
"""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from dateutil.rrule import rrulestr

from chalicelib.errors import FieldError, InvalidInput
from chalicelib.tzmath import get_zone, to_local

Loc = tuple[str | int, ...]
Span = tuple[date, date]

MIN_YEAR = 1970
MAX_YEAR = 8999
MAX_ENTRIES = 1_000
MAX_RANGE_DAYS = 366
MAX_ICS_BYTES = 256 * 1024
MAX_OCCURRENCES = 1_000
RULE_YEARS = 10
MAX_RULES = 100
RULE_SECONDS = 2.0
MAX_DEPTH = 8

DATES_ACCEPTED = (
    'accepted: "YYYY-MM-DD" or "YYYY-MM-DD/YYYY-MM-DD" (both days included, a range of at most '
    f"{MAX_RANGE_DAYS} days), years {MIN_YEAR}-{MAX_YEAR}"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


# -- the calendar ---------------------------------------------------------------------------


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, with overlapping and adjacent spans joined: ((24, 26), (27, 31)) -> ((24, 31))."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if merged and (start - merged[-1][1]).days <= 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def span_text(span: Span) -> str:
    start, end = span
    return start.isoformat() if start == end else f"{start.isoformat()}/{end.isoformat()}"


@dataclass(frozen=True)
class HolidayCalendar:
    """A named set of days in `timezone`; `spans` are made sorted and merged on creation."""

    name: str
    timezone: str
    spans: tuple[Span, ...]
    description: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", merge_spans(self.spans))

    def contains(self, day: date) -> bool:
        i = bisect.bisect_right(self.spans, day, key=lambda span: span[0])
        return i > 0 and day <= self.spans[i - 1][1]

    def day_of(self, instant: datetime) -> date:
        """The local date of the aware `instant` in the calendar's zone."""
        return to_local(get_zone(self.timezone), instant).date()

    def covers(self, instant: datetime) -> bool:
        """Whether the aware `instant` falls on one of the calendar's days, in its zone."""
        return self.contains(self.day_of(instant))

    def dates_text(self) -> list[str]:
        """The spans as the API shows them: "2027-12-25" or "2027-12-24/2027-12-31"."""
        return [span_text(span) for span in self.spans]

    @property
    def day_count(self) -> int:
        return sum((end - start).days + 1 for start, end in self.spans)


# -- dates ----------------------------------------------------------------------------------


def parse_dates(values: Sequence[str], loc: Loc) -> tuple[Span, ...]:
    """The spans of `dates` entries, merged; InvalidInput naming each bad entry (`loc` + i)."""
    if len(values) > MAX_ENTRIES:
        raise InvalidInput(
            [
                FieldError(
                    loc,
                    f"at most {MAX_ENTRIES:,} entries (got {len(values):,}); write runs of days "
                    'as ranges ("2027-12-24/2027-12-31")',
                    "value_error.too_many",
                )
            ]
        )
    spans: list[Span] = []
    errors: list[FieldError] = []
    for i, value in enumerate(values):
        try:
            spans.append(_entry(value))
        except ValueError as exc:
            errors.append(FieldError((*loc, i), f"{exc}; {DATES_ACCEPTED}", "value_error.date"))
    if errors:
        raise InvalidInput(errors)
    return merge_spans(spans)


def _entry(value: object) -> Span:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    parts = value.split("/")
    if len(parts) > 2:
        raise ValueError(f"{_show(value)} has more than one '/'")
    start = _day(parts[0], value)
    end = _day(parts[1], value) if len(parts) == 2 else start
    if end < start:
        raise ValueError(f"{_show(value)} ends before it starts")
    days = (end - start).days + 1
    if days > MAX_RANGE_DAYS:
        raise ValueError(f"{_show(value)} is {days} days long")
    return start, end


def _day(text: str, whole: str) -> date:
    if not _DATE.fullmatch(text):
        raise ValueError(f"{_show(whole)} is not a date or a range of dates")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_show(text)} is not a day of the calendar") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"{_show(text)} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return day


def _show(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


# -- iCalendar ------------------------------------------------------------------------------


class _IcsError(ValueError):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


@dataclass(frozen=True)
class _Line:
    number: int  # where the (unfolded) line starts in the text, from 1
    name: str  # upper case
    params: dict[str, str]  # names upper case, values unquoted
    value: str


@dataclass
class _Event:
    begin: int  # the BEGIN:VEVENT line
    props: dict[str, list[_Line]] = field(default_factory=dict)

    def one(self, name: str) -> _Line | None:
        found = self.props.get(name, [])
        if len(found) > 1:
            raise _IcsError(found[1].number, f"a VEVENT has at most one {name}")
        return found[0] if found else None


@dataclass
class _Work:
    """The rules expanded so far and the time they took (the backstop of the bounds)."""

    rules: int = 0
    seconds: float = 0.0


def parse_ics(text: str, loc: Loc) -> tuple[Span, ...]:
    """The spans of the days of an iCalendar file's events, merged (see the module's text)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_ICS_BYTES:
        raise InvalidInput(
            [
                FieldError(
                    loc,
                    f"the iCalendar text is {size:,} bytes; at most {MAX_ICS_BYTES:,} bytes "
                    "(256 KB) are accepted",
                    "value_error.too_long",
                )
            ]
        )
    try:
        return merge_spans(_spans(_events(_unfold(text))))
    except _IcsError as exc:
        raise InvalidInput([FieldError(loc, str(exc), "value_error.ics")]) from None


def _unfold(text: str) -> list[_Line]:
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(re.split(r"\r\n|\n|\r", text), start=1):
        if raw[:1] in (" ", "\t"):
            if not logical:
                raise _IcsError(number, "a folded line (starting with a space) continues nothing")
            first, before = logical[-1]
            logical[-1] = (first, before + raw[1:])
        elif raw.strip():
            logical.append((number, raw))
    return [_content_line(number, line) for number, line in logical]


_NAME = re.compile(r"[A-Za-z0-9-]+")
_PARAM = re.compile(r';([A-Za-z0-9-]+)=((?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)')


def _content_line(number: int, text: str) -> _Line:
    expected = "expected NAME:VALUE or NAME;PARAM=VALUE:VALUE, such as DTSTART;VALUE=DATE:20271225"
    name = _NAME.match(text)
    if name is None:
        raise _IcsError(number, f"{_show(text)} is not a content line; {expected}")
    pos = name.end()
    params: dict[str, str] = {}
    while pos < len(text) and text[pos] == ";":
        param = _PARAM.match(text, pos)
        if param is None:
            raise _IcsError(number, f"{_show(text)} has a malformed parameter; {expected}")
        params[param.group(1).upper()] = param.group(2).replace('"', "")
        pos = param.end()
    if pos >= len(text) or text[pos] != ":":
        raise _IcsError(number, f"{_show(text)} has no ':' before its value; {expected}")
    return _Line(number, name.group().upper(), params, text[pos + 1 :])


def _events(lines: list[_Line]) -> list[_Event]:
    """The VEVENTs of the VCALENDARs, with their properties (not those of their VALARMs)."""
    stack: list[tuple[str, int]] = []
    events: list[_Event] = []
    current: _Event | None = None
    for line in lines:
        if line.name in ("BEGIN", "END"):
            component = line.value.strip().upper()
            if not component:
                raise _IcsError(line.number, f"{line.name} names no component")
            if line.name == "BEGIN":
                if not stack and component != "VCALENDAR":
                    raise _IcsError(
                        line.number,
                        f"BEGIN:{_trim(component)} outside a calendar; an iCalendar file "
                        "starts with BEGIN:VCALENDAR",
                    )
                if len(stack) >= MAX_DEPTH:
                    raise _IcsError(line.number, f"components nest deeper than {MAX_DEPTH}")
                stack.append((component, line.number))
                if component == "VEVENT" and len(stack) == 2:
                    current = _Event(line.number)
                continue
            if not stack or stack[-1][0] != component:
                open_ = (
                    f"BEGIN:{_trim(stack[-1][0])} of line {stack[-1][1]} is still open"
                    if stack
                    else "no component is open"
                )
                raise _IcsError(line.number, f"END:{_trim(component)} closes nothing: {open_}")
            stack.pop()
            if current is not None and len(stack) == 1:
                events.append(current)
                current = None
            continue
        if not stack:
            raise _IcsError(
                line.number,
                f"{_trim(line.name)} outside a calendar; the text must be BEGIN:VCALENDAR ... "
                "END:VCALENDAR",
            )
        if current is not None and len(stack) == 2:
            current.props.setdefault(line.name, []).append(line)
    if stack:
        component, number = stack[-1]
        raise _IcsError(number, f"BEGIN:{_trim(component)} is never closed (no END:{component})")
    if not lines:
        raise _IcsError(1, "the text is empty; send an iCalendar file (BEGIN:VCALENDAR ...)")
    if not events:
        raise _IcsError(
            lines[0].number,
            "the calendar has no VEVENT; its days are the days of its events "
            "(BEGIN:VEVENT, DTSTART;VALUE=DATE:20271225, END:VEVENT)",
        )
    return events


def _trim(text: str) -> str:
    return text if len(text) <= 40 else text[:40] + "..."


def _spans(events: list[_Event]) -> list[Span]:
    # Occurrences replaced by an event with RECURRENCE-ID: (UID, the day it replaces).
    replaced: set[tuple[str, date]] = set()
    for event in events:
        rid = event.one("RECURRENCE-ID")
        uid = event.one("UID")
        if rid is not None:
            replaced.add((uid.value.strip() if uid else "", _values(rid)[0]))
    spans: list[Span] = []
    work = _Work()
    for event in events:
        status = event.one("STATUS")
        if status is not None and status.value.strip().upper() == "CANCELLED":
            continue
        spans.extend(_event_spans(event, replaced, work))
        if len(spans) > MAX_OCCURRENCES:
            rule = event.one("RRULE")
            raise _IcsError(
                rule.number if rule else event.begin,
                f"the events come to more than {MAX_OCCURRENCES:,} occurrences; at most "
                f"{MAX_OCCURRENCES:,} in all are accepted (bound a rule with UNTIL or COUNT)",
            )
    return spans


def _event_spans(event: _Event, replaced: set[tuple[str, date]], work: _Work) -> list[Span]:
    start_line = event.one("DTSTART")
    if start_line is None:
        raise _IcsError(
            event.begin, "the VEVENT has no DTSTART; every event needs one (DTSTART;VALUE=DATE:...)"
        )
    start, all_day = _moment(start_line, start_line.value.strip())
    length = _length(event, start, all_day)
    starts = {start.date()}
    rule = event.one("RRULE")
    if rule is not None:
        if work.rules >= MAX_RULES:
            raise _IcsError(rule.number, f"at most {MAX_RULES} events with an RRULE are accepted")
        began = time.monotonic()
        starts |= _expand(rule, start.date())
        work.rules += 1
        work.seconds += time.monotonic() - began
        if work.seconds > RULE_SECONDS:
            raise _IcsError(
                rule.number,
                f"the recurrences take more than {RULE_SECONDS:g} s to expand; use fewer "
                "or simpler rules (rules that never fire are the slow ones)",
            )
    for line in event.props.get("RDATE", []):
        starts.update(_values(line))
    for line in event.props.get("EXDATE", []):
        starts.difference_update(_values(line))
    if event.one("RECURRENCE-ID") is None:
        uid = event.one("UID")
        starts -= {day for key, day in replaced if key == (uid.value.strip() if uid else "")}
    last = date(MAX_YEAR, 12, 31)
    out: list[Span] = []
    for day in starts:
        if (last - day).days < length:
            raise _IcsError(
                event.begin, f"the event runs past the end of year {MAX_YEAR}, the last accepted"
            )
        out.append((day, day + timedelta(days=length)))
        if len(out) > MAX_OCCURRENCES:
            break
    return out


def _length(event: _Event, start: datetime, all_day: bool) -> int:
    """How many days after its first day an occurrence of the event ends on."""
    end_line = event.one("DTEND")
    duration_line = event.one("DURATION")
    if end_line is not None and duration_line is not None:
        raise _IcsError(duration_line.number, "a VEVENT has DTEND or DURATION, not both")
    if end_line is not None:
        end, _ = _moment(end_line, end_line.value.strip())
        if end < start:
            raise _IcsError(end_line.number, "DTEND is before DTSTART")
        length = end - start
        where = end_line.number
    elif duration_line is not None:
        length = _duration(duration_line)
        where = duration_line.number
    else:
        length = timedelta(days=1) if all_day else timedelta(0)
        where = event.begin
    # The days it touches: an end at 00:00 (an all-day DTEND, always) is not a day of it.
    last = (start + length - timedelta(microseconds=1)).date() if length else start.date()
    days = max((last - start.date()).days, 0)
    if days + 1 > MAX_RANGE_DAYS:
        raise _IcsError(
            where, f"the event lasts {days + 1} days; at most {MAX_RANGE_DAYS} are accepted"
        )
    return days


_MOMENT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})(?:T([0-9]{2})([0-9]{2})([0-9]{2})Z?)?")
_MOMENT_TEXT = "YYYYMMDD (a date) or YYYYMMDDTHHMMSS, optionally ending in Z"


def _moment(line: _Line, text: str) -> tuple[datetime, bool]:
    """A date or date-time value as written (its zone ignored), and whether it is a date."""
    kind = line.params.get("VALUE", "").upper()
    if kind not in ("", "DATE", "DATE-TIME"):
        raise _IcsError(
            line.number, f"{line.name};VALUE={_trim(kind)} is not accepted; use DATE or DATE-TIME"
        )
    found = _MOMENT.fullmatch(text)
    if found is None or (kind == "DATE" and found.group(4) is not None):
        accepted = "YYYYMMDD" if kind == "DATE" else _MOMENT_TEXT
        raise _IcsError(line.number, f"{line.name} {_show(text)} is not {accepted}")
    numbers = [int(g) for g in found.groups() if g is not None]
    try:
        moment = datetime(*numbers)  # type: ignore[arg-type]
    except ValueError:
        raise _IcsError(line.number, f"{line.name} {_show(text)} is not a real date") from None
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise _IcsError(
            line.number, f"{line.name} {_show(text)} is outside the years {MIN_YEAR}-{MAX_YEAR}"
        )
    return moment, found.group(4) is None


def _values(line: _Line) -> list[date]:
    """The days of an RDATE, EXDATE or RECURRENCE-ID (comma-separated lists)."""
    if line.params.get("VALUE", "").upper() == "PERIOD":
        raise _IcsError(line.number, f"{line.name};VALUE=PERIOD is not accepted; list dates")
    return [_moment(line, part.strip())[0].date() for part in line.value.split(",")]


_DURATION = re.compile(
    r"\+?P(?:([0-9]{1,6})W|([0-9]{1,6}D)?(?:T([0-9]{1,6}H)?([0-9]{1,6}M)?([0-9]{1,6}S)?)?)"
)


def _duration(line: _Line) -> timedelta:
    text = line.value.strip().upper()
    found = _DURATION.fullmatch(text)
    if found is None or text.rstrip("T").endswith("P") or text.endswith("T"):
        raise _IcsError(
            line.number,
            f"DURATION {_show(text)} is not a duration such as P1D, P2W or PT8H (not negative)",
        )
    weeks, days, hours, minutes, seconds = (
        int(g.rstrip("DHMS")) if g else 0 for g in found.groups()
    )
    return timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)


# -- RRULE ----------------------------------------------------------------------------------

_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Rule part -> the largest magnitude of its numbers (negatives count from the end).
_INT_LISTS = {
    "BYMONTH": 12,
    "BYMONTHDAY": 31,
    "BYYEARDAY": 366,
    "BYWEEKNO": 53,
    "BYSETPOS": 366,
}
_PARTS = ("FREQ", "UNTIL", "COUNT", "INTERVAL", "BYDAY", "WKST", "BYEASTER", *_INT_LISTS)
_BYDAY = re.compile(r"([+-]?[0-9]{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
# A moved copy of a rule starts no later than this year (see the module's text): its window of
# RULE_YEARS ends before year 9999, where dateutil stops.
_MOVED_START = 9988
_CYCLE_YEARS = 400


def _expand(line: _Line, start: date) -> set[date]:
    """The days an RRULE fires on from `start`, up to RULE_YEARS later (see the module)."""
    parts = _rule_parts(line)
    end = _years_later(start, RULE_YEARS) - timedelta(days=1)
    if "UNTIL" in parts:
        until = parts.pop("UNTIL")
        if "COUNT" in parts:
            raise _IcsError(line.number, "RRULE has COUNT and UNTIL; RFC 5545 allows one of them")
        end = min(end, _moment(line, until)[0].date())
    end = min(end, date(MAX_YEAR, 12, 31))
    # BYEASTER does not repeat every 400 years: its rules (yearly, so never idle) stay put.
    shift = 0 if "BYEASTER" in parts else _CYCLE_YEARS * ((_MOVED_START - start.year) // 400)
    text = ";".join(f"{name}={value}" for name, value in parts.items())
    days: set[date] = set()
    if end < start:
        return days
    last = datetime(end.year + shift, end.month, end.day)
    try:
        rule = rrulestr(text, dtstart=datetime(start.year + shift, start.month, start.day))
        for occurrence in rule:
            if occurrence > last:
                break
            days.add(date(occurrence.year - shift, occurrence.month, occurrence.day))
            if len(days) > MAX_OCCURRENCES:
                break
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        raise _IcsError(line.number, f"RRULE is not accepted: {exc}") from None
    return days


def _rule_parts(line: _Line) -> dict[str, str]:
    where = line.number
    parts: dict[str, str] = {}
    for part in line.value.strip().split(";"):
        name, sep, value = part.partition("=")
        name, value = name.strip().upper(), value.strip().upper()
        if not sep or not name or not value:
            raise _IcsError(where, f"RRULE part {_show(part)} is not NAME=VALUE")
        if name not in _PARTS:
            raise _IcsError(
                where,
                f"RRULE part {_trim(name)} is not accepted; accepted: {', '.join(_PARTS)}"
                + (" (a holiday calendar counts whole days)" if name.startswith("BY") else ""),
            )
        if name in parts:
            raise _IcsError(where, f"RRULE has {name} twice")
        parts[name] = value
    freq = parts.get("FREQ")
    if freq not in _FREQUENCIES:
        raise _IcsError(
            where,
            f"RRULE FREQ={_trim(freq or '')} is not accepted; a holiday calendar takes "
            f"FREQ={', '.join(_FREQUENCIES)}"
            if freq
            else "RRULE has no FREQ (such as FREQ=YEARLY)",
        )
    for name in ("COUNT", "INTERVAL"):
        if name in parts:
            _number(parts[name], name, 1, 10_000, where)
    for name, largest in _INT_LISTS.items():
        for value in parts[name].split(",") if name in parts else ():
            if _number(value, name, -largest, largest, where) == 0:
                raise _IcsError(
                    where, f"RRULE {name} takes no 0; 1 to {largest} or -{largest} to -1"
                )
    for value in parts["BYDAY"].split(",") if "BYDAY" in parts else ():
        found = _BYDAY.fullmatch(value)
        if found is None or (found.group(1) and not 1 <= abs(int(found.group(1))) <= 53):
            raise _IcsError(
                where, f"RRULE BYDAY {_show(value)} is not MO..SU, optionally numbered (-1FR, 2MO)"
            )
    if parts.get("WKST", "MO") not in _WEEKDAYS:
        raise _IcsError(where, f"RRULE WKST takes one of {', '.join(_WEEKDAYS)}")
    if "BYEASTER" in parts:
        if freq != "YEARLY" or set(parts) - {"FREQ", "BYEASTER", "INTERVAL", "COUNT", "UNTIL"}:
            raise _IcsError(
                where, "RRULE BYEASTER is accepted with FREQ=YEARLY and no other BY part"
            )
        _number(parts["BYEASTER"], "BYEASTER", -366, 366, where)
    return parts


def _number(text: str, name: str, low: int, high: int, where: int) -> int:
    if not re.fullmatch(r"[+-]?[0-9]{1,6}", text) or not low <= int(text) <= high:
        raise _IcsError(where, f"RRULE {name} {_show(text)} is not a whole number {low}-{high}")
    return int(text)


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February, in a year that has none
        return date(day.year + years, 3, 1)
