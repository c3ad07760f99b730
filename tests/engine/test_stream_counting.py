"""Runs are counted in the stats from the table's change stream: a final record carries what
it counts, the stream handler adds it (store.counters), once, whatever is given to it again
and wherever it dies."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.models import Job
from chalicelib.store.counters import COUNTED_AT, COUNTS, counted_runs
from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector


def _system() -> System:
    return System("counted")


def _failing_runs(system: System) -> Job:
    """A job that runs twice, failing for good each time (no retries)."""
    return system.create_job(
        job_type="interval",
        interval_seconds=60,
        task_name="nexus.fail",
        max_retries=0,
        end_time=(EPOCH + timedelta(minutes=2, seconds=30)).isoformat(),
    )


def test_a_finished_run_is_counted_from_its_record_after_the_stream_handler_has_its_change(aws):
    system = _system()
    system.create_job(job_type="date", scheduled_time=(EPOCH + timedelta(minutes=1)).isoformat())
    system.run()
    (run,) = system.records()
    assert run.status == "completed"
    raw = system.db.get_item(
        TableName=system.store.table_name,
        Key={"pk": {"S": f"JOB#{run.job_id}"}, "sk": {"S": run.run_key}},
    )["Item"]
    assert raw[COUNTS]["M"]["successful_executions"] == {"N": "1"}
    assert raw[COUNTED_AT]["S"].startswith(f"{EPOCH:%Y-%m-%d}")
    stats = system.stats()
    assert (stats["total_executions"], stats["successful_executions"]) == (1, 1)
    assert stats["last_24h_executions"] == 1


def test_every_batch_given_to_the_stream_handler_again_counts_nothing_more(aws):
    system = _system()
    _failing_runs(system)
    batches: list[list[dict[str, Any]]] = []
    drain = system.stream.drain
    system.stream.drain = lambda handler: drain(  # type: ignore[method-assign]
        lambda records: (batches.append(records), handler(records))
    )
    system.run(until=timedelta(minutes=5))
    counted = system.store.counters.read(system.clock.now)
    for records in batches:  # Lambda's retry of each, after a failure once it had counted
        system.store.counters.count_changes(records)
    assert system.store.counters.read(system.clock.now) == counted
    finished = [r for r in system.records() if r.status in ("completed", "failed")]
    assert counted["total_executions"] == counted["failed_executions"] == len(finished) == 2


@pytest.mark.parametrize("kind", ["crash", "crash_after"])
def test_a_stream_handler_that_dies_at_its_count_counts_once_when_given_the_batch_again(aws, kind):
    """Before its write (nothing counted) or after it landed (its token makes the write
    again a no-op)."""
    system = _system()
    job = _failing_runs(system)
    system.inject(FaultInjector().inject(1, kind, op="TransactWriteItems"))
    system.run(until=timedelta(minutes=5))
    system.stop_faults()
    assert system.deaths.by_part["stream"] == 1
    check_invariants(system, [job])  # the stats equal the history


def _record(name: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> dict[str, Any]:
    change: dict[str, Any] = {}
    if new is not None:
        change["NewImage"] = new
    if old is not None:
        change["OldImage"] = old
    return {"eventID": name, "eventName": "MODIFY", "dynamodb": change}


FINAL = {
    "status": {"S": "completed"},
    COUNTS: {"M": {"total_executions": {"N": "1"}, "duration_sum": {"N": "0.25"}}},
    COUNTED_AT: {"S": "2030-01-07T12:00:01.000000Z"},
}
RUNNING = {"status": {"S": "running"}}


def test_a_record_counts_at_the_change_that_gave_it_its_counts_and_at_no_other():
    entries = counted_runs(
        [
            _record("started", RUNNING, None),
            _record("finished", FINAL, RUNNING),
            _record("put final", FINAL, None),
            _record("rewritten", {**FINAL, "note": {"S": "x"}}, FINAL),
            _record("expired", None, FINAL),
        ]
    )
    assert [counts for _, counts in entries] == [
        {"total_executions": 1, "duration_sum": 0.25},
        {"total_executions": 1, "duration_sum": 0.25},
    ]
    assert {at.isoformat() for at, _ in entries} == {"2030-01-07T12:00:01+00:00"}
