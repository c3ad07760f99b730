"""The whole engine on a virtual clock: moto's DynamoDB, an in-memory SQS, the tick, the
worker's batch handler, the dead-letter handler, the stream handler's count of the runs and
the API's service, run in turn the way EventBridge and Lambda's event sources call them, so
a test can kill any of them at any AWS call and then let the system recover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.aws import client
from chalicelib.engine import watch
from chalicelib.engine.batch import BatchIncomplete, Record, handle_batch
from chalicelib.engine.control import Controls
from chalicelib.engine.pauses import RESUME, PauseEnds
from chalicelib.engine.queue import WorkQueue
from chalicelib.engine.tick import Dispatcher
from chalicelib.engine.watch import Watch
from chalicelib.engine.worker import Worker
from chalicelib.models import Execution, Job
from chalicelib.service import JobService
from chalicelib.store import Store, execution_from_item
from chalicelib.store.items import is_fence
from chalicelib.tasks import registry
from local.resources import ensure_queue, ensure_table
from tests.engine.conftest import Clock
from tests.faults import Crash, FaultInjector
from tests.stream_source import StreamSource
from tests.virtual_sqs import VirtualSqs

EPOCH = datetime(2030, 1, 7, 12, 0, 0, tzinfo=UTC)
TICK = timedelta(seconds=60)
VISIBILITY = 120


@dataclass
class Deaths:
    """Where the system died, by who was running."""

    by_part: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_part.values())


class System:
    def __init__(self, table_name: str, *, duplicate_every_delivery: bool = False) -> None:
        self.clock = Clock(EPOCH)
        self.db = client("dynamodb")
        ensure_table(self.db, table_name)
        self.stream = StreamSource(table_name)
        self.sqs = VirtualSqs(self.clock, duplicate_every_delivery=duplicate_every_delivery)
        self.queue_url = ensure_queue(self.sqs, "work", visibility_timeout=VISIBILITY)
        self.dlq_url = self.sqs.get_queue_url(QueueName="work-dlq")["QueueUrl"]
        self.store = Store.over(self.db, table_name)
        self.queue = WorkQueue(self.sqs, self.queue_url, sleep=lambda _s: None)
        self.dispatcher = Dispatcher(self.store, self.queue, monotonic=lambda: 0.0)
        # The control messages the deployed worker handles (app.controls): a pause's end,
        # the dead-man's switch.
        controls = Controls()
        controls.register(
            RESUME, PauseEnds(self.store, self.dispatcher.dispatch_job, self.clock.sleep).handle
        )
        controls.register(
            watch.CONTROL, Watch(self.store, self.queue, sleep=self.clock.sleep).handle
        )
        self.worker = Worker(
            self.store,
            self.queue,
            registry,
            clock=self.clock,
            sleep=self.clock.sleep,
            rng=lambda: 0.0,
            on_stuck=lambda reason: None,
            controls=controls,
        )
        self.api = JobService(self.store, registry, self.dispatcher, self.queue, self.sqs)
        self.next_tick = EPOCH
        self.deaths = Deaths()
        self.faults: FaultInjector | None = None

    # -- faults -------------------------------------------------------------------------------

    def inject(self, injector: FaultInjector) -> FaultInjector:
        self.faults = injector.attach(self.db, self.sqs)
        return injector

    def stop_faults(self) -> None:
        if self.faults is not None:
            self.faults.detach()
            self.faults = None

    def _source(self, action: Callable[[], Any]) -> Any:
        """A call Lambda's event source makes (receive, delete): AWS's side, not a crash
        point of ours, so the fault injector does not see it."""
        faults = self.faults
        if faults is None:
            return action()
        faults.detach()
        try:
            return action()
        finally:
            faults.attach(self.db, self.sqs)

    def _survive(self, part: str, action: Callable[[], Any]) -> Any:
        """Run one invocation; if it dies (Crash), note where and go on, as Lambda would."""
        try:
            return action()
        except Crash:
            self.deaths.by_part[part] += 1
            return None

    # -- the parts, as AWS calls them ------------------------------------------------------

    def create_job(self, **fields: Any) -> Job:
        body = {"name": "job", "task_name": "nexus.echo", **fields}
        return self.api.create_job(body, self.clock.now)

    def tick(self) -> None:
        self._survive("tick", lambda: self.dispatcher.tick(self.clock.now))

    def deliver(self) -> int:
        """Every visible message of the work queue, one invocation each; how many."""
        handled = 0
        for handled in range(500):
            out = self._source(
                lambda: self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=1, AttributeNames=["All"]
                )
            )
            messages = out.get("Messages", [])
            if not messages:
                return handled
            records = [Record(m["Body"], m["ReceiptHandle"]) for m in messages]

            def invoke(records: list[Record] = records) -> None:
                try:
                    handle_batch(records, self.worker, self.queue, self.sqs, self.queue_url)
                except BatchIncomplete:
                    return  # Lambda leaves the failed messages to come back
                # Lambda deletes the batch when the handler returns.
                self._source(
                    lambda: self.sqs.delete_message_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": "0", "ReceiptHandle": records[0].receipt_handle}],
                    )
                )

            self._survive("worker", invoke)
        raise AssertionError("a message came back 500 times in one round")

    def count_runs(self) -> None:
        """The table's changes not yet handled, to the stream handler's count of the runs
        (app.table_changes); a batch it dies on is given again next time."""
        self._survive("stream", lambda: self.stream.drain(self.store.counters.count_changes))

    def stats(self) -> dict[str, Any]:
        """The counters, once the stream handler has counted every change so far."""
        self.count_runs()
        return self.store.counters.read(self.clock.now)

    def deliver_dead_letters(self) -> None:
        for _ in range(100):
            out = self._source(
                lambda: self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=1)
            )
            messages = out.get("Messages", [])
            if not messages:
                return
            message = messages[0]

            def invoke(message: dict[str, Any] = message) -> None:
                self.worker.dead_letter(message["Body"])
                self._source(
                    lambda: self.sqs.delete_message(
                        QueueUrl=self.dlq_url, ReceiptHandle=message["ReceiptHandle"]
                    )
                )

            self._survive("dead_letter", invoke)

    def die_on_next_message(self, times: int) -> None:
        """`times` invocations die before they make any call, each after receiving the next
        message (the first in the queue, then the same one back): at its fifth receive, the
        queue gives up on it and moves it to the dead-letter queue."""
        for _ in range(times):
            out = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=1)
            assert out.get("Messages")
            self.clock.now += timedelta(seconds=VISIBILITY + 1)

    # -- time ---------------------------------------------------------------------------------

    def next_visible(self) -> datetime | None:
        times = [m.visible_at for q in self.sqs._queues.values() for m in q.messages.values()]
        return datetime.fromtimestamp(min(times), UTC) if times else None

    def queues_empty(self) -> bool:
        return not any(q.messages for q in self.sqs._queues.values())

    def run(self, until: timedelta = timedelta(hours=2), stop_when_quiet: bool = True) -> None:
        """Ticks every minute, deliveries as messages come due, for `until` of virtual time
        or until nothing is left to do; then the stream handler counts what they finished."""
        end = self.clock.now + until
        while self.clock.now <= end:
            if self.clock.now >= self.next_tick:
                self.tick()
                self.next_tick = self.clock.now + TICK
            self.deliver()
            self.deliver_dead_letters()
            if stop_when_quiet and self.quiet():
                break
            upcoming = [self.next_tick]
            visible = self.next_visible()
            if visible is not None:
                upcoming.append(visible)
            self.clock.now = max(self.clock.now, min(upcoming))
        self.count_runs()

    # -- what is stored -----------------------------------------------------------------------

    def records(self, unfinished_only: bool = False) -> list[Execution]:
        """Every run record stored; `unfinished_only`: those pending or running (filtered by
        the Scan, so that moto does not answer with every record at every step of `run`)."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"TableName": self.store.table_name}
        if unfinished_only:
            params.update(
                FilterExpression="begins_with(sk, :run) AND #st IN (:pending, :running)",
                ExpressionAttributeNames={"#st": "status"},
                ExpressionAttributeValues={
                    ":run": {"S": "RUN#"},
                    ":pending": {"S": "pending"},
                    ":running": {"S": "running"},
                },
            )
        while True:
            out = self._source(lambda: self.db.scan(**params))
            items += out["Items"]
            if "LastEvaluatedKey" not in out:
                break
            params["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return [
            execution_from_item(i)
            for i in items
            if i["sk"]["S"].startswith("RUN#") and not is_fence(i)
        ]

    def quiet(self) -> bool:
        """Nothing in the queues, nothing unfinished, nothing due for the tick."""
        if not self.queues_empty() or self.unfinished():
            return False
        due = self._source(lambda: self.store.jobs.query_due(self.clock.now + TICK))
        return not due

    def unfinished(self) -> list[Execution]:
        return self.records(unfinished_only=True)

    def job(self, job_id: int) -> Job:
        """The job as the API shows it (its last run read from its runs' records too)."""
        return self.store.jobs.shown([self.store.jobs.get_job(job_id)], self.clock.now)[0]


