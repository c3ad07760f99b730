"""What the API does: jobs, runs on demand, previews and statistics.

The service never reads the clock: every operation that depends on time takes `now`.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from chalicelib import snapshot
from chalicelib.engine.lifecycle import (
    RESEND_AFTER,
    execution_id,
    first_attempt,
    parse_execution_id,
)
from chalicelib.errors import (
    ConcurrentUpdate,
    ExecutionNotFound,
    FieldError,
    InvalidInput,
    RunAlreadyFinal,
)
from chalicelib.models import (
    MAX_CRON_LENGTH,
    NON_NULLABLE,
    UPDATABLE,
    CancelRequest,
    CronValidateRequest,
    ExecuteRequest,
    Execution,
    Job,
    JobCreate,
    ListExecutionsQuery,
    ListJobsQuery,
    PauseRequest,
    PreviewRequest,
)
from chalicelib.security import secrets
from chalicelib.security.admin import audit_entry
from chalicelib.security.keys import Actor
from chalicelib.store import Store
from chalicelib.store.items import is_condition_failure, run_key
from chalicelib.store.jobs import MAX_TAG_FILTER
from chalicelib.timefmt import iso

# The schedule modules, the engine's and the task registry are imported where they are used
# (the dispatcher and the registry are given by app.py): a read of the jobs loads none of
# them (the API's cold start: bench/cold_start.py, tests/unit/test_import_path.py).
if TYPE_CHECKING:
    from chalicelib import schedules, tzmath
    from chalicelib.engine.queue import WorkQueue
    from chalicelib.engine.tick import Dispatcher
    from chalicelib.holidays import HolidayCalendar
    from chalicelib.tasks import TaskRegistry

log = logging.getLogger("nexus.api")
# A write that met a concurrent claim or update is read and made again this many times.
WRITE_ATTEMPTS = 3
Loc = tuple[str | int, ...]

SCHEDULE_FIELDS = {
    "cron": "cron_expression",
    "interval": "interval_seconds",
    "date": "scheduled_time",
    "calendar": "calendar_rule",
}

CRON_PRESETS: dict[str, str] = {
    "every_minute": "* * * * *",
    "every_5_minutes": "*/5 * * * *",
    "every_15_minutes": "*/15 * * * *",
    "every_30_minutes": "*/30 * * * *",
    "hourly": "0 * * * *",
    "daily_midnight": "0 0 * * *",
    "daily_9am": "0 9 * * *",
    "weekdays_9am": "0 9 * * 1-5",
    "weekly_monday": "0 0 * * 1",
    "monthly_first": "0 0 1 * *",
    "monthly_last_day": "0 0 L * *",
    "monthly_last_weekday": "0 0 LW * *",
    "quarterly": "0 0 1 1,4,7,10 *",
    "yearly": "0 0 1 1 *",
}


def parse_model[M: BaseModel](model: type[M], data: Any, loc: Loc) -> M:
    """Validate `data` as `model`, or raise `InvalidInput` in the contract's 422 shape."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput([_field_error(model, e, loc) for e in exc.errors()]) from None


def _field_error(model: type[BaseModel], error: Any, loc: Loc) -> FieldError:
    where = (*loc, *error["loc"])
    kind = error["type"]
    msg = error["msg"]
    if kind == "missing":
        return FieldError(where, "field required", "value_error.missing")
    if kind == "extra_forbidden":
        accepted = ", ".join(sorted(model.model_fields))
        return FieldError(where, f"unknown field; accepted fields: {accepted}", "value_error.extra")
    if kind.startswith("literal_error"):
        msg = msg.replace("Input should be", "must be")
    msg = msg.removeprefix("Value error, ")
    return FieldError(where, msg, kind)


def _normalize_times(job: JobCreate) -> JobCreate:
    """Store instants as UTC on whole seconds; a time without offset is in the job's zone."""
    from chalicelib import schedules, tzmath

    zone = tzmath.get_zone(job.timezone)
    update = {
        key: schedules.local_instant(value, zone).replace(microsecond=0)
        for key in ("scheduled_time", "start_time", "end_time")
        if (value := getattr(job, key)) is not None
    }
    return job.model_copy(update=update)


