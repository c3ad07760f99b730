"""An engine on moto: the store, the real SQS queue, the tick and the worker, with a clock
that tests set."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import notify
from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.engine.queue import WorkQueue
from chalicelib.engine.tick import Dispatcher
from chalicelib.engine.worker import Worker
from chalicelib.models import Execution, Job
from chalicelib.security import outbound, secrets
from chalicelib.store import Store, execution_from_item, job_item
from chalicelib.store.items import is_fence
from chalicelib.tasks import registry
from local.aws_process import serialise_dynamodb
from tests.receiver import Receiver, receiving
from tests.stream_source import StreamSource


@pytest.fixture
def atomic_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each request atomically; in-process moto does not (a condition and its
    write are two steps): a test that races requests needs DynamoDB's guarantee. Undone after
    the test (monkeypatch restores moto's handler)."""
    from moto.dynamodb.responses import DynamoHandler

    monkeypatch.setattr(DynamoHandler, "call_action", DynamoHandler.__dict__["call_action"])
    serialise_dynamodb()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Engine:
    def __init__(self) -> None:
        settings = get_settings()
        self.db = client("dynamodb")
        self.sqs = client("sqs")
        self.queue_url = settings.queue_url
        self.store = Store.over(self.db, settings.table_name)
        self.queue = WorkQueue(self.sqs, settings.queue_url)
        self.clock = Clock(datetime.now(UTC).replace(microsecond=0))
        # Moto's queue delays messages in real time while this clock is the test's: runs are
        # sent one window ahead, not CLAIM_AHEAD (tests/engine/harness.py's virtual queue
        # runs the engine with it).
        self.dispatcher = Dispatcher(self.store, self.queue, claim_ahead=timedelta(0))
        self.worker = self.new_worker()
        self.stream = StreamSource(settings.table_name)
        self._next_id = 1

    def job(self, job_id: int) -> Job:
        """The job as the API shows it (its last run read from its runs' records too)."""
        return self.store.jobs.shown([self.store.jobs.get_job(job_id)], self.clock.now)[0]

    def stats(self) -> dict[str, Any]:
        """The counters, once the stream handler has counted every change so far."""
        self.stream.drain(self.store.counters.count_changes)
        return self.store.counters.read(self.clock.now)

    def new_worker(self) -> Worker:
        return Worker(
            self.store,
            self.queue,
            registry,
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=lambda: 0.0,
        )

    def add_jobs(self, count: int, **fields: Any) -> list[Job]:
        """Write jobs straight to the table in batches (creating them one by one through the
        API costs a transaction each, which moto makes slow)."""
        jobs = []
        for _ in range(count):
            data = {
                "name": f"job {self._next_id}",
                "job_type": "interval",
                "interval_seconds": 3600,
                "task_name": "nexus.echo",
                "created_at": self.clock.now - timedelta(days=1),
                "updated_at": self.clock.now - timedelta(days=1),
                "next_run_at": self.clock.now,
                **fields,
            }
            jobs.append(Job(id=100_000 + self._next_id, **data))
            self._next_id += 1
        items = [{"PutRequest": {"Item": job_item(job)}} for job in jobs]
        for i in range(0, len(items), 25):
            self.db.batch_write_item(RequestItems={self.store.table_name: items[i : i + 25]})
        return jobs

    def receive(self) -> list[str]:
        """Every message visible now (moto delivers delayed ones when their delay is over)."""
        bodies: list[str] = []
        while True:
            out = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300
            )
            messages = out.get("Messages", [])
            if not messages:
                return bodies
            bodies += [m["Body"] for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    def executions(self, job_id: int | None = None) -> list[Execution]:
        """All execution records (a Scan: fine in a test, never in the product)."""
        items = []
        params: dict[str, Any] = {"TableName": self.store.table_name}
        while True:
            out = self.db.scan(**params)
            items += out["Items"]
            if "LastEvaluatedKey" not in out:
                break
            params["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        runs = [
            execution_from_item(i)
            for i in items
            if i["sk"]["S"].startswith("RUN#") and not is_fence(i)
        ]
        return [r for r in runs if job_id is None or r.job_id == job_id]


@pytest.fixture
def engine(aws: None) -> Iterator[Engine]:
    yield Engine()


def sent_bodies(engine: Engine, action: Callable[[], object]) -> list[str]:
    """The message bodies sent to SQS while `action` runs, delayed ones included."""
    bodies: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        bodies.extend(entry["MessageBody"] for entry in params["Entries"])

    engine.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    try:
        action()
    finally:
        engine.sqs.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", record)
    return bodies


def body_of(message: str) -> dict[str, Any]:
    return json.loads(message)  # type: ignore[no-any-return]


@pytest.fixture
def system(aws: None) -> Iterator[Any]:
    """The whole engine on a virtual clock (tests/engine/harness.py)."""
    from tests.engine.harness import System

    yield System("nexus-system")


# Whether the task test.flaky fails: true at the start of each test that takes `receiver`,
# then set by the test between runs.
FLAKY = {"fail": True}


@registry.task("test.flaky")
def flaky(ctx: Any) -> str:
    if FLAKY["fail"]:
        raise RuntimeError("flaky failed as told")
    return "ok"


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A webhook receiver on loopback (tests/receiver.py), which NEXUS_HTTP_ALLOW lets the
    worker POST to, as a stage would list an internal service; no stage default channel."""
    monkeypatch.setenv(outbound.ALLOW_ENV, "127.0.0.1")
    monkeypatch.delenv(notify.DEFAULT_ENV, raising=False)
    FLAKY["fail"] = True
    secrets.clear_cache()
    with receiving() as server:
        yield server
    secrets.clear_cache()
