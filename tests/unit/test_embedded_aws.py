"""What make run changes in moto's server changes its speed, memory and atomicity, not its
answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.sqs.models import Message, SQSBackend, sqs_backends

from local.aws_process import cache_backend_names, cheap_retention_check, one_clock_read_per_scan
from tests.tables import create_pk_sk_table


@pytest.fixture
def patched(monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """moto's retention check, and ours; moto's is put back after the test."""
    original = SQSBackend.is_message_valid_based_on_retention_period
    monkeypatch.setattr(SQSBackend, "is_message_valid_based_on_retention_period", original)
    cheap_retention_check()
    return original, SQSBackend.is_message_valid_based_on_retention_period


def message(sent_seconds_ago: float) -> Message:
    m = Message("id", "body")
    m.sent_timestamp = int((time.time() - sent_seconds_ago) * 1000)  # type: ignore[assignment]
    return m


@pytest.mark.parametrize("sent_seconds_ago", [0, 59, 61, 3600, 4 * 86400])
def test_the_cheaper_retention_check_agrees_with_motos(patched, sent_seconds_ago):
    original, cheap = patched
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})
        backend = sqs_backends["123456789012"]["us-east-1"]
        m = message(sent_seconds_ago)
        assert cheap(backend, "q", m) == original(backend, "q", m)  # type: ignore[operator]
        assert cheap(backend, "q", m) == (sent_seconds_ago < 60)  # type: ignore[operator]


def test_the_backend_names_are_listed_once_and_stay_the_same(monkeypatch):
    from moto import backends

    monkeypatch.setattr(backends, "list_of_moto_modules", backends.list_of_moto_modules)
    before = list(backends.list_of_moto_modules())
    cache_backend_names()
    assert list(backends.list_of_moto_modules()) == before
    assert "sqs" in before and "dynamodb" in before


def test_the_visible_messages_are_the_same_with_one_clock_read_per_scan(monkeypatch):
    from moto.sqs.models import Queue

    monkeypatch.setattr(Queue, "messages", Queue.messages)  # put moto's back afterwards
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        for delay in (0, 0, 0, 30, 60):
            sqs.send_message(QueueUrl=url, MessageBody=f"delay {delay}", DelaySeconds=delay)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)  # one in flight
        queue = sqs_backends["123456789012"]["us-east-1"].queues["q"]
        before = [m.id for m in queue.messages]
        one_clock_read_per_scan()
        after = [m.id for m in queue.messages]
    assert len(before) == 2  # three sent without delay, one of them in flight
    assert after == before


def test_a_moto_without_the_dynamodb_hook_stops_the_embedded_aws_from_starting(monkeypatch):
    from moto.dynamodb.responses import DynamoHandler

    from local.aws_process import serialise_dynamodb

    monkeypatch.delattr(DynamoHandler, "call_action")
    with pytest.raises(RuntimeError, match="call_action"):
        serialise_dynamodb()


def test_a_moto_routing_dynamodb_past_the_hook_stops_the_embedded_aws_from_starting(monkeypatch):
    from moto.dynamodb import urls
    from moto.sqs.responses import SQSResponse

    from local.aws_process import serialise_dynamodb

    monkeypatch.setattr(urls, "url_paths", {"{0}/": SQSResponse.dispatch})
    with pytest.raises(RuntimeError, match="routes DynamoDB"):
        serialise_dynamodb()


@pytest.fixture
def untracked_models() -> Iterator[None]:
    """forget_model_instances for the test; moto's own way back afterwards."""
    from moto.core.common_models import BaseModel

    from local.aws_process import forget_model_instances

    motos = BaseModel.__dict__["__new__"]
    forget_model_instances()
    yield
    BaseModel.__new__ = motos  # type: ignore[method-assign]


def test_moto_makes_its_models_as_before_but_keeps_none_of_them(untracked_models):
    from moto.dynamodb.models.dynamo_type import Item

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        (got,) = sqs.receive_message(QueueUrl=url)["Messages"]
        assert got["Body"] == "hello"
        sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        db.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
        assert db.scan(TableName="t")["Items"] == [{"pk": {"S": "a"}, "v": {"N": "1"}}]
        assert Message.instances_tracked == []  # type: ignore[attr-defined]
        assert Item.instances_tracked == []  # type: ignore[attr-defined]


def test_the_deleted_receipt_handles_kept_are_the_latest_ones():
    from local.aws_process import RecentHandles

    handles = RecentHandles(limit=3)
    handles.update(["a", None])
    handles.update(["b", None])
    handles.update(["c"])
    assert len(handles) == 3 and "a" not in handles
    assert all(h in handles for h in ("b", "c", None))


def test_a_message_deleted_twice_is_deleted_twice_without_error(monkeypatch):
    from moto.sqs.models import Queue

    from local.aws_process import RecentHandles, forget_old_receipt_handles

    monkeypatch.setattr(Queue, "__init__", Queue.__init__)  # moto's back afterwards
    forget_old_receipt_handles()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        (got,) = sqs.receive_message(QueueUrl=url)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])
        sqs.delete_message(QueueUrl=url, ReceiptHandle=got["ReceiptHandle"])
        queue = sqs_backends["123456789012"]["us-east-1"].queues["q"]
        assert isinstance(queue.deleted_messages, RecentHandles)
        assert got["ReceiptHandle"] in queue.deleted_messages