class JobService:
    def __init__(
        self,
        store: Store,
        registry: TaskRegistry,
        dispatcher: Dispatcher,
        queue: WorkQueue,
        sqs: Any = None,
    ) -> None:
        self._store = store
        self._registry = registry
        self._dispatcher = dispatcher
        self._queue = queue
        self._sqs = sqs

    def _dispatch_soon(self, job: Job, now: datetime) -> Job:
        """Runs due before the next tick start on time: send them now, as the tick would."""
        due_soon = job.next_run_at is not None and job.next_run_at <= now + self._dispatcher.window
        if job.is_active and due_soon:
            self._dispatcher.dispatch_job(job, now)
            return self._store.jobs.get_job(job.id)
        return job

    # -- jobs ---------------------------------------------------------------------------

    def _fence(self, job: Job, now: datetime) -> None:
        """Before a change to `job` (a PUT, a pause, a delete) is written: fence its runs that
        may be in flight with the job as it was, so that none starts from that
        (chalicelib.snapshot). A change that then fails leaves the fences: those runs decide
        with the job read, as they would have without them."""
        runs = snapshot.fence_times(job, now, self._dispatcher.claim_ahead)
        if runs:
            self._store.runs.fence(job.id, runs, now + snapshot.FENCE_KEPT)

    def _in_flight(self, job: Job, now: datetime) -> list[dict[str, Any]]:
        """Fences for the change's own transaction at the runs of `job` a worker may have
        read it for and not started yet (snapshot.in_flight): such a start (S0) is then
        refused and decides again with the job read, so that no run starts after the change
        from the job as it was; a run that started first keeps its record."""
        runs = snapshot.in_flight(job, now)
        return self._store.runs.fence_items(job.id, runs, now + snapshot.FENCE_KEPT)

    def _audit(
        self, action: str, now: datetime, actor: Actor | None, job_id: int, **fields: Any
    ) -> list[dict[str, Any]]:
        """The audit entry of a change, as a transaction item of the change's own write (none
        for the engine's own changes, which have no actor)."""
        if actor is None:
            return []
        return [self._store.audit.put(audit_entry(action, now, actor, job_id=job_id, **fields))]

    def create_job(self, body: Any, now: datetime, actor: Actor | None = None) -> Job:
        from chalicelib import schedules
        from chalicelib.engine import watch

        request = parse_model(JobCreate, body, ("body",))
        calendars = self._calendars_named(request)
        schedule = self._check(request, now, anchor=now, schedule_changed=True, calendars=calendars)
        request = _normalize_times(request)
        job_id = self._store.jobs.next_job_id()
        if request.job_type == "cron" and "H" in (request.cron_expression or "").upper():
            # H fields are fixed per job, from its id (chalicelib.cron): known only now.
            schedule = schedules.compile_schedule(
                request, anchor=now, spread_key=str(job_id), calendars=calendars
            )
        job = Job(
            **request.model_dump(),
            id=job_id,
            status="pending" if request.is_active else "paused",
            next_run_at=schedule.next_after(now) if request.is_active else None,
            created_at=now,
            updated_at=now,
            created_by_key=actor.key_id if actor else None,
        )
        uses = [self._store.calendars.use_item(n, job.id) for n in _calendar_names(job)]
        watches = []
        if job.expect_success_within is not None:
            job.expect_since = now
            first = now + timedelta(seconds=job.expect_success_within)
            watches.append(self._store.watches.put_item(job.id, first))
        try:
            self._store.jobs.create_job(
                job, [*self._audit("job.create", now, actor, job.id), *uses, *watches]
            )
        except ClientError as exc:
            if uses and is_condition_failure(exc):
                raise InvalidInput(self._calendar_errors(job, {})) from None
            raise
        self._watch_soon(job, watch.deadline(job), now)
        return self._dispatch_soon(job, now)

    def _watch_soon(self, job: Job, at: datetime | None, now: datetime) -> None:
        """A dead-man's switch due before the next tick is looked at on its second
        (engine.watch); a later one, by the tick."""
        from chalicelib.engine import watch

        if at is not None and at <= now + self._dispatcher.window:
            watch.send_check(self._queue, job.id, at, now)

    def _calendars_named(self, job: JobCreate | PreviewRequest) -> dict[str, HolidayCalendar]:
        """The calendars the job names, read; 422 naming each that does not exist."""
        names = _calendar_names(job)
        found = self._store.calendars.get_many(names) if names else {}
        errors = self._calendar_errors(job, found)
        if errors:
            raise InvalidInput(errors)
        return found

    @staticmethod
    def _calendar_errors(
        job: JobCreate | PreviewRequest, found: dict[str, HolidayCalendar]
    ) -> list[FieldError]:
        return [
            FieldError(
                ("body", field, i),
                f"no calendar named '{name}'; create it first (POST /calendars) or name one "
                "that GET /calendars lists",
                "value_error.calendar",
            )
            for field in ("exclude_calendars", "only_calendars")
            for i, name in enumerate(getattr(job, field))
            if name not in found
        ]

    def job_warnings(self, job: Job, now: datetime) -> list[dict[str, Any]]:
        """What the schedule lint finds in the job's next year (chalicelib.lint): shown on
        create and update, never an error."""
        from chalicelib import schedules
        from chalicelib.calendar_rule import CalendarRuleError, work_budget

        task = self._registry.get(job.task_name) if job.task_name in self._registry else None
        names = _calendar_names(job)
        try:
            with work_budget():
                schedule = schedules.compile_schedule(
                    job,
                    anchor=job.created_at,
                    calendars=self._store.calendars.get_many(names) if names else {},
                )
                from chalicelib import lint  # on first use: reads never lint (bench/cold_start.py)

                return [
                    dict(w)
                    for w in lint.lint_schedule(
                        job, schedule, now, task_timeout=task.timeout_seconds if task else None
                    )
                ]
        except (InvalidInput, CalendarRuleError, ValueError):
            return []

    def preview(self, body: Any, now: datetime) -> dict[str, Any]:
        """The next runs of a schedule as a job would have them (its calendars and blackout
        windows honoured), its warnings and what it would cost a month."""
        from chalicelib import schedules
        from chalicelib.calendar_rule import CalendarRuleError, work_budget

        request = parse_model(PreviewRequest, body, ("body",))
        errors = irrelevant_fields(request)  # refused as job creation refuses them
        if errors:
            raise InvalidInput(errors)
        calendars = self._calendars_named(request)
        _, start = _zone_and_start(request.timezone, request.start, now)
        first = start - timedelta(microseconds=1)  # a run exactly at `start` is shown
        named = request.task_name
        task = self._registry.get(named) if named is not None and named in self._registry else None
        with work_budget():  # the whole preview, parse included, spends from one budget
            schedule = schedules.compile_schedule(
                request,
                anchor=start,
                spread_key=None if request.job_id is None else str(request.job_id),
                calendars=calendars,
            )
            try:
                runs = schedule.runs_after(first, request.count)
            except CalendarRuleError as exc:
                raise InvalidInput(
                    [FieldError(("body", "calendar_rule"), str(exc), "value_error.calendar")]
                ) from None
        from chalicelib import lint, pricing  # on first use, as in job_warnings

        warnings = lint.lint_schedule(
            request, schedule, start, task_timeout=task.timeout_seconds if task else None
        )
        estimate = pricing.estimate(pricing.runs_per_month(schedule, start))
        return {
            "next_runs": [iso(t) for t in runs],
            "warnings": [dict(w) for w in warnings],
            "estimate": estimate,
        }

    def get_job(self, job_id: int, now: datetime | None = None) -> Job:
        """The job as the API shows it: its last run read from its runs' records too
        (JobStore.shown)."""
        job = self._store.jobs.get_job(job_id)
        return self._store.jobs.shown([job], now or datetime.now(UTC))[0]

    def update_job(self, job_id: int, body: Any, now: datetime, actor: Actor | None = None) -> Job:
        if not isinstance(body, dict):
            raise InvalidInput([FieldError(("body",), "must be a JSON object", "type_error.dict")])
        nulls = [k for k in body if k in NON_NULLABLE and body[k] is None]
        if nulls:
            raise InvalidInput(
                [FieldError(("body", k), f"{k} cannot be null", "type_error.none") for k in nulls]
            )
        unknown = [k for k in body if k not in UPDATABLE]
        if unknown:
            accepted = ", ".join(sorted(UPDATABLE))
            raise InvalidInput(
                [
                    FieldError(
                        ("body", k),
                        f"unknown field; accepted fields: {accepted}",
                        "value_error.extra",
                    )
                    for k in unknown
                ]
            )
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._update_once(job_id, body, now, actor)
            except ConcurrentUpdate:
                # The tick claimed the job (or another request changed it) since our read:
                # read it again and apply the same request to what is there now.
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _current(self, job_id: int, now: datetime) -> Job:
        """The job as a change made at `now` must see it: with every run due by `now` handled
        (Dispatcher.catch_up), so that pausing or rescheduling drops no run that was due while
        the job was active and the tick had not reached yet."""
        job = self._store.jobs.get_job(job_id)
        if self._dispatcher.catch_up(job, now):
            job = self._store.jobs.get_job(job_id)
        return job

    def _update_once(
        self, job_id: int, body: dict[str, Any], now: datetime, actor: Actor | None
    ) -> Job:
        before = self._current(job_id, now)
        merged = before.model_dump(include=set(UPDATABLE))
        if body.get("job_type", before.job_type) != before.job_type:
            # A new job type starts from a clean schedule: the old type's field does not
            # carry over unless the request sends it again.
            for field in SCHEDULE_FIELDS.values():
                merged[field] = None
        merged.update(body)
        if "task_kwargs" in body:  # "***" as the API shows it keeps the job's credential
            merged["task_kwargs"] = secrets.kept(body["task_kwargs"], before.task_kwargs)
        request = parse_model(JobCreate, merged, ("body",))
        calendars = self._calendars_named(request)
        schedule_keys = {
            *SCHEDULE_FIELDS.values(),
            "job_type",
            "timezone",
            "start_time",
            "end_time",
        }
        previous = before.model_dump()
        schedule_changed = any(k in body and merged[k] != previous[k] for k in schedule_keys)
        schedule = self._check(
            request,
            now,
            anchor=before.created_at,
            schedule_changed=schedule_changed,
            calendars=calendars,
            spread_key=str(job_id),
        )
        # The fields as they are (a `notify` stays a NotifyPolicy, not a dict: model_copy
        # does not validate what it is given).
        fields = dict(_normalize_times(request))
        after = before.model_copy(update=fields)
        after.updated_at = now
        after.version = before.version + 1
        reschedule = schedule_changed or after.is_active != before.is_active
        if after.is_active != before.is_active:  # a pause or a resume by PUT
            after.paused_at, after.resumed_at = (
                (before.paused_at, now) if after.is_active else (now, None)
            )
        if not after.is_active:
            after.status = "paused"
            after.next_run_at = None
        elif reschedule:
            after.next_run_at = schedule.next_after(now)
            after.schedule_error = None
        if schedule_changed:
            # Runs the tick sent ahead under the old schedule are not run (engine.worker).
            after.schedule_rev = before.schedule_rev + 1
            after.rescheduled_at = now
        was, became = before.model_dump(mode="json"), after.model_dump(mode="json")
        # The trail shows credentials as the API does: "***" (security.secrets).
        was["task_kwargs"] = secrets.redacted(before.task_kwargs)
        became["task_kwargs"] = secrets.redacted(after.task_kwargs)
        changes = {
            k: {"from": was.get(k), "to": became.get(k)}
            for k in sorted(set(body) & UPDATABLE)
            if was.get(k) != became.get(k)
        }
        audit = self._audit("job.update", now, actor, job_id, changes=changes)
        had, has = set(_calendar_names(before)), set(_calendar_names(after))
        audit += [self._store.calendars.use_item(n, job_id) for n in sorted(has - had)]
        audit += [self._store.calendars.release_item(n, job_id) for n in sorted(had - has)]
        expecting = after.expect_success_within != before.expect_success_within
        if expecting:
            # The switch counts from now, and looks at once: it may stop being overdue, or
            # expect nothing any more (engine.watch removes its watch then).
            after.expect_since = now if after.expect_success_within is not None else None
            audit.append(self._store.watches.put_item(job_id, now))
        self._fence(before, now)
        self._store.jobs.replace_job(
            before,
            after,
            reschedule=reschedule,
            also=audit,
            fences=self._in_flight(before, now),
        )
        if expecting:
            self._watch_soon(after, now, now)
        return self._dispatch_soon(after, now)

    def delete_job(self, job_id: int, now: datetime, actor: Actor | None = None) -> None:
        """Gone from the API at once; its history is removed by the sweep after (bounded
        work per tick), and nothing a worker writes for it afterwards shows anywhere."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                job = self._store.jobs.get_job(job_id)
                releases = [
                    self._store.calendars.release_item(n, job_id) for n in _calendar_names(job)
                ]
                self._fence(job, now)
                self._store.jobs.mark_deleted(
                    job,
                    now,
                    [*self._audit("job.delete", now, actor, job_id), *releases],
                    fences=self._in_flight(job, now),
                )
                return
            except ConcurrentUpdate:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise

    def list_jobs(self, query: dict[str, str]) -> tuple[list[Job], str | None]:
        """A page of jobs, newest first, and the cursor of the next page (None: the last)."""
        q = parse_model(ListJobsQuery, query, ("query",))
        tags = [t.strip() for t in q.tags.split(",") if t.strip()] if q.tags else None
        if tags and len(tags) > MAX_TAG_FILTER:
            raise InvalidInput(
                [
                    FieldError(
                        ("query", "tags"),
                        f"at most {MAX_TAG_FILTER} comma-separated tags (got {len(tags)})",
                        "value_error.too_many",
                    )
                ]
            )
        found, cursor = self._store.jobs.list_jobs_page(
            skip=q.skip,
            limit=q.limit,
            cursor=q.cursor,
            is_active=q.is_active,
            job_type=q.job_type,
            tags=tags,
        )
        return self._store.jobs.shown(found, datetime.now(UTC)), cursor

    def pause_job(
        self, job_id: int, now: datetime, actor: Actor | None = None, body: Any = None
    ) -> Job:
        """Pause; with a body, `note` shows why and `until` is when it resumes by itself
        (engine.pauses)."""
        request = parse_model(PauseRequest, {} if body is None else body, ("body",))
        return self._set_active(job_id, False, now, actor, request)

    def resume_job(self, job_id: int, now: datetime, actor: Actor | None = None) -> Job:
        return self._set_active(job_id, True, now, actor)

    def _set_active(
        self,
        job_id: int,
        active: bool,
        now: datetime,
        actor: Actor | None,
        pause: PauseRequest | None = None,
    ) -> Job:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                return self._set_active_once(job_id, active, now, actor, pause)
            except ConcurrentUpdate:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _set_active_once(
        self,
        job_id: int,
        active: bool,
        now: datetime,
        actor: Actor | None,
        pause: PauseRequest | None,
    ) -> Job:
        from chalicelib import schedules, tzmath
        from chalicelib.calendar_rule import work_budget
        from chalicelib.engine.pauses import send_resume

        before = self._current(job_id, now)
        until = None
        if pause is not None and pause.until is not None:
            zone = tzmath.get_zone(before.timezone)
            until = schedules.local_instant(pause.until, zone).replace(microsecond=0)
            if until <= now:
                raise InvalidInput(
                    [
                        FieldError(
                            ("body", "until"),
                            f"must be in the future (now is {iso(now)}); leave it out to "
                            "pause until resumed",
                            "value_error.past",
                        )
                    ]
                )
        note = pause.note if pause is not None else None
        if before.is_active == active and (active or (note is None and until is None)):
            return before  # pausing a paused job (or resuming a running one) changes nothing
        after = before.model_copy(
            update={"is_active": active, "updated_at": now, "version": before.version + 1}
        )
        if active:
            # Resuming starts from now: the runs missed while paused are not replayed.
            with work_budget():
                schedule = schedules.compile_schedule(before, anchor=before.created_at)
                after.next_run_at = _next_or_invalid(schedule, now)
            if after.next_run_at is None:
                # Resumed, it would stay `pending` with no run, forever (issue 11).
                raise InvalidInput([_no_future_run(before, now, ("path", "job_id"))])
            after.paused_note = after.paused_until = None
            after.resumed_at = now
        else:
            after.next_run_at = None
            after.paused_note, after.paused_until = note, until
            if before.is_active:
                after.paused_at, after.resumed_at = now, None
        after.status = after.current_status
        fields = {} if active else {"changes": _pause_changes(before, after)}
        audit = self._audit("job.resume" if active else "job.pause", now, actor, job_id, **fields)
        self._fence(before, now)
        self._store.jobs.replace_job(
            before, after, reschedule=True, also=audit, fences=self._in_flight(before, now)
        )
        if after.paused_until is not None and after.paused_until <= now + self._dispatcher.window:
            # Its end comes before the next tick: time the resume now (the tick would too).
            send_resume(self._queue, after, now)
        return self._dispatch_soon(after, now)

    # -- cancel a run -------------------------------------------------------------------

    def cancel_execution(
        self, execution_id_text: str, body: Any, now: datetime, actor: Actor | None = None
    ) -> Execution:
        """Cancel one attempt: a pending one never starts; a running one is asked to stop
        (its task sees `RunContext.cancelled` within a second) and ends `cancelled`, with no
        retry; a scheduled run not yet started (even one not sent yet) gets a `cancelled`
        record at its identity, so it never starts. A final one answers 409."""
        request = parse_model(CancelRequest, {} if body is None else body, ("body",))
        job_id, scheduled_for, attempt = parse_execution_id(execution_id_text)
        job = self._store.jobs.get_job(job_id)
        who = actor.key_name if actor is not None else "the API"
        reason = f"cancelled by {who}" + (f": {request.reason}" if request.reason else "")
        key = run_key(scheduled_for, attempt)
        for _ in range(WRITE_ATTEMPTS):
            record = self._store.runs.get(job_id, key)
            if record is None:
                if not self._is_occurrence(job, scheduled_for, attempt):
                    raise ExecutionNotFound(execution_id_text)
                record = self._cancelled_occurrence(job, scheduled_for, now, reason)
                audit = self._audit("run.cancel", now, actor, job_id, execution_id=record.id)
                if self._store.runs.commit([self._store.runs.new_final(record)])[0]:
                    self._store.audit.write(audit)
                    return record
                continue  # it started meanwhile: look again
            if record.is_final:
                raise RunAlreadyFinal(record)
            if record.status == "pending":
                write = self._store.runs.settlement(record, "cancelled", reason, now)
                if self._store.runs.commit([write])[0]:
                    self._store.audit.write(
                        self._audit("run.cancel", now, actor, job_id, execution_id=record.id)
                    )
                    self._store.jobs.end_wait(job_id, key)
                    return self._store.runs.get(job_id, key) or record
                continue
            if record.cancel_requested or self._store.runs.request_cancel(job_id, key, reason):
                self._store.audit.write(
                    self._audit("run.cancel", now, actor, job_id, execution_id=record.id)
                )
                return self._store.runs.get(job_id, key) or record
        raise ConcurrentUpdate(f"run {execution_id_text} changed while it was being cancelled")

    def _is_occurrence(self, job: Job, scheduled_for: datetime, attempt: int) -> bool:
        """A scheduled run of the job that has no record yet: its first attempt, at an
        occurrence of its schedule."""
        from chalicelib import schedules
        from chalicelib.calendar_rule import CalendarRuleError, work_budget

        if attempt != 1:
            return False
        try:
            with work_budget():
                schedule = schedules.compile_schedule(job, anchor=job.created_at)
                found = schedule.next_after(scheduled_for - timedelta(microseconds=1))
        except (InvalidInput, CalendarRuleError):
            return False
        return found == scheduled_for

    def _cancelled_occurrence(
        self, job: Job, scheduled_for: datetime, now: datetime, reason: str
    ) -> Execution:
        return first_attempt(
            job,
            scheduled_for,
            now,
            self._dispatcher.retention,
            status="cancelled",
            completed_at=now,
            reason=reason,
            task_args=[],
            task_kwargs={},
        )

    def _check(
        self,
        job: JobCreate,
        now: datetime,
        *,
        anchor: datetime,
        schedule_changed: bool,
        calendars: dict[str, HolidayCalendar] | None = None,
        spread_key: str | None = None,
    ) -> schedules.Schedule:
        from chalicelib import schedules
        from chalicelib.calendar_rule import work_budget

        errors: list[FieldError] = []
        if job.task_name not in self._registry:
            errors.append(
                FieldError(
                    ("body", "task_name"),
                    f"task '{job.task_name}' is not registered; registered tasks: "
                    + ", ".join(self._registry.names()),
                    "value_error.task",
                )
            )
        else:  # the task's own check of its arguments (Task.validate), e.g. a forbidden URL
            task = self._registry.get(job.task_name)
            errors += task.check_arguments(job.task_args, job.task_kwargs, at=("body",))
        # Secret references: their form, inside the stage's path (security.secrets).
        errors += secrets.reference_errors(job.task_kwargs, ("body", "task_kwargs"))
        errors += irrelevant_fields(job)
        with work_budget():  # one budget for the rule's checks and its next run
            try:
                schedule = schedules.compile_schedule(
                    job, anchor=anchor, spread_key=spread_key, calendars=calendars
                )
            except InvalidInput as exc:
                raise InvalidInput(errors + exc.errors) from None
            if errors:
                raise InvalidInput(errors)
            # A job that can never run is refused whether or not it is created active: paused,
            # it could only be resumed into `pending` with no run, forever (issue 11).
            if schedule_changed and _next_or_invalid(schedule, now) is None:
                raise InvalidInput([_no_future_run(job, now, ("body",))])
        return schedule

    # -- runs ---------------------------------------------------------------------------

    def execute_job(
        self, job_id: int, body: Any, now: datetime, actor: Actor | None = None
    ) -> Execution:
        request = parse_model(ExecuteRequest, body if body is not None else {}, ("body",))
        job = self._store.jobs.get_job(job_id)
        if request.task_kwargs is not None:
            # A run's own kwargs: references checked, no credential in clear (security.secrets).
            loc = ("body", "task_kwargs")
            problems = secrets.override_errors(request.task_kwargs, job.task_kwargs, loc)
            if problems:
                raise InvalidInput(problems)
        overridden = request.task_args is not None or request.task_kwargs is not None
        if overridden and job.task_name in self._registry:
            # The task's own check of the arguments this run is asked with (Task.validate).
            problems = self._registry.get(job.task_name).check_arguments(
                job.task_args if request.task_args is None else request.task_args,
                job.task_kwargs if request.task_kwargs is None else request.task_kwargs,
                at=("body",),
            )
            if problems:
                raise InvalidInput(problems)
        execution_time = now.astimezone(UTC)
        task_id = str(uuid.uuid4())
        execution = Execution(
            id=execution_id(job.id, execution_time, 1),
            job_id=job.id,
            status="pending",
            trigger="manual",
            scheduled_for=execution_time,
            attempt=1,
            task_id=task_id,
            task_name=job.task_name,
            task_args=job.task_args if request.task_args is None else request.task_args,
            task_kwargs=secrets.redacted(
                job.task_kwargs if request.task_kwargs is None else request.task_kwargs
            ),
            created_at=now,
            expires_at=now + self._dispatcher.retention,
        )
        # P: recorded first, with a resend time, so the run is not lost if the send fails or
        # this process dies before it: the tick sends it then (lifecycle TR).
        self._store.runs.put_pending(
            execution,
            now + RESEND_AFTER,
            self._audit("job.execute", now, actor, job.id, execution_id=execution.id),
        )
        try:
            self._queue.send([execution], now)
        except Exception:
            log.exception(
                "sending a manual run failed; the tick sends it within %d s",
                RESEND_AFTER.total_seconds(),
                extra={"job_id": job.id, "execution_id": execution.id},
            )
        return execution

    def list_executions(
        self, job_id: int, query: dict[str, str]
    ) -> tuple[list[Execution], str | None]:
        """A page of the job's runs, newest first, and the cursor of the next (None: last)."""
        q = parse_model(ListExecutionsQuery, query, ("query",))
        self._store.jobs.get_job(job_id)  # 404 for an unknown job, not an empty list
        return self._store.runs.history(job_id, skip=q.skip, limit=q.limit, cursor=q.cursor)

    # -- statistics ---------------------------------------------------------------------

    def overview(self, now: datetime) -> dict[str, Any]:
        c = self._store.counters.read(now)
        total_jobs = int(c.get("total_jobs", 0))
        active_jobs = int(c.get("active_jobs", 0))
        durations = int(c.get("duration_count", 0))
        return {
            "total_jobs": total_jobs,
            "active_jobs": active_jobs,
            "paused_jobs": total_jobs - active_jobs,
            "total_executions": int(c.get("total_executions", 0)),
            "successful_executions": int(c.get("successful_executions", 0)),
            "failed_executions": int(c.get("failed_executions", 0)),
            "running_executions": self._running(),
            "average_duration": (float(c.get("duration_sum", 0)) / durations if durations else 0.0),
            "last_24h_executions": int(c.get("last_24h_executions", 0)),
            "overdue_jobs": int(c.get("overdue_jobs", 0)),
            "last_24h_by_hour": c.get("by_hour", []),
        }

    def _running(self) -> int:
        """Runs a worker holds now: the work queue's messages in flight, as SQS counts them.

        A running run's message stays in flight (hidden) until its run is over, and no other
        message does for more than the second a run waits for its start, so this is the
        count without a write per run to keep it.
        """
        if self._sqs is None or self._queue.url is None:
            return 0
        try:
            out = self._sqs.get_queue_attributes(
                QueueUrl=self._queue.url,
                AttributeNames=["ApproximateNumberOfMessagesNotVisible"],
            )
        except Exception:
            log.warning("could not read the work queue's in-flight count", exc_info=True)
            return 0
        return int(out.get("Attributes", {}).get("ApproximateNumberOfMessagesNotVisible", 0))


