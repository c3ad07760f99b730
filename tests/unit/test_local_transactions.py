"""The embedded AWS's transactions undo their own items, not a copy of the whole table, and
answer exactly as moto's do."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb import models
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

from local.aws_process import transactions_copy_only_their_items
from tests.tables import create_pk_sk_table

TABLE = "t"


@pytest.fixture
def restore_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put moto's own transactions back after the test."""
    monkeypatch.setattr(models, "copy", models.copy)
    monkeypatch.setattr(
        DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items
    )


def key(pk: str, sk: str = "A") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def put(pk: str, condition: str | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": TABLE, "Item": {**key(pk), **extra}}
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def add(pk: str, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": TABLE,
        "Key": key(pk),
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if condition:
        op["ConditionExpression"] = condition
    return {"Update": op}


def delete(pk: str, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"TableName": TABLE, "Key": key(pk)}
    if condition:
        op["ConditionExpression"] = condition
    return {"Delete": op}


def check(pk: str, condition: str) -> dict[str, Any]:
    return {
        "ConditionCheck": {"TableName": TABLE, "Key": key(pk), "ConditionExpression": condition}
    }


EXISTS, MISSING = "attribute_exists(pk)", "attribute_not_exists(pk)"

TRANSACTIONS = {
    "all succeed": [put("new", MISSING), add("counter"), delete("old"), check("kept", EXISTS)],
    "the second fails": [put("new", MISSING), add("counter", MISSING), delete("old")],
    "the first fails, moto applies the rest": [delete("kept", MISSING), add("counter"), put("new")],
    "the last fails": [add("counter"), add("fresh"), put("new"), check("nothing", EXISTS)],
    "an update that creates, then a failure": [add("fresh"), put("old", MISSING)],
    "one item twice": [add("counter"), put("counter", v={"S": "twice"})],
    "a missing table": [add("counter"), {"Put": {"TableName": "nope", "Item": key("x")}}],
    "a put without its sort key": [
        add("counter"),
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "x"}}}},
    ],
}


def new_table(stream: bool = False) -> Any:
    """A client on moto (inside mock_aws) and TABLE created on it, with a change stream if
    `stream`."""
    db = boto3.client("dynamodb", region_name="us-east-1")
    create_pk_sk_table(db, TABLE, stream=stream)
    return db


def run(transaction: list[dict[str, Any]], stream: bool = False) -> tuple[Any, ...]:
    """A fresh table, the transaction on it: its answer, and the table afterwards (and, with
    a change stream, the changes it recorded for the transaction)."""
    with mock_aws():
        db = new_table(stream)
        for pk in ("old", "kept", "counter"):
            db.put_item(TableName=TABLE, Item={**key(pk), "n": {"N": "5"}, "m": {"L": [{"S": pk}]}})
        before = stream_records(db) if stream else []
        try:
            db.transact_write_items(TransactItems=transaction)
            answer: Any = "ok"
        except ClientError as exc:
            answer = (exc.response["Error"], exc.response.get("CancellationReasons"))
        items = db.scan(TableName=TABLE, ConsistentRead=True)["Items"]
        table = sorted(items, key=lambda i: i["pk"]["S"])
        if not stream:
            return answer, table
        return answer, table, stream_records(db)[len(before) :]


def stream_records(db: Any) -> list[tuple[str, Any, Any, Any]]:
    """Every change the table's stream holds: (kind, keys, old image, new image). Read from
    moto's model: its in-process mock does not route DynamoDB Streams (its server does)."""
    shard = dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE].stream_shard
    return [
        (
            r.record["eventName"],
            r.record["dynamodb"]["Keys"],
            r.record["dynamodb"].get("OldImage"),
            r.record["dynamodb"].get("NewImage"),
        )
        for r in shard.items
    ]


@pytest.mark.parametrize("name", TRANSACTIONS)
def test_a_transaction_answers_and_leaves_the_table_as_motos_own_does(restore_moto, name):
    transaction = TRANSACTIONS[name]
    motos = run(transaction)
    transactions_copy_only_their_items()
    assert run(transaction) == motos


@pytest.mark.parametrize("name", TRANSACTIONS)
def test_a_transaction_leaves_the_change_stream_as_motos_own_does(restore_moto, name):
    """The real-time events come from the stream: a cancelled transaction must leave no change
    there, and a committed one each of its changes, as moto's own (and DynamoDB) do."""
    transaction = TRANSACTIONS[name]
    motos = run(transaction, stream=True)
    transactions_copy_only_their_items()
    ours = run(transaction, stream=True)
    assert ours == motos
    if ours[0] != "ok":
        assert ours[2] == []  # cancelled: no change recorded
    else:
        assert ours[2]


def test_a_failed_transaction_puts_back_its_own_items_and_leaves_the_table_in_place(
    restore_moto,
):
    transactions_copy_only_their_items()
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for i in range(100):
            db.put_item(TableName=TABLE, Item={"pk": {"S": f"item-{i}"}})
        backend = dynamodb_backends["123456789012"]["us-east-1"]
        table = backend.tables[TABLE]
        objects = {k: id(v) for k, v in table.items.items()}
        with pytest.raises(ClientError, match="TransactionCanceled"):
            db.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "item-1"}, "v": {"N": "1"}}}},
                    {
                        "Put": {
                            "TableName": TABLE,
                            "Item": {"pk": {"S": "item-2"}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        # The same table, the same objects for the items it did not name: a write made
        # meanwhile to any of them could not have been undone by the transaction's failure.
        named = {"item-1", "item-2"}
        assert backend.tables[TABLE] is table
        assert {k: id(v) for k, v in table.items.items() if k.value not in named} == {
            k: v for k, v in objects.items() if k.value not in named
        }
        for pk in sorted(named):
            got = db.get_item(TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True)
            assert got["Item"] == {"pk": {"S": pk}}


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto with DynamoDB's client tokens (undone after the test), and a table to write."""
    from moto.dynamodb.responses import DynamoHandler

    from local.aws_process import transaction_tokens

    monkeypatch.setattr(
        DynamoHandler, "transact_write_items", DynamoHandler.__dict__["transact_write_items"]
    )
    transaction_tokens()
    with mock_aws():
        yield new_table()


def test_a_transaction_made_again_with_its_client_token_writes_nothing_more(tokens):
    for _ in range(3):
        tokens.transact_write_items(TransactItems=[add("counter")], ClientRequestToken="batch-1")
    tokens.transact_write_items(TransactItems=[add("counter")], ClientRequestToken="batch-2")
    tokens.transact_write_items(TransactItems=[add("counter")])  # no token: always written
    item = tokens.get_item(TableName=TABLE, Key=key("counter"))["Item"]
    assert item["n"] == {"N": "3"}


def test_other_items_under_a_used_client_token_are_refused_and_write_nothing(tokens):
    tokens.transact_write_items(TransactItems=[add("counter")], ClientRequestToken="batch-1")
    with pytest.raises(ClientError) as refused:
        tokens.transact_write_items(
            TransactItems=[add("counter"), add("other")], ClientRequestToken="batch-1"
        )
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert tokens.get_item(TableName=TABLE, Key=key("counter"))["Item"]["n"] == {"N": "1"}
    assert "Item" not in tokens.get_item(TableName=TABLE, Key=key("other"))
