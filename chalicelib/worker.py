"""The worker: run one execution, record what happened, retry or give up.

Messages arrive at least once (SQS may deliver twice; a dead worker's message comes back);
every step is conditional on the execution's state, so a run takes effect once:

- start: `pending -> running` under a lease; a duplicate delivery finds it running or over
  and changes nothing. A running execution whose lease has ended (its worker died) is taken
  over; one whose lease is still good is left alone until then.
- finish: the outcome is written only by the worker that holds the lease.

A task's failure is an outcome, not an error: it is recorded and retried through the
queue, so it never fails the rest of its SQS batch.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.coalesce import Coalescer
from chalicelib.dispatch import execution_id
from chalicelib.errors import JobNotFound
from chalicelib.models import Execution, Job
from chalicelib.observability import Metric, emit_metrics
from chalicelib.queue import MAX_DELAY_SECONDS, WorkQueue
from chalicelib.store import Store
from chalicelib.tasks import RunContext, TaskRegistry, UnknownTask

log = logging.getLogger("nexus.worker")

DEFAULT_TASK_TIMEOUT = 60.0
LEASE_MARGIN = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(hours=24)
RESULT_CAP = 16 * 1024
# A message may arrive up to a second before its run (SQS delays are whole seconds); the
# worker waits out the rest. One that comes much earlier goes back to the queue.
MAX_EARLY_WAIT = 2.0


class TaskTimeout(Exception):
    pass


@dataclass(frozen=True)
class Message:
    job_id: int
    run_key: str

    @classmethod
    def parse(cls, body: str) -> Message:
        data = json.loads(body)
        return cls(job_id=int(data["job_id"]), run_key=str(data["run_key"]))


def run_fields(body: str) -> dict[str, Any]:
    """`job_id` and `execution_id` of a run's message, for logs; empty if it is not one."""
    try:
        data = json.loads(body)
        job_id = int(data["job_id"])
    except (ValueError, KeyError, TypeError):
        return {}
    try:
        scheduled_for = datetime.fromisoformat(str(data["scheduled_for"]).replace("Z", "+00:00"))
        return {
            "job_id": job_id,
            "execution_id": execution_id(job_id, scheduled_for, int(data["attempt"])),
        }
    except (ValueError, KeyError, TypeError):
        return {"job_id": job_id, "run_key": data.get("run_key")}


def retry_delay(job: Job, attempt: int, rng: Callable[[], float] = random.random) -> timedelta:
    """The wait before attempt `attempt + 1`: `retry_delay`, doubled per retry with backoff,
    plus up to 10% jitter so that jobs failing together do not retry in lockstep."""
    base = float(job.retry_delay)
    if job.retry_backoff:
        base *= 2 ** (attempt - 1)
    delay = timedelta(seconds=base * (1 + 0.1 * rng()))
    return min(delay, MAX_RETRY_DELAY)


def _capped_result(value: Any) -> Any:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    if len(text) <= RESULT_CAP:
        return json.loads(text)
    return {"truncated": True, "preview": text[: RESULT_CAP - 100]}


