"""The client's types: the server's own models for jobs and runs (chalicelib.models, so the
two can never drift), and small models for the other answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from chalicelib.models import (
    FINAL_STATUSES,
    BlackoutWindow,
    CancelRequest,
    CronValidateRequest,
    ExecuteRequest,
    Execution,
    Job,
    JobCreate,
    PauseRequest,
    PreviewRequest,
)
from chalicelib.security.keys import KeyCreate, RateLimit

__all__ = [
    "FINAL_STATUSES",
    "ActionResult",
    "ApiKey",
    "AuditEntry",
    "Backfill",
    "BackfillPlan",
    "BlackoutWindow",
    "Calendar",
    "CancelRequest",
    "CostEstimate",
    "CronPreset",
    "CronValidateRequest",
    "CronValidation",
    "ExecuteRequest",
    "ExecuteResult",
    "Execution",
    "Job",
    "JobCreate",
    "JobPaused",
    "KeyCreate",
    "NewKey",
    "Page",
    "PauseRequest",
    "PreviewRequest",
    "RateLimit",
    "SchedulePreview",
    "ScheduleWarning",
    "Stats",
    "WrittenJob",
]


class Page[T](list[T]):
    """One page of a list: the items, and where the next page starts (None: the last)."""

    def __init__(self, items: list[T], next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


class _Answer(BaseModel):
    # A newer server may add fields: keep them rather than fail.
    model_config = ConfigDict(extra="allow")


class ExecuteResult(_Answer):
    message: str
    task_id: str
    execution_id: str | None = None


class ActionResult(_Answer):
    message: str
    next_run_at: datetime | None = None


class JobPaused(ActionResult):
    """A pause's answer: `paused_note` and `paused_until` when the pause set them."""

    paused_note: str | None = None
    paused_until: datetime | None = None


class Stats(_Answer):
    total_jobs: int
    active_jobs: int
    paused_jobs: int
    total_executions: int
    successful_executions: int
    failed_executions: int
    running_executions: int
    average_duration: float
    last_24h_executions: int
    overdue_jobs: int = 0  # a server before the dead-man's switch has none


class CronValidation(_Answer):
    is_valid: bool
    description: str | None = None
    next_runs: list[datetime] = []
    error: str | None = None


class CronPreset(_Answer):
    expression: str
    description: str


class ScheduleWarning(_Answer):
    """What the schedule lint found (DST gaps, days some months lack, ...): never an error.
    `message` names the dates; `dates` lists them (local, in the year after the start)."""

    code: str
    message: str
    dates: list[str] = []


class CostEstimate(_Answer):
    runs_per_month: float
    cost_per_month_usd: float
    cost_per_run_usd: float


class SchedulePreview(_Answer):
    next_runs: list[datetime]
    # An older server answers neither.
    warnings: list[ScheduleWarning] = []
    estimate: CostEstimate | None = None


class WrittenJob(Job):
    """A job as created or changed: the job, and the schedule lint's `warnings` about it."""

    warnings: list[ScheduleWarning] = []


class Backfill(_Answer):
    """A backfill (`POST /jobs/{id}/backfill`, `GET /backfills/{id}`): how far it got, and
    (from GET only) `runs`, the runs it sent by the status of their latest attempt."""

    backfill_id: str
    job_id: int
    status: str  # running, done
    start: datetime
    end: datetime
    overlap: str
    occurrences: int
    excluded: int = 0
    sent: int = 0
    existing: int = 0
    skipped: int = 0
    remaining: int = 0
    cursor: datetime | None = None
    rate_per_second: float | None = None
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    created_by_key: str | None = None
    runs: dict[str, int] = {}

    @property
    def done(self) -> bool:
        """Every occurrence is handled (sent, found run already, or skipped)."""
        return self.status == "done"

    @property
    def runs_ended(self) -> bool:
        """Done, and every run it sent has ended (as far as `runs` shows: GET's answer)."""
        return self.done and all(status in FINAL_STATUSES for status in self.runs)


class BackfillPlan(_Answer):
    """A backfill's dry run: the occurrences it would run, and how many the job's calendars
    or blackout windows leave out. Nothing was written or run."""

    occurrences: list[datetime]
    excluded: int = 0


class Calendar(_Answer):
    """A holiday calendar: its days as sorted, merged `dates` ("YYYY-MM-DD" or
    "YYYY-MM-DD/YYYY-MM-DD"), and the jobs that name it (`used_by`)."""

    name: str
    timezone: str
    description: str | None = None
    dates: list[str] = []
    used_by: list[int] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ApiKey(_Answer):
    """A key as listed: never its secret."""

    id: str
    name: str
    scopes: list[str]
    prefix: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rate_limit: dict[str, Any] | None = None


class NewKey(ApiKey):
    """A key just made: `key` is the whole secret, shown this once."""

    key: str


class AuditEntry(_Answer):
    id: str
    at: datetime
    action: str
    job_id: int | None = None
    key_id: str | None = None
    actor_key_id: str | None = None
    actor_key_name: str | None = None
    source_ip: str | None = None
    changes: dict[str, Any] | None = None
    execution_id: str | None = None
