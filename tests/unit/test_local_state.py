"""`make run`'s local machinery: state kept across restarts, and the engine's triggers."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.engine.queue import message_for
from chalicelib.models import Execution
from chalicelib.store import Store
from local import state
from local.engine import SqsPoller, TickLoop, next_boundary
from local.resources import ensure_table

TABLE = "nexus-state-test"
REGION = "us-east-1"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name=REGION)
        ensure_table(db, TABLE, stream=False)
        yield db


@pytest.fixture
def sqs() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def fresh_table() -> Any:
    db = boto3.client("dynamodb", region_name=REGION)
    ensure_table(db, TABLE, stream=False)
    return db


def all_items(db: Any) -> list[dict[str, Any]]:
    items = [i for p in db.get_paginator("scan").paginate(TableName=TABLE) for i in p["Items"]]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def put_varied_items(db: Any, count: int) -> None:
    for n in range(count):
        db.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": f"JOB#{n}"},
                "sk": {"S": "JOB"},
                "n": {"N": str(n)},
                "price": {"N": "12.50"},
                "flag": {"BOOL": n % 2 == 0},
                "nothing": {"NULL": True},
                "tags": {"SS": ["a", "b"]},
                "nums": {"NS": ["1", "2.5"]},
                "blob": {"B": bytes([n % 256, 0, 255])},
                "blobs": {"BS": [b"\x00", b"\x01\x02"]},
                "doc": {"M": {"list": {"L": [{"S": "x"}, {"N": "3"}, {"B": b"\xff"}]}}},
                "text": {"S": "é ✓ \n quoted \"'"},
            },
        )


RUN_AT = datetime(2025, 11, 26, 6, 0, 0, 123456, tzinfo=UTC)


def execution(
    job_id: int, status: str, attempt: int = 1, scheduled_for: datetime = RUN_AT
) -> Execution:
    return Execution(
        id=f"exec-{job_id}-{attempt}",
        job_id=job_id,
        status=status,  # type: ignore[arg-type]
        trigger="scheduled",
        scheduled_for=scheduled_for,
        attempt=attempt,
        task_id=f"task-{job_id}-{attempt}",
        task_name="tasks.report",
        created_at=RUN_AT,
    )


def queue(sqs: Any, name: str = "work") -> str:
    url: str = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    return url


def messages_left(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# -- snapshot and restore ----------------------------------------------------------------


def test_a_snapshot_restored_into_a_fresh_table_reproduces_every_item_exactly(tmp_path: Path):
    with mock_aws():
        db = fresh_table()
        put_varied_items(db, 60)  # more than one batch_write_item of 25
        before = all_items(db)
        assert state.snapshot(db, TABLE, tmp_path) == 60

    with mock_aws():
        db = fresh_table()
        assert all_items(db) == []
        assert state.restore(db, TABLE, tmp_path) == 60
        assert all_items(db) == before


def test_restoring_without_a_snapshot_restores_nothing(dynamodb: Any, tmp_path: Path):
    assert state.restore(dynamodb, TABLE, tmp_path / "never-written") == 0
    assert all_items(dynamodb) == []


def test_the_snapshot_is_one_item_a_line_in_dynamodb_json(dynamodb: Any, tmp_path: Path):
    dynamodb.put_item(
        TableName=TABLE, Item={"pk": {"S": "META"}, "sk": {"S": "SEQ#JOB"}, "seq": {"N": "7"}}
    )
    state.snapshot(dynamodb, TABLE, tmp_path)
    lines = (tmp_path / f"{TABLE}.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"pk": {"S": "META"}, "seq": {"N": "7"}, "sk": {"S": "SEQ#JOB"}}
    ]


def test_an_interrupted_snapshot_leaves_the_previous_one_whole_and_no_temp_file(
    dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    put_varied_items(dynamodb, 3)
    state.snapshot(dynamodb, TABLE, tmp_path)
    target = tmp_path / f"{TABLE}.jsonl"
    previous = target.read_bytes()
    put_varied_items(dynamodb, 10)

    written = 0
    real_encode = state.encode_item

    def encode_then_fail(item: dict[str, Any]) -> str:
        nonlocal written
        written += 1
        if written == 5:
            raise KeyboardInterrupt  # as if Ctrl-C landed in the middle of the file
        return real_encode(item)

    monkeypatch.setattr(state, "encode_item", encode_then_fail)
    with pytest.raises(KeyboardInterrupt):
        state.snapshot(dynamodb, TABLE, tmp_path)

    assert target.read_bytes() == previous
    assert os.listdir(tmp_path) == [target.name]


def test_the_old_snapshot_stays_until_the_new_one_is_complete_and_renamed_over_it(
    dynamodb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    put_varied_items(dynamodb, 2)
    state.snapshot(dynamodb, TABLE, tmp_path)
    target = tmp_path / f"{TABLE}.jsonl"
    previous = target.read_text()
    put_varied_items(dynamodb, 5)
    seen: dict[str, str] = {}
    real_replace = os.replace

    def spy(src: str, dst: Any) -> None:
        seen["target"] = Path(dst).read_text()
        seen["temp"] = Path(src).read_text()
        seen["temp_folder"] = str(Path(src).parent)
        real_replace(src, dst)

    monkeypatch.setattr(state.os, "replace", spy)
    state.snapshot(dynamodb, TABLE, tmp_path)

    assert seen["target"] == previous
    assert len(seen["temp"].splitlines()) == 5
    assert seen["temp_folder"] == str(tmp_path)
    assert target.read_text() == seen["temp"]


# -- requeue after a restart -------------------------------------------------------------


def test_requeue_sends_one_message_per_pending_or_running_execution_and_none_for_the_rest():
    with mock_aws():
        db = fresh_table()
        sqs = boto3.client("sqs", region_name=REGION)
        url = queue(sqs)
        store = Store.over(db, TABLE)
        unfinished = [execution(1, "pending"), execution(2, "running", attempt=2)]
        for e in [*unfinished, execution(3, "completed"), execution(4, "failed")]:
            assert store.runs.start_new(e)
        # A job item has a status too; only executions are runs to send again.
        db.put_item(
            TableName=TABLE,
            Item={"pk": {"S": "JOB#5"}, "sk": {"S": "JOB"}, "status": {"S": "pending"}},
        )

        assert state.requeue_unfinished(db, sqs, TABLE, url) == 2

        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        bodies = sorted((json.loads(m["Body"]) for m in received), key=lambda b: b["job_id"])
        assert bodies == [message_for(e) for e in unfinished]
        assert bodies[1]["run_key"] == "RUN#2025-11-26T06:00:00.123456Z#002"


def test_a_requeued_run_that_is_not_due_yet_is_delayed_until_it_is():
    with mock_aws():
        db = fresh_table()
        sqs = boto3.client("sqs", region_name=REGION)
        url = queue(sqs)
        soon = datetime.now(UTC) + timedelta(minutes=5)
        Store.over(db, TABLE).runs.start_new(execution(1, "pending", scheduled_for=soon))

        assert state.requeue_unfinished(db, sqs, TABLE, url) == 1

        assert "Messages" not in sqs.receive_message(QueueUrl=url)
        delayed = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]["ApproximateNumberOfMessagesDelayed"]
        assert delayed == "1"


# -- the SQS event source ----------------------------------------------------------------


def test_a_batch_whose_handler_returns_is_deleted_and_arrives_shaped_like_lambdas(sqs: Any):
    url = queue(sqs)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for n in range(3):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"n": n}),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "run"}},
        )
    records: list[dict[str, Any]] = []
    contexts: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        records.extend(event["Records"])
        contexts.append(context)

    poller = SqsPoller(handler, url, sqs=sqs, concurrency=1, function_name="worker").start()
    try:
        assert wait_until(lambda: len(records) == 3, 5)
    finally:
        poller.stop()

    assert messages_left(sqs, url) == 0
    assert sorted(json.loads(r["body"])["n"] for r in records) == [0, 1, 2]
    record = records[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == arn
    assert record["awsRegion"] == REGION
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"messageId", "receiptHandle", "md5OfBody"} <= record.keys()
    assert record["messageAttributes"]["kind"]["stringValue"] == "run"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert contexts[0].function_name == "worker"
    assert contexts[0].aws_request_id
    assert 0 < contexts[0].get_remaining_time_in_millis() <= 300_000


def test_a_batch_whose_handler_raises_is_left_in_the_queue_and_comes_back(
    sqs: Any, caplog: pytest.LogCaptureFixture
):
    url = queue(sqs)
    sqs.send_message(QueueUrl=url, MessageBody="boom")
    receive_counts: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        receive_counts.extend(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"])
        raise RuntimeError("the task failed")

    poller = SqsPoller(handler, url, sqs=sqs, concurrency=1).start()
    try:
        # Back after the 1 s visibility timeout, received a second time.
        assert wait_until(lambda: len(receive_counts) >= 2, 5)
    finally:
        poller.stop()

    assert receive_counts[:2] == ["1", "2"]
    assert messages_left(sqs, url) == 1
    assert "the task failed" in caplog.text


def test_a_handler_that_deletes_what_it_finished_then_raises_gets_only_the_rest_back(sqs: Any):
    url = queue(sqs)
    for body in ("done", "left", "also left"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    bodies: list[str] = []
    first_call = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> None:
        bodies.extend(r["body"] for r in event["Records"])
        if not first_call.is_set():
            first_call.set()
            for record in event["Records"]:
                if record["body"] == "done":
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
            raise RuntimeError("partial batch")

    poller = SqsPoller(handler, url, sqs=sqs, concurrency=1).start()
    try:
        assert wait_until(lambda: len(bodies) >= 5, 5)
    finally:
        poller.stop()

    assert bodies.count("done") == 1
    assert bodies.count("left") == 2
    assert bodies.count("also left") == 2
    assert messages_left(sqs, url) == 0


# -- the tick ----------------------------------------------------------------------------


def test_ticks_fall_on_whole_multiples_of_the_period():
    assert next_boundary(125.3, 60) == 180
    assert next_boundary(180.0, 60) == 240
    assert next_boundary(9.99, 1) == 10


def test_the_tick_loop_calls_the_handler_at_start_and_every_period_even_after_a_failure():
    events: list[dict[str, Any]] = []
    contexts: list[Any] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        events.append(event)
        contexts.append(context)
        if len(events) == 1:
            raise RuntimeError("a failing tick must not end the loop")

    started = time.monotonic()
    loop = TickLoop(handler, period=1, region=REGION).start()
    try:
        assert wait_until(lambda: len(events) >= 1, 0.5)  # right at start
        assert wait_until(lambda: len(events) >= 2, 3.5 - (time.monotonic() - started))
    finally:
        loop.stop()

    event = events[1]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["detail"] == {}
    assert event["region"] == REGION
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/nexus-tick"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert len({e["id"] for e in events}) == len(events)
    assert contexts[0].function_name == "nexus-local-tick"


def test_the_tick_period_comes_from_nexus_tick_seconds(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NEXUS_TICK_SECONDS", "5")
    assert TickLoop(lambda event, context: None).period == 5
    monkeypatch.delenv("NEXUS_TICK_SECONDS")
    assert TickLoop(lambda event, context: None).period == 60