class Worker:
    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        registry: TaskRegistry,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        retention: timedelta = timedelta(days=90),
        rng: Callable[[], float] = random.random,
        counter_linger: float = 0.0,
    ) -> None:
        """`counter_linger`: how long the stats counters may gather runs before they are
        written (0: at once). The SQS handler sets it and calls flush() before it returns."""
        self._store = store
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._sleep = sleep
        self._retention = retention
        self._rng = rng
        self._counts: Coalescer[tuple[datetime, dict[str, int | float]]] = Coalescer(
            store.add_counts, counter_linger
        )

    def flush(self) -> None:
        """Write the counts still gathered; the worker calls it before its invocation ends."""
        self._counts.flush()

    def _count(self, now: datetime, **deltas: int | float) -> None:
        self._counts.add((now, deltas))

    def process(self, body: str, hold: Callable[[float], None] | None = None) -> bool:
        """Handle one message. True: done with it (delete it). False: let it come back.

        `hold(seconds)` keeps the message hidden that long. The queue's own visibility
        timeout must cover the worker's longest invocation (90 minutes here), which is far
        too long to wait for a dead worker's run: holding the message just past the run's
        lease makes it come back when a takeover is possible, and not before.
        """
        hold = hold or (lambda _seconds: None)
        try:
            message = Message.parse(body)
        except (ValueError, KeyError, TypeError):
            log.error("dropping a message that is not a NEXUS run: %.200s", body)
            return True
        execution = self._store.get_execution(message.job_id, message.run_key)
        if execution is None or execution.status not in ("pending", "running"):
            return True  # deleted with its job, or already over: a duplicate delivery
        wait = (execution.start_at - self._clock()).total_seconds()
        if wait > MAX_EARLY_WAIT:
            hold(wait)
            return False
        if wait > 0:
            self._sleep(wait)
        now = self._clock()
        try:
            job = self._store.get_job(message.job_id)
        except JobNotFound:
            return True
        if execution.status == "pending" and execution.trigger != "manual" and not job.is_active:
            self._settle(execution, "skipped", "the job was paused before this run started", now)
            return True
        if (
            execution.status == "pending"
            and job.concurrency_policy == "forbid"
            and job.running_count > 0
        ):
            self._settle(
                execution,
                "skipped",
                "the previous run was still running (concurrency_policy is forbid)",
                now,
            )
            return True
        task = self._task(execution)
        timeout = (task.timeout_seconds if task else None) or DEFAULT_TASK_TIMEOUT
        owner = uuid.uuid4().hex
        started = self._store.start_execution(
            execution, now, now + timedelta(seconds=timeout) + LEASE_MARGIN, owner
        )
        if started is None:
            current = self._store.get_execution(message.job_id, message.run_key)
            if current is None or current.status != "running" or current.lease_until is None:
                return True
            # Leased by a live worker: come back once the lease is over.
            hold((current.lease_until - now).total_seconds() + 1)
            return False
        hold(timeout + LEASE_MARGIN.total_seconds() + 1)
        if started == "started":
            self._store.job_run_started(job.id)
            self._count(now, running_executions=1, total_executions=1)
        fields = {"job_id": job.id, "execution_id": execution.id}
        log.info(
            "run started",
            extra={
                **fields,
                "how": started,
                "trigger": execution.trigger,
                "attempt": execution.attempt,
            },
        )
        started_metrics: dict[Metric, float] = {"RunsStarted": 1}
        if started == "started" and execution.trigger == "scheduled":
            # Lateness of a scheduled run's first start (not of retries, manual runs or a
            # takeover after a dead worker).
            lateness = (now - execution.scheduled_for).total_seconds()
            started_metrics["StartLatenessSeconds"] = round(max(lateness, 0.0), 3)
        emit_metrics(started_metrics, **fields)
        self._run(job, execution, task, timeout, owner, now)
        return True

    def _task(self, execution: Execution) -> Any:
        try:
            return self._registry.get(execution.task_name)
        except UnknownTask:
            return None

    def _run(
        self,
        job: Job,
        execution: Execution,
        task: Any,
        timeout: float,
        owner: str,
        started_at: datetime,
    ) -> None:
        context = RunContext(
            job_id=job.id,
            scheduled_for=execution.scheduled_for,
            execution_id=execution.id,
            attempt=execution.attempt,
        )
        outcome: dict[str, Any] = {}
        if task is None:
            outcome["error"] = UnknownTask(execution.task_name, self._registry.names())
        else:
            outcome = _call_with_timeout(
                task.func, context, execution.task_args, execution.task_kwargs, timeout
            )
        finished_at = self._clock()
        error = outcome.get("error")
        record = execution.model_copy(
            update={
                "status": "failed" if error is not None else "completed",
                "completed_at": finished_at,
                "duration_seconds": round((finished_at - started_at).total_seconds(), 6),
                "result": None if error is not None else _capped_result(outcome.get("result")),
                "error": None
                if error is None
                else {"type": type(error).__name__, "message": str(error)[:2000]},
            }
        )
        if not self._store.finish_execution(record, owner):
            log.warning(
                "lease lost before the run finished; its new owner records it",
                extra={"job_id": job.id, "execution_id": execution.id},
            )
            return
        self._store.job_run_finished(job.id, record.status, finished_at)
        self._count(
            finished_at,
            running_executions=-1,
            successful_executions=int(error is None),
            failed_executions=int(error is not None),
            duration_sum=record.duration_seconds or 0.0,
            duration_count=1,
        )
        fields = {"job_id": job.id, "execution_id": execution.id}
        log.info(
            "run finished",
            extra={
                **fields,
                "status": record.status,
                "attempt": execution.attempt,
                "duration_seconds": record.duration_seconds,
                "error_type": None if record.error is None else record.error["type"],
            },
        )
        emit_metrics({"RunsFailed" if error is not None else "RunsSucceeded": 1}, **fields)
        if error is not None and execution.attempt <= job.max_retries:
            self._retry(job, execution, finished_at)

    def _retry(self, job: Job, execution: Execution, now: datetime) -> None:
        not_before = now + retry_delay(job, execution.attempt, self._rng)
        attempt = execution.attempt + 1
        retry = execution.model_copy(
            update={
                "id": execution_id(job.id, execution.scheduled_for, attempt),
                "status": "pending",
                "trigger": "retry",
                "attempt": attempt,
                "created_at": now,
                "not_before": not_before,
                "started_at": None,
                "completed_at": None,
                "duration_seconds": None,
                "result": None,
                "error": None,
                "lease_owner": None,
                "lease_until": None,
                "expires_at": now + self._retention,
            }
        )
        if (not_before - now).total_seconds() <= MAX_DELAY_SECONDS:
            scheduled = self._store.put_execution(retry)
            if scheduled:
                self._queue.send([retry], now)
        else:
            # Longer than SQS can delay a message: the tick sends it when it is due.
            scheduled = self._store.put_due_execution(retry, not_before)
        if scheduled:
            log.info(
                "retry scheduled",
                extra={
                    "job_id": job.id,
                    "execution_id": retry.id,
                    "failed_execution_id": execution.id,
                    "attempt": attempt,
                    "not_before": not_before,
                },
            )
            emit_metrics({"RunsRetried": 1}, job_id=job.id, execution_id=retry.id)

    def _settle(self, execution: Execution, status: str, reason: str, now: datetime) -> None:
        if self._store.settle_execution(execution, status, reason, now):
            log.info(
                "run %s: %s",
                status,
                reason,
                extra={
                    "job_id": execution.job_id,
                    "execution_id": execution.id,
                    "status": status,
                    "reason": reason,
                },
            )

    def dead_letter(self, body: str) -> None:
        """A message SQS gave up on: mark its execution failed, so nothing ends silently."""
        try:
            message = Message.parse(body)
        except (ValueError, KeyError, TypeError):
            log.error("dead-lettered message that is not a NEXUS run: %.200s", body)
            return
        execution = self._store.get_execution(message.job_id, message.run_key)
        if execution is None or execution.status not in ("pending", "running"):
            return
        now = self._clock()
        error = {
            "type": "DeadLettered",
            "message": "the work queue gave up on this run after repeated failed deliveries",
        }
        was_running = execution.status == "running"
        if self._store.settle_execution(execution, "failed", "dead-lettered", now, error):
            self._store.job_run_finished(execution.job_id, "failed", now, started=was_running)
            self._count(
                now,
                failed_executions=1,
                running_executions=-int(was_running),
            )
            fields = {"job_id": execution.job_id, "execution_id": execution.id}
            log.error("run dead-lettered", extra={**fields, "status": "failed"})
            emit_metrics({"RunsFailed": 1}, **fields)


def _call_with_timeout(
    func: Callable[..., Any],
    context: RunContext,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float,
) -> dict[str, Any]:
    """Run the task in a thread and wait at most `timeout` seconds for it.

    A thread cannot be killed: a task that overruns is recorded as failed and left to end on
    its own (on Lambda, the function's own timeout ends it).
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = func(context, *args, **kwargs)
        except BaseException as exc:  # the task's failure is the run's outcome
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="nexus-task", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return {"error": TaskTimeout(f"the task ran longer than its {timeout:g} s timeout")}
    return outcome
