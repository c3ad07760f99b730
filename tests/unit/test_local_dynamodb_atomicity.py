"""The embedded AWS keeps DynamoDB's atomicity when requests come at once.

moto applies a request in steps (read the item, test the condition, write it; for a
transaction, copy the table, apply, and on failure put the copy back) and, unlocked, let
another request run between them. These tests race real requests against a real EmbeddedAws
child, as the API and the engine do under `make run`.

The requests are plain HTTP, not boto3: boto3 spends longer per request in this process than
moto does in its own, so its requests reach moto spaced out and seldom overlap there, and
a race it loses shows up in one run out of several rather than in every run.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.aws_process import EmbeddedAws

THREADS = 50
# What botocore sends, less the signature, which moto does not check.
HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20250101/us-east-1/dynamodb/"
    "aws4_request, SignedHeaders=host, Signature=0",
}


class DynamoDB:
    """DynamoDB's JSON API on one keep-alive connection: call() answers "ok" or the error."""

    def __init__(self, endpoint: str) -> None:
        host, port = endpoint.removeprefix("http://").split(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def call(self, operation: str, **params: Any) -> tuple[str, dict[str, Any]]:
        headers = {**HEADERS, "X-Amz-Target": f"DynamoDB_20120810.{operation}"}
        self._conn.request("POST", "/", body=json.dumps(params), headers=headers)
        response = self._conn.getresponse()
        body = json.loads(response.read() or b"{}")
        if response.status == 200:
            return "ok", body
        # A 500 from moto tripping over another request has no __type: it shows as such.
        return str(body.get("__type", response.status)).rsplit("#", 1)[-1], body

    def close(self) -> None:
        self._conn.close()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    aws = EmbeddedAws().start()
    try:
        yield aws.endpoint
    finally:
        aws.stop()


@pytest.fixture
def db(endpoint: str) -> Iterator[DynamoDB]:
    client = DynamoDB(endpoint)
    yield client
    client.close()


@pytest.fixture
def table(db: DynamoDB) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    outcome, _ = db.call(
        "CreateTable",
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert outcome == "ok"
    return name


def race(endpoint: str, work: Callable[[DynamoDB, int, Callable[[], None]], Any]) -> list[Any]:
    """work(db, i, together) on THREADS threads, each with its own connection; what each
    returned. together() returns once every thread has called it: a race's starting line."""
    line = threading.Barrier(THREADS)

    def run(i: int) -> Any:
        db = DynamoDB(endpoint)
        try:
            return work(db, i, line.wait)
        finally:
            db.close()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


def keys(db: DynamoDB, table: str) -> set[str]:
    found: set[str] = set()
    params: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        outcome, page = db.call("Scan", **params)
        assert outcome == "ok", page
        found |= {item["pk"]["S"] for item in page["Items"]}
        if "LastEvaluatedKey" not in page:
            return found
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_fifty_threads_racing_one_conditional_put_have_one_winner(endpoint, table):
    # A hundred attributes, as a wide record has: moto reads the item, then builds the new one
    # from them before it writes, and the longer that takes, the likelier an unlocked race.
    # Five keys, one race each.
    fields = {f"a{i}": {"M": {"s": {"S": "x" * 10}, "n": {"N": str(i)}}} for i in range(100)}

    def put(db: DynamoDB, i: int, together: Callable[[], None]) -> list[str]:
        outcomes = []
        for key in range(5):
            together()
            outcome, _ = db.call(
                "PutItem",
                TableName=table,
                Item={"pk": {"S": f"key-{key}"}, "winner": {"N": str(i)}, **fields},
                ConditionExpression="attribute_not_exists(pk)",
            )
            outcomes.append(outcome)
        return outcomes

    per_thread = race(endpoint, put)
    for key in range(5):
        outcomes = [thread[key] for thread in per_thread]
        assert outcomes.count("ok") == 1, f"key-{key}"
        assert outcomes.count("ConditionalCheckFailedException") == THREADS - 1, f"key-{key}"


def test_fifty_threads_adding_one_twenty_times_each_lose_no_increment(endpoint, db, table):
    # The threads meet before each of their twenty ADDs, on a counter of that round that does
    # not exist yet: moto creates the item when an ADD finds none, and two ADDs that both
    # found none wrote one item over the other, with its increment. Each ADD goes on a new
    # connection, so moto starts a thread for each: the ADDs reach it together, not in the
    # order in which this process got round to sending them.
    def add(_: DynamoDB, i: int, together: Callable[[], None]) -> None:
        for n in range(20):
            db = DynamoDB(endpoint)
            together()
            outcome, body = db.call(
                "UpdateItem",
                TableName=table,
                Key={"pk": {"S": f"counter-{n}"}},
                UpdateExpression="ADD n :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            db.close()
            assert outcome == "ok", body

    race(endpoint, add)
    counts = []
    for n in range(20):
        _, out = db.call(
            "GetItem", TableName=table, Key={"pk": {"S": f"counter-{n}"}}, ConsistentRead=True
        )
        counts.append(int(out["Item"]["n"]["N"]))
    assert counts == [THREADS] * 20
    assert sum(counts) == 1000


def test_failed_transactions_racing_plain_writes_lose_none_of_them(endpoint, db, table):
    # Half the threads write plain items; the other half run transactions, every other one of
    # which fails its condition on this item. moto put back the copy of the table it took
    # before a transaction that failed, wiping every plain write made meanwhile.
    assert db.call("PutItem", TableName=table, Item={"pk": {"S": "taken"}})[0] == "ok"
    rounds = 20

    def work(db: DynamoDB, i: int, together: Callable[[], None]) -> list[str]:
        together()
        outcomes = []
        for r in range(rounds):
            if i % 2:
                outcome, _ = db.call(
                    "PutItem", TableName=table, Item={"pk": {"S": f"plain-{i}-{r}"}}
                )
                outcomes.append(outcome)
                continue
            fails = r % 2 == 0
            put = {
                "TableName": table,
                "Item": {"pk": {"S": "taken" if fails else f"tx-{i}-{r}"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
            count = {
                "TableName": table,
                "Key": {"pk": {"S": "tx-counter"}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
            outcome, _ = db.call(
                "TransactWriteItems", TransactItems=[{"Put": put}, {"Update": count}]
            )
            outcomes.append(outcome)
        return outcomes

    outcomes = [o for per_thread in race(endpoint, work) for o in per_thread]
    plain_writers = THREADS // 2
    committed = cancelled = (THREADS - plain_writers) * rounds // 2
    # Every request got DynamoDB's answer: none was a 500 from moto tripping over another.
    assert outcomes.count("TransactionCanceledException") == cancelled
    assert outcomes.count("ok") == plain_writers * rounds + committed
    found = keys(db, table)
    plain = {f"plain-{i}-{r}" for i in range(1, THREADS, 2) for r in range(rounds)}
    assert plain - found == set()
    transacted = {f"tx-{i}-{r}" for i in range(0, THREADS, 2) for r in range(1, rounds, 2)}
    assert transacted - found == set()
    _, out = db.call(
        "GetItem", TableName=table, Key={"pk": {"S": "tx-counter"}}, ConsistentRead=True
    )
    assert out["Item"]["n"] == {"N": str(committed)}
