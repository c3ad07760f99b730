"""Cron expressions: parsing, validation and the next fire time in a job's time zone.

Syntax
------
- Five fields, ``minute hour day-of-month month day-of-week``, or six with the seconds
  FIRST, ``second minute hour day-of-month month day-of-week``. Anything else is refused.
- Macros, case-insensitive: ``@yearly``/``@annually`` (``0 0 1 1 *``), ``@monthly``
  (``0 0 1 * *``), ``@weekly`` (``0 0 * * 0``), ``@daily``/``@midnight`` (``0 0 * * *``) and
  ``@hourly`` (``0 * * * *``). ``@reboot`` is refused: a scheduler has no reboot to run at.
- Each field is a comma list of ``*``, ``N``, ``A-B``, ``*/S``, ``A/S`` (A to the field's
  maximum) and ``A-B/S``. Ranges: second and minute 0-59, hour 0-23, day-of-month 1-31,
  month 1-12 or JAN-DEC, day-of-week 0-7 (0 and 7 are both Sunday) or SUN-SAT; names are
  case-insensitive and allowed in ranges (``MON-FRI``). A step is 1 up to the field's
  maximum. Reversed ranges (``5-1``; also ``MON-SUN``, since SUN is 0: write ``MON-7``) are
  refused rather than wrapped around.
- Day-of-month also takes ``L`` (last day of the month), ``LW`` (last weekday, Mon-Fri, of
  the month) and ``NW`` (the weekday nearest day N, Quartz's rule: a Saturday moves to the
  Friday before and a Sunday to the Monday after, but never into another month, so ``1W``
  on a Saturday is Monday the 3rd and ``31W`` on a Sunday is Friday the 29th; a month
  shorter than N days has no match). Day-of-week also takes ``D#K`` (the K-th weekday D of
  the month, K 1-5) and ``DL`` (the last weekday D of the month). All of these can be comma
  list items (``1#1,5L``).
- ``H`` spreads jobs over time, as Jenkins does, in any field: one value picked by a stable
  hash (SHA-256, never Python's salted ``hash()``) of ``"{spread_key}:{field name}"``, so a
  thousand ``H * * * *`` jobs start on different minutes, each always on the same one, and
  one job's minute and hour are hashed apart. ``H(A-B)`` picks within A-B; ``H/S`` runs every
  S starting at hash % S (``H/15``: four runs an hour, 15 minutes apart); ``H(A-B)/S`` does
  the same inside A-B. A step is 1 up to the size of its range. All of them can be comma
  list items, and every H in one field shares that field's hash (``H(0-9),H(30-39)`` gives
  two minutes 30 apart). A bare ``H`` (or ``H/S``) picks day-of-month from 1-28, which every
  month has, and day-of-week from 0-6, so Sunday is not twice as likely (both as Jenkins);
  an explicit ``H(A-B)`` may use the whole field. ``H`` and ``h`` are alike.
  `CronExpression.parse` takes the job's id as ``spread_key``; without one (``None``) the key
  is ``"0"``, so an expression parsed for no job in particular still resolves to the same
  values every time. ``canonical`` is the resolved expression in plain cron
  (``H/15 H * * *`` -> ``7/15 14 * * *``), and every rule below applies to that expression:
  ``H H * * *`` is a fixed-time job, ``0 0 H * H`` matches either day field.

Which days match
----------------
Day-of-month and day-of-week combine as in Vixie/Debian cron: when either field *starts
with* ``*`` (so ``*/2`` counts) a day must match both; otherwise a day matching either one
matches (``0 0 1 * MON`` runs on the 1st and on every Monday). An expression whose date
fields match no date at all (``0 0 30 2 *``) can never fire and is refused when parsed. The
calendar repeats every 400 years, so one 400-year cycle decides that, and it also bounds
every search: `CronExpression.next_after` gives up (returns None) after 400 years.

Daylight-saving time
--------------------
Fields describe wall-clock time in the job's zone. Where the clock is not continuous, we
follow Debian cron (as cronsim does), because that is what people who write cron
expressions expect:

- A *fixed-time* job, one whose minute and hour fields both do not start with ``*``
  (``30 2 * * *``, ``0,30 1 * * 1-5``), runs once per wall-clock day as its author meant.
  A time skipped by a spring-forward runs at the first instant after the gap (several
  skipped times collapse into that one run), and a time repeated by a fall-back runs only
  at its first occurrence. This also holds for six-field expressions (cronsim exempts them).
- Every other job (``*/15 * * * *``, ``0 * * * *``) follows real time: a skipped time does
  not run and a repeated time runs at both of its instants.

Results are aware UTC datetimes on a whole second. Nothing here reads the clock.
"""

