"""The virtual SQS keeps SQS's delays, visibility timeouts, receive counts, redrive and
duplicates on a clock the test moves, and answers like the boto3 client; the fault injector
works on it as on a real client."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from moto import mock_aws

from tests.faults import Crash, FaultInjector
from tests.virtual_sqs import VirtualSqs


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sqs(clock: Clock) -> VirtualSqs:
    return VirtualSqs(clock)


@pytest.fixture
def url(sqs: VirtualSqs) -> str:
    return sqs.create_queue(QueueName="work")["QueueUrl"]  # type: ignore[no-any-return]


def receive(sqs: VirtualSqs, url: str, **params: Any) -> list[dict[str, Any]]:
    out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, **params)
    return out.get("Messages", [])  # type: ignore[no-any-return]


def count(message: dict[str, Any]) -> int:
    return int(message["Attributes"]["ApproximateReceiveCount"])


def test_a_sent_message_is_received_with_its_id_body_md5_and_receive_count(sqs, url):
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello")
    [message] = receive(sqs, url, MessageSystemAttributeNames=["All"])
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == "hello"
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"] == "5d41402abc4b2a76b9719d911017c592"
    assert count(message) == 1
    assert message["ReceiptHandle"]


def test_a_receive_returns_at_most_max_number_of_messages(sqs, url):
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(i))
    out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)
    assert [m["Body"] for m in out["Messages"]] == ["0", "1"]
    assert "Attributes" not in out["Messages"][0]  # none asked for
    assert [m["Body"] for m in receive(sqs, url)] == ["2"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)


def test_a_delayed_message_is_invisible_until_the_clock_passes_its_delay(sqs, url, clock):
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    clock.advance(59)
    assert receive(sqs, url) == []
    clock.advance(1)
    assert [m["Body"] for m in receive(sqs, url)] == ["later"]


def test_a_batch_delays_each_entry_by_its_own_delay_and_fails_delays_over_900_seconds(
    sqs, url, clock
):
    out = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "now", "MessageBody": "a"},
            {"Id": "soon", "MessageBody": "b", "DelaySeconds": 10},
            {"Id": "never", "MessageBody": "c", "DelaySeconds": 901},
        ],
    )
    assert [s["Id"] for s in out["Successful"]] == ["now", "soon"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in out["Failed"]] == [
        ("never", "InvalidParameterValue", True)
    ]
    assert sqs.visible(url) == ["a"]
    clock.advance(10)
    assert sqs.visible(url) == ["a", "b"]


def test_a_message_not_deleted_comes_back_after_its_visibility_timeout_with_receive_count_2(
    sqs, url, clock
):
    sqs.send_message(QueueUrl=url, MessageBody="m")
    [first] = receive(sqs, url, VisibilityTimeout=100, AttributeNames=["All"])
    clock.advance(99)
    assert receive(sqs, url) == []
    clock.advance(1)
    [again] = receive(sqs, url, MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert again["MessageId"] == first["MessageId"]
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    assert again["Attributes"] == {"ApproximateReceiveCount": "2"}


def test_the_visibility_timeout_is_the_queues_30_seconds_unless_the_queue_or_receive_says(
    sqs, url, clock
):
    slow = sqs.create_queue(QueueName="slow", Attributes={"VisibilityTimeout": "120"})["QueueUrl"]
    for queue in (url, slow):
        sqs.send_message(QueueUrl=queue, MessageBody=queue)
        receive(sqs, queue)
    clock.advance(30)
    assert sqs.visible(url) == [url]
    assert sqs.visible(slow) == []
    clock.advance(90)
    assert sqs.visible(slow) == [slow]


def test_after_max_receive_count_receives_the_message_lands_in_the_dead_letter_queue(sqs, clock):
    dlq = sqs.create_queue(QueueName="work-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    policy = {"deadLetterTargetArn": arn, "maxReceiveCount": "3"}
    url = sqs.create_queue(QueueName="work", Attributes={"RedrivePolicy": json.dumps(policy)})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(3):
        assert [m["Body"] for m in receive(sqs, url)] == ["poison"]
        clock.advance(30)
    assert receive(sqs, url) == []  # the fourth receive moves it instead
    [dead] = receive(sqs, dlq, AttributeNames=["All"])
    assert dead["Body"] == "poison"
    assert count(dead) == 4


def test_the_redrive_policy_moves_a_message_after_5_receives_when_it_gives_no_count(sqs, clock):
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn})
    url = sqs.create_queue(QueueName="q", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    receipts = 0
    while receive(sqs, url):
        receipts += 1
        clock.advance(30)
    assert receipts == 5
    assert sqs.visible(dlq) == ["m"]


def test_a_deleted_message_does_not_come_back_and_a_stale_handle_deletes_it_too(sqs, url, clock):
    sqs.send_message(QueueUrl=url, MessageBody="a")
    sqs.send_message(QueueUrl=url, MessageBody="b")
    first = receive(sqs, url)
    clock.advance(30)
    receive(sqs, url)  # both again: the first handles are stale now
    for message in first:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])  # gone: fine
    clock.advance(30)
    assert receive(sqs, url) == []
    with pytest.raises(sqs.exceptions.ReceiptHandleIsInvalid):
        sqs.delete_message(QueueUrl=url, ReceiptHandle="made-up")


def test_delete_message_batch_fails_only_the_entries_with_unknown_handles(sqs, url, clock):
    sqs.send_message(QueueUrl=url, MessageBody="a")
    [message] = receive(sqs, url)
    out = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "real", "ReceiptHandle": message["ReceiptHandle"]},
            {"Id": "fake", "ReceiptHandle": "made-up"},
        ],
    )
    assert out["Successful"] == [{"Id": "real"}]
    assert [(f["Id"], f["Code"]) for f in out["Failed"]] == [("fake", "ReceiptHandleIsInvalid")]
    clock.advance(30)
    assert receive(sqs, url) == []


def test_a_batch_with_no_entries_more_than_ten_or_repeated_ids_is_refused(sqs, url):
    with pytest.raises(sqs.exceptions.EmptyBatchRequest):
        sqs.send_message_batch(QueueUrl=url, Entries=[])
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest):
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(11)]
        )
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "m"}] * 2)


def test_changing_the_visibility_holds_a_message_in_flight_by_its_latest_handle(sqs, url, clock):
    sqs.send_message(QueueUrl=url, MessageBody="m")
    [message] = receive(sqs, url)
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=300
    )
    clock.advance(299)
    assert receive(sqs, url) == []
    clock.advance(1)
    with pytest.raises(sqs.exceptions.MessageNotInflight):  # visible again
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=10
        )
    [again] = receive(sqs, url)
    out = sqs.change_message_visibility_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "stale", "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0},
            {"Id": "latest", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 0},
        ],
    )
    assert out["Successful"] == [{"Id": "latest"}]
    assert [(f["Id"], f["Code"]) for f in out["Failed"]] == [("stale", "InvalidParameterValue")]
    assert sqs.visible(url) == ["m"]  # visibility 0: back at once


def test_with_duplicate_delivery_each_message_comes_as_two_receipts(clock):
    sqs = VirtualSqs(clock, duplicate_every_delivery=True)
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="once")
    copies = receive(sqs, url)
    assert [m["MessageId"] for m in copies] == [sent["MessageId"]] * 2
    assert copies[0]["ReceiptHandle"] != copies[1]["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=copies[0]["ReceiptHandle"])
    clock.advance(30)
    assert [m["Body"] for m in receive(sqs, url)] == ["once"]  # the other copy comes back


def test_queue_attributes_count_visible_in_flight_and_delayed_messages(sqs, url):
    sqs.send_message(QueueUrl=url, MessageBody="visible")
    sqs.send_message(QueueUrl=url, MessageBody="taken")
    sqs.receive_message(QueueUrl=url)
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=5)
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == "arn:aws:sqs:us-east-1:123456789012:work"
    assert attributes["VisibilityTimeout"] == "30"
    assert attributes["ApproximateNumberOfMessages"] == "1"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    one = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert one["Attributes"] == {"ApproximateNumberOfMessages": "1"}


def test_a_queue_is_found_by_name_and_an_unknown_one_raises_like_the_real_client(sqs, url):
    assert sqs.get_queue_url(QueueName="work")["QueueUrl"] == url
    assert url == "https://sqs.us-east-1.amazonaws.com/123456789012/work"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as caught:
        sqs.get_queue_url(QueueName="nope")
    with mock_aws():
        real = boto3.client("sqs", region_name="us-east-1")
        with pytest.raises(real.exceptions.QueueDoesNotExist) as real_caught:
            real.get_queue_url(QueueName="nope")
    assert caught.value.response["Error"] | {"Message": ""} == real_caught.value.response[
        "Error"
    ] | {"Message": ""}


def test_parameters_the_real_client_refuses_raise_param_validation_error(sqs, url):
    with pytest.raises(ParamValidationError):
        sqs.send_message(QueueUrl=url, MessageBody=5)
    with pytest.raises(ParamValidationError):
        sqs.receive_message(QueueUrl=url, MaxMessages=1)


def test_the_clock_may_give_epoch_seconds_instead_of_a_datetime():
    now = [1_000.0]
    sqs = VirtualSqs(lambda: now[0])
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m", DelaySeconds=5)
    assert sqs.visible(url) == []
    now[0] += 5
    assert sqs.visible(url) == ["m"]


def test_visible_and_drain_look_at_and_empty_a_queue_without_making_calls(sqs, url, clock):
    sqs.send_message(QueueUrl=url, MessageBody="a")
    sqs.send_message(QueueUrl=url, MessageBody="b", DelaySeconds=10)
    faults = FaultInjector().attach(sqs)
    assert sqs.visible(url) == ["a"]
    assert sqs.drain(url) == ["a"]
    assert sqs.visible(url) == []
    clock.advance(10)
    assert sqs.drain(url) == ["b"]
    assert faults.calls == []


def test_the_fault_injector_counts_virtual_sqs_calls_alongside_dynamodb_calls(sqs, url):
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        faults = FaultInjector().attach(db, sqs)
        db.list_tables()
        sqs.send_message(QueueUrl=url, MessageBody="m")
        assert faults.calls == ["dynamodb.ListTables", "sqs.SendMessage"]


def test_a_crash_on_the_virtual_sqs_sends_nothing_and_a_crash_after_leaves_it_sent(sqs, url):
    FaultInjector().inject(1, "crash").inject(2, "crash_after").attach(sqs)
    with pytest.raises(Crash):
        sqs.send_message(QueueUrl=url, MessageBody="lost")
    with pytest.raises(Crash):
        sqs.send_message(QueueUrl=url, MessageBody="landed")
    assert sqs.visible(url) == ["landed"]


def test_an_error_injected_into_the_virtual_sqs_is_the_modelled_exception(sqs, url):
    FaultInjector().inject(1, "error", code="RequestThrottled").attach(sqs)
    with pytest.raises(sqs.exceptions.RequestThrottled) as caught:
        sqs.send_message(QueueUrl=url, MessageBody="m")
    assert isinstance(caught.value, ClientError)
    assert caught.value.response["ResponseMetadata"]["MaxAttemptsReached"] is True
    assert sqs.visible(url) == []


def test_a_partial_batch_on_the_virtual_sqs_sends_only_the_entries_it_keeps(sqs, url):
    FaultInjector().inject(1, "partial", op="SendMessageBatch").attach(sqs)
    out = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(2)]
    )
    assert out["Successful"] == []
    assert [f["Id"] for f in out["Failed"]] == ["0", "1"]
    assert sqs.visible(url) == []
