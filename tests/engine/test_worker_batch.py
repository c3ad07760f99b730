"""The SQS handler as Lambda calls it: one message's trouble never sends back its neighbours."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import app as app_module
from chalicelib.engine import batch
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


def invoke(engine: Engine, event: dict[str, Any]) -> None:
    """app.worker as Lambda calls it: when the handler returns, the batch is deleted."""
    app_module.worker(event, None)
    records = event["Records"]
    if records:
        engine.sqs.delete_message_batch(
            QueueUrl=engine.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(records)
            ],
        )


def test_a_batch_with_a_run_another_worker_holds_sends_it_back_for_later_and_succeeds(engine):
    jobs = engine.add_jobs(3, next_run_at=datetime.now(UTC).replace(microsecond=0))
    engine.dispatcher.tick(datetime.now(UTC))
    event = lambda_event(engine)
    assert len(event["Records"]) == 3
    # Another worker holds the first job's run under a live lease.
    busy = next(r for r in event["Records"] if f'"job_id": {jobs[0].id},' in r["body"])
    scheduled_for = datetime.fromisoformat(json.loads(busy["body"])["scheduled_for"])
    held = engine.dispatcher._execution(jobs[0], scheduled_for, datetime.now(UTC))
    engine.store.runs.start_new(
        held.model_copy(
            update={
                "status": "running",
                "lease_owner": "someone-else",
                "lease_until": datetime.now(UTC) + timedelta(hours=1),
            }
        )
    )
    # Nothing failed, so the invocation succeeds (no worker error for the alarm to count).
    invoke(engine, event)
    statuses = {e.job_id: e.status for e in engine.executions()}
    assert statuses == {jobs[0].id: "running", jobs[1].id: "completed", jobs[2].id: "completed"}
    # The busy run's message was sent again, delayed to come back when the lease is over
    # (SQS delays at most 900 s, so it checks again then).
    time.sleep(1.2)
    assert lambda_event(engine)["Records"] == []
    attributes = engine.sqs.get_queue_attributes(
        QueueUrl=engine.queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


def test_a_batch_whose_tasks_fail_still_succeeds_as_a_batch(engine):
    engine.add_jobs(2, task_name="nexus.fail", next_run_at=datetime.now(UTC).replace(microsecond=0))
    engine.dispatcher.tick(datetime.now(UTC))
    event = lambda_event(engine)
    assert app_module.worker(event, None) is None
    assert {e.status for e in engine.executions()} == {"failed"}


def test_execution_records_expire_after_the_retention_period(engine):
    (job,) = engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    (body,) = engine.receive()
    engine.worker.process(body)
    (run,) = engine.executions(job.id)
    assert run.expires_at is not None
    assert run.expires_at - engine.clock.now == timedelta(days=90)


class Calls:
    """AWS calls made by the app's clients, by operation name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def count(self, name: str) -> int:
        return self.names.count(name)


def counting_calls() -> tuple[Calls, list[Any]]:
    calls = Calls()
    clients = [app_module.client("dynamodb"), app_module.client("sqs")]
    for c in clients:
        c.meta.events.register("before-call", calls)
    return calls, clients


def stop_counting(calls: Calls, clients: list[Any]) -> None:
    for c in clients:
        c.meta.events.unregister("before-call", calls)


