"""The recovery sweep, run by every tick over what the due index says needs a look.

It reads only what is due for repair, never the table:

- an attempt that is `pending` past its resend time (its message was never sent, or was
  lost with a dead-letter): sent again (TR), and checked again RESEND_AFTER later;
- an attempt `running` past its lease with nobody to take it over (its message went to the
  dead-letter queue while a worker held it): sent again, so a worker takes it over (S3);
- an attempt in the index that is final already: taken out of it;
- a deleted job: its history removed, a bounded number of records per tick, then, once no
  worker can still write for it (QUIET_AFTER_DELETE), the tombstone itself.

A `forbid` job's slot left by a dead worker is freed by the next start that meets it
(JobStore.take_slot), and counters cannot drift (they are written with the final record), so
neither needs a pass of its own. Every repair is logged and counted (`SweepRepairs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib.engine.lifecycle import LEASE_MARGIN, RESEND_AFTER
from chalicelib.engine.queue import WorkQueue
from chalicelib.models import Job
from chalicelib.store import DueEntry, Store

if TYPE_CHECKING:
    from chalicelib.engine.tick import TickReport

log = logging.getLogger("nexus.sweep")

# Records of a deleted job removed per tick: the delete itself answers at once.
PURGE_PER_TICK = 1_000
# Longer than any message delay (900 s) plus a lease: after it, no worker writes for the job.
QUIET_AFTER_DELETE = timedelta(minutes=20)


class Sweep:
    def __init__(self, store: Store, queue: WorkQueue, report: TickReport) -> None:
        self._store = store
        self._queue = queue
        self._report = report

    def attempt_due(self, entry: DueEntry, clock: Callable[[], datetime]) -> None:
        execution = self._store.runs.get(entry.job_id, entry.sk)
        if execution is None:
            return
        now = clock()
        fields = {"job_id": execution.job_id, "execution_id": execution.id}
        if execution.is_final:
            self._store.runs.drop_resend(entry.job_id, entry.sk)
            return
        if execution.status == "running" and execution.lease_until is not None:
            if execution.lease_until + LEASE_MARGIN > now:
                # A live worker has it; look again once its lease is over.
                self._store.runs.move_resend(
                    entry.job_id, entry.sk, execution.lease_until + LEASE_MARGIN
                )
                return
            kind = "running_past_lease"
        elif execution.start_at >= entry.due_at - timedelta(seconds=1):
            # Due at its own start: a retry longer than SQS can delay, sent now as planned.
            kind = "retry_sent"
        else:
            kind = "pending_resent"
        self._queue.send([execution], now)
        self._store.runs.move_resend(entry.job_id, entry.sk, now + RESEND_AFTER)
        if kind == "retry_sent":
            self._report.retries_sent += 1
        else:
            self._report.repaired(kind)
            log.warning("sweep: %s", kind.replace("_", " "), extra=fields)

    def purge(self, job: Job, now: datetime) -> None:
        """Remove a deleted job's history, a bounded part per tick, then its tombstone."""
        assert job.deleted_at is not None
        removed = self._store.runs.purge(job.id, PURGE_PER_TICK)
        if removed:
            self._report.repaired("history_removed", removed)
        if removed >= PURGE_PER_TICK:
            self._store.jobs.reschedule_tombstone(job.id, now)
        elif now < job.deleted_at + QUIET_AFTER_DELETE:
            self._store.jobs.reschedule_tombstone(job.id, job.deleted_at + QUIET_AFTER_DELETE)
        else:
            self._store.jobs.remove_tombstone(job.id)