def test_reads_of_missing_keys_add_no_partition_and_a_partitions_last_delete_drops_it(
    monkeypatch,
):
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import Table

    from local.aws_process import drop_empty_partitions

    monkeypatch.setattr(Table, "get_item", Table.get_item)  # moto's back afterwards
    monkeypatch.setattr(Table, "delete_item", Table.delete_item)
    drop_empty_partitions()
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_pk_sk_table(db, "t")
        table = dynamodb_backends["123456789012"]["us-east-1"].tables["t"]
        key = {"pk": {"S": "p"}, "sk": {"S": "1"}}
        assert "Item" not in db.get_item(TableName="t", Key=key)
        assert dict(table.items) == {}
        db.put_item(TableName="t", Item=key)
        db.put_item(TableName="t", Item={**key, "sk": {"S": "2"}})
        assert db.get_item(TableName="t", Key=key)["Item"] == key
        db.delete_item(TableName="t", Key=key)
        assert len(table.items) == 1  # the partition still has an item
        db.delete_item(TableName="t", Key={**key, "sk": {"S": "2"}})
        assert dict(table.items) == {}
        query = db.query(
            TableName="t",
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "p"}},
        )
        assert query["Items"] == []
        with pytest.raises(ClientError, match="ValidationException"):
            db.get_item(TableName="t", Key={"pk": {"S": "p"}})


def test_the_change_stream_keeps_its_latest_records_and_forgets_used_iterators(monkeypatch):
    """The real-time feed reads the embedded table's stream ten times a second: moto kept
    every record and every iterator it handed out for ever."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend, dynamodbstreams_backends

    import local.aws_process as aws_process

    monkeypatch.setattr(StreamShard, "add", StreamShard.add)
    monkeypatch.setattr(DynamoDBStreamsBackend, "get_records", DynamoDBStreamsBackend.get_records)
    monkeypatch.setattr(aws_process, "STREAM_RECORDS_KEPT", 100)
    aws_process.bounded_streams()
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        table = dynamodb_backends["123456789012"]["us-east-1"].tables["t"]
        streams = dynamodbstreams_backends["123456789012"]["us-east-1"]
        arn = table.describe(base_key="Table")["Table"]["LatestStreamArn"]
        first = streams.get_shard_iterator(arn, table.stream_shard.id, "TRIM_HORIZON")
        for i in range(300):
            db.put_item(TableName="t", Item={"pk": {"S": f"item-{i}"}})
        assert len(table.stream_shard.items) < 110  # the latest, in chunks of a tenth
        out = streams.get_records(first.arn, 1000)
        pks = [r["dynamodb"]["Keys"]["pk"]["S"] for r in out["Records"]]
        # An iterator behind the oldest record kept reads from the oldest kept, in order,
        # to the latest write, with no gap.
        assert pks == [f"item-{i}" for i in range(300 - len(pks), 300)]
        seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in out["Records"]]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert first.arn not in streams.shard_iterators
        assert out["NextShardIterator"] in streams.shard_iterators
        db.put_item(TableName="t", Item={"pk": {"S": "after"}})
        more = streams.get_records(out["NextShardIterator"], 1000)["Records"]
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in more] == ["after"]


QUERIES: dict[str, dict[str, Any]] = {
    "a partition": {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p1"}},
    },
    "a range, newest first, a page": {
        "KeyConditionExpression": "pk = :p AND sk BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":p": {"S": "p2"}, ":a": {"S": "s03"}, ":b": {"S": "s07"}},
        "ScanIndexForward": False,
        "Limit": 2,
    },
    "a prefix, filtered, consistent": {
        "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
        "FilterExpression": "n > :n",
        "ExpressionAttributeValues": {":p": {"S": "p1"}, ":s": {"S": "s0"}, ":n": {"N": "3"}},
        "ConsistentRead": True,
    },
    "after a start key": {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "p2"}},
        "ExclusiveStartKey": {"pk": {"S": "p2"}, "sk": {"S": "s04"}},
    },
    "an empty partition": {
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": "none"}},
    },
    "an index": {
        "IndexName": "by_n",
        "KeyConditionExpression": "g = :g",
        "ExpressionAttributeValues": {":g": {"S": "even"}},
    },
}


def query_answers() -> dict[str, Any]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_n",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for p in ("p1", "p2", "p3"):
            for i in range(10):
                item = {"pk": {"S": p}, "sk": {"S": f"s{i:02d}"}, "n": {"N": str(i)}}
                item["g"] = {"S": "even" if i % 2 == 0 else "odd"}
                db.put_item(TableName="t", Item=item)
        return {name: db.query(TableName="t", **q) for name, q in QUERIES.items()}


def test_a_query_that_reads_its_partition_answers_as_motos_own_walk_of_the_table(monkeypatch):
    from moto.dynamodb.models.table import Table

    from local.aws_process import query_reads_its_partition

    monkeypatch.setattr(Table, "query", Table.query)
    walks = []
    walk = Table.all_items
    monkeypatch.setattr(Table, "all_items", lambda self: walks.append(1) or walk(self))
    motos = query_answers()
    walked_before = len(walks)
    query_reads_its_partition()
    ours = query_answers()
    # Only the index query walks the table now (and the puts, as before).
    assert len(walks) - walked_before < walked_before - 4
    for name in QUERIES:
        for answer in (motos[name], ours[name]):
            answer.pop("ResponseMetadata")
        assert ours[name] == motos[name], name
    assert [i["sk"]["S"] for i in ours["a range, newest first, a page"]["Items"]] == ["s07", "s06"]