from __future__ import annotations

import calendar
import hashlib
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from functools import lru_cache, partial
from itertools import islice

from chalicelib import tzmath

# The Gregorian calendar repeats every 400 years (146,097 days, a whole number of weeks), so a
# date pattern that matches nothing in one 400-year cycle matches nothing ever, and one that
# matches something does so within any 400 consecutive years.
HORIZON_YEARS = 400

MACROS: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ACCEPTED_MACROS = ", ".join(MACROS)
_FIELD_COUNT_RULE = (
    "a cron expression has 5 or 6 fields: 'minute hour day-of-month month day-of-week', "
    "optionally preceded by 'second' (or a macro such as @daily)"
)

_ZERO = timedelta(0)
_SECOND = timedelta(seconds=1)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)

# Spelled out rather than taken from `calendar`, whose names follow the process locale.
_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_DIGITS = re.compile(r"[0-9]+")
_SPREAD_FORMS = "H, H(A-B), H/S or H(A-B)/S, e.g. H(0-29)/10"
# What an L/W/# item looks like, to say where those belong when one turns up elsewhere.
_SPECIAL_ITEM = re.compile(r"L|LW|[0-9]+[LW]|[0-9A-Z]*#[0-9]*")


class CronError(ValueError):
    """An invalid cron expression. The message names the field and what is accepted, e.g.
    "minute '61' is out of range 0-59"."""


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int
    names: dict[str, int] = field(default_factory=dict)
    extras: str = ""
    # The top of a bare H's range when it is narrower than the field's (day-of-month, -week).
    spread_hi: int | None = None

    @property
    def span(self) -> str:
        if not self.names:
            return f"{self.lo}-{self.hi}"
        first = min(self.names, key=lambda n: self.names[n])
        last = max(self.names, key=lambda n: self.names[n])
        return f"{self.lo}-{self.hi} (or {first}-{last})"

    def accepted(self) -> str:
        return (
            f"accepted: *, a value {self.span}, a range such as 1-5, a step such as */5, 5/10 "
            f"or 1-30/5{self.extras}, a spread value {_SPREAD_FORMS}, or a comma list of those"
        )

    def invalid(self, item: str) -> CronError:
        if self.name not in ("day-of-month", "day-of-week") and _SPECIAL_ITEM.fullmatch(
            item.upper()
        ):
            return CronError(
                f"{self.name} '{item}': L, W and # are only accepted in day-of-month "
                "(L, LW, 15W) and day-of-week (5L, 5#3)"
            )
        return CronError(f"{self.name} '{item}' is not valid; {self.accepted()}")

    def value(self, text: str, item: str) -> int:
        """One value of this field: digits or a name, within range."""
        where = "" if text == item else f" in '{item}'"
        if text.startswith("-"):
            raise CronError(f"{self.name} '{item}': negative numbers are not accepted")
        if _DIGITS.fullmatch(text):
            # Long digit strings are out of range anyway; don't let int() chew on them.
            number = int(text) if len(text) <= 6 else self.hi + 1
            if not self.lo <= number <= self.hi:
                raise CronError(f"{self.name} '{text}'{where} is out of range {self.span}")
            return number
        named = self.names.get(text.upper())
        if named is None:
            raise self.invalid(item)
        return named

    def step(self, text: str, item: str) -> int:
        if not _DIGITS.fullmatch(text):
            raise CronError(
                f"{self.name} '{item}': the step after '/' must be a whole number 1-{self.hi}"
            )
        step = int(text) if len(text) <= 6 else self.hi + 1
        if step == 0:
            raise CronError(f"{self.name} '{item}' has a step of 0; a step must be 1-{self.hi}")
        if step > self.hi:
            raise CronError(f"{self.name} '{item}': step {step} is out of range 1-{self.hi}")
        return step

    def values(self, item: str) -> range:
        """The values of one list item: `*`, `N`, `A-B`, `*/S`, `A/S` or `A-B/S`."""
        body, slash, step_text = item.partition("/")
        step = self.step(step_text, item) if slash else 1
        if body == "*":
            return range(self.lo, self.hi + 1, step)
        if body.startswith("-"):
            raise CronError(f"{self.name} '{item}': negative numbers are not accepted")
        if "-" not in body:
            start = self.value(body, item)
            # `A/S` runs from A to the field's maximum, as in Vixie cron.
            return range(start, (self.hi if slash else start) + 1, step)
        first, _, last = body.partition("-")
        if not last:
            raise CronError(f"{self.name} range '{item}' is incomplete; write it as A-B, e.g. 1-5")
        lo, hi = self.value(first, item), self.value(last, item)
        if lo > hi:
            hint = " (Sunday is 0; write it as 7 at the end of a range)" if self.names else ""
            raise CronError(
                f"{self.name} range '{item}' is reversed: write the smaller value first{hint}"
            )
        return range(lo, hi + 1, step)

    def items(self, text: str) -> list[str]:
        items = text.split(",")
        if "" in items:
            raise CronError(
                f"{self.name} '{text}' has an empty list item (a doubled or stray comma)"
            )
        return items

    def parse(self, text: str) -> tuple[int, ...]:
        return tuple(sorted({v for item in self.items(text) for v in self.values(item)}))

    def resolve_spread(self, text: str, spread_key: str) -> str:
        """`text` with each H item replaced by the plain cron it stands for under
        `spread_key`; other items are kept as written (so text without H comes back as is)."""
        if "H" not in text.upper():
            return text
        seed = hashlib.sha256(f"{spread_key}:{self.name}".encode()).digest()
        number = int.from_bytes(seed[:8], "big")
        return ",".join(
            self._spread_item(item, number) if item.upper().startswith("H") else item
            for item in self.items(text)
        )

    def _spread_item(self, item: str, number: int) -> str:
        """One `H`, `H(A-B)`, `H/S` or `H(A-B)/S` item as plain cron, picked by `number`."""
        body, slash, step_text = item[1:].partition("/")
        if not body:
            lo, hi = self.lo, self.hi if self.spread_hi is None else self.spread_hi
        elif body.startswith("(") and body.endswith(")"):
            first, dash, last = body[1:-1].partition("-")
            if not (first and dash and last):
                raise CronError(
                    f"{self.name} '{item}': an H range is written H(A-B) with A and B in "
                    f"{self.span}, e.g. H(0-29); accepted forms: {_SPREAD_FORMS}"
                )
            lo, hi = self.value(first, item), self.value(last, item)
            if lo > hi:
                raise CronError(
                    f"{self.name} '{item}': the H range is reversed; write the smaller value "
                    "first, e.g. H(10-30)"
                )
        else:
            raise CronError(
                f"{self.name} '{item}' is not a valid H; accepted forms: {_SPREAD_FORMS}"
            )
        size = hi - lo + 1
        if not slash:
            return str(lo + number % size)
        if not _DIGITS.fullmatch(step_text):
            raise CronError(
                f"{self.name} '{item}': the step after '/' must be a whole number 1-{size}"
            )
        step = int(step_text) if len(step_text) <= 6 else size + 1
        if step == 0:
            raise CronError(f"{self.name} '{item}' has a step of 0; a step must be 1-{size}")
        if step > size:
            # Jenkins's rule: a longer step could leave the range with no value at all.
            raise CronError(
                f"{self.name} '{item}': step {step} is out of range 1-{size}, the number of "
                f"values in {lo}-{hi}"
            )
        start = lo + number % step
        if start + step > hi:  # a single run: say so plainly
            return str(start)
        return f"{start}/{step}" if hi == self.hi else f"{start}-{hi}/{step}"


