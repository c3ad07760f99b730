"""The shapes of the API's answers, as pydantic models, for the OpenAPI document only.

The routes build their answers with `to_api()` (models.Job, models.Execution, keys.ApiKey,
store.audit.AuditEntry) and plain dicts (service.py); these models describe those answers.
tests/app/test_openapi.py validates real answers against the schemas made from them, with
`additionalProperties: false`, so a field added to or dropped from an answer fails a test
instead of drifting from the document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from chalicelib.models import Execution, ExecutionStatus, JobCreate, JobStatus, Trigger
from chalicelib.security.keys import RateLimit, Scope


class _Answer(BaseModel):
    # An answer carries every field, null or not: each is `required` in the document.
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class JobOut(JobCreate):
    """A job as the API shows it (`Job.to_api()`): what the caller defined, and what NEXUS
    keeps about it. Credentials in `task_kwargs` read `***`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_serialization_defaults_required=True, title="Job"
    )

    id: Annotated[int, Field(ge=1)]
    status: JobStatus
    next_run_at: datetime | None
    last_run_at: datetime | None
    last_run_status: str | None
    running_count: Annotated[int, Field(ge=0)]
    schedule_error: str | None = Field(
        description="Why the tick could not evaluate the schedule, if it could not."
    )
    created_by_key: str | None = Field(description="The id of the API key that made the job.")
    created_at: datetime
    updated_at: datetime
    paused_note: str | None = Field(description="Why the job was paused, as the pause said.")
    paused_until: datetime | None = Field(
        description="When a paused job resumes by itself (its next run counts from then)."
    )
    last_success_at: datetime | None = Field(
        description="When the job's last completed run ended (the dead-man's switch's clock)."
    )
    overdue_since: datetime | None = Field(
        description="Set while the job is overdue: no run succeeded within "
        "expect_success_within; the instant its deadline passed."
    )
    overdue_notifications: list[dict[str, Any]] | None = Field(
        description="What became of the last job.overdue or job.recovered notification: one "
        "entry per channel, {event, channel, status, attempts, error, at}."
    )


# The Execution fields `Execution.to_api()` leaves out.
EXECUTION_HIDDEN = frozenset({"lease_owner", "expires_at", "schedule_rev"})

ExecutionOut: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Execution",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_serialization_defaults_required=True,
        title="Execution",
    ),
    __doc__="One attempt of one run of a job (`Execution.to_api()`).",
    **{
        name: (field.annotation, field)
        for name, field in Execution.model_fields.items()
        if name not in EXECUTION_HIDDEN
    },
)


class ExecutionStarted(_Answer):
    message: Literal["Job execution started"]
    task_id: str
    execution_id: str


