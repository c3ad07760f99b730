"""When a job must not run: holiday calendars and blackout windows. Pure.

A job's schedule gives its occurrences; its exclusions decide, for each, whether it runs and
when (`Exclusions.decide`):

- `exclude_calendars`: no run on a day of any of them (the day in the calendar's own zone);
- `only_calendars`: runs only on a day of one of them;
- `blackout_windows`: local time ranges in the job's zone, weekly (`22:00`-`06:00` on given
  days; an end before the start runs into the next day) or dated
  (`2027-12-24T18:00`-`2027-12-26T06:00`). An occurrence inside one is skipped
  (`blackout_policy: skip`) or deferred to the window's end (`defer`): the first occurrence
  inside a window runs at its end, once, standing for every other occurrence of that window,
  which are skipped, so a window never ends in a burst.

The engine records every skipped occurrence in the run history with its reason (engine.tick).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from chalicelib import tzmath
from chalicelib.holidays import HolidayCalendar

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ONE_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True)
class Decision:
    """What becomes of one occurrence: runs at `at` (None: skipped), and why if not as
    scheduled."""

    at: datetime | None
    reason: str | None = None


@dataclass(frozen=True)
class Blackout:
    """One blackout window, compiled: weekly (`days`, clock times) or dated (walls)."""

    label: str
    weekly: bool
    days: frozenset[int] = frozenset()
    start_clock: time = time(0)
    end_clock: time = time(0)
    # The end is the next day's start_clock/end_clock (a window across midnight, or 24:00).
    end_next_day: bool = False
    start_wall: datetime | None = None
    end_wall: datetime | None = None

    @classmethod
    def compile(cls, window: Any) -> Blackout:
        """From a `models.BlackoutWindow` (validated there)."""
        if window.weekly:
            start, end = _clock(window.start), _clock(window.end)
            days = frozenset(_DAYS.index(d) for d in (window.days or _DAYS))
            next_day = window.end == "24:00" or end <= start
            named = "every day" if len(days) == 7 else ",".join(_DAYS[d] for d in sorted(days))
            return cls(
                label=f"{window.start}-{window.end} ({named})",
                weekly=True,
                days=days,
                start_clock=start,
                end_clock=end,
                end_next_day=next_day,
            )
        first, last = datetime.fromisoformat(window.start), datetime.fromisoformat(window.end)
        return cls(
            label=f"{window.start} to {window.end}", weekly=False, start_wall=first, end_wall=last
        )

    def containing(self, wall: datetime) -> tuple[datetime, datetime] | None:
        """The instance of this window (its start and end walls) that `wall` is in, if any."""
        if not self.weekly:
            assert self.start_wall is not None and self.end_wall is not None
            inside = self.start_wall <= wall < self.end_wall
            return (self.start_wall, self.end_wall) if inside else None
        for back in (0, 1):
            day = wall.date() - timedelta(days=back)
            if day.weekday() not in self.days:
                continue
            start = datetime.combine(day, self.start_clock)
            end = datetime.combine(day + timedelta(days=int(self.end_next_day)), self.end_clock)
            if start <= wall < end:
                return start, end
        return None


def _clock(text: str) -> time:
    if text == "24:00":
        return time(0)
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class Exclusions:
    zone: tzmath.Zone
    exclude: tuple[HolidayCalendar, ...] = ()
    only: tuple[HolidayCalendar, ...] = ()
    blackouts: tuple[Blackout, ...] = ()
    defer: bool = False

    @classmethod
    def of(
        cls,
        spec: Any,
        zone: tzmath.Zone,
        calendars: dict[str, HolidayCalendar] | None,
    ) -> Exclusions | None:
        """The exclusions of a job (or request) `spec`; None if it has none. Calendars not in
        `calendars` are left out (the caller did not read them: the next run is then an
        occurrence the engine may still skip)."""
        known = calendars or {}
        exclude = tuple(known[n] for n in getattr(spec, "exclude_calendars", []) if n in known)
        only_names = list(getattr(spec, "only_calendars", []))
        only = tuple(known[n] for n in only_names if n in known)
        windows: Sequence[Any] = getattr(spec, "blackout_windows", [])
        if not exclude and not only and not windows:
            return None
        return cls(
            zone=zone,
            exclude=exclude,
            only=only,
            blackouts=tuple(Blackout.compile(w) for w in windows),
            defer=getattr(spec, "blackout_policy", "skip") == "defer",
        )

    def decide(self, t: datetime, first_from: Callable[[datetime], datetime | None]) -> Decision:
        """What becomes of the occurrence `t`. `first_from(instant)`: the schedule's first
        occurrence at or after `instant` (to find the one a deferred window keeps)."""
        for calendar in self.exclude:
            if calendar.covers(t):
                day = calendar.day_of(t)
                return Decision(
                    None, f"{day} is a day of calendar '{calendar.name}' (exclude_calendars)"
                )
        if self.only and not any(c.covers(t) for c in self.only):
            names = ", ".join(f"'{c.name}'" for c in self.only)
            day = self.only[0].day_of(t)
            return Decision(None, f"{day} is not a day of {names} (only_calendars)")
        wall = tzmath.to_local(self.zone, t)
        for blackout in self.blackouts:
            inside = blackout.containing(wall)
            if inside is None:
                continue
            window = f"blackout window {blackout.label}"
            if not self.defer:
                return Decision(None, f"inside {window} (blackout_policy skip)")
            start = _instant(self.zone, inside[0])
            end = _instant(self.zone, inside[1])
            if first_from(start) != t:
                return Decision(
                    None,
                    f"inside {window}: an earlier run of that window is deferred to its end "
                    f"and stands for this one (blackout_policy defer)",
                )
            return Decision(end, f"deferred out of {window} to its end (blackout_policy defer)")
        return Decision(t)


def _instant(zone: tzmath.Zone, wall: datetime) -> datetime:
    resolution = tzmath.resolve(zone, wall)
    if resolution.instants:
        return resolution.instants[0]
    assert resolution.offset_before is not None
    return (wall - resolution.offset_before).replace(tzinfo=UTC)
