"""The statistics counters: `COUNTER_SHARDS` items, summed when read.

Every write picks a shard at random: one DynamoDB item takes about 1,000 writes a second, and
two transactions on one item at once fail with TransactionConflict, so neither job writes nor
runs are serialised through one item. Job counts are added in the same transaction as the job
write they count.

Run counts are added by the stream handler (app.table_changes), from the table's change
stream: a final record carries what it counts (`counts`, and `counted_at`, the instant whose
hour it counts in), and a record counts once, at the change that gave it `counts` (the stream
has old and new images). A batch of changes is counted in one one-item transaction whose
ClientRequestToken is made from the batch's event ids, on a shard chosen by the same ids, so
a batch the handler is given again (its retry after a failure: Lambda's event source gives
the same batch again, none split, as Chalice configures it) is not counted twice; DynamoDB
keeps a token 10 minutes. The stats trail the history by the stream's delay (well under a
second on AWS, the feed's poll locally); a run's record is never written without its count
following it, whatever crashes, because the count comes from the record's own change.

`total_executions` is also counted by the hour the run started, one attribute per hour, for
`last_24h_executions`, and `failed_executions` the same way (`fail#<hour>`), so the last 24
hours can be shown by outcome (`by_hour`); hours older than a day are removed as a shard is
written.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from chalicelib.store.items import META, drain_unprocessed, load, with_backoff
from chalicelib.timefmt import parse_stored

COUNTERS = "COUNTERS"
COUNTER_SHARDS = 8
HOURS_IN_STATS = 24
HOUR_PREFIX = "hour#"
FAILED_PREFIX = "fail#"
# A final record's attributes for the stream handler: what it adds to the counters, and the
# instant whose hour it counts in.
COUNTS = "counts"
COUNTED_AT = "counted_at"


class Counters:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def _key(self, shard: int | None = None) -> dict[str, Any]:
        if shard is None:
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
        self,
        entries: Sequence[tuple[datetime, Mapping[str, int | float]]],
        shard: int | None = None,
    ) -> dict[str, Any] | None:
        """A transaction item adding several runs' counts, summed; None if they add nothing.

        Each entry is (the hour to count the run in, its deltas); `shard`: which counter
        item (else one at random).
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
                "Key": self._key(shard),
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def count_changes(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Add the runs a batch of change-stream records counts (see the module's doc); how
        many it counted. The same batch again counts nothing within DynamoDB's 10 minutes."""
        records = list(records)
        entries = counted_runs(records)
        ids = "|".join(str(r.get("eventID", "")) for r in records)
        digest = hashlib.sha256(ids.encode()).hexdigest()
        delta = self.run_delta(entries, shard=int(digest, 16) % COUNTER_SHARDS)
        if delta is None:
            return 0
        with_backoff(
            lambda: self._db.transact_write_items(
                TransactItems=[delta], ClientRequestToken=digest[:36]
            ),
            what="counting runs",
        )
        return len(entries)

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


def counted_runs(
    records: Iterable[Mapping[str, Any]],
) -> list[tuple[datetime, dict[str, int | float]]]:
    """The runs change-stream records count: (the instant whose hour each counts in, what it
    adds), one for each record whose change gave it `counts` (new image has them, old not)."""
    entries = []
    for record in records:
        change = record.get("dynamodb") or {}
        new, old = change.get("NewImage") or {}, change.get("OldImage") or {}
        if COUNTS not in new or COUNTS in old:
            continue
        at = parse_stored(new.get(COUNTED_AT, {}).get("S"))
        counts = load(new[COUNTS]["M"])
        if at is not None:
            entries.append((at, counts))
    return entries
