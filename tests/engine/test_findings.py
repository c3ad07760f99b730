"""Issue 9's findings, one test each (named after it), each failing on the engine before it.

Finding 10 (the local stack) is shown by tests/unit/test_local_*.py and
tests/e2e/test_local_stack_*.py.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from chalicelib import snapshot
from chalicelib.engine.lifecycle import RESEND_AFTER
from chalicelib.engine.worker import Later
from chalicelib.errors import ConcurrentUpdate
from chalicelib.store.items import is_fence
from chalicelib.tasks import registry
from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector


def _date_job(system: System, **fields: Any) -> Any:
    return system.create_job(
        job_type="date", scheduled_time=(EPOCH + timedelta(minutes=5)).isoformat(), **fields
    )


def _at_run_time(system: System) -> None:
    system.clock.now = system.next_tick = EPOCH + timedelta(minutes=4, seconds=30)


# -- 1 --------------------------------------------------------------------------------------


def test_finding_1_a_retry_is_not_lost_when_its_send_fails(system):
    job = _date_job(system, task_name="nexus.fail", max_retries=1, retry_delay=1)
    _at_run_time(system)
    # The worker writes the failed attempt and the retry's record, then its send fails.
    system.inject(FaultInjector().inject(1, "partial", op="SendMessageBatch", keep=0))
    system.tick()  # the tick's send is the first SendMessageBatch: it fails, nothing claimed
    system.run()
    system.stop_faults()
    system.run()
    runs = check_invariants(system, [job])
    (attempts,) = runs.values()
    assert [a.status for a in attempts] == ["failed", "failed"]


def test_finding_1_a_retry_is_not_lost_when_the_worker_dies_before_sending_it(system):
    job = _date_job(system, task_name="nexus.fail", max_retries=1, retry_delay=1)
    _at_run_time(system)
    system.tick()
    # The worker dies right after it recorded the retry (PutItem of attempt 2), before sending.
    put_retry = FaultInjector().inject(2, "crash_after", op="PutItem")
    system.inject(put_retry)
    system.run()
    assert put_retry.fired and system.deaths.by_part["worker"] == 1
    system.stop_faults()
    system.run()
    (attempts,) = check_invariants(system, [job]).values()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "failed")]


def test_finding_1_a_manual_run_whose_send_fails_runs_all_the_same(system):
    job = system.create_job(job_type="interval", interval_seconds=86400)
    system.inject(FaultInjector().inject(1, "error", op="SendMessageBatch", code="InternalError"))
    execution = system.api.execute_job(job.id, None, system.clock.now)
    system.stop_faults()
    assert system.queues_empty()  # the send failed; the record waits for the tick
    system.run(until=RESEND_AFTER * 3)
    (attempts,) = check_invariants(system, [job]).values()
    assert [(a.id, a.status) for a in attempts] == [(execution.id, "completed")]


# -- 2 --------------------------------------------------------------------------------------


def test_finding_2_a_forbid_job_is_not_stopped_for_good_by_one_failed_job_update(system):
    job = system.create_job(
        job_type="interval",
        interval_seconds=60,
        concurrency_policy="forbid",
        start_time=(EPOCH + timedelta(minutes=5)).isoformat(),
    )
    _at_run_time(system)
    system.tick()
    system.clock.now = EPOCH + timedelta(minutes=5)
    # F2 (the job's last run and slot) fails once after the outcome was written: the third
    # update, after S1 (the slot) and F1 (the outcome).
    system.inject(FaultInjector().inject(3, "error", op="UpdateItem", code="ValidationException"))
    system.deliver()
    system.stop_faults()
    assert system.job(job.id).running  # the slot is still held...
    system.run(until=timedelta(minutes=5), stop_when_quiet=False)
    stored = system.job(job.id)
    assert stored.running == {}  # ...until the message came back and released it
    statuses = [r.status for r in system.records()]
    assert statuses.count("completed") >= 5 and "skipped" not in statuses


def test_finding_2_two_runs_of_a_forbid_job_never_both_take_its_slot(system, atomic_dynamodb):
    job = system.create_job(job_type="interval", interval_seconds=60, concurrency_policy="forbid")
    lease = system.clock.now + timedelta(minutes=1)
    results = []
    barrier = threading.Barrier(8)

    def start(i: int) -> None:
        barrier.wait()
        results.append(system.store.jobs.take_slot(job, f"RUN#{i}#001", lease, system.clock.now))

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert len(system.job(job.id).running) == 1


# -- 3 --------------------------------------------------------------------------------------


def test_finding_3_a_put_that_read_the_job_before_the_claim_cannot_undo_it(system):
    job = system.create_job(job_type="interval", interval_seconds=10)
    before = system.job(job.id)
    system.clock.now = before.next_run_at - timedelta(seconds=30)
    system.tick()  # claims: next_run_at moves past the window
    claimed = system.job(job.id)
    assert claimed.next_run_at > before.next_run_at
    stale = before.model_copy(update={"priority": 9, "version": before.version + 1})
    with pytest.raises(ConcurrentUpdate):
        system.store.jobs.replace_job(before, stale, reschedule=False)
    # Through the API the same change is made again on the fresh read, keeping the claim.
    system.api.update_job(job.id, {"priority": 9}, system.clock.now)
    after = system.job(job.id)
    assert (after.priority, after.next_run_at) == (9, claimed.next_run_at)


# -- 4 --------------------------------------------------------------------------------------


def test_finding_4_runs_a_dead_tick_sent_are_not_counted_missed(system):
    job = system.create_job(
        job_type="interval",
        interval_seconds=10,
        misfire_grace_seconds=30,
        start_time=(EPOCH + timedelta(minutes=5)).isoformat(),
        end_time=(EPOCH + timedelta(minutes=17)).isoformat(),
    )
    first = job.next_run_at
    assert first == EPOCH + timedelta(minutes=5)
    system.clock.now = first - timedelta(seconds=5)
    # The tick sends a minute of runs, then dies before its claim.
    system.inject(FaultInjector().inject(1, "crash", op="UpdateItem"))
    system.tick()
    system.stop_faults()
    assert system.deaths.by_part["tick"] == 1
    # The runs it sent start on their seconds; then no tick comes for ten minutes.
    for _ in range(70):
        system.clock.now += timedelta(seconds=1)
        system.deliver()
    system.clock.now += timedelta(minutes=10)
    system.next_tick = system.clock.now
    report = system.dispatcher.tick(system.clock.now)
    system.next_tick += timedelta(seconds=60)
    system.run()
    runs = check_invariants(system, [job])
    finals = {t: attempts[-1] for (_, t), attempts in runs.items()}
    # The dead tick's window ended 55 s after the first run: six runs.
    sent = [f for t, f in finals.items() if t < first + timedelta(seconds=60)]
    assert len(sent) == 6 and {f.status for f in sent} == {"completed"}
    missed = [f for f in finals.values() if f.status == "missed"]
    # Counted once each, by the record that says so, and only what never ran.
    assert report.runs_missed == len(missed) > 0
    assert all(
        m.missed_count == 1 and m.scheduled_for >= first + timedelta(seconds=60) for m in missed
    )


# -- 5 --------------------------------------------------------------------------------------


def test_finding_5_a_missing_tick_runs_everything_still_inside_the_grace(system):
    job = system.create_job(
        job_type="interval",
        interval_seconds=10,
        start_time=(EPOCH + timedelta(minutes=5)).isoformat(),
        end_time=(EPOCH + timedelta(minutes=10)).isoformat(),
    )
    first = job.next_run_at
    # One tick missing: the next comes two minutes after the first run was due.
    system.clock.now = system.next_tick = first + timedelta(seconds=120)
    system.run()
    runs = check_invariants(system, [job])
    assert {attempts[-1].status for attempts in runs.values()} == {"completed"}
    assert min(t for (_, t) in runs) == first


# Starts are promised on the second: a run is missed only when later than its grace and a
# second (engine.lifecycle, GRACE_SLACK).
@pytest.mark.parametrize("late, status", [(4, "completed"), (6, "completed"), (6.5, "missed")])
def test_finding_5_a_run_is_missed_only_when_later_than_its_grace(system, late, status):
    job = _date_job(system, misfire_grace_seconds=5)
    system.clock.now = system.next_tick = EPOCH + timedelta(minutes=5, seconds=late)
    system.run()
    (attempts,) = check_invariants(system, [job]).values()
    assert attempts[-1].status == status


# -- 6 --------------------------------------------------------------------------------------


def test_finding_6_a_timed_out_task_never_overlaps_its_retry(system):
    ended: list[float] = []

    @registry.task("test.overruns", timeout=0.2)
    def overruns(ctx: Any) -> None:
        ctx.cancelled.wait(5)  # it notices the cancel...
        time.sleep(0.5)  # ...and takes a while to stop
        ended.append(time.monotonic())

    retry_written: list[float] = []

    def on_put(params: dict[str, Any], **_: Any) -> None:
        if params.get("Item", {}).get("sk", {}).get("S", "").endswith("#002"):
            retry_written.append(time.monotonic())

    try:
        job = _date_job(system, task_name="test.overruns", max_retries=1, retry_delay=0)
        system.db.meta.events.register("provide-client-params.dynamodb.PutItem", on_put)
        _at_run_time(system)
        system.tick()
        system.clock.now = EPOCH + timedelta(minutes=5)
        system.deliver()
        assert ended and retry_written
        assert retry_written[0] >= ended[0]  # the retry was written after the task stopped
        first = system.records()[0]
        assert first.error and first.error["type"] == "TaskTimeout"
    finally:
        system.db.meta.events.unregister("provide-client-params.dynamodb.PutItem", on_put)
        registry._tasks.pop("test.overruns", None)
    assert job


def test_finding_6_a_task_that_will_not_stop_ends_the_process_before_the_invocation(system):
    stuck: list[str] = []
    release = threading.Event()

    @registry.task("test.never_stops", timeout=0.1)
    def never_stops(ctx: Any) -> None:
        release.wait(10)

    system.worker._on_stuck = lambda reason: (stuck.append(reason), release.set())
    try:
        _date_job(system, task_name="test.never_stops")
        _at_run_time(system)
        system.tick()
        system.clock.now = EPOCH + timedelta(minutes=5)
        (body,) = system.sqs.visible(system.queue_url)
        system.worker.process(body, None, remaining=lambda: 5.0)
        assert stuck and "did not stop" in stuck[0]
    finally:
        release.set()
        registry._tasks.pop("test.never_stops", None)


# -- 7 --------------------------------------------------------------------------------------


def test_finding_7_job_writes_that_meet_a_transaction_conflict_are_retried(system):
    conflict = FaultInjector()
    for n in (1, 2):
        conflict.inject(
            n,
            "error",
            op="TransactWriteItems",
            code="TransactionCanceledException",
            reasons=["TransactionConflict", "None"],
        )
    system.inject(conflict)
    job = system.create_job(job_type="interval", interval_seconds=60)
    system.stop_faults()
    assert len(conflict.fired) == 2
    assert system.job(job.id).name == "job"
    assert system.store.counters.read(system.clock.now)["total_jobs"] == 1


def test_finding_7_unprocessed_keys_are_asked_again_until_none_is_left(system):
    for _ in range(3):
        system.create_job(job_type="interval", interval_seconds=60)
    system.inject(FaultInjector().inject(1, "partial", op="BatchGetItem", keep=1))
    listed = system.store.jobs.list_jobs(skip=0, limit=10)
    system.stop_faults()
    assert len(listed) == 3


# -- 8 --------------------------------------------------------------------------------------


def test_finding_8_one_job_the_tick_cannot_evaluate_does_not_stop_the_others(system):
    good = system.create_job(job_type="interval", interval_seconds=60)
    bad = system.create_job(job_type="interval", interval_seconds=60)
    stored = system.job(bad.id)
    broken = stored.model_copy(update={"cron_expression": "not cron", "job_type": "cron"})
    broken = broken.model_copy(update={"interval_seconds": None, "version": stored.version + 1})
    system.store.jobs.replace_job(stored, broken, reschedule=False)
    system.clock.now = good.next_run_at - timedelta(seconds=10)
    report = system.dispatcher.tick(system.clock.now)  # returns: it does not raise
    assert report.jobs_failed == 1 and report.jobs_dispatched == 1
    assert "cannot be evaluated" in (system.job(bad.id).schedule_error or "")
    # It is left alone for an hour, not retried (and failed) on every tick.
    assert system.dispatcher.tick(system.clock.now + timedelta(seconds=1)).jobs_failed == 0


# -- 9 --------------------------------------------------------------------------------------


def test_finding_9_deleting_a_job_with_a_long_history_returns_at_once_and_leaves_nothing(system):
    job = system.create_job(job_type="interval", interval_seconds=60)
    items = [
        {
            "PutRequest": {
                "Item": {
                    "pk": {"S": f"JOB#{job.id}"},
                    "sk": {"S": f"RUN#2029-01-01T00:00:{i // 1000:02d}.{i:06d}Z#001"},
                    "status": {"S": "completed"},
                }
            }
        }
        for i in range(2500)
    ]
    for start in range(0, len(items), 25):
        system.db.batch_write_item(
            RequestItems={system.store.table_name: items[start : start + 25]}
        )
    calls = FaultInjector()
    system.inject(calls)
    system.api.delete_job(job.id, system.clock.now)
    system.stop_faults()
    assert calls.count <= 3  # a read and one transaction, whatever the history holds
    with pytest.raises(Exception, match="Job not found"):
        system.api.get_job(job.id)
    assert system.store.jobs.list_jobs(skip=0, limit=10) == []
    assert system.store.counters.read(system.clock.now)["total_jobs"] == 0
    # The sweep removes the history a bounded part per tick, then the tombstone.
    system.run(until=timedelta(minutes=30), stop_when_quiet=False)
    left = system.db.query(
        TableName=system.store.table_name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"JOB#{job.id}"}},
    )["Items"]
    # Nothing but the fences of its runs sent ahead, which expire (chalicelib.snapshot).
    expiry = int((system.clock.now + snapshot.FENCE_KEPT).timestamp())
    assert all(is_fence(item) and int(item["expires_at"]["N"]) <= expiry for item in left)


def test_a_delivery_that_loses_the_race_to_start_keeps_its_message_until_the_run_is_over(system):
    """Found by the chaos soak: delivery B decided not to run (too late), but delivery A
    started the run in between; B's write was refused and B deleted its message anyway, so
    when A died nothing was left to bring the run back."""
    import boto3

    job = _date_job(system, misfire_grace_seconds=5)
    _at_run_time(system)
    system.tick()
    system.clock.now = EPOCH + timedelta(minutes=5, seconds=10)  # past the grace
    (body,) = system.sqs.visible(system.queue_url)
    raw = boto3.client("dynamodb", region_name="us-east-1")
    scheduled_for = EPOCH + timedelta(minutes=5)
    started = system.dispatcher._execution(system.job(job.id), scheduled_for, system.clock.now)
    lease = system.clock.now + timedelta(seconds=90)
    racing = started.model_copy(
        update={"status": "running", "lease_owner": "a", "lease_until": lease}
    )

    def a_starts_first(params: dict[str, Any], **_: Any) -> None:
        system.db.meta.events.unregister("provide-client-params.dynamodb.PutItem", a_starts_first)
        from chalicelib.store.items import execution_item

        raw.put_item(TableName=system.store.table_name, Item=execution_item(racing))

    system.db.meta.events.register("provide-client-params.dynamodb.PutItem", a_starts_first)
    verdict = system.worker.process(body)
    # B's "missed" was refused: the run is A's, and B's message comes back after A's lease.
    assert verdict == Later(91.0)
    (record,) = system.records()
    assert record.status == "running"


def test_a_forbid_run_starts_after_the_slot_it_took(system):
    job = _date_job(system, concurrency_policy="forbid")
    _at_run_time(system)
    system.tick()
    system.clock.now = EPOCH + timedelta(minutes=5)
    took_slot_at: list[Any] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        if "#r.#k = :lease" in params.get("UpdateExpression", ""):
            took_slot_at.append(system.clock.now)
            system.clock.now += timedelta(seconds=2)  # the slot write took two seconds

    system.db.meta.events.register("provide-client-params.dynamodb.UpdateItem", note)
    try:
        system.deliver()
    finally:
        system.db.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", note)
    (record,) = [r for r in system.records() if r.job_id == job.id]
    assert took_slot_at and record.started_at is not None
    assert record.started_at >= took_slot_at[0] + timedelta(seconds=2)


# -- found by the chaos soak: a change to a job drops no run that was due before it -----------


def _overdue_interval_job(system: System) -> tuple[Any, list[Any]]:
    """A 10 s interval job whose first four runs are due and no tick has reached them."""
    job = system.create_job(
        job_type="interval",
        interval_seconds=10,
        start_time=(EPOCH + timedelta(minutes=5)).isoformat(),
    )
    due = [job.next_run_at + timedelta(seconds=10 * i) for i in range(4)]
    system.clock.now = due[-1] + timedelta(seconds=5)  # the tick is late
    system.next_tick = system.clock.now + timedelta(seconds=30)
    return job, due


def test_pausing_a_job_the_tick_has_not_reached_keeps_a_record_of_every_run_due_before(system):
    job, due = _overdue_interval_job(system)
    paused_at = system.clock.now
    system.api.pause_job(job.id, paused_at)
    system.run()
    runs = check_invariants(system, [job])
    before = sorted(t for (_, t) in runs if t <= paused_at)
    assert before == due
    # Due while active, not started before the pause: skipped, and said why.
    assert {runs[(job.id, t)][-1].status for t in due} == {"skipped"}


def test_rescheduling_a_job_the_tick_has_not_reached_still_runs_what_was_due_before(system):
    job, due = _overdue_interval_job(system)
    changed_at = system.clock.now
    system.api.update_job(job.id, {"interval_seconds": 3600}, changed_at)
    system.run()
    runs = check_invariants(system, [job])
    assert sorted(t for (_, t) in runs if t <= changed_at) == due
    assert {runs[(job.id, t)][-1].status for t in due} == {"completed"}
    # And the new schedule (hourly from the job's start) applies from the change on.
    assert system.job(job.id).next_run_at == due[0] + timedelta(hours=1)


def test_a_pause_that_cannot_send_the_runs_due_before_it_is_refused_and_changes_nothing(system):
    from chalicelib.errors import Unavailable

    job, due = _overdue_interval_job(system)
    injector = system.inject(
        FaultInjector().randomly(1.0, "error", op="SendMessageBatch", code="InternalError")
    )
    with pytest.raises(Unavailable):
        system.api.pause_job(job.id, system.clock.now)
    system.stop_faults()
    assert injector.fired
    stored = system.job(job.id)
    assert stored.is_active and stored.next_run_at == due[0]
    system.api.pause_job(job.id, system.clock.now)
    system.run()
    assert sorted(t for (_, t) in check_invariants(system, [job])) == due