_SECOND_FIELD = _Field("second", 0, 59)
_MINUTE_FIELD = _Field("minute", 0, 59)
_HOUR_FIELD = _Field("hour", 0, 23)
_DOM_FIELD = _Field(
    "day-of-month",
    1,
    31,
    extras=", L (last day), LW (last weekday), 15W (weekday nearest the 15th)",
    spread_hi=28,  # Jenkins: a bare H picks a day every month has
)
_MONTH_FIELD = _Field("month", 1, 12, _MONTH_NAMES)
_DOW_FIELD = _Field(
    "day-of-week",
    0,
    7,
    _DAY_NAMES,
    extras=" (0 and 7 are Sunday), 5#3 (third Friday), 5L (last Friday)",
    spread_hi=6,  # Jenkins: 0 and 7 are both Sunday, so a bare H leaves 7 out
)


_FIELDS = (_SECOND_FIELD, _MINUTE_FIELD, _HOUR_FIELD, _DOM_FIELD, _MONTH_FIELD, _DOW_FIELD)


@dataclass(frozen=True)
class _DaySpec:
    """The day-of-month and day-of-week fields, which together decide which days match."""

    dom: frozenset[int]
    dom_last: bool  # L
    dom_last_weekday: bool  # LW
    dom_nearest: frozenset[int]  # NW: weekday nearest day N
    dow: frozenset[int]  # 0 = Sunday
    dow_nth: frozenset[tuple[int, int]]  # D#K: (weekday, k)
    dow_last: frozenset[int]  # DL
    both_required: bool  # Vixie: AND when either field starts with '*', otherwise OR