def test_a_batch_of_quick_runs_writes_each_run_twice_and_holds_no_message(engine, monkeypatch):
    # "Quick" means: every run ends within the window in which message holds wait for their
    # neighbours. The window is made far longer than any run here can take, so a loaded
    # test machine cannot turn a quick run into a long one.
    monkeypatch.setattr(batch, "COALESCE_SECONDS", 60.0)
    engine.add_jobs(10, next_run_at=datetime.now(UTC).replace(microsecond=0))
    engine.dispatcher.tick(datetime.now(UTC))
    event = lambda_event(engine)
    assert len(event["Records"]) == 10
    calls, clients = counting_calls()
    try:
        invoke(engine, event)
    finally:
        stop_counting(calls, clients)
    assert {e.status for e in engine.executions()} == {"completed"}
    # Per run: the start (a put: the message was its pending state) and the outcome (an
    # update, carrying what it counts). A plain job's quick success writes nothing on the job
    # (F2 skipped: the API reads its last run from the record). No counter is written here:
    # the stream handler counts the outcomes from the table's changes.
    assert calls.count("PutItem") == 10
    # Per run one read, of its job: a first delivery's start reads no record (its put is
    # refused if the run has one).
    assert calls.count("GetItem") == 10
    assert calls.count("UpdateItem") == 10
    assert calls.count("TransactWriteItems") == 0
    # Every run ended before the holds were due: Lambda deletes the batch, nothing to hold.
    assert calls.count("ChangeMessageVisibility") == 0
    assert calls.count("ChangeMessageVisibilityBatch") == 0
    calls, clients = counting_calls()
    try:
        handled = engine.stream.drain(
            lambda records: app_module.table_changes({"Records": records}, None)
        )
    finally:
        stop_counting(calls, clients)
    assert handled >= 20  # the ten starts and the ten outcomes, at least
    # The stream handler counts the ten outcomes in one write.
    assert calls.count("TransactWriteItems") == 1
    stats = app_module.jobs().overview(datetime.now(UTC))
    assert stats["total_executions"] == 10
    assert stats["successful_executions"] == 10
    assert stats["running_executions"] == 0
    assert stats["last_24h_executions"] == 10


def test_a_batch_of_long_runs_holds_its_messages_in_one_request_and_counts_them_running(engine):
    jobs = engine.add_jobs(
        3,
        task_name="nexus.sleep",
        task_kwargs={"seconds": 4},
        next_run_at=datetime.now(UTC).replace(microsecond=0),
    )
    engine.dispatcher.tick(datetime.now(UTC))
    event = lambda_event(engine)
    assert len(event["Records"]) == 3
    calls, clients = counting_calls()
    handler = threading.Thread(target=invoke, args=(engine, event))
    try:
        handler.start()
        # Past the 1 s linger and the 1 s after which a run shows on its job (two timers of
        # their own, in either order), while the tasks still sleep (polled: a loaded machine
        # is slow).
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            shown = [engine.job(job.id).current_status for job in jobs]
            if calls.count("ChangeMessageVisibilityBatch") and shown == ["running"] * 3:
                break
            time.sleep(0.05)
        running = app_module.jobs().overview(datetime.now(UTC))
        handler.join(10)
    finally:
        stop_counting(calls, clients)
    assert running["running_executions"] == 3
    assert shown == ["running"] * 3
    assert calls.count("ChangeMessageVisibilityBatch") == 1
    assert calls.count("ChangeMessageVisibility") == 0
    # Held past each run's lease, so a worker that dies leaves it to come back then.
    out = engine.sqs.receive_message(QueueUrl=engine.queue_url, MaxNumberOfMessages=10)
    assert out.get("Messages", []) == []
    engine.stream.drain(lambda records: app_module.table_changes({"Records": records}, None))
    after = app_module.jobs().overview(datetime.now(UTC))
    assert after["running_executions"] == 0
    assert after["successful_executions"] == 3
    assert [engine.job(job.id).current_status for job in jobs] == ["completed"] * 3


def test_a_dead_lettered_run_is_counted_failed_from_its_record(engine):
    (job,) = engine.add_jobs(1, next_run_at=datetime.now(UTC).replace(microsecond=0))
    engine.dispatcher.tick(datetime.now(UTC))
    event = lambda_event(engine)
    assert app_module.dead_letter(event, None) is None
    (run,) = engine.executions(job.id)
    assert (run.status, run.reason) == ("failed", "dead-lettered")
    assert engine.stats()["failed_executions"] == 1
