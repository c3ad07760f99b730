"""Backfills: run every occurrence of a job's schedule in a past window, at a bounded rate.

`POST /jobs/{id}/backfill` lists the occurrences of the window (in the job's zone, leaving out
those the job's calendars or blackouts exclude) and writes ONE backfill item holding them
(store.backfills), with its audit entry, then sends a `backfill` control message
(engine.control). Each message is one step:

1. read the item (consistent); a step whose message names another position is a stale
   duplicate and stops (the chain that moved the item on goes on);
2. P for each occurrence of the chunk: put a `pending` attempt 1 at the run's identity
   `(job_id, occurrence)`, trigger `backfill`, `not_before` on its slot of the rate, in the due
   index (so the tick sends it if its message never is, lifecycle TR). The put is conditional
   on nothing being there: an occurrence whose run has a record (the scheduled run ran, was
   missed, or another backfill ran it) is counted `existing` and not run again;
3. send the new pending runs (a duplicate message is harmless: the worker's start is
   conditional);
4. move the item on: position, cursor, counts, the due entry, in ONE write conditional on the
   position read in 1 (done once every occurrence is handled: the due entry goes);
5. send the next step's message, for a second later.

A crash between any two steps loses nothing and doubles nothing: the item has not moved, so
the next delivery of the message (or, if it is lost, the tick meeting the due entry: `due`)
makes the step again; its puts find the records the dead step made. A record found with this
backfill's id is its own (counted `sent` again, and sent again if still pending); only a
record of someone else counts `existing`. Counts are written only by the write of 4, which
one step at a position makes, so they count each occurrence once.

Rate: the runs' `not_before` are RATE_PER_SECOND a second, 1/RATE apart, never before the
step (a late step does not make a burst). `overlap`: `allow` runs beside anything; `skip` is
skipped by the worker if another run of the job is running; `buffer_all` sends the next run
only once the previous one this backfill sent has a final record (polled once a step).
"""

from __future__ import annotations

import logging
import math
import secrets as random_tokens
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chalicelib import schedules, tzmath
from chalicelib.calendar_rule import CalendarRuleError, WorkBudget, work_budget
from chalicelib.engine.control import control_body, send_control
from chalicelib.engine.lifecycle import RESEND_AFTER, first_attempt
from chalicelib.engine.queue import WorkQueue
from chalicelib.errors import FieldError, InvalidInput
from chalicelib.models import BackfillOverlap, Execution, Instant, Job, StrictBool
from chalicelib.security.admin import audit_entry
from chalicelib.security.keys import Actor
from chalicelib.security.secrets import redacted
from chalicelib.store import DueEntry, Store
from chalicelib.store.backfills import PREFIX, Backfill, job_of
from chalicelib.timefmt import iso

log = logging.getLogger("nexus.backfill")

CONTROL = "backfill"
# The due-index entries of backfills start with this (Dispatcher's `on_due`).
DUE_PREFIX = PREFIX
# Runs a backfill starts per second, at most: its runs' `not_before` are 1/RATE apart.
RATE_PER_SECOND = 5
# One step a second.
STEP = timedelta(seconds=1)
# A running backfill not moved on this long after its last step is stepped again by the tick.
CHECK_MARGIN = timedelta(seconds=30)
# The most occurrences one backfill may run; past it the request is refused (split it).
MAX_OCCURRENCES = 1_000
# How far a refused window's occurrences are counted, to say how many it holds.
COUNT_LIMIT = 5_000
# Listing a window may use this much schedule work (a calendar rule's: 10 previews' steps).
WINDOW_BUDGET_STEPS = 1_000_000
WINDOW_BUDGET_SECONDS = 5.0


class BackfillRequest(BaseModel):
    """The body of `POST /jobs/{job_id}/backfill`."""

    model_config = ConfigDict(extra="forbid")

    start: Instant = Field(
        description="The window's first instant (an occurrence at it runs). Without an offset "
        "it is wall-clock time in the job's zone."
    )
    end: Instant = Field(
        description="The window's last instant (an occurrence at it runs): after `start`, and "
        "not after now. Without an offset it is wall-clock time in the job's zone."
    )
    overlap: BackfillOverlap = Field(
        default="allow",
        description="How the backfill's runs meet the job's other runs: `allow` (side by "
        "side), `skip` (a run is skipped if another run of the job is running), `buffer_all` "
        "(one at a time: each waits for the previous backfill run to end).",
    )
    dry_run: StrictBool = Field(
        default=False, description="Only list the occurrences that would run; run nothing."
    )


@dataclass(frozen=True)
class Window:
    """The occurrences of a window: those to run (at most `limit`), and what was left out."""

    occurrences: list[datetime]
    excluded: int
    # How many occurrences to run the window holds, counted up to COUNT_LIMIT; `more`: past it.
    counted: int
    more: bool


