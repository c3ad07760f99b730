"""The run life cycle: every state a run attempt can be in, every transition, the one write
that makes it, and what happens when the process dies right after it.

A run is identified by `(job_id, scheduled_for)`; each attempt of it by the attempt number
too, and its record lives at that identity (store.items.run_key). Every transition below is
ONE conditional write on that record (or on the job, named), so making it twice changes
nothing, and every step after it is resumable: a redelivered message, the next tick or the
sweep finishes what a dead process left undone. Nothing is ever dropped because a step
"looks done": a message is deleted only after the last step it owes.

States of an attempt::

     (no record) ──S0──▶ running ──F1──▶ completed | failed ──F3──▶ (attempt+1: pending)
          │                 │  ▲
          ├──SK/MS──▶ skipped | missed        S3 (lease over: taken over)
          │                                   │
     pending ──S2──▶ running ─────────────────┘
          └──SK/D──▶ skipped | failed (dead-lettered)

- *(no record)*: a scheduled run's message is in the queue; the message is its pending state,
  so a scheduled run costs no pending write. A repeat tick sends the message again; S0 keeps
  one. Its first delivery does not read the record (engine.worker, _first_delivery): S0, SK
  and MS are puts only where none is, and a refused one (a repeat) decides again with the
  record read; so does a run that a record would change before any write (S1, SR, SP).
- `pending`: a manual run or a retry, recorded before its message is sent (P), and kept in
  the due index until it starts, so a message that was never sent is sent by the tick (TR).
- `running`: a worker holds its lease (`lease_owner`, `lease_until`).
- final: `completed`, `failed`, `skipped`, `missed`, `cancelled`. A final record is never
  rewritten.
- attempt 0 at the first run of a range is the record of runs missed without ever being sent.

| step | who | the write (its condition) | if the process dies after it |
|---|---|---|---|
| TM | tick | put `missed` at each run past its grace (none) | next tick: puts fail, it goes on |
| T1 | tick | send its runs to CLAIM_AHEAD to SQS (held; no write) | next tick resends; S0 dedups |
| T2 | tick | job: `next_run_at` on, `queued_runs`, `version`+1 (unchanged) | done: runs queued |
| SR | worker | none: a run sent ahead of a PUT that changed the schedule is dropped | - |
| SP | worker | none: a run sent ahead whose time falls in a pause is dropped | - |
| P | API | put `pending` + due entry (none there) | the tick sends it (TR) |
| TR | tick | send; move the due entry on (still unfinished) | next tick again; S2 dedups |
| SK | worker | put / settle `skipped` (none / `pending`) | message back: final, R |
| MS | worker | put / settle `missed` (none / `pending`) | message back: final, R |
| S1 | worker | job: `running[key] = lease` (forbid: no other) | message back: the slot is its own |
| S0 | worker | put `running` + lease (none there (*); no read first) | lease over, back: S3 |
| S2 | worker | `pending` -> `running` + lease, out of due index | lease over, message back: S3 |
| S3 | worker | `running` -> `running`, new owner (lease over) | lease over, message back: S3 |
| F1 | worker | outcome + what it counts, one update (our lease) | message back, final: R |
| F2 | worker | job: slot out, last run (only forward; see below) | message back: R repeats F2, F3 |
| F3 | worker | retry: P, then send it with its delay | message back: R, P no-op, send |
| R | worker | on a final record: F2, then F3 if it may retry | message back: R again |
| CY | worker | after SK, MS, a cancel: job: last outcome before it (forward) | back: R, CY |
| W | worker | job: `buffered = key` (none/older waits); P | message back: W again |
| WS | worker | after F2: send the waiting run if the slot is free | TR at its resend |
| C | API | pending: `cancelled`; running: `cancel_requested`; none: put | done |
| FN | API | before a PUT, pause, delete: fence each run sent with the job | its runs read it |
| TX | tick | put `skipped` at an excluded occurrence (none) | next tick: put fails |
| D | DLQ | settle `failed` (dead-lettered) + what it counts; R | DLQ message back: D again |
| N | worker | end of R: send, put `notifications` (none there) | back: N sends again |
| O | worker | job: `overdue_since` + notice, count, watch (not overdue) | lease over: next sends |
| OK | worker | job: `overdue_since` out + notice, count, watch (same) | lease over: next sends |
| ON | worker | job: notice out, `overdue_notifications` (notice there) | done |

(*) "None there" is no record: a fence (FN) counts as none, and the write replaces it; only S0
(and SK, MS) of a first delivery that did not read its record needs no item at all, so a fence
refuses it, and the run decides again with its record and its job read.

Runs that carry their job (chalicelib.snapshot): the tick sends a plain job's runs ahead with
the job as its claim leaves it, and their first delivery decides from it without reading the
job, so a run costs a read unit less. Before a pause, a PUT or a delete writes the job, it puts
a fence at each run that may be in flight with the job as it was (FN: the runs on the job's
list, and the schedule's next ones as far as a tick that read the job before the change could
send them); their S0 is refused, and they decide with the job read (SP, SR, SK, a deleted
job's nothing, or a start under the job as it is now). A change that dies after its fences is
not made, and leaves only runs that read their job. A fence is no record: the history, the
counts, the events, the sweep and the job's last run skip it; it expires after FENCE_KEPT.

Changes and runs in flight, any job: a worker that read the job just before a change was
written may start its run just after, from the job as it was. So the change's own write (the
pause, the PUT, the delete, one transaction) also puts a fence at each of the job's runs that
may be between that read and its start (snapshot.in_flight: on its list, from FENCE_BACK ago
to IN_FLIGHT_AHEAD on). S0 is then refused, and the run decides with the job read again: a
run whose S0 landed first has started, and its fence is left out of the change.

F2 is not written for a completed first attempt of a scheduled run of a plain job (`allow`,
no `notify`, no dead-man's switch) that took no slot (it ran under a second) and ended before
the job's next run was due: nothing on the job needs it, and it saves a write unit a run. The
API shows the job's last run from the records of its two latest runs sent ahead
(JobStore.shown); a redelivered message (R) still writes F2, which changes nothing but the
last run. A run that ends after its next was due (one taken over after its worker died, a
long one), or that is no longer among the job's runs sent ahead, writes F2: it may end after
runs that followed it, whose records the API would read instead. A scheduled run that ends
without an outcome (SK, MS, a cancel) carries the latest outcome of the runs before it onto
the job (CY: one Query of the records before it, and F2's write, only forward), so a quick
success stays shown once the runs after it are the latest sent ahead. While both of those are
still in flight, the last run shown can be the one before them, until either ends.

Notifications (N, chalicelib.notify): a run's final outcome (completed; failed after its
last retry; dead-lettered) is notified after it is recorded, at the end of R, so a delivery
never fails or holds back the outcome, the slot's release or a retry. For a job with `notify`,
F2 also counts the job's streak of failed runs (`failure_streak`, and `streak_before` and
`streak_run`, the run it counted, so a repeat of F2 counts it once and reads what the first
wrote); a job without `notify` pays no write for it. The events are decided from that streak
(the previous run failed iff the streak before this run was not 0: `last_run_status` may be
this run's own failed first attempt), sent, and what became of each is recorded on the final
record as `notifications`, a conditional write (none there) that is the "notified" marker: the
only change ever made to a final record. A repeat of the message that finds the marker sends
nothing, so a duplicated message sends once. The choice is **at least once**: a process that
dies after sending and before the marker is written sends again when the message comes back
(each body's `event_id` is the same, so a receiver can drop the second); a run with no event
to send writes no marker. Two deliveries of one message running at the same moment may both
send (SQS's visibility timeout makes that rare). NEXUS_NOTIFY_DEFAULT, the stage's default
channel, is added to the channels of every job with `notify`, and gets `run.failed_final` of
every job without one.

The dead-man's switch (O, OK, ON: engine.watch) reads a job's `last_success_at`, which F2
writes for a completed run in the write it makes anyway, and makes one transition per check,
each one transaction conditional on the state it read; its notice stays on the job until it
is sent and recorded, so a check that dies leaves it for the next (at least once). After R of
a completed run of an overdue job, the worker has the switch looked at at once.

A final record of F1 and D carries what it counts (`counts`, `counted_at`), and runs are counted
nowhere else: the stream handler adds a record's counts when the table's change stream shows
the change that gave it them (store.counters: exactly once, a batch it is given again counts
nothing more), so the stats equal what the history shows, a fraction of a second behind it.
A job's `status` is computed from its slots and its last run, never stored, so it cannot
disagree with them.

Overlap: an exclusive job's (`forbid`, `buffer_one`, `replace`) S1 is the check and the claim
at once, and it fails while another run holds the slot or another run waits its turn
(`Job.buffered`). Then `forbid` skips the run; `buffer_one` makes it the one run that waits
(W: recorded `pending`, in the due index at the holder's lease end, so a lost nudge is sent by
the tick), or skips it if one waits already; `replace` also asks the holder to stop (C) and
its run replaces an older waiting one (settled `skipped`). When the holder's record is final,
its R sends the waiting run (WS), whose S1 takes the slot and ends the wait in one write.
Cancel: a running task is asked to stop through `RunContext.cancelled` (the worker reads
`cancel_requested` every CANCEL_POLL_SECONDS while the task runs); F1 then writes `cancelled`,
which never retries. A takeover (S3) that finds `cancel_requested` settles `cancelled`.
A `forbid` job's S1 is the check and the claim at once; a slot whose lease is over
(its worker died and its message went to the dead-letter queue) is freed by the next S1
that meets it. A task that overruns its timeout is asked to stop (`RunContext.cancelled`);
until its thread has really stopped, its lease (and slot) are renewed, so neither a takeover
nor its retry can start beside it (worker.run_task).

Misfires: a run is missed only when it would start later than its job's
`misfire_grace_seconds` (plus GRACE_SLACK, a second: starts are promised on the second) after
its time; a late or missing tick sends everything still inside the grace, in order.

Control messages (engine.control) are timers on the same queue: `resume` ends a pause with
`until` (engine.pauses; the job's due entry stays at `until` until the resume is written, so
the tick sends a lost one again) and `backfill` runs a backfill's next step (engine.backfill;
its item is in the due index the same way).

Claims ahead: a job due in the tick's window has its runs in the window and up to
MAX_RUNS_AHEAD (15) more within CLAIM_AHEAD (14 minutes; SQS delays a message at most 15)
sent and claimed in one write, so a job that runs every minute pays one claim (and one move
of its due entry) for 14 runs. `next_run_at` is then how far the
tick has sent; the claim writes the runs it sent as `queued_runs` (chalicelib.queued), and the
API shows the first of them still to come as the job's next run. The runs in the queue are
checked against the job when they start. One whose time falls after a pause began (while
paused, or before the resume) is dropped with nothing written (SP): the tick would not have
sent it during the pause, so a pause's history does not depend on CLAIM_AHEAD. (A run due at
or before the pause was sent by catch_up, and is skipped (SK) if it has not started.) After a
delete nothing is written. A PUT that changes the schedule raises `schedule_rev` (at
`rescheduled_at`): a run sent under an earlier one and timed after the PUT is dropped with
nothing written (SR), since the PUT sent the new schedule's runs itself (the same identity
may be one of them).

Held sends (T1): SQS delays are whole seconds, so a message sent at any instant shows up as
much as a second before its run, and its worker waits, billed, for the run's time. In its
first ALIGN_FOR (3 s) the deployed tick holds each call of T1, under a second, until its
messages will show up within ALIGN_TOLERANCE (50 ms) of their runs (engine.queue, Alignment):
at most 50 ms early, or that late. A hold writes and sends nothing, so a tick that dies in one
died before that T1.

Changes: a pause, resume or PUT applies from the moment it is made. Before it writes, the
API handles the runs already due that no tick has reached (Dispatcher.catch_up: TM, T1, T2
as the tick would), so a run due while the job was active is never dropped by a change; if
that fails, the change is refused (503) and nothing changes. Such a run, if it has not
started when the pause lands, is settled `skipped` by its worker (SK) like any queued run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.models import Execution, Job

# A pending attempt not started this long after it was (to be) sent is sent again.
RESEND_AFTER = timedelta(seconds=120)
# How long past a lease a running attempt's worker is presumed dead.
LEASE_MARGIN = timedelta(seconds=30)
# A run's start is promised on its second, not to the millisecond: it is missed only when it
# would start later than its misfire grace plus this. A grace of 0 then means "within its
# second": a worker wakes a few ms after its run's time, and a held send may show up as much
# as engine.queue.ALIGN_TOLERANCE after it; without this, such a job never ran.
GRACE_SLACK = timedelta(seconds=1)
# The tick sends at most this many runs of one job in one tick.
MAX_RUNS_PER_JOB = 1_000
# How far ahead the tick sends a job's runs (T1) and claims them (T2) in one write: SQS delays
# a message at most 900 s; the rest is margin for a slow tick. A job that runs every minute
# pays one claim for 14 runs (engine.tick).
CLAIM_AHEAD = timedelta(seconds=840)
# At most this many runs past the tick's window are sent ahead in one claim: it bounds the
# messages a frequent job keeps in the queue (what a PUT or a pause has the worker drop, SR
# and SP) at little cost: a job every 10 s still pays one claim for 21 runs.
MAX_RUNS_AHEAD = 15


def execution_id(job_id: int, scheduled_for: datetime, attempt: int) -> str:
    """The public id of one attempt: `<job>-<scheduled_for>Z-<attempt>`."""
    stamp = scheduled_for.strftime("%Y%m%dT%H%M%S")
    if scheduled_for.microsecond:
        stamp += f".{scheduled_for.microsecond:06d}"
    return f"{job_id}-{stamp}Z-{attempt}"


def first_attempt(
    job: Job, scheduled_for: datetime, now: datetime, retention: timedelta, **fields: Any
) -> Execution:
    """Attempt 1 of the run `(job.id, scheduled_for)`, pending, as the tick, a backfill or a
    cancel records it; `fields` set the rest (trigger, status, reason, ...)."""
    from chalicelib.models import Execution

    values: dict[str, Any] = {
        "id": execution_id(job.id, scheduled_for, 1),
        "job_id": job.id,
        "status": "pending",
        "trigger": "scheduled",
        "scheduled_for": scheduled_for,
        "attempt": 1,
        "task_id": task_id(job.id, scheduled_for),
        "task_name": job.task_name,
        "task_args": job.task_args,
        "task_kwargs": job.task_kwargs,
        "created_at": now,
        "expires_at": now + retention,
    }
    return Execution(**{**values, **fields})


def task_id(job_id: int, scheduled_for: datetime) -> str:
    """The id a scheduled run carries into its task (stable across its attempts)."""
    return f"{job_id}:{scheduled_for:%Y%m%dT%H%M%SZ}"


def parse_execution_id(text: str) -> tuple[int, datetime, int]:
    """`(job_id, scheduled_for, attempt)` of an execution id; ExecutionNotFound if it is not
    one (an id that cannot exist is as unknown as one that does not)."""
    from datetime import UTC

    from chalicelib.errors import ExecutionNotFound

    parts = text.split("-")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit():
        raise ExecutionNotFound(text)
    stamp = parts[1]
    if not stamp.endswith("Z") or len(parts[0]) > 18 or len(parts[2]) > 4:
        raise ExecutionNotFound(text)
    try:
        fmt = "%Y%m%dT%H%M%S.%f" if "." in stamp else "%Y%m%dT%H%M%S"
        scheduled_for = datetime.strptime(stamp[:-1], fmt).replace(tzinfo=UTC)
    except ValueError:
        raise ExecutionNotFound(text) from None
    job_id, attempt = int(parts[0]), int(parts[2])
    if job_id < 1 or execution_id(job_id, scheduled_for, attempt) != text:
        raise ExecutionNotFound(text)
    return job_id, scheduled_for, attempt