def _calendar_names(job: Any) -> list[str]:
    return list(dict.fromkeys([*job.exclude_calendars, *job.only_calendars]))


def _pause_changes(before: Job, after: Job) -> dict[str, Any]:
    return {
        k: {
            "from": iso(getattr(before, k)) if k == "paused_until" else getattr(before, k),
            "to": iso(getattr(after, k)) if k == "paused_until" else getattr(after, k),
        }
        for k in ("paused_note", "paused_until")
        if getattr(before, k) != getattr(after, k)
    }


def irrelevant_fields(spec: schedules.ScheduleSpec) -> list[FieldError]:
    """A schedule field of another job type is refused, not ignored."""
    own_field = SCHEDULE_FIELDS[spec.job_type]
    return [
        FieldError(
            ("body", field),
            f"{field} does not apply to a '{spec.job_type}' job; "
            f"send null or leave it out (a '{spec.job_type}' job uses {own_field})",
            "value_error.irrelevant",
        )
        for field in SCHEDULE_FIELDS.values()
        if field != own_field and getattr(spec, field) is not None
    ]


def _next_or_invalid(schedule: schedules.Schedule, after: datetime) -> datetime | None:
    """The next run after `after`; a calendar rule over its work budget is a 422."""
    from chalicelib.calendar_rule import CalendarRuleError

    try:
        return schedule.next_after(after)
    except CalendarRuleError as exc:
        raise InvalidInput(
            [FieldError(("body", "calendar_rule"), str(exc), "value_error.calendar")]
        ) from None