def check_invariants(
    system: System, jobs: list[Job]
) -> dict[tuple[int, datetime], list[Execution]]:
    """What must hold after any crash, once the system has recovered. Returns the attempts of
    each run identity, for the scenario's own checks."""
    records = system.records()
    runs: dict[tuple[int, datetime], list[Execution]] = {}
    for r in records:
        if r.attempt >= 1:
            runs.setdefault((r.job_id, r.scheduled_for), []).append(r)
    by_id = {job.id: job for job in jobs}
    assert not [r for r in records if r.status in ("pending", "running")], "a run is stuck"
    assert system.queues_empty(), "messages are left in a queue"
    for (job_id, _), attempts in runs.items():
        numbers = sorted(a.attempt for a in attempts)
        assert numbers == list(range(1, len(numbers) + 1)), f"attempts {numbers}"
        attempts.sort(key=lambda a: a.attempt)
        assert all(a.status == "failed" for a in attempts[:-1]), "a retry after a success"
        last = attempts[-1]
        job = by_id[job_id]
        assert len(attempts) <= job.max_retries + 1, "more attempts than configured"
        if last.status == "failed" and last.reason != "dead-lettered":
            assert len(attempts) == job.max_retries + 1, "a retry was lost"
    for job in jobs:
        stored = system.store.jobs.find_job(job.id)
        if stored is None or stored.deleted_at is not None:
            continue
        assert stored.running == {}, f"job {job.id} still holds {stored.running}"
        finished = [
            a
            for (job_id, _), attempts in runs.items()
            if job_id == job.id
            for a in attempts
            if a.status in ("completed", "failed") and a.completed_at is not None
        ]
        if finished:
            latest = max(finished, key=lambda a: a.completed_at or EPOCH)
            shown = system.store.jobs.shown([stored], system.clock.now)[0]
            assert (shown.last_run_at, shown.last_run_status) == (
                latest.completed_at,
                latest.status,
            ), f"the job shows its last run at {shown.last_run_at}, not {latest.id}'s"
    outcomes = [a for attempts in runs.values() for a in attempts]
    counted = [a for a in outcomes if a.status in ("completed", "failed")]
    stats = system.stats()
    assert stats.get("total_executions", 0) == len(counted), "total_executions drifted"
    assert stats.get("successful_executions", 0) == sum(a.status == "completed" for a in counted)
    assert stats.get("failed_executions", 0) == sum(a.status == "failed" for a in counted)
    return runs