def window_occurrences(
    schedule: Any, start: datetime, end: datetime, *, limit: int = MAX_OCCURRENCES
) -> Window:
    """Every occurrence of `schedule` from `start` to `end` (both included), in order; pure.

    A schedule with `decide(t)` (calendars, blackouts) leaves out those whose decision has no
    time (`at` None): they are counted as `excluded`. Past `limit` occurrences to run the rest
    are only counted; the walk stops (`more`) after COUNT_LIMIT occurrences in all, or when a
    calendar rule's work budget runs out past `limit`.
    """
    decide = getattr(schedule, "decide", None)
    kept: list[datetime] = []
    excluded = counted = 0
    t = schedule.next_after(start - timedelta(microseconds=1))
    while t is not None and t <= end:
        if decide is not None and getattr(decide(t), "at", t) is None:
            excluded += 1
        else:
            counted += 1
            if counted <= limit:
                kept.append(t)
        if counted + excluded >= COUNT_LIMIT:
            return Window(kept, excluded, counted, more=True)
        try:
            t = schedule.next_after(t)
        except CalendarRuleError:
            if counted <= limit:
                raise
            return Window(kept, excluded, counted, more=True)
    return Window(kept, excluded, counted, more=False)


def plan_chunk(backfill: Backfill, now: datetime, rate: float) -> list[tuple[datetime, datetime]]:
    """The occurrences this step sends, each with its `not_before`: slots 1/rate apart from
    the later of now and the backfill's next free slot, those that fall within the step (so a
    second of steps sends at most `rate`); one at a time for `buffer_all`. Pure."""
    gap = timedelta(seconds=1 / rate)
    slot = max(now, backfill.next_slot or now)
    most = 1 if backfill.overlap == "buffer_all" else max(1, math.ceil(rate * STEP.total_seconds()))
    chunk: list[tuple[datetime, datetime]] = []
    for t in backfill.occurrences[backfill.position : backfill.position + most]:
        if slot >= now + STEP:
            break
        chunk.append((t, slot))
        slot += gap
    return chunk


def backfill_message(backfill: Backfill) -> str:
    """The control message of the backfill's next step, naming the position it starts at."""
    return control_body(
        CONTROL, job_id=backfill.job_id, backfill_id=backfill.id, position=backfill.position
    )