def _no_future_run(spec: schedules.ScheduleSpec, now: datetime, loc: Loc) -> FieldError:
    if spec.job_type == "date":
        where, msg = "scheduled_time", f"scheduled_time must be in the future (now is {iso(now)})"
    elif spec.end_time is not None:
        where, msg = (
            "end_time",
            f"the schedule has no run after now ({iso(now)}): end_time has passed or "
            "comes before the next run",
        )
    else:
        where, msg = (
            SCHEDULE_FIELDS[spec.job_type],
            f"the schedule has no run after now ({iso(now)})",
        )
    if loc == ("body",):
        return FieldError((*loc, where), msg, "value_error.no_future_run")
    return FieldError(
        loc,
        f"the job cannot be resumed: {msg}; give it a schedule with a future run (PUT) first",
        "value_error.no_future_run",
    )


# -- previews (no storage) --------------------------------------------------------------


def _zone_and_start(
    timezone: str, start: datetime | None, now: datetime
) -> tuple[tzmath.Zone, datetime]:
    """A preview's zone, and the instant it starts from (a naive `start` is in that zone)."""
    from chalicelib import schedules, tzmath

    problem = schedules.zone_error(timezone, ("body", "timezone"))
    if problem:
        raise InvalidInput([problem])
    zone = tzmath.get_zone(timezone)
    return zone, now if start is None else schedules.local_instant(start, zone)


