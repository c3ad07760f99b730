"""What a change to the table means to a user: a stream record in, events out.

Every event comes from the table's change stream (DynamoDB Streams, new and old images), never
from calls in the code that makes the change, so nothing that changes state can forget one.
This module is pure: it reads two images and says what happened (docs/realtime.md).

| item        | change                                    | event                          |
|-------------|-------------------------------------------|--------------------------------|
| job         | inserted                                  | `job.created`                  |
| job         | `deleted_at` set (or removed without it)  | `job.deleted`                  |
| job         | `is_active` false / true                  | `job.paused` / `job.resumed`   |
| job         | anything else the API shows of it, but... | `job.updated`                  |
| job         | ...what a run changes on it (RUN_FIELDS)  | none: the run's events say it  |
| run attempt | now `pending` (`retrying`: trigger retry) | `run.pending` / `run.retrying` |
| run attempt | now `running` (was not)                   | `run.started`                  |
| run attempt | now `completed` / `failed`, dead-lettered | `run.succeeded` / `run.failed` |
| run attempt | now `skipped` / `missed` (or more missed) | `run.skipped` / `run.missed`   |
| counters    | any change                                | `stats.changed` (throttled)    |
| API key     | `revoked_at` set                          | none: its connections close    |
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from chalicelib.models import Execution
from chalicelib.store.counters import COUNTERS
from chalicelib.store.items import META, execution_from_item, is_fence, job_from_item
from chalicelib.timefmt import iso

RUN_EVENTS = {
    "running": "run.started",
    "completed": "run.succeeded",
    "failed": "run.failed",
    "dead_lettered": "run.failed",
    "skipped": "run.skipped",
    "missed": "run.missed",
    "cancelled": "run.cancelled",
}
# What a run changes on its job (its status, its last run, its slots): the run's own events
# carry it, so a run is not also a job.updated (it would double what a busy job sends).
RUN_FIELDS = frozenset(
    {"status", "last_run_at", "last_run_status", "running_count", "last_success_at"}
)


@dataclass(frozen=True)
class Event:
    type: str
    job_id: int | None
    time: datetime
    data: dict[str, Any] | None = None
    id: str | None = None
    replay: bool = False
    # When the table recorded the change (the stream's time for it): `time` is when it
    # happened (a run's start or end), which a batched write may record a little later.
    recorded: datetime | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "type": self.type,
            "job_id": self.job_id,
            "time": iso(self.time),
        }
        if self.id is not None:
            body["id"] = self.id
        if self.recorded is not None:
            body["recorded_at"] = iso(self.recorded)
        if self.replay:
            body["replay"] = True
        if self.data is not None:
            body["data"] = self.data
        return json.dumps(body, separators=(",", ":"), default=_plain)


@dataclass(frozen=True)
class Revoked:
    """A key was revoked: its open connections are closed (no event is sent for it)."""

    key_id: str


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _written_at(change: dict[str, Any], fallback: datetime) -> datetime:
    """When the stream saw the write (AWS: epoch seconds; moto: the same, or ISO text)."""
    raw = change.get("ApproximateCreationDateTime")
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, int | float | Decimal):
        return datetime.fromtimestamp(float(raw), UTC)
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return fallback


def from_record(record: dict[str, Any], now: datetime) -> list[Event | Revoked]:
    """The events one stream record (a Lambda DynamoDB event's `Records[i]`) stands for."""
    change = record.get("dynamodb") or {}
    keys = change.get("Keys") or {}
    pk = (keys.get("pk") or {}).get("S", "")
    sk = (keys.get("sk") or {}).get("S", "")
    new = change.get("NewImage")
    old = change.get("OldImage")
    written = _written_at(change, now)
    seq = change.get("SequenceNumber")
    if pk.startswith("JOB#") and sk == "JOB":
        return [replace(e, recorded=written) for e in _job_events(old, new, written, seq)]
    if pk.startswith("JOB#") and sk.startswith("RUN#"):
        return [replace(e, recorded=written) for e in _run_events(old, new, written, seq)]
    if pk == META and sk.startswith(f"{COUNTERS}#"):
        return [Event("stats.changed", None, written, id=seq)]
    newly_revoked = bool(new and "revoked_at" in new and not (old and "revoked_at" in old))
    if pk.startswith("KEY#") and sk == "KEY" and newly_revoked:
        return [Revoked(pk.removeprefix("KEY#"))]
    return []


def _job_events(
    old: dict[str, Any] | None, new: dict[str, Any] | None, written: datetime, seq: str | None
) -> list[Event]:
    if new is None:
        # The tombstone's removal (engine.sweep) after the deletion was announced.
        if old is None or "deleted_at" in old:
            return []
        job = job_from_item(old)
        return [Event("job.deleted", job.id, written, job.to_api(), seq)]
    job = job_from_item(new)
    data = job.to_api()
    if old is None:
        return [Event("job.created", job.id, job.created_at or written, data, seq)]
    if "deleted_at" in new and "deleted_at" not in old:
        return [Event("job.deleted", job.id, written, data, seq)]
    if "deleted_at" in new:
        return []
    was = job_from_item(old)
    if was.is_active and not job.is_active:
        return [Event("job.paused", job.id, written, data, seq)]
    if not was.is_active and job.is_active:
        return [Event("job.resumed", job.id, written, data, seq)]
    before = was.to_api()
    if any(before.get(k) != v for k, v in data.items() if k not in RUN_FIELDS):
        return [Event("job.updated", job.id, written, data, seq)]
    return []


def run_event_type(run: Execution) -> str:
    if run.status == "pending":
        return "run.retrying" if run.trigger == "retry" else "run.pending"
    return RUN_EVENTS[run.status]


def run_event_time(run: Execution, fallback: datetime) -> datetime:
    """The run's own time for what happened to it, to the microsecond."""
    if run.status == "running":
        return run.started_at or fallback
    if run.status == "pending":
        return run.created_at or fallback
    return run.completed_at or fallback


def _run_events(
    old: dict[str, Any] | None, new: dict[str, Any] | None, written: datetime, seq: str | None
) -> list[Event]:
    if new is None or is_fence(new):
        return []  # history expired or purged, or a fence (no record): nothing happened to the run
    run = execution_from_item(new)
    was = execution_from_item(old) if old is not None and not is_fence(old) else None
    # A lease taken over, or renewed, is not news; a missed range that grew is.
    grew = run.status == "missed" and was is not None and was.missed_count != run.missed_count
    if was is not None and was.status == run.status and not grew:
        return []
    kind = run_event_type(run)
    return [Event(kind, run.job_id, run_event_time(run, written), run.to_api(), seq)]


def from_records(records: list[dict[str, Any]], now: datetime) -> list[Event | Revoked]:
    """A batch's events in the stream's order; of several `job.updated` of one job in it
    (a tick moving its next run, then a PUT), the last alone: it holds the job as it is."""
    out: list[Event | Revoked] = []
    for record in records:
        out.extend(from_record(record, now))
    last_update = {
        e.job_id: i for i, e in enumerate(out) if isinstance(e, Event) and e.type == "job.updated"
    }
    return [
        e
        for i, e in enumerate(out)
        if not (isinstance(e, Event) and e.type == "job.updated" and last_update[e.job_id] != i)
    ]