def _parse_dom(text: str) -> tuple[frozenset[int], bool, bool, frozenset[int]]:
    days: set[int] = set()
    last = last_weekday = False
    nearest: set[int] = set()
    for item in _DOM_FIELD.items(text):
        upper = item.upper()
        if upper == "L":
            last = True
        elif upper == "LW":
            last_weekday = True
        elif upper.endswith("W"):
            if not _DIGITS.fullmatch(upper[:-1]):
                raise CronError(f"day-of-month '{item}': W follows a single day, e.g. 15W")
            nearest.add(_DOM_FIELD.value(upper[:-1], item))
        else:
            days.update(_DOM_FIELD.values(item))
    return frozenset(days), last, last_weekday, frozenset(nearest)


def _parse_dow(text: str) -> tuple[frozenset[int], frozenset[tuple[int, int]], frozenset[int]]:
    days: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _DOW_FIELD.items(text):
        upper = item.upper()
        if "#" in upper:
            day_text, _, k_text = upper.partition("#")
            if not day_text:
                raise CronError(f"day-of-week '{item}' needs a weekday before '#', e.g. 5#3")
            day = _DOW_FIELD.value(day_text, item) % 7
            if k_text not in ("1", "2", "3", "4", "5"):
                raise CronError(
                    f"day-of-week '{item}': the number after '#' must be 1-5 "
                    "(a month has at most five of any weekday)"
                )
            nth.add((day, int(k_text)))
        elif upper.endswith("L"):
            if upper == "L":
                raise CronError(
                    "day-of-week 'L' needs a weekday before it, e.g. 5L (last Friday); "
                    "for the last day of the month use L in day-of-month"
                )
            last.add(_DOW_FIELD.value(upper[:-1], item) % 7)
        else:
            days.update(v % 7 for v in _DOW_FIELD.values(item))
    return frozenset(days), frozenset(nth), frozenset(last)