class Backfills:
    """Backfills: the API's request (`request`), the control handler (`handle`) and the tick's
    hook for a backfill whose steps stopped (`due`, `on_due`)."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        *,
        retention: timedelta = timedelta(days=90),
        rate: float = RATE_PER_SECOND,
    ) -> None:
        self._store = store
        self._queue = queue
        self.retention = retention
        self.rate = rate

    # -- the API --------------------------------------------------------------------------

    def request(
        self, job_id: int, body: Any, now: datetime, actor: Actor | None = None
    ) -> tuple[int, dict[str, Any]]:
        """`POST /jobs/{job_id}/backfill`: (200, the occurrences) for a dry run, else (202,
        the backfill started)."""
        # The API's parsing (422 shape); imported here: the service may come to use this module.
        from chalicelib.service import parse_model

        request = parse_model(BackfillRequest, body, ("body",))
        job = self._store.jobs.get_job(job_id)
        if request.dry_run:
            window = self.plan(job, request, now)
            return 200, {
                "occurrences": [iso(t) for t in window.occurrences],
                "excluded": window.excluded,
            }
        return 202, self.start(job, request, now, actor)

    def plan(self, job: Job, request: BackfillRequest, now: datetime) -> Window:
        """The window's occurrences in the job's zone; 422 naming the field for a window that
        is backwards, in the future, or holds more than MAX_OCCURRENCES."""
        start, end = _bounds(job, request)
        errors = []
        if end <= start:
            errors.append(
                FieldError(
                    ("body", "end"),
                    f"end ({iso(end)}) must be after start ({iso(start)})",
                    "value_error.window",
                )
            )
        if end > now:
            errors.append(
                FieldError(
                    ("body", "end"),
                    f"end ({iso(end)}) must not be after now ({iso(now)}): a backfill runs past "
                    "occurrences; the scheduler runs the future ones",
                    "value_error.future",
                )
            )
        if errors:
            raise InvalidInput(errors)
        budget = WorkBudget(steps=WINDOW_BUDGET_STEPS, seconds=WINDOW_BUDGET_SECONDS)
        try:
            with work_budget(budget):
                schedule = schedules.compile_schedule(job, anchor=job.created_at)
                window = window_occurrences(schedule, start, end)
        except InvalidInput as exc:
            raise InvalidInput(
                [
                    FieldError(
                        ("path", "job_id"),
                        f"the job's schedule cannot be evaluated: {exc}",
                        "value_error.schedule",
                    )
                ]
            ) from None
        except CalendarRuleError as exc:
            raise InvalidInput(
                [
                    FieldError(
                        ("body", "end"),
                        f"listing the window's occurrences takes too much work ({exc}); "
                        "ask for a shorter window",
                        "value_error.window",
                    )
                ]
            ) from None
        if window.more or window.counted > MAX_OCCURRENCES:
            how_many = f"at least {window.counted:,}" if window.more else f"{window.counted:,}"
            if window.excluded:
                how_many += f" (and {window.excluded:,} the job's calendars leave out)"
            last = window.occurrences[-1] if window.occurrences else start
            raise InvalidInput(
                [
                    FieldError(
                        ("body", "end"),
                        f"the window from {iso(start)} to {iso(end)} holds {how_many} "
                        f"occurrences; at most {MAX_OCCURRENCES:,} are accepted: end at "
                        f"{iso(last)} or earlier, and backfill the rest apart",
                        "value_error.too_many",
                    )
                ]
            )
        return window

    def start(
        self, job: Job, request: BackfillRequest, now: datetime, actor: Actor | None
    ) -> dict[str, Any]:
        """Write the backfill (with its audit entry, one transaction) and send its first
        step. The answer: the backfill as `GET /backfills/{id}` shows it."""
        window = self.plan(job, request, now)
        start, end = _bounds(job, request)
        running = bool(window.occurrences)
        backfill = Backfill(
            id=f"{job.id}-{random_tokens.token_hex(6)}",
            job_id=job.id,
            start=start,
            end=end,
            overlap=request.overlap,
            occurrences=window.occurrences,
            excluded=window.excluded,
            status="running" if running else "done",
            check_at=now + CHECK_MARGIN if running else None,
            created_at=now,
            updated_at=now,
            finished_at=None if running else now,
            created_by_key=actor.key_id if actor is not None else None,
            expires_at=now + self.retention,
        )
        audit = []
        if actor is not None:
            changes = {
                "backfill_id": backfill.id,
                "start": iso(backfill.start),
                "end": iso(backfill.end),
                "overlap": backfill.overlap,
                "occurrences": backfill.total,
            }
            entry = audit_entry("job.backfill", now, actor, job_id=job.id, changes=changes)
            audit.append(self._store.audit.put(entry))
        self._store.backfills.create(backfill, audit)
        log.info(
            "backfill started",
            extra={"job_id": job.id, "backfill_id": backfill.id, "occurrences": backfill.total},
        )
        if running:
            try:
                send_control(self._queue, backfill_message(backfill), now, now)
            except Exception:
                # Recorded, and in the due index: the tick sends its step (`due`).
                log.exception(
                    "sending a backfill's first step failed; the tick sends it",
                    extra={"job_id": job.id, "backfill_id": backfill.id},
                )
        return backfill.to_api(self.rate)

    def get(self, backfill_id: str) -> dict[str, Any] | None:
        """`GET /backfills/{id}`: the backfill and how its runs stand; None if unknown."""
        job_id = job_of(backfill_id)
        if job_id is None:
            return None
        backfill = self._store.backfills.get(job_id, backfill_id)
        if backfill is None:
            return None
        return {
            **backfill.to_api(self.rate),
            "runs": self._store.backfills.outcomes(backfill),
        }

    # -- the steps (control messages) ---------------------------------------------------

    def handle(self, data: dict[str, Any], now: datetime) -> None:
        """The `backfill` control handler: one step of the backfill the message names."""
        try:
            job_id = int(str(data["job_id"]))
            backfill_id = str(data["backfill_id"])
        except (KeyError, ValueError):
            log.error("dropping a backfill message without a job and a backfill: %.200s", data)
            return
        backfill = self._store.backfills.get(job_id, backfill_id)
        if backfill is None or backfill.status != "running":
            return  # done already (a duplicate), or gone with its job
        position = data.get("position")
        if isinstance(position, int) and position != backfill.position:
            return  # a duplicate of a step made already: the chain that made it goes on
        self.step(backfill, now)

    def step(self, backfill: Backfill, now: datetime) -> None:
        """Steps 2-5 of the module's docstring on the backfill as read in step 1."""
        job = self._store.jobs.find_job(backfill.job_id)
        if job is None or job.deleted_at is not None:
            self._end_early(backfill, now, "the job was deleted")
            return
        if backfill.overlap == "buffer_all" and backfill.last_key is not None:
            previous = self._store.runs.get(backfill.job_id, backfill.last_key)
            if previous is not None and not previous.is_final:
                self._wait(backfill, now)
                return
        chunk = plan_chunk(backfill, now, self.rate)
        if not chunk:
            self._wait(backfill, now)  # early: its slots are not due yet
            return
        to_send: list[Execution] = []
        sent = existing = 0
        last_key = backfill.last_key
        for scheduled_for, not_before in chunk:
            execution = self._execution(job, backfill, scheduled_for, not_before, now)
            if self._store.runs.put_pending(execution, not_before + RESEND_AFTER):  # P
                to_send.append(execution)
            else:
                found = self._store.runs.get(job.id, execution.run_key)
                if found is None or found.backfill_id != backfill.id:
                    existing += 1
                    continue
                # Recorded by an earlier try of this very step (it died before step 4).
                if found.status == "pending":
                    to_send.append(found)
            sent += 1
            last_key = execution.run_key
        if to_send:
            self._queue.send(to_send, now)
        position = backfill.position + len(chunk)
        finished = position >= backfill.total
        after = backfill.model_copy(
            update={
                "position": position,
                "cursor": chunk[-1][0],
                "sent": backfill.sent + sent,
                "existing": backfill.existing + existing,
                "last_key": last_key,
                "next_slot": chunk[-1][1] + timedelta(seconds=1 / self.rate),
                "status": "done" if finished else "running",
                "check_at": None if finished else now + STEP + CHECK_MARGIN,
                "updated_at": now,
                "finished_at": now if finished else None,
            }
        )
        if not self._store.backfills.advance(backfill, after):
            return  # another step moved it on first: its chain goes on
        if finished:
            log.info(
                "backfill done",
                extra={
                    "job_id": job.id,
                    "backfill_id": backfill.id,
                    "sent": after.sent,
                    "existing": after.existing,
                },
            )
            return
        self._next(after, now + STEP, now)

    def _wait(self, backfill: Backfill, now: datetime) -> None:
        """Look again in a step; keep the due entry ahead so the tick does not step it too."""
        stale = backfill.check_at is None or backfill.check_at < now + CHECK_MARGIN / 2
        if stale and not self._store.backfills.recheck_at(backfill, now + STEP + CHECK_MARGIN):
            return  # moved on meanwhile
        self._next(backfill, now + STEP, now)

    def _end_early(self, backfill: Backfill, now: datetime, reason: str) -> None:
        after = backfill.model_copy(
            update={
                "position": backfill.total,
                "skipped": backfill.skipped + backfill.remaining,
                "status": "done",
                "reason": reason,
                "check_at": None,
                "updated_at": now,
                "finished_at": now,
            }
        )
        if self._store.backfills.advance(backfill, after):
            log.info(
                "backfill ended: %s",
                reason,
                extra={"job_id": backfill.job_id, "backfill_id": backfill.id},
            )

    def _next(self, backfill: Backfill, at: datetime, now: datetime) -> None:
        send_control(self._queue, backfill_message(backfill), at, now)

    def _execution(
        self,
        job: Job,
        backfill: Backfill,
        scheduled_for: datetime,
        not_before: datetime,
        now: datetime,
    ) -> Execution:
        return first_attempt(
            job,
            scheduled_for,
            now,
            self.retention,
            trigger="backfill",
            task_kwargs=redacted(job.task_kwargs),
            not_before=not_before,
            backfill_id=backfill.id,
            overlap=backfill.overlap,
        )

    # -- the tick ---------------------------------------------------------------------------

    def due(self, job_id: int, sk: str, now: datetime) -> None:
        """The tick met a backfill's due entry: if its steps stopped (a lost message, a dead
        step), send its step again, and move the entry on."""
        backfill = self._store.backfills.get(job_id, sk.removeprefix(PREFIX))
        if backfill is None or backfill.status != "running":
            return
        if backfill.check_at is not None and backfill.check_at > now:
            return  # the tick looks up to a window ahead: not stalled yet
        if self._store.backfills.recheck_at(backfill, now + STEP + CHECK_MARGIN):
            log.warning(
                "backfill stalled: its step is sent again",
                extra={"job_id": job_id, "backfill_id": backfill.id},
            )
            self._next(backfill, now, now)

    def on_due(self, entry: DueEntry, now: datetime) -> None:
        """`due` in the shape of Dispatcher's `on_due` hooks."""
        self.due(entry.job_id, entry.sk, now)


def _bounds(job: Job, request: BackfillRequest) -> tuple[datetime, datetime]:
    """The window's instants in UTC; a time without an offset is wall-clock time in the job's
    zone."""
    zone_problem = schedules.zone_error(job.timezone, ("path", "job_id"))
    if zone_problem is not None:  # a stored job always has a known zone; never a 500
        raise InvalidInput([zone_problem])
    zone = tzmath.get_zone(job.timezone)
    return (
        schedules.local_instant(request.start, zone),
        schedules.local_instant(request.end, zone),
    )
