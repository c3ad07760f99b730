"""Wall-clock time in a named zone, mapped to UTC instants.

Every schedule type computes its fire times as *local wall-clock* (naive) datetimes and then
maps them to UTC here. A wall-clock time can map to one instant, to none (it falls in a
spring-forward gap) or to two (it is repeated when the clocks fall back); each schedule type
decides what to do with the last two cases, so this module only reports which case it is.

Zones are named as pytz names them (`US/Eastern`, `Europe/London`), but converted with the
standard library's `zoneinfo`: pytz's tables stop at 2037, after which it knows no daylight
saving time at all (a 09:00 New York job in July 2040 would be an hour off), while zoneinfo
follows the rule that tzdata states for the years after its last listed transition.

Pure: nothing here reads the clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import pytz

# Searches that walk wall-clock candidates look this far behind. Since 1995 no zone has
# changed its UTC offset by more than three hours at once (Antarctica/Casey jumped exactly
# three); older history has larger jumps (Pacific/Apia skipped a whole day in 2011, a
# forward jump, which needs no look-behind), and schedules are about the future.
MAX_OFFSET_JUMP = timedelta(hours=3)

Zone = tzinfo


@lru_cache(maxsize=512)
def get_zone(name: str) -> Zone:
    """The zone called `name`; `KeyError` if pytz does not know the name."""
    if not is_known_zone(name):
        raise KeyError(name)
    return ZoneInfo(name)


def is_known_zone(name: str) -> bool:
    return name in pytz.all_timezones_set


def zone_name(zone: Zone) -> str:
    return str(getattr(zone, "key", zone))


def to_local(zone: Zone, instant: datetime) -> datetime:
    """The naive wall-clock time in `zone` at the aware `instant`."""
    return instant.astimezone(zone).replace(tzinfo=None)


def to_utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


@dataclass(frozen=True)
class Resolution:
    """How one wall-clock time maps onto real time in a zone.

    - ``normal``: exactly one instant, in ``instants``.
    - ``ambiguous``: repeated at a fall-back; ``instants`` holds both, earliest first.
    - ``gap``: skipped at a spring-forward; ``instants`` is empty, ``gap_end`` is the first
      instant after the gap (the transition itself) and ``offset_before`` the UTC offset in
      force just before it.
    """

    kind: Literal["normal", "ambiguous", "gap"]
    instants: tuple[datetime, ...]
    gap_end: datetime | None = None
    offset_before: timedelta | None = None


def resolve(zone: Zone, wall: datetime) -> Resolution:
    """Map the naive wall-clock time `wall` in `zone` to UTC instants."""
    candidates = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if to_local(zone, instant) == wall:
            candidates.add(instant)
    if len(candidates) == 1:
        return Resolution("normal", tuple(candidates))
    if len(candidates) == 2:
        return Resolution("ambiguous", tuple(sorted(candidates)))
    return _gap(zone, wall)


def _gap(zone: Zone, wall: datetime) -> Resolution:
    # Read with either offset, the wall time lands on both sides of the transition; the
    # transition is the first instant whose wall-clock time is later than `wall`. Bisect
    # on whole seconds: transitions in the tz database fall on whole seconds.
    lo, hi = sorted(wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if to_local(zone, mid) > wall:
            hi = mid
        else:
            lo = mid
    before = (hi - timedelta(seconds=1)).astimezone(zone).utcoffset()
    assert before is not None
    return Resolution("gap", (), gap_end=hi, offset_before=before)


def first_instant_after(
    walls: Iterable[datetime],
    to_instants: Callable[[datetime], Iterable[datetime]],
    after: datetime,
) -> datetime | None:
    """The earliest instant strictly after `after` among the images of `walls`.

    `walls` must be ascending wall-clock times starting at least `MAX_OFFSET_JUMP` before
    the wall-clock time of `after`. Because a UTC offset can change, ascending wall-clock
    times do not always map to ascending instants (a fall-back repeats an hour); the walk
    stops once a wall time is so far past the best candidate that nothing later can beat it.
    """
    best: datetime | None = None
    best_wall: datetime | None = None
    for wall in walls:
        if best_wall is not None and wall > best_wall + MAX_OFFSET_JUMP:
            break
        for instant in to_instants(wall):
            if instant > after and (best is None or instant < best):
                best, best_wall = instant, wall
    return best


def take(iterator: Iterator[datetime], count: int) -> list[datetime]:
    out = []
    for item in iterator:
        out.append(item)
        if len(out) >= count:
            break
    return out