@lru_cache(maxsize=4096)
def _matching_days(spec: _DaySpec, length: int, first_weekday: int) -> tuple[int, ...]:
    """The days of a month matching `spec`, given the month's length and the weekday of its
    1st (`calendar.monthrange` numbering, Monday = 0): nothing else about a month matters,
    so at most 28 answers per expression, hence the cache."""

    def weekday(day: int) -> int:  # cron numbering, Sunday = 0
        return (first_weekday + day) % 7

    def nearest_weekday(day: int) -> int:
        # Quartz: Saturday -> Friday before, Sunday -> Monday after, never leaving the month.
        if weekday(day) == 6:
            return day - 1 if day > 1 else day + 2
        if weekday(day) == 0:
            return day + 1 if day < length else day - 2
        return day

    dom_days = {d for d in spec.dom if d <= length}
    if spec.dom_last:
        dom_days.add(length)
    if spec.dom_last_weekday:
        dom_days.add(nearest_weekday(length))
    dom_days.update(nearest_weekday(d) for d in spec.dom_nearest if d <= length)

    def dow_matches(day: int) -> bool:
        wd = weekday(day)
        return (
            wd in spec.dow
            or (wd, (day - 1) // 7 + 1) in spec.dow_nth
            or (wd in spec.dow_last and day + 7 > length)
        )

    if spec.both_required:
        return tuple(d for d in sorted(dom_days) if dow_matches(d))
    return tuple(d for d in range(1, length + 1) if d in dom_days or dow_matches(d))


class _Resolver:
    """`tzmath.resolve` for one zone, answered a whole hour or minute at a time where it can be.

    `tzmath.resolve` costs about 0.1 ms (more in a gap), and a search looks at hours of wall
    time on either side of `after`. If the first and last seconds of a span of wall time
    resolve alike (same kind, same offsets, same gap end), so does every second in between:
    the tz database never changes an offset and changes it back within an hour. So an hour
    costs two calls unless a transition falls inside it; then each minute costs two, and only
    a minute holding a transition is resolved second by second.
    """

    _MAX_CACHED = 4096

    def __init__(self, zone: tzmath.Zone) -> None:
        self._zone = zone
        self._uniform: dict[tuple[datetime, timedelta], tzmath.Resolution | None] = {}

    def uniform(self, start: datetime, span: timedelta) -> tzmath.Resolution | None:
        """How `start` resolves, if every wall time in `[start, start + span)` resolves alike
        (shifted along with it); None if a transition splits the span."""
        key = (start, span)
        if key not in self._uniform:
            if len(self._uniform) >= self._MAX_CACHED:
                self._uniform.clear()
            first = tzmath.resolve(self._zone, start)
            last_second = span - _SECOND
            last = tzmath.resolve(self._zone, start + last_second)
            self._uniform[key] = first if _shifted(first, last_second) == last else None
        return self._uniform[key]

    def resolve(self, wall: datetime) -> tzmath.Resolution:
        for span, start in (
            (_HOUR, wall.replace(minute=0, second=0)),
            (_MINUTE, wall.replace(second=0)),
        ):
            found = self.uniform(start, span)
            if found is not None:
                return _shifted(found, wall - start)
        return tzmath.resolve(self._zone, wall)


def _shifted(resolution: tzmath.Resolution, by: timedelta) -> tzmath.Resolution:
    """`resolution` for a wall time `by` later, on the same side of every transition. The
    end of a gap does not move: every time in the gap maps to it."""
    if resolution.kind == "gap":
        return resolution
    return tzmath.Resolution(resolution.kind, tuple(i + by for i in resolution.instants))


@dataclass(frozen=True)
class CronExpression:
    """A parsed, valid cron expression; see the module docstring for the rules."""

    text: str
    canonical: str
    has_seconds: bool
    fixed_time: bool
    _seconds: tuple[int, ...] = field(repr=False)
    _minutes: tuple[int, ...] = field(repr=False)
    _hours: tuple[int, ...] = field(repr=False)
    _months: tuple[int, ...] = field(repr=False)
    _days: _DaySpec = field(repr=False)

    @classmethod
    def parse(cls, text: str, spread_key: str | None = None) -> CronExpression:
        """Parse and validate `text`; `CronError` says what is wrong and what is accepted.

        `spread_key` (the job's id) picks the values of H fields; None means the key "0".
        """
        stripped = text.strip()
        if stripped.startswith("@"):
            canonical = MACROS.get(stripped.lower())
            if canonical is None:
                if stripped.lower() == "@reboot":
                    raise CronError(
                        "'@reboot' is not supported: a scheduler has no reboot to run at; "
                        f"accepted macros: {_ACCEPTED_MACROS}"
                    )
                raise CronError(f"unknown macro '{stripped}'; accepted macros: {_ACCEPTED_MACROS}")
            fields = canonical.split()
        else:
            fields = stripped.split()
            if not fields:
                raise CronError(f"{_FIELD_COUNT_RULE}; got an empty expression")
            if len(fields) not in (5, 6):
                raise CronError(f"{_FIELD_COUNT_RULE}; got {len(fields)} in '{stripped}'")
            key = "0" if spread_key is None else spread_key
            # H becomes plain cron first: the rest of parsing, and `canonical`, see real values.
            fields = [
                spec.resolve_spread(field_text, key)
                for spec, field_text in zip(_FIELDS[-len(fields) :], fields, strict=True)
            ]
            canonical = " ".join(fields)

        has_seconds = len(fields) == 6
        second_text = fields[0] if has_seconds else "0"
        minute, hour, dom, month, dow = fields[-5:]
        dom_days, dom_last, dom_last_weekday, dom_nearest = _parse_dom(dom)
        dow_days, dow_nth, dow_last = _parse_dow(dow)
        days = _DaySpec(
            dom_days,
            dom_last,
            dom_last_weekday,
            dom_nearest,
            dow_days,
            dow_nth,
            dow_last,
            both_required=dom.startswith("*") or dow.startswith("*"),
        )
        expression = cls(
            text=stripped,
            canonical=canonical,
            has_seconds=has_seconds,
            fixed_time=not minute.startswith("*") and not hour.startswith("*"),
            _seconds=_SECOND_FIELD.parse(second_text),
            _minutes=_MINUTE_FIELD.parse(minute),
            _hours=_HOUR_FIELD.parse(hour),
            _months=_MONTH_FIELD.parse(month),
            _days=days,
        )
        if not expression._fires_in_a_cycle():
            raise CronError(
                f"'{stripped}' can never fire: no date matches its day-of-month, month and "
                "day-of-week fields together (like February 30th or April 31st)"
            )
        return expression

    def next_after(self, zone: tzmath.Zone, after: datetime) -> datetime | None:
        """The first fire instant strictly after the aware `after`, in UTC; None if there is
        none within `HORIZON_YEARS` (or before the end of `datetime`'s range)."""
        return self._next_after(zone, after, _Resolver(zone))

    def iter_after(self, zone: tzmath.Zone, after: datetime) -> Iterator[datetime]:
        """Successive fire instants after `after`, as `next_after` finds them."""
        resolver = _Resolver(zone)
        current = self._next_after(zone, after, resolver)
        while current is not None:
            yield current
            # Strictly after the previous run, so the gap times of a fixed-time job, which all
            # map to the one instant the gap ends, yield a single run.
            current = self._next_after(zone, current, resolver)

    def _next_after(
        self, zone: tzmath.Zone, after: datetime, resolver: _Resolver
    ) -> datetime | None:
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"'after' must be timezone-aware, got the naive {after.isoformat()}")
        try:
            # A fall-back repeats wall times earlier than `after`'s own that map to later
            # instants, so the walk starts MAX_OFFSET_JUMP earlier in wall time.
            start = (tzmath.to_local(zone, after) - tzmath.MAX_OFFSET_JUMP).replace(microsecond=0)
            walls = self._candidate_walls(start, after, resolver)
            return tzmath.first_instant_after(walls, partial(self._instants, resolver), after)
        except OverflowError:
            # `datetime` ends at years 1 and 9999: a search that runs off either end (a
            # look-behind from year 1, a run past 9999) has no answer to give.
            return None

    def _instants(self, resolver: _Resolver, wall: datetime) -> tuple[datetime, ...]:
        """The instants a matching wall time fires at, by the DST rules of the docstring."""
        resolution = resolver.resolve(wall)
        if resolution.kind == "normal":
            return resolution.instants
        if resolution.kind == "ambiguous":
            return resolution.instants[:1] if self.fixed_time else resolution.instants
        if self.fixed_time and resolution.gap_end is not None:
            return (resolution.gap_end,)
        return ()

    def _candidate_walls(
        self, start: datetime, after: datetime, resolver: _Resolver
    ) -> Iterator[datetime]:
        """The matching wall times from `start` on, ascending, less those that cannot be the
        earliest run after `after`.

        Within an hour that resolves uniformly (nearly every hour), wall time maps to real
        time in order, once, or twice in an hour repeated by a fall-back: so only the first
        wall time in it that maps after `after` (per occurrence) can be the earliest. Every
        wall time of an hour inside a gap maps to the same instant, or to none. Without this
        thinning a `* * * * * *` job would resolve 21,600 wall times per call: the three
        hours of look-behind and the three of look-ahead that `first_instant_after` needs.
        An hour that a transition splits is passed on in full.
        """
        after_utc = after.astimezone(UTC).replace(tzinfo=None)
        for hour_start, floor in self._hours_from(start):
            uniform = resolver.uniform(hour_start, _HOUR)
            if uniform is None:
                yield from self._walls_in_hour(hour_start, floor)
                continue
            floors = [floor]
            if uniform.kind != "gap":
                # Wall time w maps to w - offset (one offset, or two in a repeated hour),
                # which is after `after` once w > after + offset.
                floors = []
                for instant in uniform.instants:
                    offset = hour_start - instant.replace(tzinfo=None)
                    first_useful = (after_utc + offset).replace(microsecond=0) + _SECOND
                    floors.append(max(floor, first_useful - hour_start))
            firsts = {w for f in floors for w in islice(self._walls_in_hour(hour_start, f), 1)}
            yield from sorted(firsts)

    def _hours_from(self, start: datetime) -> Iterator[tuple[datetime, timedelta]]:
        """Each matching hour from the one holding the naive `start`, for `HORIZON_YEARS`,
        with how far into the hour matching wall times begin."""
        start_hour = start.replace(minute=0, second=0, microsecond=0)
        for day in self._dates_from(start.date()):
            for hour in self._hours:
                hour_start = datetime(day.year, day.month, day.day, hour)
                if hour_start > start_hour:
                    yield hour_start, _ZERO
                elif hour_start == start_hour:
                    yield hour_start, start - start_hour

    def _dates_from(self, start: date) -> Iterator[date]:
        # Month by month, asking `_matching_days` (cached) which days match: months and days
        # that cannot match cost nothing.
        for year in range(start.year, min(start.year + HORIZON_YEARS, MAXYEAR) + 1):
            for month in self._months:
                if (year, month) < (start.year, start.month):
                    continue
                first_weekday, length = calendar.monthrange(year, month)
                for day in _matching_days(self._days, length, first_weekday):
                    if date(year, month, day) >= start:
                        yield date(year, month, day)

    def _walls_in_hour(self, hour_start: datetime, floor: timedelta) -> Iterator[datetime]:
        """The matching wall times in the hour from `hour_start`, at least `floor` into it."""
        floor_minute, floor_second = divmod(int(floor.total_seconds()), 60)
        for minute in self._minutes[bisect_left(self._minutes, floor_minute) :]:
            seconds = self._seconds
            if minute == floor_minute:
                seconds = seconds[bisect_left(seconds, floor_second) :]
            for second in seconds:
                yield hour_start.replace(minute=minute, second=second)

    def _fires_in_a_cycle(self) -> bool:
        # Any 400 consecutive years form a full cycle; the time fields always have a value,
        # so the expression fires if and only if some date in the cycle matches.
        for year in range(2000, 2000 + HORIZON_YEARS):
            for month in self._months:
                first_weekday, length = calendar.monthrange(year, month)
                if _matching_days(self._days, length, first_weekday):
                    return True
        return False


__all__ = ["HORIZON_YEARS", "MACROS", "CronError", "CronExpression"]
