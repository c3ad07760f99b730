"""The embedded AWS's memory follows what it holds, not how many requests it has answered."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from local.aws_process import EmbeddedAws
from tests.tables import create_pk_sk_table

BODY = "x" * 1000
KEPT_ITEMS = 300


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


@pytest.fixture
def aws() -> Iterator[tuple[EmbeddedAws, Any, Any]]:
    embedded = EmbeddedAws().start()
    options: dict[str, Any] = {
        "endpoint_url": embedded.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
        "config": Config(retries={"total_max_attempts": 1}),
    }
    try:
        yield embedded, boto3.client("dynamodb", **options), boto3.client("sqs", **options)
    finally:
        embedded.stop()


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "ITEM"}}


def load(dynamodb: Any, sqs: Any, table: str, queue_url: str, rounds: int) -> None:
    """What make run's API, engine and snapshots ask of it, `rounds` times over: per round,
    10 messages sent, received and deleted; a transaction on a kept item; 5 items written
    and deleted; 5 reads of keys that do not exist; and every 10 rounds a Scan of the whole
    table, as a snapshot takes."""
    for n in range(rounds):
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": BODY} for i in range(10)],
        )
        received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)
        entries = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(received.get("Messages", []))
        ]
        if entries:
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": table,
                        "Key": key(f"kept-{n % KEPT_ITEMS}"),
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": table, "Item": {**key("last"), "n": {"N": str(n)}}}},
            ]
        )
        for _ in range(5):
            gone = key(f"gone-{uuid.uuid4()}")
            dynamodb.put_item(TableName=table, Item={**gone, "body": {"S": BODY}})
            dynamodb.delete_item(TableName=table, Key=gone)
            dynamodb.get_item(TableName=table, Key=key(f"never-{uuid.uuid4()}"))
        if n % 10 == 0:
            for _ in dynamodb.get_paginator("scan").paginate(TableName=table):
                pass


def test_a_few_thousand_requests_leave_the_embedded_aws_no_bigger(aws):
    embedded, dynamodb, sqs = aws
    table = "memory"
    create_pk_sk_table(dynamodb, table)
    queue_url = sqs.create_queue(QueueName="memory")["QueueUrl"]
    for i in range(KEPT_ITEMS):
        dynamodb.put_item(TableName=table, Item={**key(f"kept-{i}"), "body": {"S": BODY}})
    # A first pass grows the interpreter's pools and moto's caches to their working size.
    load(dynamodb, sqs, table, queue_url, 20)
    pid = embedded.pid
    before = rss_mb(pid)
    load(dynamodb, sqs, table, queue_url, 150)
    grown = rss_mb(pid) - before
    # 150 rounds: 1,500 messages, 150 transactions, 750 items written and deleted, 750 reads
    # of missing keys, 15 scans of the 300 kept items; 2,900 requests or so. moto kept every
    # message and item it ever made, a copy of each message it delivered, of each item a
    # scan read, and of the whole table for every transaction: measured, the child grew by
    # 162 MB under this load, and kept it. With those let go, it keeps the receipt handles
    # of the messages it deleted (1,500 here, at most 10,000 per queue, 2.3 MB at most) and
    # some allocator slack: measured, 1.6 MB.
    assert grown < 16, f"the embedded AWS grew by {grown:.1f} MB"
