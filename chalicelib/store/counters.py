"""The statistics counters: `COUNTER_SHARDS` items, summed when read.

Every write picks a shard at random: one DynamoDB item takes about 1,000 writes a second, and
two transactions on one item at once fail with TransactionConflict, so neither job writes nor
runs are serialised through one item. Job counts are added in the same transaction as the job
write they count; run counts in the same transaction as the run's final record
(engine.lifecycle, F1), so a count is made exactly when its record is, whatever crashes.

`total_executions` is also counted by the hour the run started, one attribute per hour, for
`last_24h_executions`, and `failed_executions` the same way (`fail#<hour>`), so the last 24
hours can be shown by outcome (`by_hour`); hours older than a day are removed as a shard is
written.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.store.items import META, drain_unprocessed, load, with_backoff

COUNTERS = "COUNTERS"
COUNTER_SHARDS = 8
HOURS_IN_STATS = 24
HOUR_PREFIX = "hour#"
FAILED_PREFIX = "fail#"


class Counters:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def _key(self) -> dict[str, Any]:
        shard = random.randrange(COUNTER_SHARDS)
        return {"pk": {"S": META}, "sk": {"S": f"{COUNTERS}#{shard}"}}

    def job_delta(self, **deltas: int) -> dict[str, Any]:
        """A transaction item adding to the job counters, on a random shard."""
        deltas = {k: v for k, v in deltas.items() if v} or {"total_jobs": 0}
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key(),
                "UpdateExpression": "ADD " + ", ".join(f"#{k} :{k}" for k in deltas),
                "ExpressionAttributeNames": {f"#{k}": k for k in deltas},
                "ExpressionAttributeValues": {f":{k}": {"N": str(v)} for k, v in deltas.items()},
            }
        }

    def run_delta(
        self, entries: Sequence[tuple[datetime, Mapping[str, int | float]]]
    ) -> dict[str, Any] | None:
        """A transaction item adding several runs' counts, summed; None if they add nothing.

        Each entry is (the hour to count the run in, its deltas).
        """
        totals: dict[str, int | float] = {}
        by_hour: dict[str, int | float] = {}
        for at, deltas in entries:
            for name, value in deltas.items():
                totals[name] = totals.get(name, 0) + value
            hour = f"{at:%Y-%m-%dT%H}"
            for prefix, name in (
                (HOUR_PREFIX, "total_executions"),
                (FAILED_PREFIX, "failed_executions"),
            ):
                if deltas.get(name):
                    by_hour[prefix + hour] = by_hour.get(prefix + hour, 0) + deltas[name]
        totals = {k: v for k, v in totals.items() if v}
        by_hour = {k: v for k, v in by_hour.items() if v}
        if not totals and not by_hour:
            return None
        adds = {**totals, **by_hour}
        names = {f"#a{i}": name for i, name in enumerate(adds)}
        values: dict[str, Any] = {f":a{i}": {"N": repr(v)} for i, v in enumerate(adds.values())}
        expression = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
        if by_hour:
            latest = max(at for at, _ in entries)
            stale = [latest - timedelta(hours=h) for h in range(25, 49)]
            old = {
                f"{prefix}{hour:%Y-%m-%dT%H}"
                for hour in stale
                for prefix in (HOUR_PREFIX, FAILED_PREFIX)
            } - set(adds)
            names.update({f"#old{i}": hour for i, hour in enumerate(sorted(old))})
            expression += " REMOVE " + ", ".join(f"#old{i}" for i in range(len(old)))
        return {
            "Update": {
                "TableName": self._table,
                "Key": self._key(),
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def read(self, now: datetime) -> dict[str, Any]:
        """Every counter shard, summed: one BatchGetItem of `COUNTER_SHARDS` items."""
        keys = [{"pk": {"S": META}, "sk": {"S": f"{COUNTERS}#{i}"}} for i in range(COUNTER_SHARDS)]
        totals: dict[str, Any] = {}
        hours: dict[str, int] = {}
        failed: dict[str, int] = {}

        def collect(out: dict[str, Any]) -> None:
            for raw in out["Responses"].get(self._table, []):
                for name, value in load(raw).items():
                    if name.startswith(HOUR_PREFIX):
                        hour = name[len(HOUR_PREFIX) :]
                        hours[hour] = hours.get(hour, 0) + value
                    elif name.startswith(FAILED_PREFIX):
                        hour = name[len(FAILED_PREFIX) :]
                        failed[hour] = failed.get(hour, 0) + value
                    elif name == "hours":  # how earlier versions kept them: one map
                        for hour, count in value.items():
                            hours[hour] = hours.get(hour, 0) + count
                    elif isinstance(value, int | float) and not isinstance(value, bool):
                        totals[name] = totals.get(name, 0) + value

        drain_unprocessed(
            lambda r: self._db.batch_get_item(RequestItems=r),
            {self._table: {"Keys": keys, "ConsistentRead": True}},
            "UnprocessedKeys",
            on_page=collect,
        )
        recent = [now - timedelta(hours=h) for h in range(HOURS_IN_STATS - 1, -1, -1)]
        names = [f"{hour:%Y-%m-%dT%H}" for hour in recent]
        totals["last_24h_executions"] = sum(hours.get(name, 0) for name in names)
        totals["by_hour"] = [
            {
                "hour": f"{name}:00:00Z",
                "succeeded": int(hours.get(name, 0) - failed.get(name, 0)),
                "failed": int(failed.get(name, 0)),
            }
            for name in names
        ]
        return totals

    def add(self, item: dict[str, Any]) -> None:
        """Apply a delta item alone (outside a transaction)."""
        with_backoff(lambda: self._db.update_item(**item["Update"]), what="counting")
