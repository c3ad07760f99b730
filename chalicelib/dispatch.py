"""The tick: find the runs due soon, record them, send them to the queue, claim them.

Plan first (pure: `plan_runs`), then act (I/O: `Dispatcher`). For each due job, in this
order, so that a crash at any point loses nothing and a repeat changes nothing:

1. record a pending execution per run, keyed by the run's identity `(job_id, scheduled_for)`
   on condition that it does not exist yet (a repeat finds it there);
2. send each run to SQS with `DelaySeconds` up to its time (a repeat sends a duplicate
   message, which the worker's conditional start turns into a no-op);
3. claim: advance the job's `next_run_at` on condition that it is unchanged. Of two ticks
   that planned the same runs, one claim succeeds; the other tick's records already existed.

A tick that dies between 1 and 3 leaves `next_run_at` where it was, so the next tick plans
the same runs again: nothing is lost, and the conditional writes keep it from doubling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.errors import InvalidInput, JobNotFound
from chalicelib.models import Execution, Job
from chalicelib.observability import emit_metrics
from chalicelib.queue import WorkQueue
from chalicelib.schedules import Schedule, compile_schedule
from chalicelib.store import DueEntry, Store

log = logging.getLogger("nexus.dispatch")

# Occurrences that a long outage left behind are counted, not walked forever.
MAX_CATCH_UP_SCAN = 100_000
# One job cannot take a whole tick: a per-second job has 60 runs a minute.
MAX_RUNS_PER_JOB = 1_000


@dataclass(frozen=True)
class RunPlan:
    """What one job needs from this tick."""

    runs: list[datetime]
    next_run_at: datetime | None
    missed_count: int = 0
    missed_first: datetime | None = None
    missed_last: datetime | None = None
    # True when the outage was so long that the count stopped at MAX_CATCH_UP_SCAN.
    missed_count_capped: bool = False


def plan_runs(
    job: Job,
    schedule: Schedule,
    now: datetime,
    window_end: datetime,
    *,
    late_tolerance: timedelta,
) -> RunPlan:
    """The runs of `job` to send now: every occurrence from its `next_run_at` to `window_end`.

    The misfire rule: an occurrence more than `late_tolerance` (at most the job's
    `misfire_grace_seconds`) in the past was missed by downtime, not by a tick's ordinary
    lateness. Of those, only the latest runs, and only if it is within the misfire grace of
    its time; the others are counted as missed. So a job runs once after an outage, not once
    per occurrence it slept through.
    """
    first = job.next_run_at
    if first is None:
        return RunPlan([], None)
    grace = timedelta(seconds=job.misfire_grace_seconds)
    stale_before = now - min(late_tolerance, grace)
    stale_count = 0
    latest: datetime | None = None
    before_latest: datetime | None = None
    capped = False
    t: datetime | None = first
    while t is not None and t < stale_before:
        stale_count += 1
        before_latest, latest = latest, t
        if stale_count >= MAX_CATCH_UP_SCAN:
            # Skip the rest unseen; the latest one's time is then unknown, so it is not run.
            capped, latest = True, None
            t = schedule.next_after(stale_before - timedelta(microseconds=1))
            break
        t = schedule.next_after(t)
    runs: list[datetime] = []
    missed_count, missed_last = stale_count, latest
    if latest is not None and latest >= now - grace:
        runs.append(latest)
        missed_count, missed_last = stale_count - 1, before_latest
    while t is not None and t <= window_end and len(runs) < MAX_RUNS_PER_JOB:
        runs.append(t)
        t = schedule.next_after(t)
    return RunPlan(
        runs=runs,
        next_run_at=t,
        missed_count=missed_count,
        missed_first=first if missed_count else None,
        missed_last=missed_last,
        missed_count_capped=capped,
    )


@dataclass(frozen=True)
class _Prepared:
    job: Job
    plan: RunPlan
    executions: list[Execution]


@dataclass
class TickReport:
    due_entries: int = 0
    jobs_dispatched: int = 0
    runs_sent: int = 0
    runs_missed: int = 0
    claims_lost: int = 0
    retries_sent: int = 0
    deferred: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        *,
        window: timedelta = timedelta(seconds=60),
        late_tolerance: timedelta = timedelta(seconds=15),
        max_runs_per_tick: int = 50_000,
        retention: timedelta = timedelta(days=90),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._queue = queue
        self._monotonic = monotonic
        self.window = window
        self.late_tolerance = late_tolerance
        self.max_runs_per_tick = max_runs_per_tick
        self.retention = retention

    def tick(self, now: datetime) -> TickReport:
        """Send every run due before `now + window`, overdue ones included.

        Higher priority first: if a tick has more due runs than it may send, the rest stay
        in the index for the next tick.
        """
        report = TickReport()
        clock = self._clock_from(now)
        entries = self._store.query_due(now + self.window)
        report.due_entries = len(entries)
        entries.sort(key=lambda e: (-e.priority, e.due_at))
        # Jobs are prepared (runs recorded) a few at a time, then their runs are sent together
        # in batches of 10 and only then claimed: the order that makes a crash harmless.
        prepared: list[_Prepared] = []
        for entry in entries:
            if report.runs_sent + sum(len(p.executions) for p in prepared) >= (
                self.max_runs_per_tick
            ):
                report.deferred += 1
                continue
            try:
                if entry.is_job:
                    ready = self._prepare(entry.job_id, now, None, report)
                    if ready is not None:
                        prepared.append(ready)
                else:
                    self._send_due_execution(entry, clock, report)
            except Exception as exc:  # one bad job must not stop the others
                fields: dict[str, Any] = {"job_id": entry.job_id}
                if not entry.is_job:
                    fields["run_key"] = entry.sk
                log.exception("dispatch failed", extra=fields)
                report.errors.append(f"job {entry.job_id}: {type(exc).__name__}: {exc}")
            if sum(len(p.executions) for p in prepared) >= 10 or len(prepared) >= 25:
                self._commit(prepared, clock, report)
                prepared = []
        self._commit(prepared, clock, report)
        _emit_missed(report)
        return report

    def dispatch_job(self, job: Job, now: datetime) -> int:
        """Send the runs of `job` due before the next tick; the API calls this on changes."""
        report = TickReport()
        self._dispatch(job.id, now, job, report)
        _emit_missed(report)
        return report.runs_sent

    def _dispatch(self, job_id: int, now: datetime, job: Job | None, report: TickReport) -> None:
        """Prepare and commit one job (what an overlapping tick does with a stale read)."""
        clock = self._clock_from(now)
        ready = self._prepare(job_id, now, job, report)
        if ready is not None:
            self._commit([ready], clock, report)

    def _clock_from(self, now: datetime) -> Callable[[], datetime]:
        """`now`, moved on by the time spent since. A tick with many runs takes seconds to
        record them; a message's delay is counted from when it is sent, or it shows up late
        by however long the tick had been running."""
        origin = self._monotonic()
        return lambda: now + timedelta(seconds=self._monotonic() - origin)

    def _prepare(
        self, job_id: int, now: datetime, job: Job | None, report: TickReport
    ) -> _Prepared | None:
        """Plan one job's runs and record them as pending executions (steps 1 of 3)."""
        if job is None:
            try:
                job = self._store.get_job(job_id)  # the index may be stale; the table is not
            except JobNotFound:
                return None
        window_end = now + self.window
        if not job.is_active or job.next_run_at is None or job.next_run_at > window_end:
            return None
        try:
            schedule = compile_schedule(job, anchor=job.created_at)
        except InvalidInput as exc:
            log.error("stored schedule is invalid: %s", exc, extra={"job_id": job.id})
            report.errors.append(f"job {job.id}: stored schedule is invalid: {exc}")
            return None
        plan = plan_runs(job, schedule, now, window_end, late_tolerance=self.late_tolerance)
        executions = [self._execution(job, t, now) for t in plan.runs]
        for execution in executions:
            self._store.put_execution(execution)
        if plan.missed_count:
            missed = self._record_missed(job, plan, now)
            report.runs_missed += plan.missed_count
            log.warning(
                "runs missed",
                extra={
                    "job_id": job.id,
                    "execution_id": missed.id,
                    "status": "missed",
                    "missed_count": plan.missed_count,
                },
            )
        return _Prepared(job, plan, executions)

    def _commit(
        self, prepared: list[_Prepared], clock: Callable[[], datetime], report: TickReport
    ) -> None:
        """Send the prepared runs in batches of 10, then claim each job (steps 2 and 3)."""
        if not prepared:
            return
        now = clock()
        try:
            self._queue.send([e for p in prepared for e in p.executions], now)
        except Exception as exc:
            # Nothing is claimed: the next tick finds the same runs and sends them again.
            for p in prepared:
                log.exception("sending runs failed", extra={"job_id": p.job.id})
                report.errors.append(f"job {p.job.id}: {type(exc).__name__}: {exc}")
            return
        for p in prepared:
            if self._store.claim_job(p.job, p.plan.next_run_at):
                report.jobs_dispatched += 1
                report.runs_sent += len(p.executions)
                if p.plan.next_run_at is None and not p.executions and p.plan.missed_count:
                    # A one-off whose only run was missed is over, and did not succeed.
                    self._store.job_run_finished(p.job.id, "failed", now, started=False)
            else:
                report.claims_lost += 1

    def _execution(self, job: Job, scheduled_for: datetime, now: datetime) -> Execution:
        return Execution(
            id=execution_id(job.id, scheduled_for, 1),
            job_id=job.id,
            status="pending",
            trigger="scheduled",
            scheduled_for=scheduled_for,
            attempt=1,
            task_id=f"{job.id}:{scheduled_for:%Y%m%dT%H%M%SZ}",
            task_name=job.task_name,
            task_args=job.task_args,
            task_kwargs=job.task_kwargs,
            created_at=now,
            expires_at=now + self.retention,
        )

    def _record_missed(self, job: Job, plan: RunPlan, now: datetime) -> Execution:
        assert plan.missed_first is not None
        count = f"at least {plan.missed_count}" if plan.missed_count_capped else plan.missed_count
        missed = Execution(
            id=execution_id(job.id, plan.missed_first, 1),
            job_id=job.id,
            status="missed",
            trigger="scheduled",
            scheduled_for=plan.missed_first,
            task_id=f"{job.id}:{plan.missed_first:%Y%m%dT%H%M%SZ}",
            task_name=job.task_name,
            created_at=now,
            completed_at=now,
            missed_count=plan.missed_count,
            missed_until=plan.missed_last or plan.missed_first,
            reason=self._missed_reason(job, plan, count, now),
            expires_at=now + self.retention,
        )
        self._store.put_execution(missed)
        return missed

    @staticmethod
    def _missed_reason(job: Job, plan: RunPlan, count: object, now: datetime) -> str:
        ran_late = bool(plan.runs) and plan.runs[0] < now
        return (
            f"{count} run(s) from {plan.missed_first:%Y-%m-%dT%H:%M:%SZ} were not dispatched "
            f"in time (misfire grace {job.misfire_grace_seconds} s); "
            + ("the latest of them ran late instead" if ran_late else "none of them ran")
        )

    def _send_due_execution(
        self, entry: DueEntry, clock: Callable[[], datetime], report: TickReport
    ) -> None:
        """A retry whose delay was too long for SQS waited in the index: send it now."""
        execution = self._store.get_execution(entry.job_id, entry.sk)
        if execution is None or execution.status != "pending":
            return
        self._queue.send([execution], clock())
        if self._store.release_due_execution(entry.job_id, entry.sk):
            report.retries_sent += 1


def _emit_missed(report: TickReport) -> None:
    if report.runs_missed > 0:
        emit_metrics({"RunsMissed": report.runs_missed})


def execution_id(job_id: int, scheduled_for: datetime, attempt: int) -> str:
    stamp = scheduled_for.strftime("%Y%m%dT%H%M%S")
    if scheduled_for.microsecond:
        stamp += f".{scheduled_for.microsecond:06d}"
    return f"{job_id}-{stamp}Z-{attempt}"