def validate_cron(body: Any, now: datetime) -> dict[str, Any]:
    from chalicelib import schedules
    from chalicelib.cron import CronError

    request = parse_model(CronValidateRequest, body, ("body",))
    zone, start = _zone_and_start(request.timezone, request.start, now)
    if len(request.expression) > MAX_CRON_LENGTH:
        error = (
            f"the expression is {len(request.expression)} characters long; at most "
            f"{MAX_CRON_LENGTH} are accepted"
        )
        return {"is_valid": False, "description": None, "next_runs": [], "error": error}
    try:
        expression = schedules.parse_cron(request.expression)
    except CronError as exc:
        return {"is_valid": False, "description": None, "next_runs": [], "error": str(exc)}
    runs = []
    after = start - timedelta(microseconds=1)  # a run exactly at `start` is shown
    for _ in range(request.count):
        nxt = expression.next_after(zone, after)
        if nxt is None:
            break
        runs.append(iso(nxt))
        after = nxt
    return {
        "is_valid": True,
        "description": schedules.describe_cron(request.expression),
        "next_runs": runs,
        "error": None,
    }


def cron_presets() -> dict[str, dict[str, str]]:
    from chalicelib import schedules

    return {
        name: {"expression": expr, "description": schedules.describe_cron(expr)}
        for name, expr in CRON_PRESETS.items()
    }
