"""The contract's examples (shared/nexus-api.md), as the OpenAPI document shows them.

Where the contract elides fields (`...`), the example is completed with what the API really
answers, so that every example is valid against its schema (tests/app/test_openapi.py).
"""

from __future__ import annotations

from typing import Any

JOB_CREATE: dict[str, Any] = {
    "name": "Daily Report",
    "description": "Generate daily analytics report",
    "job_type": "cron",
    "cron_expression": "0 9 * * 1-5",
    "interval_seconds": None,
    "scheduled_time": None,
    "calendar_rule": None,
    "task_name": "tasks.generate_report",
    "task_args": [],
    "task_kwargs": {"format": "pdf"},
    "timezone": "US/Eastern",
    "is_active": True,
    "max_retries": 3,
    "retry_delay": 60,
    "retry_backoff": True,
    "priority": 5,
    "tags": ["report", "analytics"],
    "metadata": {},
    "created_by": "admin",
}

JOB: dict[str, Any] = {
    **JOB_CREATE,
    "id": 1,
    "status": "pending",
    "next_run_at": "2025-01-20T14:00:00Z",
    "last_run_at": None,
    "last_run_status": None,
    "running_count": 0,
    "schedule_error": None,
    "created_by_key": "3k9d0a1b2c4e",
    "created_at": "2025-01-20T12:00:00Z",
    "updated_at": "2025-01-20T12:00:00Z",
    "start_time": None,
    "end_time": None,
    "misfire_grace_seconds": 300,
    "concurrency_policy": "allow",
    "exclude_calendars": [],
    "only_calendars": [],
    "blackout_windows": [],
    "blackout_policy": "skip",
    "paused_note": None,
    "paused_until": None,
    "notify": None,
    "expect_success_within": None,
    "last_success_at": "2025-01-20T09:00:04Z",
    "overdue_since": None,
    "overdue_notifications": None,
}

JOB_UPDATE = {"name": "Updated Job Name", "is_active": False, "priority": 7}

EXECUTE = {"task_args": [1, 2], "task_kwargs": {"override": True}}

EXECUTION_STARTED = {
    "message": "Job execution started",
    "task_id": "abc123-def456-ghi789",
    "execution_id": "1#2025-01-20T14:00:00.000000Z#1",
}

EXECUTION: dict[str, Any] = {
    "id": "1#2025-01-20T14:00:00.000000Z#1",
    "job_id": 1,
    "status": "completed",
    "trigger": "scheduled",
    "scheduled_for": "2025-01-20T14:00:00Z",
    "attempt": 1,
    "task_id": "abc123-def456-ghi789",
    "task_name": "tasks.generate_report",
    "task_args": [],
    "task_kwargs": {"format": "pdf"},
    "created_at": "2025-01-20T13:59:00Z",
    "started_at": "2025-01-20T14:00:00Z",
    "completed_at": "2025-01-20T14:05:30Z",
    "duration_seconds": 330,
    "result": {"pages": 12},
    "error": None,
    "reason": None,
    "missed_count": None,
    "missed_until": None,
    "lease_until": None,
    "not_before": "2025-01-20T14:00:00Z",
    "backfill_id": None,
    "overlap": None,
    "cancel_requested": None,
    "notifications": None,
}

STATS = {
    "total_jobs": 15,
    "active_jobs": 12,
    "paused_jobs": 3,
    "total_executions": 1543,
    "successful_executions": 1489,
    "failed_executions": 54,
    "running_executions": 2,
    "average_duration": 125.5,
    "last_24h_executions": 287,
    "overdue_jobs": 1,
    "last_24h_by_hour": [
        {"hour": "2025-01-14T11:00:00Z", "succeeded": 12, "failed": 0},
        {"hour": "2025-01-14T12:00:00Z", "succeeded": 11, "failed": 1},
    ],
}

CRON_VALIDATE = {"expression": "*/5 * * * *", "timezone": "UTC"}

CRON_VALIDATION = {
    "is_valid": True,
    "description": "Every 5 minutes",
    "next_runs": [
        "2025-01-20T14:05:00Z",
        "2025-01-20T14:10:00Z",
        "2025-01-20T14:15:00Z",
        "2025-01-20T14:20:00Z",
        "2025-01-20T14:25:00Z",
    ],
    "error": None,
}

