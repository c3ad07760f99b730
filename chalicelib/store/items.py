"""One DynamoDB table, keyed by `pk`/`sk`; how models become items and back.

| item                  | pk            | sk                                  | written by        |
|-----------------------|---------------|-------------------------------------|-------------------|
| job                   | `JOB#<id>`    | `JOB`                               | jobs.JobStore     |
| run attempt           | `JOB#<id>`    | `RUN#<scheduled_for>#<attempt>`     | runs.RunStore     |
| missed range          | `JOB#<id>`    | `RUN#<first missed>#000`            | runs.RunStore     |
| job id sequence       | `META`        | `SEQ#JOB`                           | jobs.JobStore     |
| counter shard         | `META`        | `COUNTERS#<shard>`                  | counters.Counters |

A run's identity is `(job_id, scheduled_for)`; `run_key` builds its sort key, and every write
about a run is conditional on the item at that key. A job's history lives in the job's own
partition, so it is one Query.

Two global indexes:
- `by_created` (`list_pk`, `list_sk` = `created_at#id`): the job list, newest first.
- `by_due` (`due_pk`, `due_sk` = `<when>#id`), sparse: an active job's next run, and a run
  attempt that must be (re)sent by a given time if it has not started (see engine.lifecycle).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib import notify
from chalicelib.errors import Unavailable
from chalicelib.models import Execution, Job
from chalicelib.timefmt import parse_stored, sortable

LIST_INDEX = "by_created"
DUE_INDEX = "by_due"
DUE_SHARDS = 8
LIST_PARTITION = "JOBS"
META = "META"

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
    "paused_until",
    "paused_at",
    "resumed_at",
    "lease_until",
    "not_before",
    "deleted_at",
    "expect_since",
    "last_success_at",
    "overdue_since",
    "overdue_notice_since",
    "overdue_notice_until",
    "rescheduled_at",
)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Errors that say "not now": DynamoDB or SQS is throttling, or two transactions met.
RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def job_pk(job_id: int) -> str:
    return f"JOB#{job_id}"


def job_key(job_id: int) -> dict[str, Any]:
    return {"pk": {"S": job_pk(job_id)}, "sk": {"S": "JOB"}}


def run_key(scheduled_for: datetime, attempt: int) -> str:
    """The sort key of one attempt of the run `(job_id, scheduled_for)`; attempt 0 is the
    record of a range of missed runs that starts there."""
    return f"RUN#{sortable(scheduled_for)}#{attempt:03d}"


def run_item_key(job_id: int, key: str) -> dict[str, Any]:
    return {"pk": {"S": job_pk(job_id)}, "sk": {"S": key}}


# A fence (RunStore.fence) is an item at a run's key without a `status`: it stops a start that
# was decided without reading the job (engine.snapshot) and is no record of the run. Every
# reader of run records skips it, and every write that records a run where none is takes its
# place (NOT_RECORDED); only the unread start (S0 from a snapshot) needs no item at all.
STATUS_NAME = {"#st": "status"}
RECORDED = "attribute_exists(#st)"
NOT_RECORDED = "attribute_not_exists(#st)"
FENCE = "fence"


def is_fence(item: dict[str, Any]) -> bool:
    """Whether a stored item at a run's key is a fence, not a record (see NOT_RECORDED)."""
    return "status" not in item


def due_shard(job_id: int) -> str:
    return f"DUE#{job_id % DUE_SHARDS}"


def due_sort_key(when: datetime, job_id: int) -> str:
    return f"{sortable(when)}#{job_id:012d}"


def dump(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items()}


def load(item: dict[str, Any]) -> dict[str, Any]:
    """An item as plain Python: numbers as int or float, sets as sorted lists. What
    `_plain(TypeDeserializer().deserialize(v))` gives, without its cost for the common types
    (boto3's deserializer dominated the tick's CPU per job read)."""
    return {k: _value(v) for k, v in item.items()}


def _value(value: dict[str, Any]) -> Any:
    ((tag, x),) = value.items()
    if tag == "S" or tag == "BOOL":
        return x
    if tag == "N":
        return _number(x)
    if tag == "M":
        return {k: _value(v) for k, v in x.items()}
    if tag == "L":
        return [_value(v) for v in x]
    if tag == "NULL":
        return None
    if tag == "SS":
        return sorted(x)
    if tag == "NS":
        return sorted(_number(n) for n in x)
    return _plain(_deserializer.deserialize(value))  # type: ignore[arg-type]  # binary values


