"""Backfills: one item per backfill, in the partition of its job.

| item     | pk         | sk                  | due index (while running)            |
|----------|------------|---------------------|--------------------------------------|
| backfill | `JOB#<id>` | `BACKFILL#<bf id>`  | `DUE#<shard>`, `<check_at>#<job id>` |

A backfill id is `<job id>-<12 hex>`, so a backfill is found from its id alone. The item holds
the occurrences to run (at most 1,000 whole-second instants, stored as Unix seconds: about
7 KB), how far the backfill got (`position`: how many it has handled), its counts, and, while
it runs, a due-index entry at `check_at` that the tick meets if its steps stop (engine.backfill).

Every write after the first is conditional on `position` and `status`, so of two steps that
read the same item only one moves it on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from chalicelib.models import BackfillOverlap
from chalicelib.store.items import (
    conditional_update,
    due_shard,
    due_sort_key,
    dump,
    job_pk,
    load,
    with_backoff,
)
from chalicelib.store.jobs import query_all
from chalicelib.timefmt import iso, parse_stored, sortable

PREFIX = "BACKFILL#"
BackfillStatus = Literal["running", "done"]
# `<job id>-<12 hex>`: the job's id as job_id_from (app.py) accepts it, at most 18 digits.
ID_PATTERN = re.compile(r"([1-9][0-9]{0,17})-([0-9a-f]{12})", re.ASCII)

_TIMES = (
    "start",
    "end",
    "cursor",
    "next_slot",
    "check_at",
    "created_at",
    "updated_at",
    "finished_at",
)


def backfill_sk(backfill_id: str) -> str:
    return f"{PREFIX}{backfill_id}"


def job_of(backfill_id: str) -> int | None:
    """The job a backfill id belongs to; None if it is not a backfill id."""
    match = ID_PATTERN.fullmatch(backfill_id)
    return int(match.group(1)) if match else None


class Backfill(BaseModel):
    """One backfill as stored (never an API answer as it stands: see `to_api`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    job_id: int
    start: datetime
    end: datetime
    overlap: BackfillOverlap
    occurrences: list[datetime]
    # Occurrences of the window that the job's calendars or blackouts leave out (not run).
    excluded: int = 0
    # How many occurrences are handled (sent, or found run already); `cursor` is the last.
    position: int = 0
    cursor: datetime | None = None
    sent: int = 0
    existing: int = 0
    skipped: int = 0
    status: BackfillStatus = "running"
    reason: str | None = None
    # buffer_all: the run key of the last run this backfill sent (the next waits for it).
    last_key: str | None = None
    # The earliest `not_before` the next occurrence may have (the rate bound).
    next_slot: datetime | None = None
    # While running: when the tick looks at it if no step has moved it on by then.
    check_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    created_by_key: str | None = None
    expires_at: datetime

    @property
    def total(self) -> int:
        return len(self.occurrences)

    @property
    def remaining(self) -> int:
        return self.total - self.position

    def to_api(self, rate_per_second: float) -> dict[str, Any]:
        return {
            "backfill_id": self.id,
            "job_id": self.job_id,
            "status": self.status,
            "start": iso(self.start),
            "end": iso(self.end),
            "overlap": self.overlap,
            "occurrences": self.total,
            "excluded": self.excluded,
            "sent": self.sent,
            "existing": self.existing,
            "skipped": self.skipped,
            "remaining": self.remaining,
            "cursor": iso(self.cursor),
            "rate_per_second": rate_per_second,
            "reason": self.reason,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "finished_at": iso(self.finished_at),
            "created_by_key": self.created_by_key,
        }


def _seconds(instant: datetime) -> Decimal:
    # Schedules yield whole seconds; a fraction would still be kept exactly.
    return Decimal(str(instant.timestamp()))


def backfill_item(backfill: Backfill) -> dict[str, Any]:
    data = backfill.model_dump(exclude={"occurrences", "expires_at"})
    for key in _TIMES:
        if data.get(key) is not None:
            data[key] = sortable(data[key])
    item = {k: v for k, v in data.items() if v is not None}
    item.update(
        pk=job_pk(backfill.job_id),
        sk=backfill_sk(backfill.id),
        occurrences=[_seconds(t) for t in backfill.occurrences],
        expires_at=int(backfill.expires_at.timestamp()),
    )
    if backfill.status == "running" and backfill.check_at is not None:
        item["due_pk"] = due_shard(backfill.job_id)
        item["due_sk"] = due_sort_key(backfill.check_at, backfill.job_id)
    return dump(item)


def backfill_from_item(raw: dict[str, Any]) -> Backfill:
    data = load(raw)
    for key in _TIMES:
        if isinstance(data.get(key), str):
            data[key] = parse_stored(data[key])
    data["occurrences"] = [
        datetime.fromtimestamp(float(s), UTC) for s in data.get("occurrences") or []
    ]
    data["expires_at"] = datetime.fromtimestamp(int(data["expires_at"]), UTC)
    return Backfill.model_validate(data)


class BackfillStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def create(self, backfill: Backfill, also: Sequence[dict[str, Any]] = ()) -> None:
        """Write a new backfill, with `also` (its audit entry) in the same transaction."""
        put: dict[str, Any] = {
            "TableName": self._table,
            "Item": backfill_item(backfill),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if also:
            with_backoff(
                lambda: self._db.transact_write_items(TransactItems=[{"Put": put}, *also]),
                what="recording the backfill",
            )
        else:
            with_backoff(lambda: self._db.put_item(**put), what="recording the backfill")

    def get(self, job_id: int, backfill_id: str) -> Backfill | None:
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table,
                Key={"pk": {"S": job_pk(job_id)}, "sk": {"S": backfill_sk(backfill_id)}},
                ConsistentRead=True,
            ),
            what="reading the backfill",
        )
        return backfill_from_item(out["Item"]) if "Item" in out else None

    def advance(self, before: Backfill, after: Backfill) -> bool:
        """Write a step's progress (`after`), if no other step has moved `before` on: its
        position, counts and times, and the due entry (moved on while it runs, removed once
        it is done). False if the item is not as `before` was read."""
        fields: dict[str, Any] = {
            "position": after.position,
            "sent": after.sent,
            "existing": after.existing,
            "skipped": after.skipped,
            "status": after.status,
            "updated_at": sortable(after.updated_at),
        }
        optional: dict[str, Any] = {
            "cursor": after.cursor and sortable(after.cursor),
            "next_slot": after.next_slot and sortable(after.next_slot),
            "last_key": after.last_key,
            "reason": after.reason,
            "finished_at": after.finished_at and sortable(after.finished_at),
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        removed = [k for k, v in optional.items() if v is None]
        if after.status == "running" and after.check_at is not None:
            fields.update(
                check_at=sortable(after.check_at),
                due_pk=due_shard(after.job_id),
                due_sk=due_sort_key(after.check_at, after.job_id),
            )
        else:
            removed += ["check_at", "due_pk", "due_sk"]
        return self._update(before, fields, removed)

    def recheck_at(self, before: Backfill, check_at: datetime) -> bool:
        """Move the due entry of a running backfill that has not moved on (it waits)."""
        fields = {
            "check_at": sortable(check_at),
            "due_pk": due_shard(before.job_id),
            "due_sk": due_sort_key(check_at, before.job_id),
        }
        return self._update(before, fields, [])

    def _update(self, before: Backfill, fields: dict[str, Any], removed: list[str]) -> bool:
        values = dump({f":v{i}": v for i, v in enumerate(fields.values())})
        names = {f"#f{i}": k for i, k in enumerate(fields)}
        sets = [f"#f{i} = :v{i}" for i in range(len(fields))]
        names.update({f"#r{i}": k for i, k in enumerate(removed)})
        expression = "SET " + ", ".join(sets)
        if removed:
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        names.update({"#pos": "position", "#st": "status"})
        values.update({":pos0": {"N": str(before.position)}, ":running": {"S": "running"}})
        return conditional_update(
            self._db,
            self._table,
            {"pk": {"S": job_pk(before.job_id)}, "sk": {"S": backfill_sk(before.id)}},
            expression,
            "#pos = :pos0 AND #st = :running",
            values,
            names,
            what="recording the backfill's progress",
        )

    def outcomes(self, backfill: Backfill, limit: int = 5_000) -> dict[str, int]:
        """How the runs this backfill sent stand: the latest attempt of each, by status. One
        Query over the records of the window's runs (at most `limit` read)."""
        if not backfill.occurrences:
            return {}
        first, last = backfill.occurrences[0], backfill.occurrences[-1]
        latest: dict[str, tuple[int, str]] = {}
        for raw in query_all(
            self._db,
            self._table,
            stop_after=limit,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            FilterExpression="backfill_id = :id",
            ProjectionExpression="scheduled_for, attempt, #st",
            ExpressionAttributeNames={"#st": "status"},
            ExpressionAttributeValues={
                ":pk": {"S": job_pk(backfill.job_id)},
                ":a": {"S": f"RUN#{sortable(first)}#"},
                ":b": {"S": f"RUN#{sortable(last)}#~"},
                ":id": {"S": backfill.id},
            },
        ):
            item = load(raw)
            when, attempt = str(item["scheduled_for"]), int(item.get("attempt", 1))
            if when not in latest or latest[when][0] < attempt:
                latest[when] = (attempt, str(item["status"]))
        return dict(Counter(status for _, status in latest.values()))


__all__ = [
    "PREFIX",
    "Backfill",
    "BackfillStore",
    "backfill_from_item",
    "backfill_item",
    "backfill_sk",
    "job_of",
]
