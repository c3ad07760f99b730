"""The fault injector fails, cuts short or kills boto3 calls on moto exactly where it is told,
and what the calling code sees is what botocore gives it for the real thing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from moto import mock_aws

from tests.faults import Crash, FaultInjector, Fired

TABLE = "faults"


@pytest.fixture
def db() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 5, "mode": "standard"}),
        )
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def sqs(db: Any) -> Any:
    return boto3.client("sqs", region_name="us-east-1")  # in db's mock_aws


def put(db: Any, key: str) -> None:
    db.put_item(TableName=TABLE, Item={"pk": {"S": key}})


def put_request(key: str) -> dict[str, Any]:
    return {"PutRequest": {"Item": {"pk": {"S": key}}}}


def keys(db: Any) -> set[str]:
    return {item["pk"]["S"] for item in db.scan(TableName=TABLE)["Items"]}


def test_it_counts_every_call_of_every_attached_client_as_service_and_operation(db, sqs):
    faults = FaultInjector().attach(db, sqs)
    put(db, "a")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    db.get_item(TableName=TABLE, Key={"pk": {"S": "a"}})
    assert faults.calls == [
        "dynamodb.PutItem",
        "sqs.CreateQueue",
        "sqs.SendMessage",
        "dynamodb.GetItem",
    ]
    assert faults.count == 4
    assert faults.fired == []


def test_a_crash_at_the_third_call_leaves_the_first_two_applied_and_the_third_not(db):
    faults = FaultInjector().inject(3, "crash").attach(db)
    put(db, "a")
    put(db, "b")
    with pytest.raises(Crash):
        put(db, "c")
    faults.detach()
    assert keys(db) == {"a", "b"}
    assert faults.fired == [Fired(3, "dynamodb.PutItem", "crash")]


def test_a_crash_is_no_exception_so_an_except_exception_handler_cannot_swallow_it(db):
    FaultInjector().inject(1, "crash").attach(db)

    def careful() -> str:
        try:
            put(db, "a")
        except Exception:
            return "swallowed"
        return "done"

    with pytest.raises(Crash):
        careful()


def test_a_crash_after_the_call_leaves_its_write_applied(db):
    faults = FaultInjector().inject(3, "crash_after").attach(db)
    put(db, "a")
    put(db, "b")
    with pytest.raises(Crash):
        put(db, "c")
    faults.detach()
    assert keys(db) == {"a", "b", "c"}


def test_a_fault_for_one_operation_counts_only_that_operations_calls(db):
    faults = FaultInjector().inject(2, "crash", op="PutItem").attach(db)
    put(db, "a")
    db.get_item(TableName=TABLE, Key={"pk": {"S": "a"}})  # call 2, but not a PutItem
    with pytest.raises(Crash):
        put(db, "b")
    assert faults.fired == [Fired(3, "dynamodb.PutItem", "crash")]


@pytest.mark.parametrize(
    ("code", "modelled", "status"),
    [
        ("ProvisionedThroughputExceededException", True, 400),
        ("RequestLimitExceeded", True, 400),
        ("InternalServerError", True, 500),
        ("ThrottlingException", False, 400),
    ],
)
def test_an_injected_error_is_what_botocore_raises_for_that_code_and_writes_nothing(
    db, code, modelled, status
):
    FaultInjector().inject(1, "error", code=code).attach(db)
    with pytest.raises(ClientError) as caught:
        put(db, "a")
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    if modelled:
        assert type(caught.value) is getattr(db.exceptions, code)
    assert keys(db) == set()


def test_an_injected_throttle_reaches_the_caller_once_as_after_botocore_gave_up_retrying(db):
    faults = FaultInjector().inject(1, "error", code="ThrottlingException").attach(db)
    with pytest.raises(ClientError) as caught:
        put(db, "a")
    assert faults.calls == ["dynamodb.PutItem"]  # botocore did not retry it
    metadata = caught.value.response["ResponseMetadata"]
    assert metadata["MaxAttemptsReached"] is True
    assert metadata["RetryAttempts"] == 5  # max_attempts=5 retries, on 6 attempts
    assert "reached max retries: 5" in str(caught.value)


def test_an_injected_transaction_conflict_is_a_canceled_transaction_with_its_reasons(db):
    FaultInjector().inject(1, "error", code="TransactionCanceledException").attach(db)
    with pytest.raises(db.exceptions.TransactionCanceledException) as caught:
        db.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "a"}}}},
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "b"}}}},
            ]
        )
    reasons = caught.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["TransactionConflict", "None"]
    assert keys(db) == set()


def test_injected_cancellation_reasons_are_the_ones_given(db):
    FaultInjector().inject(
        1, "error", code="TransactionCanceledException", reasons=["None", "ConditionalCheckFailed"]
    ).attach(db)
    with pytest.raises(db.exceptions.TransactionCanceledException) as caught:
        db.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": {"pk": {"S": "a"}}}}]
        )
    reasons = caught.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]


def test_a_timeout_raises_read_timeout_without_making_the_call(db):
    FaultInjector().inject(1, "timeout").attach(db)
    with pytest.raises(ReadTimeoutError):
        put(db, "a")
    assert keys(db) == set()


def test_a_timeout_after_the_call_raises_read_timeout_with_the_write_applied(db):
    FaultInjector().inject(1, "timeout_after").attach(db)
    with pytest.raises(ReadTimeoutError):
        put(db, "a")
    assert keys(db) == {"a"}


def test_a_partial_batch_write_writes_nothing_and_returns_every_request_unprocessed(db):
    FaultInjector().inject(1, "partial", op="BatchWriteItem").attach(db)
    requests = [put_request(k) for k in "abc"]
    out = db.batch_write_item(RequestItems={TABLE: requests})
    assert out["UnprocessedItems"] == {TABLE: requests}
    assert keys(db) == set()


def test_a_partial_batch_write_that_keeps_some_writes_those_and_returns_the_rest(db):
    FaultInjector().inject(1, "partial", op="BatchWriteItem", keep=2).attach(db)
    out = db.batch_write_item(RequestItems={TABLE: [put_request(k) for k in "abc"]})
    assert out["UnprocessedItems"] == {TABLE: [put_request("c")]}
    assert keys(db) == {"a", "b"}


def test_a_partial_batch_get_returns_the_keys_it_kept_back_as_unprocessed(db):
    for k in "ab":
        put(db, k)
    FaultInjector().inject(1, "partial", op="dynamodb.BatchGetItem", keep=1).attach(db)
    wanted = [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]
    out = db.batch_get_item(RequestItems={TABLE: {"Keys": wanted, "ConsistentRead": True}})
    assert out["Responses"][TABLE] == [{"pk": {"S": "a"}}]
    assert out["UnprocessedKeys"] == {TABLE: {"Keys": [wanted[1]], "ConsistentRead": True}}


def test_a_partial_send_message_batch_fails_the_entries_it_kept_back_without_sending_them(sqs):
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    FaultInjector().inject(1, "partial", op="SendMessageBatch", keep=1).attach(sqs)
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    out = sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert [s["Id"] for s in out["Successful"]] == ["0"]
    assert [(f["Id"], f["SenderFault"], f["Code"]) for f in out["Failed"]] == [
        ("1", False, "InternalError"),
        ("2", False, "InternalError"),
    ]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in received] == ["m0"]


def test_several_faults_each_fire_at_their_own_call(db):
    faults = FaultInjector(
        [(2, "error", {"code": "InternalServerError"}), (4, "crash_after", {})]
    ).attach(db)
    put(db, "a")
    with pytest.raises(ClientError):
        put(db, "b")
    put(db, "c")
    with pytest.raises(Crash):
        put(db, "d")
    put(db, "e")
    assert keys(db) == {"a", "c", "d", "e"}
    assert [(f.call, f.kind) for f in faults.fired] == [(2, "error"), (4, "crash_after")]


def test_probability_mode_fails_calls_at_random_but_the_same_seed_fails_the_same_calls(db):
    def run(seed: int) -> list[int]:
        faults = FaultInjector().randomly(0.3, "error", code="ThrottlingException", seed=seed)
        faults.attach(db)
        for i in range(40):
            with contextlib.suppress(ClientError):
                put(db, str(i))
        faults.detach()
        return [f.call for f in faults.fired]

    first = run(seed=7)
    assert 0 < len(first) < 40
    assert run(seed=7) == first
    assert run(seed=8) != first


def test_detach_removes_the_hooks(db):
    faults = FaultInjector().inject(2, "crash").attach(db)
    put(db, "a")
    faults.detach()
    put(db, "b")
    assert faults.calls == ["dynamodb.PutItem"]
    assert keys(db) == {"a", "b"}


def test_used_as_a_context_manager_it_detaches_on_exit(db):
    with FaultInjector().inject(1, "crash").attach(db):
        pass
    put(db, "a")
    assert keys(db) == {"a"}


def test_a_partial_fault_must_name_a_batch_operation():
    with pytest.raises(ValueError, match="partial"):
        FaultInjector().inject(1, "partial", op="PutItem")
    with pytest.raises(ValueError, match="code"):
        FaultInjector().inject(1, "error")
