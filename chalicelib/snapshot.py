"""A run started without reading its job: the job, as its claim leaves it, in the run's message.

The tick sends a plain job's runs ahead (engine.tick, CLAIM_AHEAD) with a snapshot of the job
as the claim leaves it (`of`), and the worker starts such a run from it (engine.worker,
_first_delivery) instead of reading the job: a read unit and one call of three a run.

What the worker decides from the snapshot must be what it would decide from the job read at
the start, so every change that could change that decision fences the runs that may carry a
snapshot, before the change is written (`fence_times`, store.runs.RunStore.fence): a pause, a
PUT and a delete put a fence at each such run's key. A fence is no record (store.items,
NOT_RECORDED), but the snapshot's start is a put where no item is at all (S0 `unread`), so
it is refused there, and the run decides again with the job read, as every run did before
this (SR, SP, SK, or a start). A change that fails after its fences changes nothing: its
runs then decide with the job read, and run.

Which runs carry a snapshot:
- a plain job's only (`eligible`): `allow`, no `notify`, no dead-man's switch, no calendars
  or blackout windows, no credential in clear in its arguments (a message is no place for
  one), and a snapshot of at most SNAPSHOT_LIMIT bytes;
- runs at least MIN_GAP apart, sent ahead of their time (not due when sent, not deferred);
- and the worker uses it only within FRESH_FOR of the run's time. A run stays on the job's
  list of runs sent ahead (`queued_runs`) until two later ones are due (JobStore.claim), so
  until then a fence finds it there.

What a fence covers (`fence_times`): the runs on the job's list from FENCE_BACK ago on, and
the schedule's occurrences from then (or `next_run_at`) to as far as a tick that read the job
before the change could send them: its window, CLAIM_AHEAD, and FENCE_SLACK for a tick that
read it a little earlier or later. Such a tick's claim fails, or succeeds with runs sent from
the job as it was; either way its runs are fenced.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from chalicelib import notify, queued
from chalicelib.models import Job
from chalicelib.security import secrets

# Runs of a job closer together than this carry no snapshot: a fence would have too many runs
# to cover (at most (window + CLAIM_AHEAD + 2 * FENCE_SLACK) / MIN_GAP of them).
MIN_GAP = timedelta(seconds=60)
# A snapshot is used only this soon after the run's time (under MIN_GAP: see above).
FRESH_FOR = timedelta(seconds=30)
FENCE_BACK = timedelta(seconds=120)
FENCE_SLACK = timedelta(seconds=120)
# A change's own fences (in_flight) reach this far past it: a worker reads the job once its
# run is due, so a run due later reads the change; the margin is for the change's own time
# between its instant and its write.
IN_FLIGHT_AHEAD = timedelta(seconds=5)
# At most this many of them: a transaction takes 100 items, the change's own up to some 25
# (the job, counters, audit, watch, a release for each calendar it names).
MAX_IN_FLIGHT = 50
# How long a fence is kept: past any redelivery of a message sent ahead.
FENCE_KEPT = timedelta(days=2)
SNAPSHOT_LIMIT = 4096
# How many of the schedule's occurrences a fence looks at, at most (a run every second for
# the fence's reach, FENCE_BACK to FENCE_SLACK past a tick's reach, is 1,140).
MAX_VISITED = 2_000
# Not needed to run the job; left out of the snapshot to keep messages small.
_LEFT_OUT = {"description", "tags", "run_count", "running_count", "schedule_error"}


def eligible(job: Job) -> bool:
    """Whether the job's runs may be started from a snapshot (module docstring)."""
    return (
        job.is_active
        and job.deleted_at is None
        and job.paused_until is None
        and job.concurrency_policy == "allow"
        and job.notify is None
        and job.expect_success_within is None
        and not job.exclude_calendars
        and not job.only_calendars
        and not job.blackout_windows
        and secrets.redacted(job.task_kwargs) == job.task_kwargs
    )


def of(
    job: Job, next_run_at: datetime | None, sent: Sequence[datetime], now: datetime
) -> dict[str, Any] | None:
    """The job as its claim of `sent` at `now` leaves it, for the messages of those runs;
    None if they may not carry one."""
    if not eligible(job) or not sent:
        return None
    runs = queued.after_claim(job.queued_runs, sent, now)
    following = [*runs, *([next_run_at] if next_run_at is not None else [])]
    if any(b - a < MIN_GAP for a, b in pairwise(following)):
        return None
    claimed = job.model_copy(
        update={
            "next_run_at": next_run_at,
            "queued_runs": queued.encode(runs),
            "version": job.version + 1,
        }
    )
    data = claimed.model_dump(mode="json", exclude=_LEFT_OUT, exclude_none=True)
    if len(json.dumps(data, separators=(",", ":"))) > SNAPSHOT_LIMIT:
        return None
    return data


def job_from(data: Any, scheduled_for: datetime, now: datetime) -> Job | None:
    """The job a run's message carries, if its worker may start the run from it at `now`."""
    if not isinstance(data, dict) or now - scheduled_for > FRESH_FOR:
        return None
    try:
        return Job.model_validate(data, context=notify.ACCEPTED)
    except ValueError:  # not a job this code reads (sent by another version): read the job
        return None


def in_flight(job: Job, now: datetime) -> list[datetime]:
    """The runs of `job` (any job) whose worker may have read it before a change written at
    about `now` and not started yet: on its list of runs sent ahead, from FENCE_BACK ago to
    IN_FLIGHT_AHEAD on (a worker reads the job once its run is due), the latest
    MAX_IN_FLIGHT. A change writes a fence at each in its own transaction
    (JobService._in_flight), which refuses such a start (S0): it decides again with the job
    read."""
    since, until = now - FENCE_BACK, now + IN_FLIGHT_AHEAD
    times = sorted({t for t in queued.runs(job.queued_runs) if since < t <= until})
    return times[-MAX_IN_FLIGHT:]


def fence_times(job: Job, now: datetime, reach: timedelta) -> list[datetime]:
    """The runs of `job` that may be in flight with a snapshot at `now` (module docstring),
    ``reach` being how far past its time a tick sends runs (CLAIM_AHEAD); none
    if the job is not one whose runs carry one."""
    if not eligible(job):
        return []
    from chalicelib import schedules

    since = now - FENCE_BACK
    times = {t for t in queued.runs(job.queued_runs) if t > since}
    if job.next_run_at is not None:
        schedule = schedules.compile_schedule(job, anchor=job.created_at)
        until = now + reach + FENCE_SLACK
        t: datetime | None = (
            job.next_run_at
            if job.next_run_at > since
            else schedule.next_after(since - timedelta(microseconds=1))
        )
        for _ in range(MAX_VISITED):
            if t is None or t > until:
                break
            after = schedule.next_after(t)
            # A run sent with a snapshot has its next run (the claim's next, or the job's
            # `next_run_at`) at least MIN_GAP after it (`of`): a closer one never carries one.
            if after is None or after - t >= MIN_GAP:
                times.add(t)
            t = after
    return sorted(times)