CRON_PRESETS = {
    "every_minute": {"expression": "* * * * *", "description": "Every minute"},
    "hourly": {"expression": "0 * * * *", "description": "Every hour"},
    "daily_midnight": {"expression": "0 0 * * *", "description": "Daily at midnight"},
}

PREVIEW = {
    "job_type": "cron",
    "cron_expression": "30 2 * * *",
    "timezone": "US/Eastern",
    "start": "2026-03-07T00:00:00Z",
    "count": 2,
}

KEY_CREATE = {
    "name": "dashboard",
    "scopes": ["jobs:read"],
    "rate_limit": {"rate": 5, "burst": 10},
}

KEY: dict[str, Any] = {
    "id": "3k9d0a1b2c4e",
    "prefix": "nxs_3k9d0a1b2c4e",
    "name": "dashboard",
    "scopes": ["jobs:read"],
    "created_at": "2025-01-20T12:00:00Z",
    "expires_at": None,
    "revoked_at": None,
    "last_used_at": None,
    "rate_limit": {"rate": 5, "burst": 10, "execute_rate": 2},
    "created_by_key": "x1f2e3d4c5b6",
}

KEY_CREATED = {**KEY, "key": "nxs_3k9d0a1b2c4e_" + "A" * 43}

AUDIT_ENTRY = {
    "id": "a1b2c3d4e5f6",
    "at": "2025-01-20T12:30:00Z",
    "action": "job.update",
    "job_id": 1,
    "actor_key_id": "3k9d0a1b2c4e",
    "actor_key_name": "dashboard",
    "source_ip": "203.0.113.7",
    "changes": {"priority": {"from": 5, "to": 7}},
}

VALIDATION_ERROR = {
    "detail": [
        {
            "loc": ["body", "cron_expression"],
            "msg": "field required",
            "type": "value_error.missing",
        }
    ]
}

BACKFILL_REQUEST = {
    "start": "2025-01-13T00:00:00Z",
    "end": "2025-01-17T23:59:59Z",
    "overlap": "allow",
    "dry_run": False,
}

BACKFILL_STARTED: dict[str, Any] = {
    "backfill_id": "1-3f9c2a7d4b10",
    "job_id": 1,
    "status": "running",
    "start": "2025-01-13T00:00:00Z",
    "end": "2025-01-17T23:59:59Z",
    "overlap": "allow",
    "occurrences": 5,
    "excluded": 0,
    "sent": 0,
    "existing": 0,
    "skipped": 0,
    "remaining": 5,
    "cursor": None,
    "rate_per_second": 5,
    "reason": None,
    "created_at": "2025-01-20T12:00:00Z",
    "updated_at": "2025-01-20T12:00:00Z",
    "finished_at": None,
    "created_by_key": "3k9d0a1b2c4e",
}

BACKFILL: dict[str, Any] = {
    **BACKFILL_STARTED,
    "status": "done",
    "sent": 4,
    "existing": 1,
    "remaining": 0,
    "cursor": "2025-01-17T14:00:00Z",
    "updated_at": "2025-01-20T12:00:01Z",
    "finished_at": "2025-01-20T12:00:01Z",
    "runs": {"completed": 4},
}

BACKFILL_DRY_RUN = {
    "occurrences": [
        "2025-01-13T14:00:00Z",
        "2025-01-14T14:00:00Z",
        "2025-01-15T14:00:00Z",
        "2025-01-16T14:00:00Z",
        "2025-01-17T14:00:00Z",
    ],
    "excluded": 0,
}

CALENDAR_CREATE: dict[str, Any] = {
    "name": "us-holidays",
    "timezone": "US/Eastern",
    "description": "Days the US office is closed",
    "dates": ["2025-01-01", "2025-07-04", "2025-12-24/2025-12-26"],
}

CALENDAR_UPDATE: dict[str, Any] = {
    "dates": ["2025-01-01", "2025-05-26", "2025-07-04", "2025-12-24/2025-12-26"],
}

CALENDAR: dict[str, Any] = {
    **CALENDAR_CREATE,
    "used_by": [1],
    "created_at": "2025-01-10T09:00:00Z",
    "updated_at": "2025-01-10T09:00:00Z",
}
