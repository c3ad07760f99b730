"""The worker: take one run attempt through the life cycle (engine.lifecycle, S*, F*, R, D).

Messages arrive at least once (SQS may deliver twice; a dead worker's message comes back;
the tick may send a run again). Every step is conditional on the attempt's record, so a run
takes effect once, and a message that finds its attempt over finishes what is left (R)
instead of being dropped.

`process` answers what to do with the message: `DONE` (delete it) or `Later(seconds)` (send
it again to come back then: a run not due yet, or leased by a live worker). A task's failure
is an outcome, not an error: it is recorded and retried through the queue.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import notify, queued, snapshot
from chalicelib.engine.control import Controls, is_control
from chalicelib.engine.lifecycle import (
    GRACE_SLACK,
    LEASE_MARGIN,
    RESEND_AFTER,
    execution_id,
    task_id,
)
from chalicelib.engine.queue import MAX_DELAY_SECONDS, WorkQueue
from chalicelib.engine.watch import send_check
from chalicelib.models import Execution, Job
from chalicelib.observability import Metric, emit_metrics
from chalicelib.security import secrets
from chalicelib.store import Store
from chalicelib.store.jobs import EXCLUSIVE
from chalicelib.tasks import RunContext, TaskRegistry, UnknownTask
from chalicelib.timefmt import parse_stored, sortable

log = logging.getLogger("nexus.worker")

DEFAULT_TASK_TIMEOUT = 60.0
MAX_RETRY_DELAY = timedelta(hours=24)
RESULT_CAP = 16 * 1024
# A message may arrive up to a second before its run (SQS delays are whole seconds); the
# worker waits out the rest. One that comes much earlier is sent again with a delay.
MAX_EARLY_WAIT = 2.0
# An `allow` job shows a run in its slots (and so as `running`) once it has run this long:
# a run over sooner than that would cost a write to show for less than a second.
SHOW_RUNNING_AFTER = 1.0
# While a cancelled task has not stopped, its lease is renewed this often, for this long.
RENEW_EVERY = 10.0
RENEW_FOR = timedelta(seconds=60)
# Below this much of the invocation's time left, a task that will not stop ends the process.
STUCK_BUDGET_SECONDS = 15.0
# How often a running task's record is read for a cancel request (the first read after this
# much running: a quick run pays none). `RunContext.cancelled` is set within this of it.
CANCEL_POLL_SECONDS = 0.5
# How many records before a run that ended without an outcome are read for the job's last
# outcome (_carry_last_run): the run just before it, and a few more for runs that have no
# record yet or were retried.
CARRY_LOOKBACK = 5
# The longest one notification's delivery takes: 3 tries of WEBHOOK_TIMEOUT, 1 s + 2 s apart.
NOTIFY_SECONDS = 3 * notify.WEBHOOK_TIMEOUT + 3 * notify.BACKOFF_BASE + 2


class TaskTimeout(Exception):
    pass


@dataclass(frozen=True)
class Later:
    """Send the message again, to come back in `seconds`."""

    seconds: float


DONE = True
Verdict = bool | Later


@dataclass(frozen=True)
class Message:
    job_id: int
    run_key: str
    scheduled_for: datetime
    attempt: int
    trigger: str
    not_before: datetime | None
    # The job's `schedule_rev` when the tick sent the run ahead (None: sent otherwise).
    schedule_rev: int | None = None
    # The job as the tick's claim left it, if the run may start from it (chalicelib.snapshot).
    job: dict[str, Any] | None = None

    @classmethod
    def parse(cls, body: str) -> Message:
        data = json.loads(body)
        scheduled_for = _instant(data["scheduled_for"])
        attempt = int(data.get("attempt", 1))
        return cls(
            job_id=int(data["job_id"]),
            run_key=str(data["run_key"]),
            scheduled_for=scheduled_for,
            attempt=attempt,
            trigger=str(data.get("trigger") or ("scheduled" if attempt == 1 else "retry")),
            not_before=_instant(data["not_before"]) if data.get("not_before") else None,
            schedule_rev=int(data["schedule_rev"]) if "schedule_rev" in data else None,
            job=data["job"] if isinstance(data.get("job"), dict) else None,
        )

    @property
    def start_at(self) -> datetime:
        return self.not_before or self.scheduled_for


def _nothing_to_write_on_the_job(job: Job, record: Execution) -> bool:
    """F2 of a completed scheduled first attempt that held no slot and ended before the job's
    next run was due: nothing on the job needs it. No streak to count (no `notify`), no
    dead-man's switch to feed, no slot to release, no run waiting its turn; the last run shown
    comes from the record (JobStore.shown)."""
    return (
        record.status == "completed"
        and record.trigger == "scheduled"
        and record.attempt == 1
        and record.backfill_id is None
        and job.concurrency_policy == "allow"
        and job.notify is None
        and job.expect_success_within is None
        and job.overdue_since is None
        and not job.running
        and job.buffered is None
        and _ended_before_the_next_run(job, record)  # last: it decodes the runs sent ahead
    )


def _ended_before_the_next_run(job: Job, record: Execution) -> bool:
    """No later run can end before this one did (none starts before its time), so until one
    does, this run is the job's last, and the records of the job's latest runs sent ahead show
    it (JobStore.shown). A run that ends after the next was due (one taken over after its
    worker died, or a long one) may end after runs that followed it, whose records the API
    reads instead: it is written on the job. So is a run no longer among the job's runs sent
    ahead (a claim, a pause or a PUT has moved them on since): its next is not known."""
    sent = queued.runs(job.queued_runs)
    if record.scheduled_for not in sent:
        return False
    at = sent.index(record.scheduled_for)
    following = sent[at + 1] if at + 1 < len(sent) else job.next_run_at
    return (
        following is not None
        and following > record.scheduled_for
        and record.completed_at is not None
        and record.completed_at < following
    )


def _sent_ahead(message: Message) -> bool:
    """A scheduled run's first attempt as the tick (or a PUT, a resume) sent it ahead: no
    record is made for it before its start, so it has none unless the message is a repeat."""
    return (
        message.trigger == "scheduled" and message.attempt == 1 and message.schedule_rev is not None
    )


class _Recorded(Exception):
    """A first delivery found (or may find) its run recorded (or fenced): decide again with
    the record. `job`: the job as this delivery read it (None: it did not read it)."""

    def __init__(self, job: Job | None) -> None:
        super().__init__(job.id if job is not None else None)
        self.job = job


def _of_a_replaced_schedule(job: Job, message: Message) -> bool:
    """A scheduled run the tick sent ahead, timed after a PUT that changed the schedule since
    (runs due before the PUT were the old schedule's to run: the PUT sent them itself)."""
    return (
        message.trigger == "scheduled"
        and message.schedule_rev is not None
        and message.schedule_rev < job.schedule_rev
        and job.rescheduled_at is not None
        and message.scheduled_for > job.rescheduled_at
    )


def _sent_ahead_into_a_pause(job: Job, message: Message) -> bool:
    """A scheduled run the tick sent ahead (engine.tick, CLAIM_AHEAD) whose time came after a
    pause began, while the job is paused or before it was resumed. Such a run is dropped with
    nothing written, as the tick would never have sent it had it reached it during the pause:
    the history of a pause is then the same however far ahead runs are sent. (A run due at or
    before the pause was sent by catch_up and is recorded `skipped` if it has not started.)"""
    paused = job.paused_at
    if message.trigger != "scheduled" or message.schedule_rev is None or paused is None:
        return False
    if message.scheduled_for <= paused:
        return False
    if not job.is_active:
        return True
    return job.resumed_at is not None and message.scheduled_for < job.resumed_at


def _dropped(message: Message, why: str) -> Verdict:
    """A run sent ahead that is no run of the job any more (SR, SP): logged, nothing written."""
    ident = execution_id(message.job_id, message.scheduled_for, message.attempt)
    log.info(why, extra={"job_id": message.job_id, "execution_id": ident})
    return DONE


def _instant(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).astimezone(UTC)


def run_fields(body: str) -> dict[str, Any]:
    """`job_id` and `execution_id` of a run's message, for logs; empty if it is not one."""
    try:
        message = Message.parse(body)
    except (ValueError, KeyError, TypeError):
        return {}
    return {
        "job_id": message.job_id,
        "execution_id": execution_id(message.job_id, message.scheduled_for, message.attempt),
    }


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


def exit_if_on_lambda(reason: str) -> None:
    """A task thread that will not stop cannot be killed; the process can. On Lambda, end
    the sandbox (Lambda starts a new one), so the thread cannot wake in a later invocation
    beside the run's takeover. Elsewhere the worker keeps watching it instead."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        log.critical("ending the process: %s", reason)
        logging.shutdown()
        os._exit(70)


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
        on_stuck: Callable[[str], None] = exit_if_on_lambda,
        show_running_after: float = SHOW_RUNNING_AFTER,
        controls: Controls | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._sleep = sleep
        self._retention = retention
        self._rng = rng
        self._on_stuck = on_stuck
        self._show_running_after = show_running_after
        self._controls = controls

    # -- the message --------------------------------------------------------------------------

    def process(
        self,
        body: str,
        hold: Callable[[float], None] | None = None,
        remaining: Callable[[], float] | None = None,
    ) -> Verdict:
        """Handle one message. `hold(seconds)` keeps it hidden that long while its run goes
        on, so it comes back when a takeover is possible, and not before. `remaining()` is
        how many seconds the invocation has left."""
        hold = hold or (lambda _seconds: None)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if is_control(data):
            if self._controls is None or not self._controls.handle(data, self._clock()):
                log.error("dropping a control message nobody handles: %.200s", body)
            return DONE
        try:
            message = Message.parse(body)
        except (ValueError, KeyError, TypeError):
            log.error("dropping a message that is not a NEXUS run: %.200s", body)
            return DONE
        job: Job | None = None
        if _sent_ahead(message):
            try:
                return self._first_delivery(message, hold, remaining)
            except _Recorded as recorded:
                job = recorded.job  # the run has a record: decide again, with it
        return self._with_record(message, job, hold, remaining)

    def _first_delivery(
        self,
        message: Message,
        hold: Callable[[float], None],
        remaining: Callable[[], float] | None,
    ) -> Verdict:
        """A scheduled run the tick sent ahead, taken as having no record yet, as it has
        unless its message is a repeat: the record is not read first (a read unit a run).
        S0 (or SK / MS) is a put only where no record is, so a repeat's write fails, and it
        is then decided again with its record read (`_Recorded`), as is every case where a
        record would change the decision before any write: an exclusive job's slot (S1),
        and a run that would be dropped with nothing written (SR, SP). A deleted job's run
        needs no record: R writes nothing on a deleted job either.

        The job is not read either if the message carries it (chalicelib.snapshot): a change
        to the job since fences the run, which refuses S0 (and SK, MS) here, and the run
        decides again with the job read."""
        early = self._wait_for(message.start_at)
        if isinstance(early, Later):
            return early
        now = self._clock()
        carried = snapshot.job_from(message.job, message.scheduled_for, now)
        if carried is not None:
            try:
                return self._first_decision(message, carried, now, hold, remaining)
            except _Recorded:
                raise _Recorded(None) from None
        job = self._store.jobs.find_job(message.job_id)
        if job is None or job.deleted_at is not None:
            return DONE
        return self._first_decision(message, job, now, hold, remaining)

    def _first_decision(
        self,
        message: Message,
        job: Job,
        now: datetime,
        hold: Callable[[float], None],
        remaining: Callable[[], float] | None,
    ) -> Verdict:
        """The first delivery's decision from `job` (read, or carried), before any write."""
        if (
            job.concurrency_policy != "allow"
            or _of_a_replaced_schedule(job, message)
            or _sent_ahead_into_a_pause(job, message)
            or (job.paused_until is not None and not job.is_active)
        ):
            raise _Recorded(job)
        reason = self._reason_not_to_run(job, message, None, now)
        if reason is not None:
            return self._not_run(job, message, None, now, *reason, first=True)
        return self._start_and_run(job, message, None, now, hold, remaining, first=True)

    def _wait_for(self, start_at: datetime) -> Later | bool:
        """Wait out the last seconds before `start_at`: whether it waited, or Later if the
        message came too early for that (it is sent again to come back then)."""
        wait = (start_at - self._clock()).total_seconds()
        if wait > MAX_EARLY_WAIT:
            return Later(wait)
        if wait > 0:
            self._sleep(wait)
        return wait > 0

    def _with_record(
        self,
        message: Message,
        job: Job | None,
        hold: Callable[[float], None],
        remaining: Callable[[], float] | None,
    ) -> Verdict:
        """The message decided on its run's record (None: none yet); `job`, if the job was
        read for this delivery already."""
        record = self._store.runs.get(message.job_id, message.run_key)
        if record is not None and record.is_final:
            self._resume(record, hold=hold)  # R: a repeat, or a worker that died after F1
            return DONE
        if record is None and message.trigger != "scheduled":
            return DONE  # a pending attempt's record went with its job
        early = self._wait_for(record.start_at if record is not None else message.start_at)
        if isinstance(early, Later):
            return early
        now = self._clock()
        if job is None or early:
            job = self._store.jobs.find_job(message.job_id)
        if job is None or job.deleted_at is not None:
            return DONE  # nothing is written for a deleted job
        if record is None and _of_a_replaced_schedule(job, message):
            # Sent ahead under a schedule a PUT has since replaced: not a run of this job any
            # more (the PUT sent the new schedule's runs), so nothing is written for it (SR).
            return _dropped(message, "a run of the job's earlier schedule is dropped")
        if record is not None and record.status == "running":
            assert record.lease_until is not None
            if record.lease_until > now:
                return Later((record.lease_until - now).total_seconds() + 1)
            if record.cancel_requested:  # its worker died after the cancel: not run again
                return self._not_run(
                    job, message, record, now, "cancelled", record.cancel_requested
                )
        if (
            not job.is_active
            and job.paused_until is not None
            and job.paused_until <= min(now, message.scheduled_for)
            and self._controls is not None
        ):
            # A run after the end of a pause whose resume has not landed yet (its timer's
            # worker died, or is late): make the resume first, as the timer would have.
            self._controls.handle(
                {"control": "resume", "job_id": job.id, "until": sortable(job.paused_until)}, now
            )
            job = self._store.jobs.find_job(message.job_id) or job
        if record is None and _sent_ahead_into_a_pause(job, message):
            return _dropped(message, "a run sent ahead into a pause is dropped")  # SP
        if record is None or record.status == "pending":
            reason = self._reason_not_to_run(job, message, record, now)
            if reason is not None:
                return self._not_run(job, message, record, now, *reason)
        return self._start_and_run(job, message, record, now, hold, remaining)

    def _reason_not_to_run(
        self, job: Job, message: Message, record: Execution | None, now: datetime
    ) -> tuple[str, str] | None:
        trigger = record.trigger if record is not None else message.trigger
        # Runs someone asked for (a manual run, a backfill) run even while the job is paused.
        asked = trigger in ("manual", "backfill") or (record is not None and record.backfill_id)
        if not asked and not job.is_active:
            note = f" ({job.paused_note})" if job.paused_note else ""
            return "skipped", f"the job was paused before this run started{note}"
        paused, resumed = job.paused_at, job.resumed_at
        if (
            trigger == "scheduled"
            and paused is not None
            and resumed is not None
            and paused <= message.scheduled_for < resumed
        ):
            return (
                "skipped",
                f"its time fell while the job was paused (from {paused:%Y-%m-%dT%H:%M:%SZ} to "
                f"{resumed:%Y-%m-%dT%H:%M:%SZ}); a resume does not replay the paused time",
            )
        # A run deferred out of a blackout counts its grace from its new time; a run that
        # waited its turn (buffer_one, replace: it has a record) is not late for it.
        late = (now - message.start_at).total_seconds()
        grace = job.misfire_grace_seconds + GRACE_SLACK.total_seconds()
        if trigger == "scheduled" and record is None and late > grace:
            return (
                "missed",
                f"started {late:.0f} s after its time, later than its misfire grace "
                f"({job.misfire_grace_seconds} s)",
            )
        return None

    def _not_run(
        self,
        job: Job,
        message: Message,
        record: Execution | None,
        now: datetime,
        status: str,
        reason: str,
        *,
        first: bool = False,
    ) -> Verdict:
        """SK / MS: the attempt ends without running.

        If the write is refused, another delivery of the run got there first: this message
        is then the run's only way back if that worker dies, so it is deleted only if the
        run is final by now (R), and otherwise comes back once the run's lease is over.
        `first`: the record was not read (_first_delivery); a refused write decides again."""
        if record is None:
            made = self._store.runs.put_final(
                self._scheduled_execution(job, message, now).model_copy(
                    update={"status": status, "reason": reason, "completed_at": now}
                ),
                unread=first,
            )
        else:
            made = self._store.runs.commit(
                [self._store.runs.settlement(record, status, reason, now)]
            )[0]
        if made:
            log.info(
                "run %s: %s",
                status,
                reason,
                extra={
                    "job_id": job.id,
                    "execution_id": execution_id(job.id, message.scheduled_for, message.attempt),
                    "status": status,
                    "reason": reason,
                },
            )
            if status == "missed":
                emit_metrics({"RunsMissed": 1}, job_id=job.id)
            if (record.trigger if record is not None else message.trigger) == "scheduled":
                self._carry_last_run(job, message.scheduled_for)
            return DONE
        if first:  # a record, or a change's fence: decide again with the job read again
            raise _Recorded(None)
        return self._after_lost_race(message, now)

    def _after_lost_race(self, message: Message, now: datetime) -> Verdict:
        current = self._store.runs.get(message.job_id, message.run_key)
        if current is not None and current.is_final:
            self._resume(current)
            return DONE
        if current is not None and current.status == "running" and current.lease_until:
            return Later(max(1.0, (current.lease_until - now).total_seconds() + 1))
        return Later(1.0)

    def _scheduled_execution(self, job: Job, message: Message, now: datetime) -> Execution:
        return Execution(
            id=execution_id(job.id, message.scheduled_for, message.attempt),
            job_id=job.id,
            status="pending",
            trigger="scheduled",
            scheduled_for=message.scheduled_for,
            attempt=message.attempt,
            task_id=task_id(job.id, message.scheduled_for),
            task_name=job.task_name,
            task_args=job.task_args,
            task_kwargs=secrets.redacted(job.task_kwargs),
            created_at=now,
            expires_at=now + self._retention,
        )

    # -- start, run, finish -------------------------------------------------------------------

    def _start_and_run(
        self,
        job: Job,
        message: Message,
        record: Execution | None,
        now: datetime,
        hold: Callable[[float], None],
        remaining: Callable[[], float] | None,
        *,
        first: bool = False,
    ) -> Verdict:
        """S0-S3, the run, F1 and R. `first`: the record was not read (_first_delivery); a
        refused S0 decides again with it."""
        execution = record or self._scheduled_execution(job, message, now)
        task = self._task(execution)
        timeout = (task.timeout_seconds if task else None) or DEFAULT_TASK_TIMEOUT
        lease_until = now + timedelta(seconds=timeout) + LEASE_MARGIN
        owner = uuid.uuid4().hex
        policy = run_policy(job, execution)
        # S1: an exclusive job's slot is taken before the run starts: the check and the claim
        # are one write. (An `allow` job's slot only shows the run, so it waits: see below.)
        if policy in EXCLUSIVE:
            turn = self._take_turn(job, policy, message, record, execution, lease_until, now)
            if turn is not None:
                return turn
        # The run starts now, after its slot: an exclusive run's start never precedes the end
        # its predecessor recorded before releasing the slot.
        now = self._clock()
        running = execution.model_copy(
            update={
                "status": "running",
                "started_at": now,
                "lease_owner": owner,
                "lease_until": lease_until,
            }
        )
        if record is None:
            how = "started" if self._store.runs.start_new(running, unread=first) else None  # S0
        elif record.status == "pending":
            how = (
                "started"
                if self._store.runs.start_pending(record, now, lease_until, owner)
                else None
            )
        else:
            how = (
                "taken_over"
                if self._store.runs.take_over(record, now, lease_until, owner)
                else None
            )
        if how is None:
            if first:  # a record, or a change's fence: decide again with the job read again
                raise _Recorded(None)
            # Another delivery got there first: see where it stands now.
            return self._after_lost_race(message, now)
        hold(timeout + LEASE_MARGIN.total_seconds() + 1)
        fields = {"job_id": job.id, "execution_id": execution.id}
        log.info(
            "run started",
            extra={
                **fields,
                "how": how,
                "trigger": execution.trigger,
                "attempt": execution.attempt,
            },
        )
        started_metrics: dict[Metric, float] = {"RunsStarted": 1}
        if how == "started" and execution.trigger == "scheduled":
            lateness = (now - execution.scheduled_for).total_seconds()
            started_metrics["StartLatenessSeconds"] = round(max(lateness, 0.0), 3)
        emit_metrics(started_metrics, **fields)
        ran = self._run(job, running, task, timeout, owner, now, hold, remaining, policy)
        if ran is not None:
            finished, held_slot = ran
            self._resume(finished, job, hold, held_slot=held_slot)
        return DONE

    def _take_turn(
        self,
        job: Job,
        policy: str,
        message: Message,
        record: Execution | None,
        execution: Execution,
        lease_until: datetime,
        now: datetime,
    ) -> Verdict | None:
        """S1 of an exclusive job: None once the run holds the slot, or what became of it.

        `forbid`: skipped while another run holds the slot. `buffer_one`: the run waits for
        the running one (`Job.buffered`, recorded pending), unless another already waits:
        then it is skipped. `replace`: the running one is asked to stop, and this run waits
        for it to stop (a newer run replaces an older waiting one).
        """
        key = execution.run_key
        if self._take_exclusive_slot(job, key, lease_until, now):
            return None
        if policy == "forbid":
            return self._not_run(
                job,
                message,
                record,
                now,
                "skipped",
                "the previous run was still running (concurrency_policy is forbid)",
            )
        current = self._store.jobs.find_job(job.id)
        if current is None or current.deleted_at is not None:
            return DONE
        holders = {k: v for k, v in current.running.items() if k != key}
        if policy == "replace":
            for holder in holders:
                if self._store.runs.request_cancel(
                    job.id,
                    holder,
                    f"replaced by run {execution.id} (concurrency_policy is replace)",
                ):
                    log.info(
                        "asked the running run to stop: a newer run replaces it",
                        extra={"job_id": job.id, "execution_id": execution.id, "replaces": holder},
                    )
        if not self._store.jobs.wait_turn(job.id, key, newer_only=policy == "replace"):
            why = (
                "another run was already waiting for the running one (concurrency_policy is "
                "buffer_one)"
                if policy == "buffer_one"
                else "a newer run replaced it (concurrency_policy is replace)"
            )
            return self._not_run(job, message, record, now, "skipped", why)
        if current.buffered and current.buffered != key:
            self._replaced_waiting(job, current.buffered, execution, now)
        leases = [parse_stored(v) for v in holders.values()]
        resend_at = max([t for t in leases if t is not None], default=now) + LEASE_MARGIN
        waiting_for = ", ".join(sorted(holders)) or "the running run"
        if record is None:
            pending = self._scheduled_execution(job, message, now).model_copy(
                update={"reason": f"waiting for {waiting_for} to finish ({policy})"}
            )
            self._store.runs.put_pending(pending, resend_at)  # P: a repeat finds it there
        else:
            self._store.runs.move_resend(job.id, key, resend_at)
        log.info(
            "run waits for the running one",
            extra={"job_id": job.id, "execution_id": execution.id, "policy": policy},
        )
        # The running one may have finished before this run waited (and so found none to
        # start): look once more, and start this one now if the slot is free.
        self._start_waiting(job.id, now)
        return DONE

    def _replaced_waiting(self, job: Job, waiting: str, newer: Execution, now: datetime) -> None:
        """`replace`: a run that waited is skipped for a newer one."""
        record = self._store.runs.get(job.id, waiting)
        if record is None or record.status != "pending":
            return
        write = self._store.runs.settlement(
            record, "skipped", f"a newer run ({newer.id}) replaced it while it waited", now
        )
        self._store.runs.commit([write])

    def _start_waiting(self, job_id: int, now: datetime) -> None:
        """Send the run waiting its turn (buffer_one, replace) if the slot is free: the run
        that held it has finished. A waiting run whose record ended stops waiting."""
        job = self._store.jobs.find_job(job_id)
        if job is None or job.buffered is None or job.running:
            return
        record = self._store.runs.get(job_id, job.buffered)
        if record is None or record.is_final:
            self._store.jobs.end_wait(job_id, job.buffered)
            return
        if record.status == "pending":
            self._queue.send([record], now)

    def _take_exclusive_slot(
        self, job: Job, key: str, lease_until: datetime, now: datetime
    ) -> bool:
        """S1 for an exclusive job. If another run holds the slot (or waits for it), look at
        it: a run whose record is final already (its worker died between F1 and F2, and its
        message has not come back yet) no longer runs, so its slot (or its wait) is released
        here and the start goes on. Reads in proportion to the slots held: one."""
        if self._store.jobs.take_slot(job, key, lease_until, now, exclusive=True):
            return True
        current = self._store.jobs.find_job(job.id)
        if current is None:
            return False
        released = False
        for holder, lease in current.running.items():
            record = self._store.runs.get(job.id, holder)
            if record is None or not record.is_final:
                continue
            self._store.jobs.release_slot(job.id, holder, parse_stored(lease))
            released = True
            log.warning(
                "released the slot of a run that had finished",
                extra={"job_id": job.id, "execution_id": record.id},
            )
            emit_metrics({"SweepRepairs": 1}, job_id=job.id)
        if current.buffered and current.buffered != key:
            waiting = self._store.runs.get(job.id, current.buffered)
            if waiting is None or waiting.is_final:
                released |= self._store.jobs.end_wait(job.id, current.buffered)
        return released and self._store.jobs.take_slot(job, key, lease_until, now, exclusive=True)

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
        hold: Callable[[float], None],
        remaining: Callable[[], float] | None,
        policy: str,
    ) -> tuple[Execution, bool] | None:
        """Run the task, then F1. The record written and whether the run took a slot on the
        job, or None if the lease was lost."""
        context = RunContext(
            job_id=job.id,
            scheduled_for=execution.scheduled_for,
            execution_id=execution.id,
            attempt=execution.attempt,
        )
        shown = _SlotShow(self, job, execution, owner)
        if policy in EXCLUSIVE:
            shown.taken = True
        else:
            shown.after(self._show_running_after)
        try:
            if task is None:
                outcome: dict[str, Any] = {
                    "error": UnknownTask(execution.task_name, self._registry.names())
                }
            else:
                outcome = self._call(
                    task.func, context, execution, job, timeout, owner, hold, remaining
                )
        finally:
            shown.cancel()
        finished_at = self._clock()
        error = outcome.get("error")
        cancelled = outcome.get("cancelled")
        status = "cancelled" if cancelled else "failed" if error is not None else "completed"
        record = execution.model_copy(
            update={
                "status": status,
                "reason": cancelled,
                "completed_at": finished_at,
                "duration_seconds": round((finished_at - started_at).total_seconds(), 6),
                "result": None if error is not None else _capped_result(outcome.get("result")),
                "error": None
                if error is None
                else {"type": type(error).__name__, "message": str(error)[:2000]},
                "lease_owner": None,
                "lease_until": None,
            }
        )
        deltas: dict[str, int | float] = {
            "total_executions": 1,
            "successful_executions": int(status == "completed"),
            "failed_executions": int(status == "failed"),
            "duration_sum": record.duration_seconds or 0.0,
            "duration_count": 1,
        }
        if not self._store.runs.commit([self._store.runs.outcome(record, owner, deltas)])[0]:
            log.warning(
                "lease lost before the run finished; its new owner records it",
                extra={"job_id": job.id, "execution_id": execution.id},
            )
            if shown.taken and execution.lease_until is not None:
                self._store.jobs.release_slot(job.id, execution.run_key, execution.lease_until)
            return None
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
        if status == "cancelled":
            emit_metrics({"RunsCancelled": 1}, **fields)
        else:
            emit_metrics({"RunsFailed" if error is not None else "RunsSucceeded": 1}, **fields)
        return record, shown.taken

    def _call(
        self,
        func: Callable[..., Any],
        context: RunContext,
        execution: Execution,
        job: Job,
        timeout: float,
        owner: str,
        hold: Callable[[float], None],
        remaining: Callable[[], float] | None,
    ) -> dict[str, Any]:
        """Run the task in a thread, for at most `timeout` seconds.

        A thread cannot be killed. One that overruns is asked to stop (`context.cancelled`);
        until it has stopped, the attempt's lease (and slot, and message) are renewed, so no
        takeover and no retry starts beside it. If the invocation is about to end first, the
        process ends (on Lambda: `on_stuck`), which ends the thread with it.
        """
        outcome: dict[str, Any] = {}
        # The record holds the kwargs redacted: the job's values and SSM's secrets go in here
        # only, and out of what the task returns (security.secrets). SSM's "not now" raises,
        # as any AWS error here does: the message comes back and the run is taken over (S3).
        try:
            arguments = secrets.prepare(execution.task_kwargs, job.task_kwargs)
        except secrets.SecretError as exc:
            return {"error": exc}

        def target() -> None:
            try:
                result = func(context, *execution.task_args, **arguments.kwargs)
                outcome["result"] = arguments.scrub(result)
            except BaseException as exc:  # the task's failure is the run's outcome
                outcome["error"] = arguments.scrub_error(exc)

        thread = threading.Thread(target=target, name="nexus-task", daemon=True)
        thread.start()
        cancelled = self._watch(thread, execution, timeout)
        if not thread.is_alive():
            return {**outcome, "cancelled": cancelled} if cancelled else outcome
        context.cancelled.set()
        fields = {"job_id": execution.job_id, "execution_id": execution.id}
        if cancelled:
            log.info("run cancelled: %s; asked its task to stop", cancelled, extra=fields)
        else:
            log.warning("task overran its %g s timeout; asked it to stop", timeout, extra=fields)
        while thread.is_alive():
            lease_until = self._clock() + RENEW_FOR
            self._store.runs.renew(execution, owner, lease_until)
            self._store.jobs.renew_slot(execution.job_id, execution.run_key, lease_until)
            hold(RENEW_FOR.total_seconds() + LEASE_MARGIN.total_seconds())
            if remaining is not None and remaining() < STUCK_BUDGET_SECONDS:
                emit_metrics({"TasksStuck": 1}, **fields)
                self._on_stuck(f"task of {execution.id} did not stop after its timeout")
            thread.join(RENEW_EVERY)
        if cancelled:
            return {**outcome, "cancelled": cancelled}
        return {"error": TaskTimeout(f"the task ran longer than its {timeout:g} s timeout")}

    def _watch(self, thread: threading.Thread, execution: Execution, timeout: float) -> str | None:
        """Wait for the task's thread for at most `timeout` seconds, reading the record every
        CANCEL_POLL_SECONDS for a cancel request: its reason once there is one (the thread
        may still run), else None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            thread.join(min(CANCEL_POLL_SECONDS, left))
            if not thread.is_alive():
                return None
            why = self._store.runs.cancel_requested(execution.job_id, execution.run_key)
            if why:
                return why

    # -- R: what follows a final record --------------------------------------------------------

    def _resume(
        self,
        record: Execution,
        job: Job | None = None,
        hold: Callable[[float], None] | None = None,
        *,
        held_slot: bool | None = None,
    ) -> None:
        """F2 and F3 for a final record: release its slot and record the job's last run,
        then schedule its retry if it failed and may. Each step is idempotent, so this runs
        after every F1 and again on every redelivery of a finished attempt's message.

        `held_slot` False (the worker that ran it knows it took no slot): a completed
        scheduled run of a plain job writes nothing on the job (F2 skipped, a write unit a
        run saved); the API reads its last run from the run's record (JobStore.shown)."""
        if job is None:
            job = self._store.jobs.find_job(record.job_id)
            if job is None or job.deleted_at is not None:
                return
        retries = (
            record.status == "failed"
            and record.reason != "dead-lettered"
            and record.attempt >= 1
            and record.attempt <= job.max_retries
        )
        # N: a run's final outcome (completed; failed after its last retry; dead-lettered) is
        # notified once it is recorded, unless a delivery before this one recorded it did.
        final = record.status in ("completed", "failed") and not retries
        policy = self._notify_policy(job) if final and record.notifications is None else None
        streak: tuple[int, int] | None = None
        if held_slot is False and _nothing_to_write_on_the_job(job, record):
            pass
        elif record.status in ("completed", "failed"):
            at = record.completed_at or self._clock()
            if policy is not None and job.notify is not None:
                # The job's streak of failed runs, in the write F2 makes anyway.
                streak = self._store.jobs.run_finished_counted(
                    job.id, record.run_key, record.status, at
                )
            else:
                self._store.jobs.run_finished(job.id, record.run_key, record.status, at)
        elif record.trigger == "scheduled":
            self._carry_last_run(job, record.scheduled_for, release=record.run_key)
        else:
            self._store.jobs.release_slot(job.id, record.run_key)
        if job.concurrency_policy in ("buffer_one", "replace"):
            self._start_waiting(job.id, self._clock())
        if retries:
            self._retry(job, record)
        if record.status == "completed" and job.overdue_since is not None:
            # The dead-man's switch looks at once: the success may end the job's overdue spell
            # (engine.watch; if this message is lost, the next tick looks).
            now = self._clock()
            send_check(self._queue, job.id, now, now)
        if policy is not None:
            self._notify(job, record, policy, streak, hold)

    def _carry_last_run(
        self, job: Job, scheduled_for: datetime, *, release: str | None = None
    ) -> None:
        """A scheduled run that ended without an outcome (skipped, missed, cancelled) writes
        on the job the latest outcome of the runs before it, unless the job has it already.
        A plain job's quick success is not written on the job (F2 skipped): the API reads it
        from the records of the job's latest runs sent ahead (JobStore.shown), and once this
        run and the next are those, it would be lost from view. `release`: the run's key,
        whose slot the same write takes out (as R does for a final record)."""
        earlier = [
            r
            for r in self._store.runs.latest_before(job.id, scheduled_for, CARRY_LOOKBACK)
            if r.status in ("completed", "failed") and r.completed_at is not None
        ]
        last = max(earlier, key=lambda r: r.completed_at or r.scheduled_for, default=None)
        if (
            last is not None
            and last.completed_at is not None
            and (job.last_run_at is None or job.last_run_at < last.completed_at)
        ):
            self._store.jobs.run_finished(job.id, release, last.status, last.completed_at)
        elif release is not None:
            self._store.jobs.release_slot(job.id, release)

    # -- N: notifications -----------------------------------------------------------------

    def _notify_policy(self, job: Job) -> notify.NotifyPolicy | None:
        """The job's `notify`, with the stage's default channel (NEXUS_NOTIFY_DEFAULT) added
        to its channels. A job without `notify` sends its failed runs (run.failed_final) to
        the default channel, if the stage has one; otherwise nothing."""
        channels = notify.channels_for(job.notify)
        if not channels:
            return None
        if job.notify is None:
            return notify.NotifyPolicy(channels=channels)
        return job.notify.model_copy(update={"channels": channels})

    def _notify(
        self,
        job: Job,
        record: Execution,
        policy: notify.NotifyPolicy,
        streak: tuple[int, int] | None,
        hold: Callable[[float], None] | None = None,
    ) -> None:
        """Decide, deliver, record (N). Delivery never raises; the record's outcome is
        written already, so nothing here changes it. The deliveries are recorded on the
        record (`notifications`) only if no other delivery of its message recorded them: a
        crash before that write sends them again (at least once)."""
        failed = record.status != "completed"
        if streak is None:
            # No streak kept (no `notify` of its own), or this run's outcome came after a
            # newer one's: run.failed_final only.
            previous, consecutive = None, 0
        else:
            before, after = streak
            # The job's previous run's outcome: its streak says whether it failed (its
            # last_run_status may be this run's own earlier attempt's).
            previous = "failed" if before > 0 else None
            consecutive = after if failed else 0
        events = notify.decide(policy, previous, record.status, consecutive)
        if not events:
            return
        if hold is not None:
            # The message stays hidden while the deliveries take their time (each at most
            # `attempts` bounded tries and the backoff), so no twin sends them beside these.
            hold(len(events) * len(policy.channels) * NOTIFY_SECONDS + LEASE_MARGIN.total_seconds())
        now = self._clock()
        deliveries: list[dict[str, Any]] = []
        for event in events:
            body = notify.event_body(event, job, record, now)
            for channel in policy.channels:
                delivery = notify.deliver(channel, body, now=now, sleep=self._sleep)
                deliveries.append(delivery.as_dict())
        fields = {"job_id": job.id, "execution_id": record.id}
        if not self._store.runs.record_notifications(job.id, record.run_key, deliveries):
            log.warning("notifications recorded by another delivery of this run", extra=fields)
        sent = sum(d["status"] == "sent" for d in deliveries)
        log.info(
            "notified",
            extra={**fields, "events": events, "sent": sent, "failed": len(deliveries) - sent},
        )

    def _retry(self, job: Job, failed: Execution) -> None:
        """F3: the next attempt, recorded pending (P), then sent with its delay. A repeat
        finds it recorded and sends it again if it has not started (a duplicate message is
        harmless; a missing one is not)."""
        base = failed.completed_at or self._clock()
        not_before = base + retry_delay(job, failed.attempt, self._rng)
        attempt = failed.attempt + 1
        retry = failed.model_copy(
            update={
                "id": execution_id(job.id, failed.scheduled_for, attempt),
                "status": "pending",
                "trigger": "retry",
                "attempt": attempt,
                "created_at": base,
                "not_before": not_before,
                "started_at": None,
                "completed_at": None,
                "duration_seconds": None,
                "result": None,
                "error": None,
                "reason": None,
                "lease_owner": None,
                "lease_until": None,
                "expires_at": base + self._retention,
            }
        )
        now = self._clock()
        long_wait = (not_before - now).total_seconds() > MAX_DELAY_SECONDS
        resend_at = not_before if long_wait else not_before + RESEND_AFTER
        created = self._store.runs.put_pending(retry, resend_at)
        if not created:
            current = self._store.runs.get(job.id, retry.run_key)
            if current is None or current.status != "pending":
                return
            retry = current
        if not long_wait:
            self._queue.send([retry], now)  # longer waits: the tick sends it when due (TR)
        if created:
            log.info(
                "retry scheduled",
                extra={
                    "job_id": job.id,
                    "execution_id": retry.id,
                    "failed_execution_id": failed.id,
                    "attempt": attempt,
                    "not_before": not_before,
                },
            )
            emit_metrics({"RunsRetried": 1}, job_id=job.id, execution_id=retry.id)

    # -- D: the dead-letter queue ---------------------------------------------------------

    def dead_letter(self, body: str) -> None:
        """A message SQS gave up on: its attempt ends failed, so nothing ends silently."""
        try:
            message = Message.parse(body)
        except (ValueError, KeyError, TypeError):
            log.error("dead-lettered message that is not a NEXUS run: %.200s", body)
            return
        now = self._clock()
        record = self._store.runs.get(message.job_id, message.run_key)
        job = self._store.jobs.find_job(message.job_id)
        if job is None or job.deleted_at is not None:
            return
        if record is not None and record.is_final:
            self._resume(record, job)
            return
        error = {
            "type": "DeadLettered",
            "message": "the work queue gave up on this run after repeated failed deliveries",
        }
        deltas: dict[str, int | float] = {"total_executions": 1, "failed_executions": 1}
        if record is None:
            failed = self._scheduled_execution(job, message, now).model_copy(
                update={
                    "status": "failed",
                    "reason": "dead-lettered",
                    "error": error,
                    "completed_at": now,
                }
            )
            write = self._store.runs.new_final(failed, deltas)
        elif record.status == "running" and record.lease_until and record.lease_until > now:
            # A live worker still has it: let the sweep look once its lease is over.
            self._store.runs.move_resend(
                record.job_id, record.run_key, record.lease_until + LEASE_MARGIN
            )
            return
        else:
            write = self._store.runs.settlement(
                record, "failed", "dead-lettered", now, error, deltas
            )
        if self._store.runs.commit([write])[0]:
            fields = {
                "job_id": message.job_id,
                "execution_id": execution_id(
                    message.job_id, message.scheduled_for, message.attempt
                ),
            }
            log.error("run dead-lettered", extra={**fields, "status": "failed"})
            emit_metrics({"RunsFailed": 1}, **fields)
        current = self._store.runs.get(message.job_id, message.run_key)
        if current is not None and current.is_final:
            self._resume(current, job)


def run_policy(job: Job, execution: Execution) -> str:
    """The overlap rule of this run: the job's, or its backfill's (`skip`: none beside it)."""
    if execution.backfill_id is not None:  # its retries too
        return "forbid" if execution.overlap == "skip" else "allow"
    return job.concurrency_policy


class _SlotShow:
    """Puts an `allow` job's run in the job's slots once it has run a while, so the job
    shows `running`; a quick run never pays the write. Cancelled (or waited for) before the
    run's F2 removes it, so the slot is never put back after its removal."""

    def __init__(self, worker: Worker, job: Job, execution: Execution, owner: str) -> None:
        self._worker, self._job, self._execution = worker, job, execution
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._cancelled = False
        self.taken = False

    def after(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._show)
        self._timer.daemon = True
        self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if self._cancelled:
                return
            try:
                lease = self._execution.lease_until or self._worker._clock()
                self.taken = self._worker._store.jobs.take_slot(
                    self._job,
                    self._execution.run_key,
                    lease,
                    self._worker._clock(),
                    exclusive=False,
                )
            except Exception:
                log.exception("could not show a run as running", extra={"job_id": self._job.id})

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._timer is not None:
                self._timer.cancel()
