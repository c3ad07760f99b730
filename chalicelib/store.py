"""DynamoDB repository: key builders, item <-> model mapping, conditional writes.

One table holds everything, keyed by `pk`/`sk`:

| item            | pk            | sk                                  |
|-----------------|---------------|-------------------------------------|
| job             | `JOB#<id>`    | `JOB`                               |
| execution       | `JOB#<id>`    | `RUN#<scheduled_for>#<attempt>`     |
| job id sequence | `META`        | `SEQ#JOB`                           |
| counters        | `META`        | `COUNTERS#<shard>`                  |

A job's history lives in the job's own partition, so it is one Query. Two global indexes:

- `by_created` (`list_pk`, `list_sk` = `created_at#id`), projecting only the keys and the
  attributes the list filters read. It is written when a job is created and when its
  filter attributes change, never on a run, so a busy engine puts no load on it.
- `by_due` (`due_pk`, `due_sk` = `next_run_at#id`), sparse: only jobs with a next run that
  are active carry its keys. The engine reads the due runs from it.

Job counters are updated in the same transaction as the change they count; execution
counters by the worker, with hourly counts in the same items. The overview stats are one
BatchGetItem of the counter shards, whatever is stored.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.errors import ConcurrentUpdate, JobNotFound
from chalicelib.models import Execution, Job
from chalicelib.timefmt import parse_stored, sortable

LIST_INDEX = "by_created"
DUE_INDEX = "by_due"
DUE_SHARDS = 8
LIST_PARTITION = "JOBS"
META = "META"
COUNTERS = "COUNTERS"
HOURS_IN_STATS = 24
# Counter items keep each hour's count of started runs in an attribute of this prefix.
HOUR_PREFIX = "hour#"

_JSON_FIELDS = ("task_args", "task_kwargs", "metadata", "result", "error")
_TIME_FIELDS = (
    "scheduled_time",
    "start_time",
    "end_time",
    "next_run_at",
    "last_run_at",
    "created_at",
    "updated_at",
    "scheduled_for",
    "started_at",
    "completed_at",
    "missed_until",
    "lease_until",
    "not_before",
)
# Written by the engine only: an API update never touches them, so it cannot undo a run's record.
ENGINE_FIELDS = frozenset({"last_run_at", "last_run_status", "run_count", "running_count"})
COUNTER_SHARDS = 8
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class DueEntry:
    """One entry of the due index: a job's next run, or a pending retry to send."""

    pk: str
    sk: str
    due_at: datetime
    priority: int

    @property
    def job_id(self) -> int:
        return int(self.pk.removeprefix("JOB#"))

    @property
    def is_job(self) -> bool:
        return self.sk == "JOB"


def job_key(job_id: int) -> dict[str, Any]:
    return {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}}


def run_sort_key(scheduled_for: datetime, attempt: int) -> str:
    return f"RUN#{sortable(scheduled_for)}#{attempt:03d}"


def due_shard(job_id: int) -> str:
    return f"DUE#{job_id % DUE_SHARDS}"


