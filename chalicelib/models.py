"""Pydantic models at the API boundary: what callers send, and what they get back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)

from chalicelib.notify import NotifyPolicy

# expect_success_within's bounds, in seconds: 5 s to 366 days.
MIN_EXPECT_SUCCESS = 5
MAX_EXPECT_SUCCESS = 366 * 86_400

JobType = Literal["cron", "interval", "date", "calendar"]
JOB_TYPES: tuple[str, ...] = ("cron", "interval", "date", "calendar")
JobStatus = Literal["pending", "running", "completed", "failed", "paused"]

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
# Ten years: longer "intervals" are better written as a date or calendar job.
MAX_INTERVAL_SECONDS = 10 * 366 * 24 * 3600
# The most often a job may run: calendar rules are held to it too (calendar_rule.py).
MIN_INTERVAL_SECONDS = 1
# Longer cron expressions are refused (by /cron/validate with `is_valid: false`).
MAX_CRON_LENGTH = 200
MAX_RETRIES = 10
MAX_RETRY_DELAY = 86400
MAX_MISFIRE_GRACE = 7 * 86400

# The years an instant field accepts, as written (with or without an offset). Schedule math adds
# up to ten years (an interval), a hundred (a calendar rule's search horizon) and a day (a time
# zone) to an instant, and Python's datetime ends with year 9999: the margin keeps all of it in
# range. Before 1970 nothing is scheduled, and years before 1000 do not even sort as text.
FIRST_YEAR = 1970
LAST_YEAR = 8999
INSTANT_RANGE = f"{FIRST_YEAR}-01-01T00:00:00 to {LAST_YEAR}-12-31T23:59:59"
# pydantic reads a string of digits as a Unix timestamp; an instant must be ISO-8601 text.
_NUMERIC = re.compile(r"\s*[+-]?[0-9]+(\.[0-9]*)?\s*", re.ASCII)


def _instant(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    if isinstance(value, datetime):  # a stored job, read back or merged by a PUT: not re-judged
        return handler(value)  # type: ignore[no-any-return]
    if not isinstance(value, str) or _NUMERIC.fullmatch(value):
        raise ValueError(
            "must be an ISO-8601 date and time as a string, such as '2026-01-20T14:00:00Z'"
        )
    parsed: datetime = handler(value)
    if not FIRST_YEAR <= parsed.year <= LAST_YEAR:
        raise ValueError(f"year {parsed.year} is out of range; accepted: {INSTANT_RANGE}")
    return parsed


# An instant in a request: ISO-8601 text only (no Unix numbers), years FIRST_YEAR-LAST_YEAR.
Instant = Annotated[datetime, WrapValidator(_instant)]
# JSON integers and booleans only: `true` is not 1, 1.0 and "1" are not integers.
StrictInt = Annotated[int, Strict()]
StrictBool = Annotated[bool, Strict()]


def _query_int(value: Any) -> Any:
    # Query strings are text: digits only ("1.5", "0.0", "+1" and " 1" are refused).
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,9}", value, re.ASCII):
            raise ValueError("must be a whole number written with the digits 0-9")
        return int(value)
    return value


def _query_bool(value: Any) -> Any:
    if isinstance(value, str):
        if value not in ("true", "false"):
            raise ValueError("must be true or false")
        return value == "true"
    return value


QueryInt = Annotated[int, BeforeValidator(_query_int), Strict()]
QueryBool = Annotated[bool, BeforeValidator(_query_bool), Strict()]

Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_LENGTH)
]


ConcurrencyPolicy = Literal["allow", "forbid", "buffer_one", "replace"]
MAX_CALENDARS = 10
MAX_BLACKOUTS = 20
CALENDAR_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CalendarName = Annotated[str, StringConstraints(pattern=CALENDAR_NAME)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00")


class _Input(BaseModel):
    # Unknown fields are refused rather than ignored: a typo such as `cron_expresion`
    # must not silently create a job with a different schedule.
    # Built on first validation (defer_build), but for the two that the API's first GET or
    # POST /v1/jobs validates (ListJobsQuery, JobCreate and so Job): no other is built on
    # its import path (bench/cold_start.py).
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, defer_build=True)


class BlackoutWindow(_Input):
    """A local time range in the job's zone in which it does not run.

    Weekly: `start` and `end` are clock times ("22:00", "06:00"; an end before the start runs
    into the next day; "24:00" is the end of the day) on `days` (default every day). Dated:
    `start` and `end` are local date-times ("2027-12-24T18:00") and `days` is left out.
    """

    start: Annotated[str, StringConstraints(min_length=5, max_length=25)]
    end: Annotated[str, StringConstraints(min_length=5, max_length=25)]
    days: Annotated[list[Weekday], Field(min_length=1, max_length=7)] | None = None

    @field_validator("end")
    @classmethod
    def _same_kind(cls, end: str, info: ValidationInfo) -> str:
        start = info.data.get("start")
        if start is None:
            return end
        clock = bool(_CLOCK.fullmatch(start)), bool(_CLOCK.fullmatch(end))
        if clock == (True, True):
            if start == end:
                raise ValueError("must differ from start (a window of no time)")
            return end
        if any(clock):
            raise ValueError(
                "start and end must both be clock times ('22:00') for a weekly window, or "
                "both local date-times ('2027-12-24T18:00') for a dated one"
            )
        try:
            first, last = datetime.fromisoformat(start), datetime.fromisoformat(end)
        except ValueError:
            raise ValueError(
                "start and end must both be clock times ('22:00') or both local date-times "
                "('2027-12-24T18:00')"
            ) from None
        if first.tzinfo is not None or last.tzinfo is not None:
            raise ValueError("a dated window is in the job's time zone: leave out the offset")
        if not FIRST_YEAR <= first.year <= LAST_YEAR or not FIRST_YEAR <= last.year <= LAST_YEAR:
            raise ValueError(f"out of range; accepted: {INSTANT_RANGE}")
        if last <= first:
            raise ValueError("must be after start")
        return end

    @field_validator("days")
    @classmethod
    def _weekly_only(cls, days: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if days is not None and not _CLOCK.fullmatch(str(info.data.get("start", ""))):
            raise ValueError("days apply to a weekly window (start and end as clock times)")
        return None if days is None else list(dict.fromkeys(days))

    @property
    def weekly(self) -> bool:
        return bool(_CLOCK.fullmatch(self.start))


class ScheduleFields(_Input):
    """The fields that define when a job runs; shared by jobs and schedule previews."""

    job_type: JobType
    cron_expression: Annotated[str, StringConstraints(max_length=MAX_CRON_LENGTH)] | None = None
    interval_seconds: (
        Annotated[StrictInt, Field(ge=MIN_INTERVAL_SECONDS, le=MAX_INTERVAL_SECONDS)] | None
    ) = None
    scheduled_time: Instant | None = None
    calendar_rule: Annotated[str, StringConstraints(max_length=4000)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    start_time: Instant | None = Field(
        default=None, description="No run before this instant; the anchor of interval jobs."
    )
    end_time: Instant | None = Field(default=None, description="No run after this instant.")
    # Holiday calendars by name (/v1/calendars): no run on their dates, or only on them.
    exclude_calendars: Annotated[list[CalendarName], Field(max_length=MAX_CALENDARS)] = Field(
        default_factory=list
    )
    only_calendars: Annotated[list[CalendarName], Field(max_length=MAX_CALENDARS)] = Field(
        default_factory=list
    )
    # Local time ranges in the job's zone when it must not run (chalicelib.exclusions).
    blackout_windows: Annotated[list[BlackoutWindow], Field(max_length=MAX_BLACKOUTS)] = Field(
        default_factory=list
    )
    blackout_policy: Literal["skip", "defer"] = "skip"

    @field_validator("exclude_calendars", "only_calendars")
    @classmethod
    def _unique_calendars(cls, names: list[str]) -> list[str]:
        return list(dict.fromkeys(names))


class JobCreate(ScheduleFields):
    model_config = ConfigDict(defer_build=False)

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    task_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    task_args: list[Any] = Field(default_factory=list)
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    is_active: StrictBool = True
    max_retries: Annotated[StrictInt, Field(ge=0, le=MAX_RETRIES)] = 0
    retry_delay: Annotated[StrictInt, Field(ge=0, le=MAX_RETRY_DELAY)] = 60
    retry_backoff: StrictBool = True
    priority: Annotated[StrictInt, Field(ge=0, le=10)] = 5
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_by: Annotated[str, StringConstraints(max_length=200)] | None = None
    misfire_grace_seconds: Annotated[StrictInt, Field(ge=0, le=MAX_MISFIRE_GRACE)] = 300
    concurrency_policy: ConcurrencyPolicy = "allow"
    # The dead-man's switch (engine.watch): a job.overdue notification when no run has
    # succeeded for this many seconds, and job.recovered at the next success.
    expect_success_within: (
        Annotated[StrictInt, Field(ge=MIN_EXPECT_SUCCESS, le=MAX_EXPECT_SUCCESS)] | None
    ) = Field(
        default=None,
        description="Seconds: if no run has succeeded for this long (paused, failing, not "
        "run), the job is overdue: job.overdue is sent once, job.recovered at the next "
        f"success. {MIN_EXPECT_SUCCESS} to {MAX_EXPECT_SUCCESS} (366 days).",
    )
    # Who hears of a run's final outcome (chalicelib.notify): events and channels.
    notify: NotifyPolicy | None = Field(
        default=None,
        description="Notifications of the job's runs: run.failed_final (after the last retry), "
        "run.recovered, job.failing (N failed runs in a row), to SNS topics or webhooks.",
    )

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return list(dict.fromkeys(tags))


# Fields a PUT may not set to null: they always have a value.
NON_NULLABLE = frozenset(
    {
        "name",
        "job_type",
        "task_name",
        "task_args",
        "task_kwargs",
        "timezone",
        "is_active",
        "max_retries",
        "retry_delay",
        "retry_backoff",
        "priority",
        "tags",
        "metadata",
        "misfire_grace_seconds",
        "concurrency_policy",
        "exclude_calendars",
        "only_calendars",
        "blackout_windows",
        "blackout_policy",
    }
)
UPDATABLE = frozenset(JobCreate.model_fields)


class ExecuteRequest(_Input):
    task_args: list[Any] | None = None
    task_kwargs: dict[str, Any] | None = None


class PauseRequest(_Input):
    """An optional body of a pause: why, and when the job resumes by itself."""

    note: Annotated[str, StringConstraints(max_length=500)] | None = Field(
        default=None, description="Why the job is paused: shown on the job until it resumes."
    )
    until: Instant | None = Field(
        default=None,
        description="When the job resumes by itself; its next run counts from then (the runs "
        "the pause covered are not replayed). A time without an offset is in the job's zone.",
    )


class CancelRequest(_Input):
    """An optional body of a cancel: why (recorded on the run)."""

    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class CronValidateRequest(_Input):
    expression: str
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    start: Instant | None = None
    count: Annotated[StrictInt, Field(ge=1, le=100)] = 5


class PreviewRequest(ScheduleFields):
    start: Instant | None = None
    count: Annotated[StrictInt, Field(ge=1, le=100)] = 5
    # What a job would add to its schedule: shown as it would run, linted as it would be.
    concurrency_policy: ConcurrencyPolicy = "allow"
    task_name: Annotated[str, StringConstraints(max_length=200)] | None = Field(
        default=None, description="Its timeout is compared with the schedule's intervals."
    )
    job_id: Annotated[StrictInt, Field(ge=1)] | None = Field(
        default=None,
        description="Show the times of this job's `H` fields (a cron `H` is fixed per job).",
    )


# Skipping reads every skipped key: past this many, a list is paged with its cursor.
MAX_SKIP = 10_000
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class _PageQuery(_Input):
    """Where a page of a list starts: `skip` items in, or at a cursor from `X-Next-Cursor`."""

    model_config = ConfigDict(extra="ignore")
    cursor: Cursor | None = None  # before skip: skip's check reads it
    skip: Annotated[QueryInt, Field(ge=0)] = 0

    @field_validator("skip")
    @classmethod
    def _shallow_skip(cls, skip: int, info: ValidationInfo) -> int:
        if skip and info.data.get("cursor"):
            raise ValueError("must be 0 or left out when a cursor is given")
        if skip > MAX_SKIP:
            raise ValueError(
                f"at most {MAX_SKIP}; page further with the cursor from the previous "
                "page's X-Next-Cursor header"
            )
        return skip


class ListJobsQuery(_PageQuery):
    model_config = ConfigDict(defer_build=False)

    limit: Annotated[QueryInt, Field(ge=1, le=1000)] = 100
    is_active: QueryBool | None = None
    job_type: JobType | None = None
    tags: str | None = None


class ListExecutionsQuery(_PageQuery):
    limit: Annotated[QueryInt, Field(ge=1, le=500)] = 50


class Job(JobCreate):
    """A stored job: what the caller defined plus what NEXUS keeps about it."""

    model_config = ConfigDict(extra="ignore")

    id: int
    status: JobStatus = "pending"
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    last_run_status: str | None = None
    # The runs of this job that hold a slot now: run key -> lease end (ISO text). A `forbid`
    # job's start takes the slot only while this is empty (engine.lifecycle, transition S1).
    running: dict[str, str] = Field(default_factory=dict)
    # Why the tick could not evaluate this job's schedule, if it could not (it skips the job).
    schedule_error: str | None = None
    # Set when the job is deleted: its history is removed after (engine.sweep).
    deleted_at: datetime | None = None
    # The id of the API key that created the job (`created_by` is the client's own text).
    created_by_key: str | None = None
    created_at: datetime
    updated_at: datetime
    # Bumped on every write the API or a claim makes: updates are conditional on it.
    version: int = 1
    # A pause's note and end: the job resumes by itself at `paused_until` (engine.control).
    paused_note: str | None = None
    paused_until: datetime | None = None
    # The run waiting for the running one to finish (buffer_one, replace): its run key.
    buffered: str | None = None
    # The last pause: a scheduled run whose time fell in it never runs, even if its message
    # comes after the resume (a worker died with it, SQS was late).
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    # The job's streak of failed runs (final outcomes), kept only for a job with `notify`, in
    # the write that records its last run (F2): its value before and after the run `streak_run`
    # (a run key), so a repeat of that write counts the run once.
    failure_streak: int = 0
    streak_before: int = 0
    streak_run: str | None = None
    # The dead-man's switch (engine.watch). `expect_since`: when `expect_success_within` was
    # set (the API writes it); `last_success_at`: the last completed run's end (F2 writes it);
    # `overdue_since`: the instant no success came in time, while the job is overdue;
    # `overdue_notice`: job.overdue or job.recovered while it is being sent; and
    # `overdue_notifications`: what became of the last one sent.
    expect_since: datetime | None = None
    last_success_at: datetime | None = None
    overdue_since: datetime | None = None
    overdue_notice: str | None = None
    # The overdue spell the notice is about (its `overdue_since`, which a recovery clears).
    overdue_notice_since: datetime | None = None
    # Until when the check that set or claimed the notice is presumed to be sending it: a
    # check that meets the notice before then leaves it (engine.watch.NOTICE_LEASE).
    overdue_notice_until: datetime | None = None
    overdue_notifications: list[dict[str, Any]] | None = None
    # Runs sent ahead (engine.tick, CLAIM_AHEAD): `next_run_at` is how far the tick has sent
    # the job's runs; `queued_runs` (chalicelib.queued) are the ones sent before it, so the
    # API shows the next of them. `schedule_rev` counts the PUTs that changed the schedule,
    # the last at `rescheduled_at`: a run sent ahead under an earlier one is not run.
    queued_runs: str | None = None
    schedule_rev: int = 0
    rescheduled_at: datetime | None = None

    @property
    def running_count(self) -> int:
        return len(self.running)

    @property
    def current_status(self) -> JobStatus:
        """What the job is doing, from what it holds: never a stored value that can drift."""
        if not self.is_active:
            return "paused"
        if self.running:
            return "running"
        if self.last_run_status in ("completed", "failed"):
            return self.last_run_status  # type: ignore[return-value]
        return "pending"

    def next_run(self, now: datetime) -> datetime | None:
        """The job's next run at `now`: the first of the runs sent ahead still to come, else
        the first the tick has not sent yet."""
        if self.next_run_at is None or not self.is_active:
            return self.next_run_at
        from chalicelib import queued

        return queued.first_after(self.queued_runs, now) or self.next_run_at

    def to_api(self, now: datetime | None = None) -> dict[str, Any]:
        from chalicelib.security.secrets import redacted
        from chalicelib.timefmt import iso

        out = self.model_dump(
            exclude={
                "version",
                "last_run_status",
                "running",
                "deleted_at",
                "buffered",
                "paused_at",
                "resumed_at",
                "failure_streak",
                "streak_before",
                "streak_run",
                "expect_since",
                "overdue_notice",
                "overdue_notice_since",
                "overdue_notice_until",
                "queued_runs",
                "schedule_rev",
                "rescheduled_at",
            }
        )
        out["status"] = self.current_status
        out["running_count"] = self.running_count
        for key in (
            "scheduled_time",
            "start_time",
            "end_time",
            "next_run_at",
            "last_run_at",
            "created_at",
            "updated_at",
            "paused_until",
            "last_success_at",
            "overdue_since",
        ):
            out[key] = iso(getattr(self, key))
        out["next_run_at"] = iso(self.next_run(now or datetime.now(UTC)))
        out["last_run_status"] = self.last_run_status
        out["task_kwargs"] = redacted(self.task_kwargs)  # "***" for credentials in clear
        return out


ExecutionStatus = Literal[
    "pending", "running", "completed", "failed", "missed", "skipped", "dead_lettered", "cancelled"
]
FINAL_STATUSES = frozenset(
    {"completed", "failed", "missed", "skipped", "dead_lettered", "cancelled"}
)
Trigger = Literal["scheduled", "manual", "retry", "backfill"]
# How a backfill's runs meet the job's other runs (engine.backfill).
BackfillOverlap = Literal["allow", "skip", "buffer_all"]


class Execution(BaseModel):
    """One attempt of one run. A run is identified by `(job_id, scheduled_for)`."""

    # Built on first validation (defer_build): the API's first GET or POST /v1/jobs never
    # validates one (the tick and the worker do), so its import path does not build it.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str
    job_id: int
    status: ExecutionStatus
    trigger: Trigger
    scheduled_for: datetime
    attempt: int = 1
    task_id: str
    task_name: str
    task_args: list[Any] = Field(default_factory=list)
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_seconds: float | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    # Why a run did not run (skipped, missed), and how many occurrences a `missed` record counts.
    reason: str | None = None
    missed_count: int | None = None
    missed_until: datetime | None = None
    # The worker holding a running execution, and until when; past it another may take over.
    lease_owner: str | None = None
    lease_until: datetime | None = None
    # When this attempt may start: the run's time, or later for a retry.
    not_before: datetime | None = None
    # DynamoDB TTL: the record expires after the retention period.
    expires_at: datetime | None = None
    # A backfill's runs: which backfill, and how they meet the job's other runs.
    backfill_id: str | None = None
    overlap: BackfillOverlap | None = None
    # Set on a running attempt that must stop (a cancel, or a `replace` job's next run): why.
    cancel_requested: str | None = None
    # What became of the notifications of this run's final outcome (chalicelib.notify): one
    # entry per event and channel, {event, channel, status, attempts, error, at}. Null when
    # none was sent (no event fired, or none decided yet).
    notifications: list[dict[str, Any]] | None = None
    # A scheduled run sent ahead by a claim: the job's `schedule_rev` then, carried in its
    # message (never stored), so a run of a schedule since replaced is not run.
    schedule_rev: int | None = None

    @property
    def start_at(self) -> datetime:
        return self.not_before or self.scheduled_for

    @property
    def run_key(self) -> str:
        from chalicelib.store.items import run_key

        return run_key(self.scheduled_for, self.attempt)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_api(self) -> dict[str, Any]:
        from chalicelib.security.secrets import redacted
        from chalicelib.timefmt import iso

        out = self.model_dump(exclude={"lease_owner", "expires_at", "schedule_rev"})
        for key in (
            "scheduled_for",
            "created_at",
            "started_at",
            "completed_at",
            "missed_until",
            "lease_until",
            "not_before",
        ):
            out[key] = iso(getattr(self, key))
        # Records since redaction hold "***" already; older ones are redacted here.
        out["task_kwargs"] = redacted(self.task_kwargs)
        return out
