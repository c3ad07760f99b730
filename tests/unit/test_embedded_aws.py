"""The speed-ups make run applies to moto's server change its speed, not its answers."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws
from moto.sqs.models import Message, SQSBackend, sqs_backends

from local.aws_process import cache_backend_names, cheap_retention_check, one_clock_read_per_scan


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
