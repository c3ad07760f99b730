"""The SQS handler as Lambda calls it: one message's trouble never sends back its neighbours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import app as app_module
from tests.engine.conftest import Engine


def lambda_event(engine: Engine) -> dict[str, Any]:
    out = engine.sqs.receive_message(
        QueueUrl=engine.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=1
    )
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nexus-test-work",
                "awsRegion": "us-east-1",
            }
            for m in out.get("Messages", [])
        ]
    }


def test_a_batch_with_a_run_that_must_wait_deletes_the_others_and_fails_for_that_one(engine):
    jobs = engine.add_jobs(3, next_run_at=datetime.now(UTC).replace(microsecond=0))
    engine.dispatcher.tick(datetime.now(UTC))
    busy = engine.executions(jobs[0].id)[0]
    # Another worker holds the first run under a live lease.
    engine.store.start_execution(
        busy, datetime.now(UTC), datetime.now(UTC) + timedelta(hours=1), "someone-else"
    )
    event = lambda_event(engine)
    assert len(event["Records"]) == 3
    with pytest.raises(app_module.RetryLater, match="1 of 3"):
        app_module.worker(event, None)
    statuses = {e.job_id: e.status for e in engine.executions()}
    assert statuses == {jobs[0].id: "running", jobs[1].id: "completed", jobs[2].id: "completed"}
    # The busy run's message was not deleted, and is held until the other worker's lease
    # ends (an hour here), not the second the receive asked for.
    import time

    time.sleep(1.2)
    assert lambda_event(engine)["Records"] == []
    attributes = engine.sqs.get_queue_attributes(
        QueueUrl=engine.queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_batch_whose_tasks_fail_still_succeeds_as_a_batch(engine):
    engine.add_jobs(2, task_name="nexus.fail", next_run_at=datetime.now(UTC).replace(microsecond=0))
    engine.dispatcher.tick(datetime.now(UTC))
    event = lambda_event(engine)
    assert app_module.worker(event, None) is None
    assert {e.status for e in engine.executions()} == {"failed"}


def test_execution_records_expire_after_the_retention_period(engine):
    (job,) = engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    (run,) = engine.executions(job.id)
    assert run.expires_at is not None
    assert run.expires_at - engine.clock.now == timedelta(days=90)
