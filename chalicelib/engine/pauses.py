"""Pauses with an end: a job paused `until` an instant resumes by itself at that second.

The job item holds the truth: `is_active` false, `paused_until`, and a `by_due` entry at
`paused_until`. The tick meets the entry up to a window ahead and sends a `resume` control
message timed for `paused_until` (so does the API when the end is that close); the worker
makes the resume, one write conditional on the job's version, with its next run counted from
`paused_until`: the runs the pause covered are not replayed. A duplicate or late message finds
the job resumed (or paused again, with another end) and changes nothing; a lost one is sent
again by the next tick, since the due entry stays until the resume is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from chalicelib import schedules
from chalicelib.calendar_rule import CalendarRuleError, work_budget
from chalicelib.engine.control import control_body, on_its_second, send_control
from chalicelib.engine.queue import WorkQueue
from chalicelib.errors import ConcurrentUpdate, InvalidInput
from chalicelib.models import Job
from chalicelib.store import Store
from chalicelib.timefmt import iso, parse_stored

log = logging.getLogger("nexus.dispatch")

RESUME = "resume"


def resume_message(job: Job) -> str:
    assert job.paused_until is not None
    return control_body(RESUME, job_id=job.id, until=iso(job.paused_until))


def send_resume(queue: WorkQueue, job: Job, now: datetime) -> None:
    """Time the resume of `job` for its `paused_until`."""
    assert job.paused_until is not None
    send_control(queue, resume_message(job), job.paused_until, now)


def resumed(job: Job, at: datetime, now: datetime) -> Job:
    """`job` active again from `at`: its next run is the first at or after `at` (none of the
    runs the pause covered). `InvalidInput` if its schedule has no run left."""
    with work_budget():
        schedule = schedules.compile_schedule(job, anchor=job.created_at)
        try:
            next_run = schedule.next_after(at - timedelta(microseconds=1))
        except CalendarRuleError as exc:
            raise InvalidInput([]) from exc  # the caller says what it means for the job
    after = job.model_copy(
        update={
            "is_active": True,
            "paused_note": None,
            "paused_until": None,
            "resumed_at": at,
            "next_run_at": next_run,
            "updated_at": now,
            "version": job.version + 1,
        }
    )
    after.status = after.current_status
    return after


class PauseEnds:
    """The `resume` control handler (engine.control)."""

    def __init__(
        self,
        store: Store,
        dispatch: Callable[[Job, datetime], object],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`dispatch(job, now)`: send the runs of a resumed job due before the next tick
        (Dispatcher.dispatch_job)."""
        self._store = store
        self._dispatch = dispatch
        self._sleep = sleep

    def handle(self, data: dict[str, Any], now: datetime) -> None:
        try:
            job_id = int(str(data["job_id"]))
            until = parse_stored(str(data["until"]))
        except (KeyError, ValueError):
            log.error("dropping a resume message without a job and an end: %.200s", data)
            return
        if until is None:
            return
        at = on_its_second(until, now, self._sleep)
        if at is not None:
            self.resume(job_id, until, at)

    def resume(self, job_id: int, until: datetime, now: datetime) -> bool:
        """Resume the job if it is still paused until `until`; True if this call did."""
        job = self._store.jobs.find_job(job_id)
        if job is None or job.deleted_at is not None:
            return False
        if job.is_active or job.paused_until != until:
            return False  # resumed already, or paused again with another end
        try:
            after: Job | None = resumed(job, until, now)
        except InvalidInput:
            after = None
        if after is None or after.next_run_at is None:
            # Nothing left to run: it stays paused, and shows why.
            self._store.jobs.defer(
                job,
                now + timedelta(days=3650),
                f"could not resume at {iso(until)}: the schedule has no run after it",
            )
            return False
        try:
            self._store.jobs.replace_job(job, after, reschedule=True)
        except ConcurrentUpdate:
            return False  # changed meanwhile: the tick sends the message again if still due
        log.info(
            "job resumed at the end of its pause",
            extra={"job_id": job_id, "paused_until": iso(until)},
        )
        self._dispatch(after, now)
        return True
