"""Pydantic models at the API boundary: what callers send, and what they get back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

JobType = Literal["cron", "interval", "date", "calendar"]
JOB_TYPES: tuple[str, ...] = ("cron", "interval", "date", "calendar")
JobStatus = Literal["pending", "running", "completed", "failed", "paused"]

MAX_TAGS = 20
MAX_TAG_LENGTH = 50
# Ten years: longer "intervals" are better written as a date or calendar job.
MAX_INTERVAL_SECONDS = 10 * 366 * 24 * 3600
MAX_RETRIES = 10
MAX_RETRY_DELAY = 86400
MAX_MISFIRE_GRACE = 7 * 86400

Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TAG_LENGTH)
]


class _Input(BaseModel):
    # Unknown fields are refused rather than ignored: a typo such as `cron_expresion`
    # must not silently create a job with a different schedule.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class ScheduleFields(_Input):
    """The fields that define when a job runs; shared by jobs and schedule previews."""

    job_type: JobType
    cron_expression: Annotated[str, StringConstraints(max_length=200)] | None = None
    interval_seconds: Annotated[int, Field(ge=1, le=MAX_INTERVAL_SECONDS)] | None = None
    scheduled_time: datetime | None = None
    calendar_rule: Annotated[str, StringConstraints(max_length=4000)] | None = None
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    start_time: datetime | None = Field(
        default=None, description="No run before this instant; the anchor of interval jobs."
    )
    end_time: datetime | None = Field(default=None, description="No run after this instant.")


class JobCreate(ScheduleFields):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    task_name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    task_args: list[Any] = Field(default_factory=list)
    task_kwargs: dict[str, Any] = Field(default_factory=dict)
    is_active: bool = True
    max_retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 0
    retry_delay: Annotated[int, Field(ge=0, le=MAX_RETRY_DELAY)] = 60
    retry_backoff: bool = True
    priority: Annotated[int, Field(ge=0, le=10)] = 5
    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_by: Annotated[str, StringConstraints(max_length=200)] | None = None
    misfire_grace_seconds: Annotated[int, Field(ge=0, le=MAX_MISFIRE_GRACE)] = 300
    concurrency_policy: Literal["allow", "forbid"] = "allow"

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
    }
)
UPDATABLE = frozenset(JobCreate.model_fields)


class ExecuteRequest(_Input):
    task_args: list[Any] | None = None
    task_kwargs: dict[str, Any] | None = None


class CronValidateRequest(_Input):
    expression: Annotated[str, StringConstraints(max_length=200)]
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "UTC"
    start: datetime | None = None
    count: Annotated[int, Field(ge=1, le=100)] = 5


class PreviewRequest(ScheduleFields):
    start: datetime | None = None
    count: Annotated[int, Field(ge=1, le=100)] = 5


# Skipping reads every skipped key: past this many, a list is paged with its cursor.
MAX_SKIP = 10_000
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class _PageQuery(_Input):
    """Where a page of a list starts: `skip` items in, or at a cursor from `X-Next-Cursor`."""

    model_config = ConfigDict(extra="ignore")
    cursor: Cursor | None = None  # before skip: skip's check reads it
    skip: Annotated[int, Field(ge=0)] = 0

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
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    is_active: bool | None = None
    job_type: JobType | None = None
    tags: str | None = None


class ListExecutionsQuery(_PageQuery):
    limit: Annotated[int, Field(ge=1, le=500)] = 50


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

    def to_api(self) -> dict[str, Any]:
        from chalicelib.security.secrets import redacted
        from chalicelib.timefmt import iso

        out = self.model_dump(exclude={"version", "last_run_status", "running", "deleted_at"})
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
        ):
            out[key] = iso(getattr(self, key))
        out["last_run_status"] = self.last_run_status
        out["task_kwargs"] = redacted(self.task_kwargs)  # "***" for credentials in clear
        return out


ExecutionStatus = Literal[
    "pending", "running", "completed", "failed", "missed", "skipped", "dead_lettered"
]
FINAL_STATUSES = frozenset({"completed", "failed", "missed", "skipped", "dead_lettered"})
Trigger = Literal["scheduled", "manual", "retry"]


class Execution(BaseModel):
    """One attempt of one run. A run is identified by `(job_id, scheduled_for)`."""

    model_config = ConfigDict(extra="ignore")

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

        out = self.model_dump(exclude={"lease_owner", "expires_at"})
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