def _dump(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def _load(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _to_item(model: Job | Execution) -> dict[str, Any]:
    return _to_item_fields(model.model_dump(exclude={"expires_at"}))


def _to_item_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Map some fields of a model the way `_to_item` maps a whole one."""
    data = dict(fields)
    for key in _JSON_FIELDS:
        if key in data:
            data[key] = json.dumps(data[key], separators=(",", ":"))
    for key in _TIME_FIELDS:
        if data.get(key) is not None:
            data[key] = sortable(data[key])
    for key, value in data.items():
        if isinstance(value, float):
            data[key] = Decimal(repr(value))
    return data


def _from_item(raw: dict[str, Any]) -> dict[str, Any]:
    data = _load(raw)
    for key in _JSON_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    for key in _TIME_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = parse_stored(data[key])
    return data


def job_item(job: Job) -> dict[str, Any]:
    item = _to_item(job)
    item.update(
        pk=f"JOB#{job.id}",
        sk="JOB",
        list_pk=LIST_PARTITION,
        list_sk=f"{sortable(job.created_at)}#{job.id:012d}",
    )
    if job.is_active and job.next_run_at is not None:
        item["due_pk"] = due_shard(job.id)
        item["due_sk"] = f"{sortable(job.next_run_at)}#{job.id:012d}"
    return _dump(item)


def _is_condition_failure(exc: ClientError) -> bool:
    code = exc.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons", [])
        return any(r.get("Code") == "ConditionalCheckFailed" for r in reasons)
    return False


def _active_delta(before: Job | None, after: Job | None) -> int:
    return int(bool(after and after.is_active)) - int(bool(before and before.is_active))


class Store:
    """The repository. It receives a low-level DynamoDB client and the table's name."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    # -- jobs ---------------------------------------------------------------------------

    def next_job_id(self) -> int:
        out = self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": META}, "sk": {"S": "SEQ#JOB"}},
            UpdateExpression="ADD seq :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(out["Attributes"]["seq"]["N"])

    def get_job(self, job_id: int) -> Job:
        out = self._db.get_item(TableName=self._table, Key=job_key(job_id), ConsistentRead=True)
        if "Item" not in out:
            raise JobNotFound(job_id)
        return Job.model_validate(_from_item(out["Item"]))

    def create_job(self, job: Job) -> None:
        self._db.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": job_item(job),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                self._counter_update(total_jobs=1, active_jobs=_active_delta(None, job)),
            ]
        )

    def replace_job(self, before: Job, after: Job) -> None:
        """Write the caller-owned fields of `after`, only if nobody changed the job since `before`.

        An update, not a put: the engine's fields (last run, run counts) may change at any
        moment while a run finishes, and an API write must not undo them.
        """
        item = job_item(after)
        names: dict[str, str] = {}
        values: dict[str, Any] = {":expected": {"N": str(before.version)}}
        sets, removes = [], []
        for i, (key, value) in enumerate(sorted(item.items())):
            if key in ("pk", "sk") or key in ENGINE_FIELDS:
                continue
            names[f"#f{i}"] = key
            values[f":v{i}"] = value
            sets.append(f"#f{i} = :v{i}")
        if "due_pk" not in item:
            names["#dp"], names["#ds"] = "due_pk", "due_sk"
            removes = ["#dp", "#ds"]
        names["#v"] = "version"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": job_key(after.id),
                            "UpdateExpression": expression,
                            "ConditionExpression": "#v = :expected",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values,
                        }
                    },
                    self._counter_update(active_jobs=_active_delta(before, after)),
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConcurrentUpdate(
                    f"job {before.id} changed while this request was being handled; retry it"
                ) from exc
            raise

    def delete_job(self, job: Job) -> None:
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Delete": {
                            "TableName": self._table,
                            "Key": job_key(job.id),
                            "ConditionExpression": "#v = :expected",
                            "ExpressionAttributeNames": {"#v": "version"},
                            "ExpressionAttributeValues": {":expected": {"N": str(job.version)}},
                        }
                    },
                    self._counter_update(total_jobs=-1, active_jobs=_active_delta(job, None)),
                ]
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                raise ConcurrentUpdate(
                    f"job {job.id} changed while it was being deleted; retry the delete"
                ) from exc
            raise
        self._delete_history(job.id)

    def _delete_history(self, job_id: int) -> None:
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in self._query_all(
                KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
                ExpressionAttributeValues={":pk": {"S": f"JOB#{job_id}"}, ":run": {"S": "RUN#"}},
                ProjectionExpression="pk, sk",
            )
        ]
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            pending: dict[str, Any] = {self._table: requests}
            while pending:
                out = self._db.batch_write_item(RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}

    def list_jobs(
        self,
        *,
        skip: int,
        limit: int,
        is_active: bool | None = None,
        job_type: str | None = None,
        tags: list[str] | None = None,
    ) -> list[Job]:
        """Newest first. Reads the index keys of `skip + limit` matching jobs, then the page."""
        filters: list[str] = []
        values: dict[str, Any] = {":p": {"S": LIST_PARTITION}}
        names: dict[str, str] = {}
        if is_active is not None:
            filters.append("is_active = :active")
            values[":active"] = {"BOOL": is_active}
        if job_type is not None:
            filters.append("job_type = :type")
            values[":type"] = {"S": job_type}
        for i, tag in enumerate(tags or []):
            filters.append(f"contains(#tags, :tag{i})")
            values[f":tag{i}"] = {"S": tag}
            names["#tags"] = "tags"
        params: dict[str, Any] = {
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :p",
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "ProjectionExpression": "pk, sk",
        }
        if filters:
            params["FilterExpression"] = " AND ".join(filters)
        if names:
            params["ExpressionAttributeNames"] = names
        wanted = skip + limit
        keys: list[dict[str, Any]] = []
        for item in self._query_all(page_size=min(wanted, 1000), stop_after=wanted, **params):
            keys.append({"pk": item["pk"], "sk": item["sk"]})
        page = keys[skip:wanted]
        return self._get_jobs(page)

    def _get_jobs(self, keys: list[dict[str, Any]]) -> list[Job]:
        found: dict[str, Job] = {}
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self._table: {"Keys": keys[start : start + 100], "ConsistentRead": True}
            }
            while pending:
                out = self._db.batch_get_item(RequestItems=pending)
                for raw in out["Responses"].get(self._table, []):
                    found[raw["pk"]["S"]] = Job.model_validate(_from_item(raw))
                pending = out.get("UnprocessedKeys") or {}
        # A job deleted between the index read and the batch read is simply left out.
        return [found[k["pk"]["S"]] for k in keys if k["pk"]["S"] in found]

    # -- executions ---------------------------------------------------------------------

    def put_execution(self, execution: Execution, **extra: Any) -> bool:
        """Record an execution, once per run identity. False if it was already recorded."""
        item = _to_item(execution)
        item.update(
            pk=f"JOB#{execution.job_id}",
            sk=run_sort_key(execution.scheduled_for, execution.attempt),
            **extra,
        )
        if execution.expires_at is not None:
            item["expires_at"] = int(execution.expires_at.timestamp())
        try:
            self._db.put_item(
                TableName=self._table,
                Item=_dump(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def list_executions(self, job_id: int, *, skip: int, limit: int) -> list[Execution]:
        """Newest first, from one Query on the job's partition."""
        wanted = skip + limit
        items = list(
            self._query_all(
                page_size=wanted,
                stop_after=wanted,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
                ExpressionAttributeValues={":pk": {"S": f"JOB#{job_id}"}, ":run": {"S": "RUN#"}},
                ScanIndexForward=False,
            )
        )
        return [Execution.model_validate(_from_item(raw)) for raw in items[skip:wanted]]

    # -- the engine ---------------------------------------------------------------------

    def query_due(self, until: datetime) -> list[DueEntry]:
        """Everything due at or before `until`, from every shard of the sparse `by_due` index.

        Reads are proportional to what is due, not to what is stored. The index is eventually
        consistent: callers re-read from the table before they act.
        """
        bound = f"{sortable(until)}#~"
        entries = []
        for shard in range(DUE_SHARDS):
            for raw in self._query_all(
                IndexName=DUE_INDEX,
                KeyConditionExpression="due_pk = :p AND due_sk <= :until",
                ExpressionAttributeValues={":p": {"S": f"DUE#{shard}"}, ":until": {"S": bound}},
            ):
                item = _load(raw)
                entries.append(
                    DueEntry(
                        pk=item["pk"],
                        sk=item["sk"],
                        due_at=parse_stored(item["due_sk"].split("#")[0]) or datetime.min,
                        priority=int(item.get("priority", 5)),
                    )
                )
        return entries

    def claim_job(self, job: Job, new_next: datetime | None) -> bool:
        """Advance the job's next run, only if it is still `job.next_run_at` and active.

        This is the claim: of two ticks that planned the same runs, one advances the job and
        the other's condition fails.
        """
        assert job.next_run_at is not None
        names = {"#next": "next_run_at", "#active": "is_active"}
        values: dict[str, Any] = {
            ":old": {"S": sortable(job.next_run_at)},
            ":true": {"BOOL": True},
        }
        if new_next is None:
            names.update({"#dp": "due_pk", "#ds": "due_sk"})
            expression = "REMOVE #next, #dp, #ds"
        else:
            names["#ds"] = "due_sk"
            values[":new"] = {"S": sortable(new_next)}
            values[":due"] = {"S": f"{sortable(new_next)}#{job.id:012d}"}
            expression = "SET #next = :new, #ds = :due"
        try:
            self._db.update_item(
                TableName=self._table,
                Key=job_key(job.id),
                UpdateExpression=expression,
                ConditionExpression="#next = :old AND #active = :true",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_execution(self, job_id: int, run_key: str) -> Execution | None:
        out = self._db.get_item(
            TableName=self._table,
            Key={"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": run_key}},
            ConsistentRead=True,
        )
        if "Item" not in out:
            return None
        return Execution.model_validate(_from_item(out["Item"]))

    def put_due_execution(self, execution: Execution, due_at: datetime) -> bool:
        """Record a pending execution that the tick sends when `due_at` comes (long delays)."""
        return self.put_execution(
            execution,
            due_pk=due_shard(execution.job_id),
            due_sk=f"{sortable(due_at)}#{execution.job_id:012d}",
        )

    def release_due_execution(self, job_id: int, run_key: str) -> bool:
        """Take a pending execution out of the due index once it is sent; False if gone."""
        return self._update_execution(
            job_id,
            run_key,
            "REMOVE #dp, #ds",
            "attribute_exists(#dp)",
            {"#dp": "due_pk", "#ds": "due_sk"},
            {},
        )

    def start_execution(
        self, execution: Execution, now: datetime, lease_until: datetime, owner: str
    ) -> str | None:
        """Move an execution to running under a lease.

        Returns "started" (it was pending), "taken_over" (it was running under a lease that
        has expired: its worker died), or None (someone else has it, or it is over).
        """
        values = {
            ":running": {"S": "running"},
            ":now": {"S": sortable(now)},
            ":lease": {"S": sortable(lease_until)},
            ":owner": {"S": owner},
        }
        names = {"#st": "status", "#lu": "lease_until", "#lo": "lease_owner", "#sa": "started_at"}
        update = "SET #st = :running, #sa = :now, #lu = :lease, #lo = :owner"
        if self._update_execution(
            execution.job_id,
            execution.run_key,
            update,
            "#st = :pending",
            names,
            {**values, ":pending": {"S": "pending"}},
        ):
            return "started"
        if self._update_execution(
            execution.job_id,
            execution.run_key,
            update,
            "#st = :running AND #lu < :now",
            names,
            values,
        ):
            return "taken_over"
        return None

    def finish_execution(self, execution: Execution, owner: str) -> bool:
        """Record the outcome held in `execution`, only if `owner` still holds the lease."""
        fields = {
            "status": execution.status,
            "completed_at": execution.completed_at,
            "duration_seconds": execution.duration_seconds,
            "result": execution.result,
            "error": execution.error,
            "reason": execution.reason,
        }
        item = _dump(_to_item_fields(fields))
        names = {f"#f{i}": k for i, k in enumerate(item)}
        values = {f":v{i}": v for i, v in enumerate(item.values())}
        names.update({"#lo": "lease_owner", "#lu": "lease_until", "#st0": "status"})
        values.update({":owner": {"S": owner}, ":running": {"S": "running"}})
        update = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(item))) + " REMOVE #lu"
        return self._update_execution(
            execution.job_id,
            execution.run_key,
            update,
            "#st0 = :running AND #lo = :owner",
            names,
            values,
        )

    def settle_execution(
        self,
        execution: Execution,
        status: str,
        reason: str,
        now: datetime,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """End an execution that will not run (or will not finish): skipped, failed...

        Only from pending, or from running once its lease is over, so a finished run's record
        is never rewritten.
        """
        fields = {"status": status, "reason": reason, "completed_at": now, "error": error}
        item = _dump(_to_item_fields(fields))
        names = {f"#f{i}": k for i, k in enumerate(item)}
        values = {f":v{i}": v for i, v in enumerate(item.values())}
        names.update({"#st0": "status", "#lu": "lease_until", "#dp": "due_pk", "#ds": "due_sk"})
        values.update(
            {
                ":pending": {"S": "pending"},
                ":running": {"S": "running"},
                ":now": {"S": sortable(now)},
            }
        )
        update = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(item)))
        update += " REMOVE #lu, #dp, #ds"
        return self._update_execution(
            execution.job_id,
            execution.run_key,
            update,
            "#st0 = :pending OR (#st0 = :running AND #lu < :now)",
            names,
            values,
        )

    def _update_execution(
        self,
        job_id: int,
        run_key: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        params: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": run_key}},
            "UpdateExpression": update,
            "ConditionExpression": f"attribute_exists(pk) AND ({condition})",
            "ExpressionAttributeNames": names,
        }
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            self._db.update_item(**params)
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def job_run_started(self, job_id: int) -> None:
        """One more run of the job is running; its status says so unless it is paused."""
        self._update_job_run(
            job_id, "ADD running_count :one", {":one": {"N": "1"}}, status="running"
        )

    def job_run_finished(
        self, job_id: int, status: str, finished_at: datetime, started: bool = True
    ) -> None:
        """Record a finished run on the job: last run, counts, and the status it leaves."""
        values: dict[str, Any] = {
            ":one": {"N": "1"},
            ":at": {"S": sortable(finished_at)},
            ":last": {"S": status},
        }
        update = "SET last_run_at = :at, last_run_status = :last ADD run_count :one"
        if started:
            values[":minus"] = {"N": "-1"}
            update += ", running_count :minus"
        self._update_job_run(job_id, update, values, status=status)

    def _update_job_run(
        self, job_id: int, update: str, values: dict[str, Any], status: str
    ) -> None:
        # The status only follows the runs of an active job: a paused job stays `paused`.
        with_status = (
            update.replace("SET ", "SET #st = :status, ", 1)
            if "SET " in update
            else (f"SET #st = :status {update}")
        )
        for expression, condition, extra in (
            (
                with_status,
                "attribute_exists(pk) AND is_active = :true",
                {":status": {"S": status}, ":true": {"BOOL": True}},
            ),
            (update, "attribute_exists(pk)", {}),
        ):
            params: dict[str, Any] = {
                "TableName": self._table,
                "Key": job_key(job_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": {**values, **extra},
            }
            if "#st" in expression:
                params["ExpressionAttributeNames"] = {"#st": "status"}
            try:
                self._db.update_item(**params)
                return
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise
        # The job is gone: its history went with it, nothing to record.

    # -- statistics ---------------------------------------------------------------------

    def _counter_update(self, **deltas: int) -> dict[str, Any]:
        """A transaction item adding to the job counters (kept on shard 0)."""
        names = {f"#{k}": k for k in deltas}
        values = {f":{k}": {"N": str(v)} for k, v in deltas.items()}
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": META}, "sk": {"S": f"{COUNTERS}#0"}},
                "UpdateExpression": "ADD " + ", ".join(f"#{k} :{k}" for k in deltas),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def add_to_counters(self, now: datetime, **deltas: int | float) -> None:
        """Add to the execution counters, in one write (see add_counts)."""
        self.add_counts([(now, deltas)])

    def add_counts(self, entries: Sequence[tuple[datetime, Mapping[str, int | float]]]) -> None:
        """Add several runs' deltas to the execution counters, summed, in one write.

        Counters are spread over `COUNTER_SHARDS` items, since every run counts and one
        DynamoDB item takes about 1,000 writes a second. `total_executions` is also counted
        by the hour of each entry, in an attribute per hour (for `last_24h_executions`);
        the hours just older than a day are removed as the item is written.
        """
        totals: dict[str, int | float] = {}
        by_hour: dict[str, int | float] = {}
        for at, deltas in entries:
            for name, value in deltas.items():
                totals[name] = totals.get(name, 0) + value
            if deltas.get("total_executions"):
                hour = f"{at:%Y-%m-%dT%H}"
                by_hour[hour] = by_hour.get(hour, 0) + deltas["total_executions"]
        totals = {k: v for k, v in totals.items() if v}
        by_hour = {k: v for k, v in by_hour.items() if v}
        if not totals and not by_hour:
            return
        latest = max(at for at, _ in entries)
        shard = random.randrange(COUNTER_SHARDS)
        adds = {**totals, **{f"{HOUR_PREFIX}{hour}": n for hour, n in by_hour.items()}}
        names = {f"#a{i}": name for i, name in enumerate(adds)}
        values: dict[str, Any] = {f":a{i}": {"N": repr(v)} for i, v in enumerate(adds.values())}
        expression = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds)))
        if by_hour:
            day_before = [latest - timedelta(hours=h) for h in range(25, 49)]
            stale = [f"{HOUR_PREFIX}{hour:%Y-%m-%dT%H}" for hour in day_before]
            names.update({f"#old{i}": hour for i, hour in enumerate(stale)})
            expression += " REMOVE " + ", ".join(f"#old{i}" for i in range(len(stale)))
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": META}, "sk": {"S": f"{COUNTERS}#{shard}"}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def read_stats(self, now: datetime) -> dict[str, Any]:
        """Every counter shard, summed: one BatchGetItem of `COUNTER_SHARDS` items."""
        keys = [{"pk": {"S": META}, "sk": {"S": f"{COUNTERS}#{i}"}} for i in range(COUNTER_SHARDS)]
        totals: dict[str, Any] = {}
        hours: dict[str, int] = {}
        oldest = f"{now - timedelta(hours=HOURS_IN_STATS - 1):%Y-%m-%dT%H}"
        stale: dict[str, list[str]] = {}
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        while pending:
            out = self._db.batch_get_item(RequestItems=pending)
            for raw in out["Responses"].get(self._table, []):
                for name, value in _load(raw).items():
                    if name.startswith(HOUR_PREFIX):
                        hour = name[len(HOUR_PREFIX) :]
                        hours[hour] = hours.get(hour, 0) + value
                        if hour < oldest:
                            stale.setdefault(raw["sk"]["S"], []).append(name)
                    elif name == "hours":  # how earlier versions kept them: one map
                        for hour, count in value.items():
                            hours[hour] = hours.get(hour, 0) + count
                    elif isinstance(value, int | float) and not isinstance(value, bool):
                        totals[name] = totals.get(name, 0) + value
            pending = out.get("UnprocessedKeys") or {}
        recent = {f"{now - timedelta(hours=h):%Y-%m-%dT%H}" for h in range(HOURS_IN_STATS)}
        totals["last_24h_executions"] = sum(n for hour, n in hours.items() if hour in recent)
        self._drop_hours(stale)
        return totals

    def _drop_hours(self, stale: dict[str, list[str]]) -> None:
        """Hours a shard kept past their day, because no run was counted on it for a while
        after them (add_counts drops only the day before): removed, so no item grows."""
        for sk, names in stale.items():
            for i in range(0, len(names), 50):
                chunk = names[i : i + 50]
                self._db.update_item(
                    TableName=self._table,
                    Key={"pk": {"S": META}, "sk": {"S": sk}},
                    UpdateExpression="REMOVE " + ", ".join(f"#h{j}" for j in range(len(chunk))),
                    ExpressionAttributeNames={f"#h{j}": n for j, n in enumerate(chunk)},
                )

    # -- helpers ------------------------------------------------------------------------

    def _query_all(
        self, *, page_size: int | None = None, stop_after: int | None = None, **params: Any
    ) -> Iterator[dict[str, Any]]:
        params["TableName"] = self._table
        if page_size:
            params["Limit"] = page_size
        seen = 0
        while True:
            out = self._db.query(**params)
            for item in out.get("Items", []):
                yield item
                seen += 1
                if stop_after is not None and seen >= stop_after:
                    return
            last = out.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last


def table_definition(table_name: str) -> dict[str, Any]:
    """The table as `create_table` takes it: used locally and in tests (infra/ mirrors it)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "list_pk", "list_sk", "due_pk", "due_sk")
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": "list_pk", "KeyType": "HASH"},
                    {"AttributeName": "list_sk", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["is_active", "job_type", "tags"],
                },
            },
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": "due_pk", "KeyType": "HASH"},
                    {"AttributeName": "due_sk", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["next_run_at", "priority"],
                },
            },
        ],
    }
