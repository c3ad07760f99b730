"""The client's types: the server's own models for jobs and runs (chalicelib.models, so the
two can never drift), and small models for the other answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from chalicelib.models import (
    FINAL_STATUSES,
    CronValidateRequest,
    ExecuteRequest,
    Execution,
    Job,
    JobCreate,
    PreviewRequest,
)
from chalicelib.security.keys import KeyCreate, RateLimit

__all__ = [
    "FINAL_STATUSES",
    "ActionResult",
    "ApiKey",
    "AuditEntry",
    "CronPreset",
    "CronValidateRequest",
    "CronValidation",
    "ExecuteRequest",
    "ExecuteResult",
    "Execution",
    "Job",
    "JobCreate",
    "KeyCreate",
    "NewKey",
    "Page",
    "PreviewRequest",
    "RateLimit",
    "SchedulePreview",
    "Stats",
]

T = TypeVar("T")


class Page(list[T], Generic[T]):
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


class CronValidation(_Answer):
    is_valid: bool
    description: str | None = None
    next_runs: list[datetime] = []
    error: str | None = None


class CronPreset(_Answer):
    expression: str
    description: str


class SchedulePreview(_Answer):
    next_runs: list[datetime]


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