def _number(text: str) -> int | float:
    if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
        return int(text)
    return _plain(_deserializer.deserialize({"N": text}))  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_item_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Map model fields to item attributes: JSON fields as text, instants sortable."""
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


def from_item(raw: dict[str, Any]) -> dict[str, Any]:
    data = load(raw)
    for key in _JSON_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    for key in _TIME_FIELDS:
        if isinstance(data.get(key), str):
            data[key] = parse_stored(data[key])
    return data


def job_item(job: Job) -> dict[str, Any]:
    item = to_item_fields(
        job.model_dump(exclude={"running", "run_count", "running_count", "schedule_error"})
    )
    # An absent attribute, not NULL: conditions test for absence (`attribute_not_exists`).
    item = {k: v for k, v in item.items() if v is not None}
    item.update(
        running={},
        pk=job_pk(job.id),
        sk="JOB",
        list_pk=LIST_PARTITION,
        list_sk=f"{sortable(job.created_at)}#{job.id:012d}",
    )
    # Due: an active job at its next run; a job paused `until` at its end (engine.pauses).
    due = job.next_run_at if job.is_active else job.paused_until
    if due is not None:
        item["due_pk"] = due_shard(job.id)
        item["due_sk"] = due_sort_key(due, job.id)
    return dump(item)


def job_from_item(raw: dict[str, Any]) -> Job:
    # Read back, not written: the checks that depend on the stage's settings are not redone.
    return Job.model_validate(from_item(raw), context=notify.ACCEPTED)


def execution_item(execution: Execution, **extra: Any) -> dict[str, Any]:
    item = to_item_fields(execution.model_dump(exclude={"expires_at", "schedule_rev"}))
    item = {k: v for k, v in item.items() if v is not None}
    item.update(pk=job_pk(execution.job_id), sk=execution.run_key, **extra)
    if execution.expires_at is not None:
        item["expires_at"] = int(execution.expires_at.timestamp())
    return dump(item)


def execution_from_item(raw: dict[str, Any]) -> Execution:
    return Execution.model_validate(from_item(raw))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def cancellation_codes(exc: ClientError) -> list[str]:
    reasons = exc.response.get("CancellationReasons") or []
    return [str(r.get("Code") or "None") for r in reasons]


def failed_conditions(exc: ClientError, count: int) -> list[bool] | None:
    """For a transaction of `count` items that a condition cancelled: whether each item's
    condition failed; None if it failed otherwise."""
    codes = cancellation_codes(exc)
    if len(codes) != count or "ConditionalCheckFailed" not in codes:
        return None
    return [c == "ConditionalCheckFailed" for c in codes]


def is_condition_failure(exc: ClientError) -> bool:
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        return "ConditionalCheckFailed" in cancellation_codes(exc)
    return False


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = error_code(exc)
    if code in RETRYABLE:
        return True
    if code == "TransactionCanceledException":
        codes = set(cancellation_codes(exc)) - {"None"}
        return bool(codes) and codes <= {"TransactionConflict", "ThrottlingError"}
    return False


def with_backoff[T](
    call: Callable[[], T],
    *,
    attempts: int = 4,
    base: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "the request",
) -> T:
    """Call `call`, again after a jittered, doubling pause while AWS answers "not now".

    botocore already retries throttling a few times; what still fails here is a burst, or a
    transaction that met another on the same item. Past the last attempt the caller gets
    `Unavailable`, which the API answers with 503 and Retry-After, never 500.
    """
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as exc:
            if not is_retryable(exc):
                raise
            if attempt == attempts - 1:
                raise Unavailable(
                    f"{what} could not be completed: AWS answered {error_code(exc)} "
                    f"{attempts} times; retry shortly"
                ) from exc
            sleep(base * (2**attempt) * (1 + random.random()))
    raise AssertionError("unreachable")


def drain_unprocessed(
    send: Callable[[dict[str, Any]], dict[str, Any]],
    request: dict[str, Any],
    unprocessed_key: str,
    *,
    attempts: int = 8,
    sleep: Callable[[float], None] = time.sleep,
    on_page: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Send a batch request and its unprocessed remainder until nothing is left.

    DynamoDB hands back what it did not do (`UnprocessedItems` / `UnprocessedKeys`) when a
    partition is busy; asking again at once usually fails again, so the pause doubles.
    """
    pending = request
    pause = 0.05
    for _ in range(attempts):
        out = with_backoff(lambda p=pending: send(p), sleep=sleep)  # type: ignore[misc]
        if on_page is not None:
            on_page(out)
        pending = out.get(unprocessed_key) or {}
        if not pending:
            return
        sleep(pause * (1 + random.random()))
        pause = min(pause * 2, 2.0)
    raise Unavailable(f"DynamoDB left part of a batch unprocessed {attempts} times; retry shortly")


def batch_get(
    db: Any, table: str, keys: list[dict[str, Any]], *, consistent: bool = True
) -> dict[tuple[str, str], dict[str, Any]]:
    """The items at `keys` that exist, by (pk, sk): BatchGetItem in pages of 100, with what
    DynamoDB leaves unprocessed asked again (drain_unprocessed)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}

    def collect(out: dict[str, Any]) -> None:
        for raw in out["Responses"].get(table, []):
            found[(raw["pk"]["S"], raw["sk"]["S"])] = raw

    for start in range(0, len(keys), 100):
        drain_unprocessed(
            lambda r: db.batch_get_item(RequestItems=r),
            {table: {"Keys": keys[start : start + 100], "ConsistentRead": consistent}},
            "UnprocessedKeys",
            on_page=collect,
        )
    return found


def conditional_update(
    db: Any,
    table: str,
    key: dict[str, Any],
    update: str,
    condition: str,
    values: dict[str, Any],
    names: dict[str, str] | None = None,
    *,
    what: str = "updating",
) -> bool:
    """One UpdateItem on an item that exists, if `condition` holds: True if it was made,
    False if the condition failed (a transition made already, or not allowed now)."""
    params: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": update,
        "ConditionExpression": f"attribute_exists(pk) AND ({condition})",
    }
    if values:
        params["ExpressionAttributeValues"] = values
    if names:
        params["ExpressionAttributeNames"] = names
    try:
        with_backoff(lambda: db.update_item(**params), what=what)
    except ClientError as exc:
        if is_condition_failure(exc):
            return False
        raise
    return True
