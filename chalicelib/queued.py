"""The runs a claim sent ahead (engine.tick, CLAIM_AHEAD), written on the job in the claim's
own write, so that the API shows the job's next run, not how far the tick has sent.

The text is compact whatever the schedule: the first instant in microseconds since the
epoch, then the steps between runs, run-length encoded: "1767225600000000;60000000*13" is
14 runs a minute apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


def encode(runs: Sequence[datetime]) -> str | None:
    """The text for `runs` (ascending), None for none."""
    if not runs:
        return None
    points = [_micros(t) for t in runs]
    steps: list[list[int]] = []
    for a, b in pairwise(points):
        if steps and steps[-1][0] == b - a:
            steps[-1][1] += 1
        else:
            steps.append([b - a, 1])
    return f"{points[0]};" + ",".join(f"{d}*{n}" for d, n in steps)


def first_after(text: str | None, now: datetime) -> datetime | None:
    """The first run of `text` later than `now`; None if there is none (or no text)."""
    if not text:
        return None
    head, _, tail = text.partition(";")
    t = int(head)
    cutoff = _micros(now)
    if t > cutoff:
        return _EPOCH + timedelta(microseconds=t)
    for part in filter(None, tail.split(",")):
        step, _, count = part.partition("*")
        d, n = int(step), int(count)
        if d <= 0 or n <= 0:
            return None
        # The first k in 1..n with t + k*d > cutoff.
        k = max(1, (cutoff - t) // d + 1)
        if k <= n:
            return _EPOCH + timedelta(microseconds=t + k * d)
        t += n * d
    return None


def runs(text: str | None) -> list[datetime]:
    """Every run of `text`, in order."""
    if not text:
        return []
    head, _, tail = text.partition(";")
    t = int(head)
    out = [_EPOCH + timedelta(microseconds=t)]
    for part in filter(None, tail.split(",")):
        step, _, count = part.partition("*")
        for _ in range(int(count)):
            t += int(step)
            out.append(_EPOCH + timedelta(microseconds=t))
    return out


def latest(text: str | None, now: datetime, n: int) -> list[datetime]:
    """The `n` latest runs of `text` at or before `now`, latest first."""
    past = [t for t in runs(text) if t <= now]
    return past[::-1][:n]


def after_claim(text: str | None, sent: Sequence[datetime], now: datetime) -> list[datetime]:
    """The runs sent ahead as a claim at `now` of `sent` leaves them (JobStore.claim): the
    earlier claims' runs still to come, the two latest already due (the API reads the job's
    last run from their records), then `sent`."""
    before = [t for t in runs(text) if not sent or t < sent[0]]
    due = [t for t in before if t <= now]
    return [*due[-2:], *(t for t in before if t > now), *sent]
