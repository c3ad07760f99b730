"""DynamoDB repository: key builders, item <-> model mapping, conditional writes.

One table holds everything, keyed by `pk`/`sk`:

| item            | pk            | sk                                  |
|-----------------|---------------|-------------------------------------|
| job             | `JOB#<id>`    | `JOB`                               |
| execution       | `JOB#<id>`    | `RUN#<scheduled_for>#<attempt>`     |
| job id sequence | `META`        | `SEQ#JOB`                           |
| counters        | `META`        | `COUNTERS`                          |
| hourly bucket   | `META`        | `HOUR#<yyyy-mm-ddThh>`              |

A job's history lives in the job's own partition, so it is one Query. Two global indexes:

- `by_created` (`list_pk`, `list_sk` = `created_at#id`), projecting only the keys and the
  attributes the list filters read. It is written when a job is created and when its
  filter attributes change, never on a run, so a busy engine puts no load on it.
- `by_due` (`due_pk`, `due_sk` = `next_run_at#id`), sparse: only jobs with a next run that
  are active carry its keys. The engine reads the due runs from it.

Counters are updated in the same transaction as the change they count, so the overview stats
are one read that is always right.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
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
)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def job_key(job_id: int) -> dict[str, Any]:
    return {"pk": {"S": f"JOB#{job_id}"}, "sk": {"S": "JOB"}}


def run_sort_key(scheduled_for: datetime, attempt: int) -> str:
    return f"RUN#{sortable(scheduled_for)}#{attempt:03d}"


def due_shard(job_id: int) -> str:
    return f"DUE#{job_id % DUE_SHARDS}"


def hour_bucket(instant: datetime) -> str:
    return f"HOUR#{instant:%Y-%m-%dT%H}"


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
    data = model.model_dump()
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
        """Write `after` over `before`, only if nobody changed the job in between."""
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": job_item(after),
                            "ConditionExpression": "#v = :expected",
                            "ExpressionAttributeNames": {"#v": "version"},
                            "ExpressionAttributeValues": {":expected": {"N": str(before.version)}},
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

    def put_execution(self, execution: Execution) -> bool:
        """Record an execution, once per run identity. False if it was already recorded."""
        item = _to_item(execution)
        item.update(
            pk=f"JOB#{execution.job_id}",
            sk=run_sort_key(execution.scheduled_for, execution.attempt),
        )
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

    # -- statistics ---------------------------------------------------------------------

    def _counter_update(self, **deltas: int) -> dict[str, Any]:
        names = {f"#{k}": k for k in deltas}
        values = {f":{k}": {"N": str(v)} for k, v in deltas.items()}
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": META}, "sk": {"S": COUNTERS}},
                "UpdateExpression": "ADD " + ", ".join(f"#{k} :{k}" for k in deltas),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def add_to_counters(self, now: datetime, **deltas: int | float) -> None:
        """Add to the counters; `executions_started` also counts in the hour bucket of `now`."""
        names = {f"#{k}": k for k in deltas}
        values = {f":{k}": {"N": repr(v)} for k, v in deltas.items()}
        self._db.update_item(
            TableName=self._table,
            Key={"pk": {"S": META}, "sk": {"S": COUNTERS}},
            UpdateExpression="ADD " + ", ".join(f"#{k} :{k}" for k in deltas),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        if deltas.get("total_executions"):
            self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": META}, "sk": {"S": hour_bucket(now)}},
                UpdateExpression="ADD executions :n",
                ExpressionAttributeValues={":n": {"N": str(deltas["total_executions"])}},
            )

    def read_stats(self, now: datetime) -> dict[str, Any]:
        """Counters plus the last 24 hourly buckets: one BatchGetItem of 25 items."""
        from datetime import timedelta

        hours = [hour_bucket(now - timedelta(hours=h)) for h in range(HOURS_IN_STATS)]
        keys = [{"pk": {"S": META}, "sk": {"S": sk}} for sk in [COUNTERS, *hours]]
        items: dict[str, dict[str, Any]] = {}
        pending: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
        while pending:
            out = self._db.batch_get_item(RequestItems=pending)
            for raw in out["Responses"].get(self._table, []):
                items[raw["sk"]["S"]] = _load(raw)
            pending = out.get("UnprocessedKeys") or {}
        counters = items.get(COUNTERS, {})
        counters["last_24h_executions"] = sum(
            items.get(sk, {}).get("executions", 0) for sk in hours
        )
        return counters

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
