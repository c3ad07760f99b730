"""A scheduled run's first delivery starts it without reading its record first (a read unit a
run): the start is a put only where no record is. A repeat of the message (a duplicate, or one
back after its worker died) finds the put refused, and is decided again with the record read,
as it always was (engine.worker, _first_delivery)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector


def _date_job(system: System, **fields: Any) -> Any:
    return system.create_job(
        job_type="date", scheduled_time=(EPOCH + timedelta(minutes=5)).isoformat(), **fields
    )


def _at_run_time(system: System) -> None:
    system.clock.now = system.next_tick = EPOCH + timedelta(minutes=4, seconds=30)


class KeysRead:
    """The sort keys of the items GetItem reads, as the calls are made."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.keys.append(params["Key"]["sk"]["S"])


def test_a_scheduled_run_is_started_and_finished_without_a_read_of_its_record(system):
    job = _date_job(system)
    _at_run_time(system)
    reads = KeysRead()
    system.db.meta.events.register("provide-client-params.dynamodb.GetItem", reads)
    try:
        system.run()
    finally:
        system.db.meta.events.unregister("provide-client-params.dynamodb.GetItem", reads)
    (attempts,) = check_invariants(system, [job]).values()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "completed")]
    assert not [key for key in reads.keys if key.startswith("RUN#")]
    # Nor its job: the message carries it (chalicelib.snapshot; tests/engine/test_snapshot.py).
    assert "JOB" not in reads.keys


def test_a_message_delivered_twice_runs_its_task_once(system):
    duplicated = System("nexus-system-twice", duplicate_every_delivery=True)
    job = _date_job(duplicated, task_name="nexus.fail", max_retries=1, retry_delay=1)
    _at_run_time(duplicated)
    duplicated.run()
    (attempts,) = check_invariants(duplicated, [job]).values()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "failed")]


def _worker_dies_once_then_recovers(system: System, fault: FaultInjector) -> None:
    system.tick()
    system.inject(fault)
    system.run()
    assert fault.fired and system.deaths.by_part["worker"] == 1
    system.stop_faults()
    system.run()


def test_a_failed_run_whose_worker_died_after_its_outcome_is_retried_when_its_message_is_back(
    system,
):
    job = _date_job(system, task_name="nexus.fail", max_retries=1, retry_delay=1)
    _at_run_time(system)
    # The worker dies right after F1 (its outcome, the first update it makes), before R.
    _worker_dies_once_then_recovers(
        system, FaultInjector().inject(1, "crash_after", op="UpdateItem")
    )
    (attempts,) = check_invariants(system, [job]).values()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed"), (2, "failed")]


def test_a_run_whose_worker_died_is_taken_over_after_its_lease_though_past_its_grace(system):
    # Back after the lease (the task's 60 s and a 30 s margin), the run is later than its
    # 10 s grace: a first delivery would record it missed, but its put is refused, and the
    # record read then shows a run to take over, not one to miss (nor to come back for).
    job = _date_job(system, misfire_grace_seconds=10)
    _at_run_time(system)
    # The worker dies right after S0.
    _worker_dies_once_then_recovers(system, FaultInjector().inject(1, "crash_after", op="PutItem"))
    (attempts,) = check_invariants(system, [job]).values()
    echoed = {"args": [], "kwargs": {}}
    assert [(a.attempt, a.status, a.result) for a in attempts] == [(1, "completed", echoed)]
    assert attempts[0].started_at is not None
    assert attempts[0].started_at - attempts[0].scheduled_for > timedelta(seconds=90)
