"""The tick: send the runs due soon, record the ones missed, claim them (lifecycle TM, T1, T2).

Plan first (pure: `plan_runs`), then act (I/O: `Dispatcher`). For each due job, in this
order, so that a crash at any point loses nothing and a repeat changes nothing:

1. TM: record a `missed` run at the identity of each occurrence later than its grace, on
   condition that the run has no record (a worker may have started it: then it is not
   missed); occurrences past the first MAX_RUNS_PER_JOB are counted in one range record;
2. T1: send each run that is still inside its grace to SQS with `DelaySeconds` up to its time
   (a repeat sends a duplicate, which the worker's conditional start turns into a no-op);
3. T2: claim: advance the job's `next_run_at` on condition that it is unchanged.

A tick that dies anywhere leaves `next_run_at` where it was, so the next tick plans the same
runs again. A dead tick can only have sent runs among the first MAX_RUNS_PER_JOB from
`next_run_at`, the same runs the next tick handles one by one, so a run is never both sent and
counted in a range.

Concurrency: each call waits a few ms on AWS, so the tick makes TICK_CONCURRENCY of them at
once (threads; boto3 clients are thread-safe). Different jobs proceed side by side, and each
job's steps still run in the order above: its read and TM in one task, then T1 and T2 in a
commit task submitted only once that task has finished, with T2 after T1 inside it. Every task
writes to a TickReport of its own, which the tick adds to its own in one thread. A tick that
dies (in any thread) leaves each job somewhere in that order, which is what the crash points
above cover.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib import snapshot
from chalicelib.config import TICK_CONCURRENCY
from chalicelib.engine.lifecycle import (
    CLAIM_AHEAD,
    GRACE_SLACK,
    MAX_RUNS_AHEAD,
    MAX_RUNS_PER_JOB,
    execution_id,
    first_attempt,
    task_id,
)
from chalicelib.engine.pauses import send_resume
from chalicelib.engine.queue import SEND_BATCH, Alignment, WorkQueue
from chalicelib.engine.watch import DUE_PREFIX as WATCH_PREFIX
from chalicelib.engine.watch import Watch
from chalicelib.errors import InvalidInput, Unavailable
from chalicelib.holidays import HolidayCalendar
from chalicelib.models import Execution, Job
from chalicelib.observability import emit_metrics
from chalicelib.schedules import Schedule, compile_schedule
from chalicelib.store import DueEntry, Store

log = logging.getLogger("nexus.dispatch")

# Occurrences that a long outage left behind are counted, not walked forever.
MAX_CATCH_UP_SCAN = 100_000
# A job whose stored schedule cannot be evaluated is tried again this much later.
DEFER_BROKEN_JOB = timedelta(hours=1)
# Runs one tick sends at most; the due jobs past them wait for the next tick, highest priority
# first. With TICK_CONCURRENCY calls in flight, 5 ms a DynamoDB call and 10 ms an SQS batch,
# the bench measured about 95,000 runs a minute on a loaded 2-CPU machine, CPU-bound (bench/
# RESULTS.md, "Dispatch capacity with latency"): 50,000 take some 32 s there, well inside the
# tick's 60 s Lambda timeout, with room for botocore's own CPU per call, which the bench's
# stubs do not spend.
MAX_RUNS_PER_TICK = 50_000
# Due entries handled ahead of the one whose result the tick waits for: enough to keep every
# thread busy while one call is slow, few enough that work done past the limit is small.
LOOKAHEAD = 2
# Due jobs read in one BatchGetItem (DynamoDB's most).
JOBS_READ_AT_ONCE = 100
# SQS takes ten messages a request: a commit's runs are sent in tens, so a commit waits for
# a multiple of ten runs (or COMMIT_RUNS, or COMMIT_JOBS jobs) to fill its last request.
COMMIT_RUNS = 100
COMMIT_JOBS = 25
# How long into a tick its sends are held until their messages will show up close to their
# runs (engine.queue, Alignment), a hold of under a second each. The capacity benchmark's
# tick of 20,000 runs sends some 2,400 of them so, the rest at once: a bigger tick keeps its
# capacity, and its later runs show up as much as a second early (bench/RESULTS.md).
ALIGN_FOR = timedelta(seconds=3)


@dataclass(frozen=True)
class RunPlan:
    """What one job needs from this tick."""

    runs: list[datetime]
    next_run_at: datetime | None
    # Occurrences later than the grace, among the first MAX_RUNS_PER_JOB: recorded one by one.
    missed: list[datetime] = field(default_factory=list)
    # Occurrences later than the grace past those: one range record.
    range_first: datetime | None = None
    range_last: datetime | None = None
    range_count: int = 0
    # True when the outage was so long that the count stopped at MAX_CATCH_UP_SCAN.
    range_capped: bool = False


def plan_runs(
    job: Job,
    schedule: Schedule,
    now: datetime,
    window_end: datetime,
    *,
    ahead_end: datetime | None = None,
    max_ahead: int = 0,
    max_runs: int = MAX_RUNS_PER_JOB,
) -> RunPlan:
    """The runs of `job` from its `next_run_at` to `window_end`, split by the misfire rule,
    and past the window at most `max_ahead` more up to `ahead_end` (claims ahead).

    A run is missed only when it is later than the job's `misfire_grace_seconds` (and
    GRACE_SLACK): everything still inside the grace runs, in order, however late the tick is.
    """
    t = job.next_run_at
    if t is None:
        return RunPlan([], None)
    cutoff = now - timedelta(seconds=job.misfire_grace_seconds) - GRACE_SLACK
    runs: list[datetime] = []
    missed: list[datetime] = []
    ahead = 0
    while t is not None and len(runs) + len(missed) < max_runs:
        if t > window_end:
            if ahead_end is None or t > ahead_end or ahead >= max_ahead:
                break
            ahead += 1
        (missed if t < cutoff else runs).append(t)
        t = schedule.next_after(t)
    range_first = range_last = None
    count, capped = 0, False
    if t is not None and t < cutoff:
        range_first = t
        while t is not None and t < cutoff:
            count += 1
            range_last = t
            if count >= MAX_CATCH_UP_SCAN:
                capped = True
                t = schedule.next_after(cutoff - timedelta(microseconds=1))
                break
            t = schedule.next_after(t)
    return RunPlan(
        runs=runs,
        next_run_at=t,
        missed=missed,
        range_first=range_first,
        range_last=range_last,
        range_count=count,
        range_capped=capped,
    )


@dataclass(frozen=True)
class _Prepared:
    job: Job
    plan: RunPlan
    executions: list[Execution]


def _full_commit(batch: list[_Prepared]) -> bool:
    """Whether the prepared jobs in `batch` make a commit: their runs fill whole SQS
    requests (ten jobs of one run do, and five of fourteen; one of fourteen alone would
    leave its second request part empty), or the commit has grown as large as one may."""
    runs = sum(len(p.executions) for p in batch)
    return (runs > 0 and runs % SEND_BATCH == 0) or runs >= COMMIT_RUNS or len(batch) >= COMMIT_JOBS


@dataclass
class TickReport:
    due_entries: int = 0
    jobs_dispatched: int = 0
    runs_sent: int = 0
    runs_missed: int = 0
    runs_skipped: int = 0
    claims_lost: int = 0
    retries_sent: int = 0
    deferred: int = 0
    jobs_failed: int = 0
    # Runs sent to show up within engine.queue.ALIGN_TOLERANCE of their time.
    runs_aligned: int = 0
    repairs: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def repaired(self, kind: str, n: int = 1) -> None:
        self.repairs[kind] = self.repairs.get(kind, 0) + n

    def add(self, part: TickReport) -> None:
        """Count what one task of the tick did (its own report: tasks run in threads)."""
        for name, value in part.__dict__.items():
            if isinstance(value, int):
                setattr(self, name, getattr(self, name) + value)
        for kind, n in part.repairs.items():
            self.repaired(kind, n)
        self.errors.extend(part.errors)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        *,
        window: timedelta = timedelta(seconds=60),
        claim_ahead: timedelta = CLAIM_AHEAD,
        runs_ahead: int = MAX_RUNS_AHEAD,
        max_runs_per_tick: int = MAX_RUNS_PER_TICK,
        concurrency: int = TICK_CONCURRENCY,
        retention: timedelta = timedelta(days=90),
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        align_for: timedelta = timedelta(0),
        on_due: dict[str, Callable[[DueEntry, datetime], None]] | None = None,
    ) -> None:
        """`on_due`: what to do with a due entry whose sort key starts with a given prefix
        (a backfill's next step: engine.backfill), beside jobs, run attempts and the
        dead-man's switch's watches (engine.watch, always). `concurrency`: the AWS calls the
        tick makes at once (1: one after another). `align_for`: how long into a tick its
        sends are held so that their messages show up close to their runs (ALIGN_FOR
        deployed; none by default, so a test's tick does not sleep); `sleep` holds them."""
        if concurrency < 1:
            raise ValueError(f"concurrency is {concurrency}; 1 or more is accepted")
        watches = Watch(store, queue, window=window)
        self._on_due = {WATCH_PREFIX: watches.on_due, **(on_due or {})}
        self._store = store
        self._queue = queue
        self._monotonic = monotonic
        self._sleep = sleep
        self.align_for = align_for
        self.window = window
        # A job due in the window has its runs sent and claimed this far ahead in one write.
        self.claim_ahead = max(window, claim_ahead)
        self.runs_ahead = runs_ahead
        self.max_runs_per_tick = max_runs_per_tick
        self.concurrency = concurrency
        self.retention = retention

    def tick(self, now: datetime) -> TickReport:
        """Send every run due before `now + window`, overdue ones included, and have the
        sweep look at what is due for repair (engine.sweep).

        Higher priority first: if a tick has more due runs than it may send
        (`max_runs_per_tick`), the jobs past the limit stay in the index for the next tick,
        counted in `deferred` (metric `JobsDeferred`, and a warning). A job that fails is
        logged, counted and skipped: one bad job never stops the others.
        """
        report = TickReport()
        clock = self._clock_from(now)
        alignment = Alignment(clock, self._sleep, now + self.align_for) if self.align_for else None
        entries = self._store.jobs.query_due(now + self.window)
        report.due_entries = len(entries)
        entries.sort(key=lambda e: (-e.priority, e.due_at))
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="nexus-tick")
        try:
            self._run(entries, now, clock, report, pool, alignment)
        finally:
            # On a crash, nothing queued starts (as if the process had died), and the calls
            # under way end before the tick does.
            pool.shutdown(wait=True, cancel_futures=True)
        if report.deferred:
            log.warning(
                "tick limit reached: due jobs left for the next tick",
                extra={
                    "deferred": report.deferred,
                    "runs_sent": report.runs_sent,
                    "max_runs_per_tick": self.max_runs_per_tick,
                },
            )
        self._emit(report)
        return report

    def _run(
        self,
        entries: list[DueEntry],
        now: datetime,
        clock: Callable[[], datetime],
        report: TickReport,
        pool: ThreadPoolExecutor,
        alignment: Alignment | None,
    ) -> None:
        """Handle `entries` in order on `pool`: each entry's task reads the job and records
        its missed runs (`_handle`); its result is taken in priority order, and a job's runs
        go into a commit (`_commit`: T1 then T2) only after its own task has finished.

        The limit is counted in that order too: once `max_runs_per_tick` runs are committed,
        no new entry starts, and a job whose read finished after that is left as it is (its
        runs neither sent nor claimed; at most its missed records, a no-op to repeat)."""
        budget = self.max_runs_per_tick
        planned = 0  # runs committed so far
        started = 0  # entries handed to the pool
        handling: deque[Future[tuple[TickReport, _Prepared | None]]] = deque()
        commits: deque[Future[TickReport]] = deque()
        batch: list[_Prepared] = []
        lookahead = self.concurrency * LOOKAHEAD
        jobs: dict[int, Job] = {}  # read ahead, JOBS_READ_AT_ONCE to a request
        asked: set[int] = set()
        while True:
            while planned < budget and started < len(entries) and len(handling) < lookahead:
                entry = entries[started]
                if entry.is_job and entry.job_id not in asked:
                    ids = self._next_jobs(entries[started:])
                    asked.update(ids)
                    jobs.update(self._read_jobs(ids))
                job = jobs.pop(entry.job_id, None) if entry.is_job else None
                handling.append(pool.submit(self._handle, entry, now, clock, job))
                started += 1
            while commits and commits[0].done():
                report.add(commits.popleft().result())  # re-raises a crash at once
            if not handling:
                break
            part, ready = handling.popleft().result()
            report.add(part)
            if ready is None:
                continue
            if ready.executions and planned >= budget:
                report.deferred += 1
                continue
            planned += len(ready.executions)
            batch.append(ready)
            if _full_commit(batch):
                commits.append(pool.submit(self._commit_part, batch, clock, alignment))
                batch = []
        report.deferred += len(entries) - started
        if batch:
            commits.append(pool.submit(self._commit_part, batch, clock, alignment))
        for commit in commits:
            report.add(commit.result())

    @staticmethod
    def _next_jobs(entries: list[DueEntry]) -> list[int]:
        return list(dict.fromkeys(e.job_id for e in entries if e.is_job))[:JOBS_READ_AT_ONCE]

    def _read_jobs(self, ids: list[int]) -> dict[int, Job]:
        """The jobs `ids` (the next JOBS_READ_AT_ONCE due), in one BatchGetItem: one request
        for a hundred jobs, not a hundred, half the tick's calls. A job this read does not
        return, or a read that fails, is read again by its own task."""
        try:
            return self._store.jobs.find_jobs(ids)
        except Exception:
            log.warning("could not read due jobs together; reading them one by one")
            return {}

    def _handle(
        self,
        entry: DueEntry,
        now: datetime,
        clock: Callable[[], datetime],
        job: Job | None = None,
    ) -> tuple[TickReport, _Prepared | None]:
        """One due entry, in a thread of the tick, counted in a report of its own: a job
        prepared (TM done, its runs ready to send; `job` if it was read already), or a hook
        or a run attempt handled in full."""
        from chalicelib.engine.sweep import Sweep

        part = TickReport()
        try:
            hook = next((f for p, f in self._on_due.items() if entry.sk.startswith(p)), None)
            if hook is not None:
                hook(entry, now)
            elif entry.is_job:
                sweep = Sweep(self._store, self._queue, part)
                return part, self._prepare(entry.job_id, now, job, part, sweep)
            elif entry.due_at <= now:
                Sweep(self._store, self._queue, part).attempt_due(entry, clock)
        except Exception as exc:
            self._failed(entry.job_id, exc, part, run_key=None if entry.is_job else entry.sk)
        return part, None

    def _commit_part(
        self,
        prepared: list[_Prepared],
        clock: Callable[[], datetime],
        alignment: Alignment | None,
    ) -> TickReport:
        part = TickReport()
        self._commit(prepared, clock, part, alignment)
        return part

    def dispatch_job(self, job: Job, now: datetime) -> int:
        """Send the runs of `job` due before the next tick; the API calls this on changes."""
        report = TickReport()
        self._dispatch(job.id, now, job, report)
        self._emit(report)
        return report.runs_sent

    def catch_up(self, job: Job, now: datetime) -> bool:
        """Handle the runs of `job` due at or before `now` that no tick has handled yet (a late
        or dead tick): send the ones inside their grace, record the others missed, as the tick
        would. The API calls this before it pauses or reschedules a job, so that a change made
        at `now` applies only to runs after `now`, and a run due while the job was active is
        never dropped by it. True when it wrote (read the job again); raises `Unavailable` when
        it could not, so the change is refused and nothing is lost."""
        if not job.is_active or job.next_run_at is None or job.next_run_at > now:
            return False
        report = TickReport()
        ready = self._prepare(job.id, now, job, report, None, until=now)
        if ready is not None:
            self._commit([ready], self._clock_from(now), report)
        self._emit(report)
        if report.jobs_failed:
            raise Unavailable(
                f"job {job.id} has runs due that could not be sent yet "
                f"({'; '.join(report.errors)[:300]}); retry shortly"
            )
        return True

    def _dispatch(self, job_id: int, now: datetime, job: Job | None, report: TickReport) -> None:
        """Prepare and commit one job (what an overlapping tick does with a stale read)."""
        clock = self._clock_from(now)
        ready = self._prepare(job_id, now, job, report, None)
        if ready is not None:
            self._commit([ready], clock, report)

    def _failed(
        self, job_id: int, exc: Exception, report: TickReport, run_key: str | None = None
    ) -> None:
        fields: dict[str, Any] = {"job_id": job_id}
        if run_key:
            fields["run_key"] = run_key
        log.exception("dispatch failed", extra=fields)
        report.jobs_failed += 1
        report.errors.append(f"job {job_id}: {type(exc).__name__}: {exc}")

    def _clock_from(self, now: datetime) -> Callable[[], datetime]:
        """`now`, moved on by the time spent since. A tick with many runs takes seconds to
        record them; a message's delay is counted from when it is sent, or it shows up late
        by however long the tick had been running."""
        origin = self._monotonic()
        return lambda: now + timedelta(seconds=self._monotonic() - origin)

    def _prepare(
        self,
        job_id: int,
        now: datetime,
        job: Job | None,
        report: TickReport,
        sweep: Any,
        *,
        until: datetime | None = None,
    ) -> _Prepared | None:
        """Plan one job's runs to `until` (default: the tick's window) and record the missed
        ones (TM)."""
        if job is None:
            # The index may be stale; the table is not.
            job = self._store.jobs.find_job(job_id)
            if job is None:
                return None
        if job.deleted_at is not None:
            if sweep is not None:
                sweep.purge(job, now)
            return None
        window_end = now + self.window if until is None else until
        if not job.is_active and job.paused_until is not None and until is None:
            if job.paused_until <= window_end:
                send_resume(self._queue, job, now)  # its pause ends before the next tick
            return None
        if not job.is_active or job.next_run_at is None or job.next_run_at > window_end:
            return None
        # Due in the window: send (T1) and claim (T2) its runs in the window and up to
        # `runs_ahead` more to `claim_ahead`, so a job that runs every minute pays one claim
        # for many runs. A PUT, a pause or a delete still applies from its moment: the
        # worker checks each run against the job.
        ahead_end = now + self.claim_ahead if until is None else None
        try:
            schedule = compile_schedule(job, anchor=job.created_at, calendars=self._calendars(job))
            plan = plan_runs(
                job, schedule, now, window_end, ahead_end=ahead_end, max_ahead=self.runs_ahead
            )
        except (InvalidInput, ValueError, OverflowError) as exc:
            message = f"the stored schedule cannot be evaluated: {exc}"
            log.error(message, extra={"job_id": job.id})
            report.jobs_failed += 1
            report.errors.append(f"job {job.id}: {message}")
            self._store.jobs.defer(job, now + DEFER_BROKEN_JOB, message)
            return None
        missed = 0
        for t in plan.missed:
            if self._store.runs.put_final(self._missed(job, t, now)):
                missed += 1
        if plan.range_first is not None:
            missed += self._store.runs.record_missed_range(self._missed_range(job, plan, now))
        if missed:
            report.runs_missed += missed
            first = plan.missed[0] if plan.missed else plan.range_first
            assert first is not None
            log.warning(
                "runs missed",
                extra={
                    "job_id": job.id,
                    "execution_id": execution_id(job.id, first, 1 if plan.missed else 0),
                    "status": "missed",
                    "missed_count": missed,
                },
            )
        executions = []
        for t in plan.runs:
            # Calendars and blackout windows (chalicelib.exclusions): a skipped occurrence is
            # recorded with its reason; a deferred one is sent to start at its new time.
            decision = schedule.decide(t)
            if decision.at is None:
                if self._store.runs.put_final(self._skipped(job, t, now, decision.reason or "")):
                    report.runs_skipped += 1
                continue
            execution = self._execution(job, t, now).model_copy(
                update={"schedule_rev": job.schedule_rev}
            )
            if decision.at != t:
                execution = execution.model_copy(
                    update={"not_before": decision.at, "reason": decision.reason}
                )
            executions.append(execution)
        return _Prepared(job, plan, executions)

    def _calendars(self, job: Job) -> dict[str, HolidayCalendar]:
        names = [*job.exclude_calendars, *job.only_calendars]
        return self._store.calendars.get_many(names) if names else {}

    def _skipped(self, job: Job, scheduled_for: datetime, now: datetime, why: str) -> Execution:
        return self._execution(job, scheduled_for, now).model_copy(
            update={
                "status": "skipped",
                "completed_at": now,
                "task_args": [],
                "task_kwargs": {},
                "reason": why,
            }
        )

    def _commit(
        self,
        prepared: list[_Prepared],
        clock: Callable[[], datetime],
        report: TickReport,
        alignment: Alignment | None = None,
    ) -> None:
        """Send the prepared runs in batches of 10 (T1), then claim each job (T2); the tick's
        sends held by `alignment`.

        A claim that fails (an AWS error after botocore's retries) fails that job alone: its
        runs were sent, it is not claimed, so the next tick sends them again (S0 dedups)."""
        if not prepared:
            return
        now = clock()
        try:
            report.runs_aligned += self._queue.send(
                [e for p in prepared for e in p.executions],
                now,
                self._snapshots(prepared, now),
                alignment,
            )
        except Exception as exc:
            # Nothing is claimed: the next tick finds the same runs and sends them again.
            for p in prepared:
                self._failed(p.job.id, exc, report)
            return
        for p in prepared:
            sent = [e.scheduled_for for e in p.executions]
            try:
                claimed = self._store.jobs.claim(p.job, p.plan.next_run_at, sent, now=now)
                if claimed and p.plan.next_run_at is None and not p.executions and p.plan.missed:
                    # A one-off whose only run was missed is over, and did not succeed.
                    self._store.jobs.run_finished(p.job.id, None, "failed", now)
            except Exception as exc:
                self._failed(p.job.id, exc, report)
                continue
            if claimed:
                report.jobs_dispatched += 1
                report.runs_sent += len(p.executions)
            else:
                report.claims_lost += 1

    @staticmethod
    def _snapshots(prepared: list[_Prepared], now: datetime) -> dict[str, dict[str, Any]]:
        """The job each run sent ahead carries, where it may start from it without reading
        the job (chalicelib.snapshot): by execution id. A run due already, or deferred from
        its time, carries none."""
        out: dict[str, dict[str, Any]] = {}
        for p in prepared:
            ahead = [
                e for e in p.executions if e.scheduled_for > now and e.start_at == e.scheduled_for
            ]
            if not ahead:
                continue
            sent = [e.scheduled_for for e in p.executions]
            job = snapshot.of(p.job, p.plan.next_run_at, sent, now)
            if job is not None:
                out.update((e.id, job) for e in ahead)
        return out

    def _execution(self, job: Job, scheduled_for: datetime, now: datetime) -> Execution:
        return first_attempt(job, scheduled_for, now, self.retention)

    def _missed(self, job: Job, scheduled_for: datetime, now: datetime) -> Execution:
        return self._execution(job, scheduled_for, now).model_copy(
            update={
                "status": "missed",
                "completed_at": now,
                "missed_count": 1,
                "task_args": [],
                "task_kwargs": {},
                "reason": (
                    f"not sent within its misfire grace ({job.misfire_grace_seconds} s): "
                    f"the scheduler was {(now - scheduled_for).total_seconds():.0f} s late"
                ),
            }
        )

    def _missed_range(self, job: Job, plan: RunPlan, now: datetime) -> Execution:
        assert plan.range_first is not None and plan.range_last is not None
        count = f"at least {plan.range_count}" if plan.range_capped else str(plan.range_count)
        return Execution(
            id=execution_id(job.id, plan.range_first, 0),
            job_id=job.id,
            status="missed",
            trigger="scheduled",
            scheduled_for=plan.range_first,
            attempt=0,
            task_id=task_id(job.id, plan.range_first),
            task_name=job.task_name,
            created_at=now,
            completed_at=now,
            missed_count=plan.range_count,
            missed_until=plan.range_last,
            reason=(
                f"{count} run(s) from {plan.range_first:%Y-%m-%dT%H:%M:%SZ} to "
                f"{plan.range_last:%Y-%m-%dT%H:%M:%SZ} were not sent within their misfire "
                f"grace ({job.misfire_grace_seconds} s)"
            ),
            expires_at=now + self.retention,
        )

    @staticmethod
    def _emit(report: TickReport) -> None:
        metrics: dict[Any, float] = {}
        if report.runs_missed > 0:
            metrics["RunsMissed"] = report.runs_missed
        if report.jobs_failed:
            metrics["TickJobErrors"] = report.jobs_failed
        if report.deferred:
            metrics["JobsDeferred"] = report.deferred
        if report.repairs:
            metrics["SweepRepairs"] = sum(report.repairs.values())
        if metrics:
            emit_metrics(metrics)