class JobPaused(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: Literal["Job paused"]
    # Left out of a bare pause's answer (the contract's), present when the pause set them.
    paused_note: str | SkipJsonSchema[None] = None
    paused_until: datetime | SkipJsonSchema[None] = None


class JobResumed(_Answer):
    message: Literal["Job resumed"]
    next_run_at: datetime | None


class HourOfRuns(BaseModel):
    hour: datetime = Field(description="The hour's start (UTC).")
    succeeded: int
    failed: int


class Realtime(_Answer):
    url: str = Field(
        description="The WebSocket URL of real-time updates: ws:// on make run, the stage's "
        "wss:// URL deployed (docs/realtime.md)."
    )


class StatsOverview(_Answer):
    total_jobs: int
    active_jobs: int
    paused_jobs: int
    total_executions: int
    successful_executions: int
    failed_executions: int
    running_executions: int
    average_duration: float = Field(description="Seconds, over the runs that finished.")
    last_24h_executions: int
    overdue_jobs: int = Field(
        description="Jobs with expect_success_within that no run has succeeded within: "
        "the dead-man's switch's count (job.overdue sent, job.recovered not yet)."
    )
    last_24h_by_hour: list[HourOfRuns] = Field(
        description="The last 24 hours, oldest first: the runs that ended in each (UTC) hour, "
        "by outcome."
    )


class CronValidation(_Answer):
    is_valid: bool
    description: str | None
    next_runs: list[datetime]
    error: str | None = Field(description="Why the expression is not valid, if it is not.")


class CronPreset(_Answer):
    expression: str
    description: str


class ScheduleWarning(_Answer):
    """Something about a schedule its author may not expect (chalicelib.lint)."""

    code: str = Field(
        description="dst_gap, dst_overlap, missing_day, dom_and_dow, "
        "interval_shorter_than_timeout, date_in_blackout or calendar_excludes_all"
    )
    message: str
    dates: list[str] = Field(description="The local dates it found in the year after start.")


class CostEstimate(BaseModel):
    """Runs a month and what they cost on AWS at the stage's prices (chalicelib.pricing)."""

    model_config = ConfigDict(extra="allow")
    runs_per_month: float
    cost_per_month_usd: float
    cost_per_run_usd: float


class SchedulePreview(_Answer):
    next_runs: list[datetime]
    warnings: list[ScheduleWarning]
    estimate: CostEstimate


class JobWritten(JobOut):
    """A job as created or changed: the job, and what the schedule lint found."""

    model_config = ConfigDict(title="JobWritten")
    warnings: list[ScheduleWarning]


class ApiKeyOut(_Answer):
    """A key as the API shows it (`ApiKey.to_api()`): never its secret."""

    model_config = ConfigDict(title="ApiKey")

    id: str
    prefix: str = Field(description="`nxs_<id>`: safe to quote; shown in the audit trail.")
    name: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    rate_limit: RateLimit
    created_by_key: str | None


class ApiKeyCreated(ApiKeyOut):
    model_config = ConfigDict(title="ApiKeyCreated")

    key: str = Field(description="The whole key, shown in this answer only.")


class AuditEntryOut(BaseModel):
    """One change (`AuditEntry.to_api()`); fields that do not apply are left out, not null."""

    model_config = ConfigDict(extra="forbid", title="AuditEntry")

    id: str
    at: datetime
    action: Literal[
        "job.create",
        "job.update",
        "job.pause",
        "job.resume",
        "job.execute",
        "job.delete",
        "job.backfill",
        "run.cancel",
        "key.create",
        "key.revoke",
        "calendar.create",
        "calendar.update",
        "calendar.delete",
    ]
    job_id: int | SkipJsonSchema[None] = None
    key_id: str | SkipJsonSchema[None] = None
    actor_key_id: str | SkipJsonSchema[None] = None
    actor_key_name: str | SkipJsonSchema[None] = None
    source_ip: str | SkipJsonSchema[None] = None
    changes: dict[str, Any] | SkipJsonSchema[None] = Field(
        default=None, description='job.update: `{field: {"from": ..., "to": ...}}`'
    )
    execution_id: str | SkipJsonSchema[None] = None


class BackfillStarted(_Answer):
    """A backfill (`POST /jobs/{job_id}/backfill`, 202): its occurrences run at
    `rate_per_second` at most, each once (an occurrence whose run exists is not run again)."""

    backfill_id: str = Field(description="`<job id>-<12 hex>`: `GET /backfills/{backfill_id}`.")
    job_id: int
    status: Literal["running", "done"]
    start: datetime
    end: datetime
    overlap: Literal["allow", "skip", "buffer_all"]
    occurrences: int = Field(description="The occurrences of the window to run.")
    excluded: int = Field(description="Occurrences the job's calendars or blackouts leave out.")
    sent: int = Field(description="Runs the backfill recorded and sent.")
    existing: int = Field(description="Occurrences found run already (not run again).")
    skipped: int = Field(description="Occurrences left unsent (the job was deleted).")
    remaining: int = Field(description="Occurrences not handled yet.")
    cursor: datetime | None = Field(description="The last occurrence handled.")
    rate_per_second: float
    reason: str | None = Field(description="Why the backfill ended early, if it did.")
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    created_by_key: str | None


class BackfillOut(BackfillStarted):
    """A backfill and how the runs it sent stand (`GET /backfills/{backfill_id}`)."""

    runs: dict[str, int] = Field(
        description="The runs this backfill sent, by the status of their latest attempt."
    )


class BackfillDryRun(_Answer):
    """What a backfill would run (`dry_run: true`, 200): nothing is written or sent."""

    occurrences: list[datetime]
    excluded: int = Field(description="Occurrences the job's calendars or blackouts leave out.")


class Error(BaseModel):
    """400, 401, 403, 404, 409, 413, 415, 429, 500, 503: what went wrong, in words."""

    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(
        description='Where: `["body", field]`, `["query", parameter]` or `["path", name]`.'
    )
    msg: str = Field(description="What is wrong and what is accepted.")
    type: str


class ValidationError(BaseModel):
    """422: one entry per problem."""

    detail: list[FieldProblem]


class CalendarOut(_Answer):
    """A holiday calendar (`GET /calendars/{name}`): its days as sorted, merged `dates`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_serialization_defaults_required=True, title="Calendar"
    )

    name: str
    timezone: str = Field(description="The IANA zone the days are days of.")
    description: str | None
    dates: list[str] = Field(
        description='"YYYY-MM-DD" or "YYYY-MM-DD/YYYY-MM-DD" (both days included), sorted, '
        "with overlapping and adjacent days joined."
    )
    used_by: list[int] = Field(
        description="The ids of the jobs that name the calendar; it cannot be deleted while "
        "there are any."
    )
    created_at: datetime
    updated_at: datetime


# Not used by the answers above, but named here so their members read well in the document.
__all__ = [
    "ApiKeyCreated",
    "ApiKeyOut",
    "AuditEntryOut",
    "BackfillDryRun",
    "BackfillOut",
    "BackfillStarted",
    "CalendarOut",
    "CronPreset",
    "CronValidation",
    "Error",
    "ExecutionOut",
    "ExecutionStarted",
    "ExecutionStatus",
    "HourOfRuns",
    "JobOut",
    "JobPaused",
    "JobResumed",
    "Realtime",
    "SchedulePreview",
    "StatsOverview",
    "Trigger",
    "ValidationError",
]
