"""Local state that outlives a restart of `make run`.

The embedded AWS keeps everything in memory, so the table is kept in files of the state
folder: `<table>.jsonl`, one item a line, in DynamoDB JSON as DynamoDB's own exports write it,
and the journals of the writes made since (local.aws_process.Journal), which the embedded AWS
writes itself; `restore` writes the table back from them into the fresh table on the next
start. Queue messages are not kept: `requeue_unfinished` sends again the runs the previous
process had not finished. `snapshot` writes a table's file from a Scan.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.engine.lifecycle import task_id
from chalicelib.engine.queue import WorkQueue
from chalicelib.models import Execution, Job
from chalicelib.schedules import compile_schedule
from chalicelib.store import RunStore, from_item

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 5.0
BATCH_WRITE_LIMIT = 25
UNFINISHED = ("pending", "running")


def state_file(folder: str | os.PathLike[str], table_name: str) -> Path:
    return Path(folder) / f"{table_name}.jsonl"


# JSON has no bytes: binary values are written as base64 text, as DynamoDB's exports do.
def _to_json(value: dict[str, Any]) -> dict[str, Any]:
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64encode(inner).decode()}
    if kind == "BS":
        return {"BS": [base64.b64encode(b).decode() for b in inner]}
    if kind == "M":
        return {"M": {k: _to_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_to_json(v) for v in inner]}
    return value


def _from_json(value: dict[str, Any]) -> dict[str, Any]:
    (kind, inner), *_ = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: _from_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_from_json(v) for v in inner]}
    return value


def encode_item(item: dict[str, Any]) -> str:
    return json.dumps({k: _to_json(v) for k, v in item.items()}, sort_keys=True)


def decode_item(line: str) -> dict[str, Any]:
    return {k: _from_json(v) for k, v in json.loads(line).items()}


def _scan(dynamodb: Any, table_name: str, **params: Any) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table_name, ConsistentRead=True, **params
    ):
        yield from page.get("Items", [])


def snapshot(dynamodb: Any, table_name: str, folder: str | os.PathLike[str]) -> int:
    """Write the whole table to its file; returns how many items were written.

    The items go to a temporary file in the same folder, which then replaces the old file in
    one rename: a snapshot cut short, by an error or by the process being killed, leaves the
    previous snapshot whole rather than half of a new one.
    """
    target = state_file(folder, table_name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for item in _scan(dynamodb, table_name):
                out.write(encode_item(item) + "\n")
                count += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return count


def restore(dynamodb: Any, table_name: str, folder: str | os.PathLike[str]) -> int:
    """Write the table back as its file and journals leave it (local.aws_process.Journal):
    the file's items, then each journal's lines in order, each an item's state after a write
    (null: deleted). Returns how many items the table then holds."""
    from local.aws_process import journal_files

    source = state_file(folder, table_name)
    journals = journal_files(source)
    if not source.exists() and not journals:
        return 0
    schema = dynamodb.describe_table(TableName=table_name)["Table"]["KeySchema"]
    key_names = [k["AttributeName"] for k in schema]
    items: dict[str, dict[str, Any]] = {}
    if source.exists():
        with source.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    item = decode_item(line)
                    items[encode_item({k: item[k] for k in key_names})] = item
    for journal in journals:
        with journal.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    # A kill in the middle of the last line: its write was not answered.
                    log.warning("%s ends with a line cut short; it is left out", journal)
                    break
                key = encode_item({k: _from_json(v) for k, v in entry["key"].items()})
                if entry["item"] is None:
                    items.pop(key, None)
                else:
                    items[key] = {k: _from_json(v) for k, v in entry["item"].items()}
    restored = list(items.values())
    for start in range(0, len(restored), BATCH_WRITE_LIMIT):
        batch = restored[start : start + BATCH_WRITE_LIMIT]
        _write_batch(dynamodb, table_name, [{"PutRequest": {"Item": i}} for i in batch])
    return len(restored)


def _write_batch(dynamodb: Any, table_name: str, requests: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table_name: requests}
    pause = 0.05
    while pending:
        out = dynamodb.batch_write_item(RequestItems=pending)
        pending = out.get("UnprocessedItems") or {}
        if pending:
            # Unprocessed items mean the table is throttling: back off before asking again.
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


# A scheduled run sent before a restart, with no record yet, is sent again if it is this
# recent (the worker records it missed if it is past its job's grace by then).
REPLAY_SECONDS = 600


def requeue_unfinished(dynamodb: Any, sqs: Any, table_name: str, queue_url: str) -> int:
    """Send again the message of every run the previous process had not finished; how many.

    The previous process's queue went with it. Without this, a restored pending or running
    attempt would never start again, and a scheduled run that was sent but not yet started
    (its message was its only record: engine.lifecycle) would be lost: those are the
    occurrences just before each active job's `next_run_at` that have no record. The messages
    go through the engine's own WorkQueue, delayed the same way until their time.
    """
    now = datetime.now(UTC)
    unfinished = [
        Execution.model_validate(from_item(raw))
        for raw in _scan(
            dynamodb,
            table_name,
            FilterExpression="begins_with(sk, :run) AND #status IN (:pending, :running)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":run": {"S": "RUN#"},
                ":pending": {"S": UNFINISHED[0]},
                ":running": {"S": UNFINISHED[1]},
            },
        )
    ]
    unfinished += _scheduled_in_flight(dynamodb, table_name, now)
    if unfinished:
        WorkQueue(sqs, queue_url).send(unfinished, now)
    return len(unfinished)


def _scheduled_in_flight(dynamodb: Any, table_name: str, now: datetime) -> list[Execution]:
    runs = RunStore(dynamodb, table_name)
    found: list[Execution] = []
    for raw in _scan(
        dynamodb,
        table_name,
        FilterExpression="sk = :job AND is_active = :true AND attribute_exists(next_run_at)",
        ExpressionAttributeValues={":job": {"S": "JOB"}, ":true": {"BOOL": True}},
    ):
        job = Job.model_validate(from_item(raw))
        if job.next_run_at is None or job.deleted_at is not None:
            continue
        since = max(job.created_at, now - timedelta(seconds=REPLAY_SECONDS))
        schedule = compile_schedule(job, anchor=job.created_at)
        recorded = {r.scheduled_for for r in runs.between(job.id, since, job.next_run_at)}
        t = schedule.next_after(since)
        while t is not None and t < job.next_run_at and len(found) < 10_000:
            if t not in recorded:
                found.append(
                    Execution(
                        id=f"{job.id}-replay",
                        job_id=job.id,
                        status="pending",
                        trigger="scheduled",
                        scheduled_for=t,
                        task_id=task_id(job.id, t),
                        task_name=job.task_name,
                        created_at=now,
                    )
                )
            t = schedule.next_after(t)
    return found
