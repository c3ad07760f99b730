"""The engine under faults: double ticks, double deliveries, dead workers, downtime.

Real code on moto throughout; only the clock is injected, so time can pass in a test.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.engine.queue import message_for
from chalicelib.engine.tick import Dispatcher, TickReport
from chalicelib.engine.worker import DONE, Later
from chalicelib.tasks import registry
from tests.engine.conftest import Engine, body_of, sent_bodies


def settle(engine: Engine, rounds: int = 5) -> int:
    """Deliver every visible message to the worker until none is left; how many were handled."""
    handled = 0
    for _ in range(rounds):
        bodies = engine.receive()
        if not bodies:
            break
        for body in bodies:
            engine.worker.process(body)
            handled += 1
    return handled


def statuses(engine: Engine, job_id: int | None = None) -> Counter[str]:
    return Counter(e.status for e in engine.executions(job_id))


def test_two_ticks_at_once_over_500_due_runs_give_500_executions(engine):
    """The worst overlap: tick B read every job before tick A claimed any, then acts.

    (Interleaved by hand rather than with threads: moto does not make a conditional write
    atomic against a concurrent one, as DynamoDB does, so threads would test moto.)
    """
    jobs = engine.add_jobs(500)
    seen_by_b = [engine.job(job.id) for job in jobs]
    report_a = engine.dispatcher.tick(engine.clock.now)
    report_b = TickReport()
    for job in seen_by_b:
        engine.dispatcher._dispatch(job.id, engine.clock.now, job, report_b)
    assert (report_a.jobs_dispatched, report_a.runs_sent) == (500, 500)
    assert (report_b.jobs_dispatched, report_b.claims_lost) == (0, 500)
    # B sent its 500 messages again: the worker turns the duplicates into no-ops.
    assert settle(engine) == 1000
    runs = engine.executions()
    assert len({(r.job_id, r.scheduled_for) for r in runs}) == len(runs) == 500
    assert statuses(engine) == Counter({"completed": 500})
    assert engine.stats()["total_executions"] == 500
    for job in jobs[:20]:
        stored = engine.job(job.id)
        assert stored.last_run_status == "completed"
        assert stored.next_run_at == job.next_run_at + timedelta(hours=1)


def test_a_tick_that_spends_seconds_recording_runs_counts_each_delay_from_when_it_is_sent(engine):
    due = engine.clock.now + timedelta(seconds=30)
    engine.add_jobs(30, next_run_at=due)
    # The tick's clock moves 3 s between one batch of sends and the next.
    elapsed = itertools.count(0, 3)
    dispatcher = Dispatcher(engine.store, engine.queue, monotonic=lambda: float(next(elapsed)))
    delays: list[int] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        delays.extend(entry["DelaySeconds"] for entry in params["Entries"])

    engine.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    try:
        report = dispatcher.tick(engine.clock.now)
    finally:
        engine.sqs.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", record)
    assert report.runs_sent == 30
    # Ten messages a batch; sent 3, 6 and 9 s into the tick, each due 30 s after it began
    # (the tick sends its batches side by side: in whichever order they land).
    assert sorted(delays, reverse=True) == [27] * 10 + [24] * 10 + [21] * 10


def test_the_same_tick_run_twice_sends_nothing_new(engine):
    engine.add_jobs(10)
    first = engine.dispatcher.tick(engine.clock.now)
    second = engine.dispatcher.tick(engine.clock.now)
    assert (first.runs_sent, second.runs_sent) == (10, 0)
    assert len(engine.receive()) == 10


def test_a_tick_that_died_before_claiming_is_repeated_without_doubling(engine):
    (job,) = engine.add_jobs(1)
    # The dying tick sent the run, but never advanced next_run_at.
    engine.queue.send(
        [engine.dispatcher._execution(job, job.next_run_at, job.next_run_at)], job.next_run_at
    )
    report = engine.dispatcher.tick(engine.clock.now)
    assert report.runs_sent == 1
    assert settle(engine) == 2  # the dead tick's message and the repeat's
    assert statuses(engine, job.id) == Counter({"completed": 1})


def test_every_message_delivered_twice_gives_no_extra_execution(engine):
    engine.add_jobs(20)
    engine.dispatcher.tick(engine.clock.now)
    bodies = engine.receive()
    assert len(bodies) == 20
    for body in bodies + bodies:
        assert engine.worker.process(body) is DONE
    assert statuses(engine) == Counter({"completed": 20})
    stats = engine.stats()
    assert stats["total_executions"] == stats["successful_executions"] == 20


def test_a_worker_that_dies_mid_task_leaves_a_run_that_completes_once_after_its_lease(engine):
    release = threading.Event()
    calls: list[int] = []

    @registry.task("test.hangs_first_time", timeout=30)
    def hangs_first_time(ctx: Any) -> str:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            release.wait(60)  # the first worker never comes back from here
            return "too late"
        return "done"

    try:
        (job,) = engine.add_jobs(1, task_name="test.hangs_first_time")
        engine.dispatcher.tick(engine.clock.now)
        (body,) = engine.receive()
        dying = engine.new_worker()
        thread = threading.Thread(target=dying.process, args=(body,), daemon=True)
        thread.start()
        while not calls:
            threading.Event().wait(0.01)
        (run,) = engine.executions(job.id)
        assert run.status == "running"

        # Redelivered while the lease is good: left alone, to come back when the lease ends.
        other = engine.new_worker()
        assert other.process(body) == Later(61.0)  # 30 s timeout + 30 s margin, and a second
        assert len(calls) == 1

        # After the lease (30 s timeout + 30 s margin) another worker takes over.
        engine.clock.now += timedelta(seconds=61)
        assert other.process(body) is DONE
        (run,) = engine.executions(job.id)
        assert (run.status, run.result) == ("completed", "done")

        # The dead worker wakes up: its lease is gone, so it records nothing.
        release.set()
        thread.join(5)
        (run,) = engine.executions(job.id)
        assert (run.status, run.result) == ("completed", "done")
        stored = engine.job(job.id)
        assert (stored.running_count, stored.current_status) == (0, "completed")
        assert engine.stats()["total_executions"] == 1
    finally:
        release.set()
        registry._tasks.pop("test.hangs_first_time", None)


def test_a_tick_down_for_ten_minutes_runs_what_is_inside_the_grace_and_records_the_rest(
    engine,
):
    now = engine.clock.now.replace(second=30)
    engine.clock.now = now
    minute = now.replace(second=0)
    (job,) = engine.add_jobs(
        1,
        job_type="cron",
        interval_seconds=None,
        cron_expression="* * * * *",
        next_run_at=minute - timedelta(minutes=10),
    )
    report = engine.dispatcher.tick(now)
    # The grace is 300 s: minute-10 to minute-5 are later than it (missed, one record each);
    # minute-4 to minute-1 are late but inside it, and run, in order, with the window's two.
    assert report.runs_missed == 6
    missed = sorted(r.scheduled_for for r in engine.executions(job.id) if r.status == "missed")
    assert missed == [minute - timedelta(minutes=m) for m in range(10, 4, -1)]
    assert report.runs_sent == 6
    # Visible now: the five already due; minute+1 is delayed until its time.
    sent = sorted(body_of(b)["scheduled_for"] for b in engine.receive())
    expected = [minute + timedelta(minutes=m) for m in range(-4, 1)]
    assert sent == [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in expected]
    assert engine.job(job.id).next_run_at == minute + timedelta(minutes=2)


def test_after_downtime_longer_than_the_grace_nothing_runs_late(engine):
    now = engine.clock.now.replace(second=30)
    now += timedelta(minutes=2 - now.minute % 5)  # 2.5 minutes after a */5 occurrence
    minute = now.replace(second=0)
    (job,) = engine.add_jobs(
        1,
        job_type="cron",
        interval_seconds=None,
        cron_expression="*/5 * * * *",
        misfire_grace_seconds=30,
        next_run_at=minute - timedelta(minutes=22),
    )
    engine.dispatcher.tick(now)
    runs = engine.executions(job.id)
    assert [r.status for r in runs] == ["missed"] * 5
    assert engine.receive() == []


def test_a_paused_job_is_never_dispatched(engine):
    (active,) = engine.add_jobs(1)
    (_paused,) = engine.add_jobs(1, is_active=False, status="paused")
    report = engine.dispatcher.tick(engine.clock.now)
    assert report.due_entries == 1
    assert {body_of(b)["job_id"] for b in engine.receive()} == {active.id}


def test_runs_already_queued_when_a_job_is_paused_are_skipped_not_run(engine):
    (job,) = engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    before = engine.job(job.id)
    engine.store.jobs.replace_job(
        before,
        before.model_copy(
            update={
                "is_active": False,
                "status": "paused",
                "next_run_at": None,
                "version": before.version + 1,
            }
        ),
        reschedule=True,
    )
    settle(engine)
    (run,) = engine.executions(job.id)
    assert run.status == "skipped"
    assert "paused" in (run.reason or "")


def test_higher_priority_goes_first_when_a_tick_cannot_send_everything(engine):
    low = engine.add_jobs(5, priority=1)
    high = engine.add_jobs(5, priority=9)
    engine.dispatcher.max_runs_per_tick = 5
    report = engine.dispatcher.tick(engine.clock.now)
    assert report.deferred == 5
    assert {body_of(b)["job_id"] for b in engine.receive()} == {j.id for j in high}
    report = engine.dispatcher.tick(engine.clock.now)
    assert {body_of(b)["job_id"] for b in engine.receive()} == {j.id for j in low}


def test_an_interval_shorter_than_the_window_gets_every_occurrence(engine):
    (job,) = engine.add_jobs(1, interval_seconds=2)
    sent = sent_bodies(engine, lambda: engine.dispatcher.tick(engine.clock.now))
    times = sorted(datetime.fromisoformat(body_of(b)["scheduled_for"]) for b in sent)
    assert len(times) == 31  # now, now+2 s, ..., now+60 s
    assert all(b - a == timedelta(seconds=2) for a, b in itertools.pairwise(times))
    assert engine.job(job.id).next_run_at == times[-1] + timedelta(seconds=2)


def test_a_failing_task_is_retried_with_backoff_then_fails(engine):
    (job,) = engine.add_jobs(1, task_name="nexus.fail", max_retries=2, retry_delay=1)
    engine.dispatcher.tick(engine.clock.now)
    (body,) = engine.receive()
    assert engine.worker.process(body)
    for expected_attempt, expected_wait in ((2, 1), (3, 2)):
        pending = [e for e in engine.executions(job.id) if e.status == "pending"]
        assert len(pending) == 1
        retry = pending[0]
        assert (retry.attempt, retry.trigger) == (expected_attempt, "retry")
        previous = max(
            (e for e in engine.executions(job.id) if e.status == "failed"), key=lambda e: e.attempt
        )
        assert retry.not_before - previous.completed_at == timedelta(seconds=expected_wait)
        engine.worker.process(json_message(retry))
    runs = sorted(engine.executions(job.id), key=lambda e: e.attempt)
    assert [(r.attempt, r.status) for r in runs] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert all(r.error and r.error["type"] == "TaskFailed" for r in runs)
    assert engine.job(job.id).current_status == "failed"
    assert engine.stats()["failed_executions"] == 3


def test_a_retry_longer_than_sqs_can_delay_waits_in_the_index(engine):
    (job,) = engine.add_jobs(1, task_name="nexus.fail", max_retries=1, retry_delay=3600)
    engine.dispatcher.tick(engine.clock.now)
    settle(engine)
    (retry,) = [e for e in engine.executions(job.id) if e.status == "pending"]
    assert engine.receive() == []
    engine.clock.now += timedelta(seconds=3601)
    report = engine.dispatcher.tick(engine.clock.now)
    assert report.retries_sent == 1
    assert retry.run_key in [body_of(b)["run_key"] for b in engine.receive()]


def test_a_dead_lettered_run_is_marked_failed(engine):
    (job,) = engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    (body,) = engine.receive()
    engine.worker.dead_letter(body)
    (run,) = engine.executions(job.id)
    assert (run.status, run.reason) == ("failed", "dead-lettered")
    assert engine.job(job.id).last_run_status == "failed"
    assert engine.stats()["failed_executions"] == 1


def test_a_forbid_job_skips_a_run_that_comes_due_while_the_last_one_runs(engine):
    (job,) = engine.add_jobs(1, interval_seconds=2, concurrency_policy="forbid")
    engine.dispatcher.tick(engine.clock.now)
    # A run of this job is still going.
    engine.store.jobs.take_slot(
        job, "RUN#earlier#001", engine.clock.now + timedelta(minutes=5), engine.clock.now
    )
    bodies = sorted(engine.receive(), key=lambda b: body_of(b)["scheduled_for"])
    assert engine.worker.process(bodies[0]) is DONE
    (first,) = [e for e in engine.executions(job.id) if e.scheduled_for == job.next_run_at]
    assert first.status == "skipped"
    assert "forbid" in (first.reason or "")


@pytest.mark.parametrize("outcome, status", [("nexus.echo", "completed"), ("nexus.fail", "failed")])
def test_a_date_job_ends_with_its_run_and_leaves_the_index(engine, outcome, status):
    (job,) = engine.add_jobs(
        1,
        job_type="date",
        interval_seconds=None,
        task_name=outcome,
        scheduled_time=engine.clock.now,
    )
    engine.dispatcher.tick(engine.clock.now)
    settle(engine)
    stored = engine.job(job.id)
    assert (stored.current_status, stored.next_run_at) == (status, None)
    assert engine.store.jobs.query_due(engine.clock.now + timedelta(days=365)) == []


def json_message(execution: Any) -> str:
    import json

    return json.dumps(message_for(execution))


class ReadCounter:
    """DynamoDB items read and calls made, from botocore's after-call events."""

    def __init__(self) -> None:
        self.items = self.calls = 0

    def __call__(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls += 1
        if model.name in ("Query", "Scan"):
            self.items += parsed.get("ScannedCount", parsed.get("Count", 0))
        elif model.name == "GetItem":
            self.items += 1
        elif model.name == "BatchGetItem":
            self.items += sum(len(v) for v in parsed.get("Responses", {}).values())


def test_the_ticks_reads_stay_flat_when_stored_jobs_grow_from_1000_to_10000(engine):
    def tick_reads() -> ReadCounter:
        counter = ReadCounter()
        engine.db.meta.events.register("after-call.dynamodb", counter)
        try:
            report = engine.dispatcher.tick(engine.clock.now)
        finally:
            engine.db.meta.events.unregister("after-call.dynamodb", counter)
        assert report.runs_sent == 50
        return counter

    later = engine.clock.now + timedelta(days=1)
    engine.add_jobs(900, next_run_at=later)
    engine.add_jobs(50, is_active=False, status="paused", next_run_at=None)
    engine.add_jobs(50)  # due now
    at_1000 = tick_reads()

    engine.add_jobs(8_950, next_run_at=later)
    engine.add_jobs(50)  # due now; the first 50 were claimed and are not due any more
    at_10000 = tick_reads()

    # Per due job: its index entry and one consistent read of the job. Nothing per stored job.
    assert at_1000.items == at_10000.items == 100
    assert at_1000.calls == at_10000.calls
