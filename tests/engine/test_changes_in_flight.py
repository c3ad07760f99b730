"""A change (a pause, a PUT, a delete) written while a worker is between reading the job and
starting its run: the change's own transaction fences the runs in flight, so that the start
is refused and the run decides again with the job read (JobService._in_flight,
snapshot.in_flight). No run starts after a pause from the job as it was before it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.store.items import job_key
from chalicelib.tasks import registry
from tests.engine.harness import EPOCH, System, check_invariants

RAN: list[tuple[datetime, dict[str, Any]]] = []


@registry.task("test.in_flight")
def in_flight(ctx: Any, **kwargs: Any) -> None:
    RAN.append((ctx.scheduled_for, kwargs))


@pytest.fixture(autouse=True)
def _fresh() -> None:
    RAN.clear()


def after_the_workers_read(system: System, job_id: int, change: Callable[[], Any]) -> None:
    """Make `change` once, right after the next consistent read of job `job_id` (the
    worker's, deciding its run) has been answered, before the worker writes anything."""
    key = job_key(job_id)
    asked: list[bool] = []

    def note(params: dict[str, Any], **_: Any) -> None:
        asked.append(params.get("Key") == key and bool(params.get("ConsistentRead")))

    def then(**_: Any) -> None:
        if asked and asked.pop() and not done:
            done.append(True)
            change()

    done: list[bool] = []
    system.db.meta.events.register("provide-client-params.dynamodb.GetItem", note)
    system.db.meta.events.register("after-call.dynamodb.GetItem", then)


def every_10s(system: System) -> Any:
    """A job whose runs are not fenced before a change (snapshot.eligible: its dead-man's
    switch), so that only the change's own fences stand between a read and a start."""
    return system.create_job(
        expect_success_within=3600,
        job_type="interval",
        interval_seconds=10,
        start_time=(EPOCH + timedelta(minutes=2)).isoformat(),
        task_name="test.in_flight",
        task_kwargs={"label": "old"},
    )


def sent_then_due(system: System) -> None:
    system.clock.now = EPOCH + timedelta(minutes=1, seconds=30)
    system.tick()  # sends the runs from 2:00 on, ahead
    system.clock.now = EPOCH + timedelta(minutes=2)


def test_a_pause_written_between_a_workers_read_and_its_start_stops_that_run(system):
    job = every_10s(system)
    sent_then_due(system)
    after_the_workers_read(system, job.id, lambda: system.api.pause_job(job.id, system.clock.now))
    system.deliver()
    assert system.job(job.id).paused_at == system.clock.now
    assert RAN == []
    system.run(until=timedelta(minutes=20))
    check_invariants(system, [job])
    assert RAN == []


def test_a_put_written_between_a_workers_read_and_its_start_gives_that_run_its_arguments(system):
    job = every_10s(system)
    sent_then_due(system)
    put = {"task_kwargs": {"label": "new"}}
    after_the_workers_read(
        system, job.id, lambda: system.api.update_job(job.id, put, system.clock.now)
    )
    system.deliver()
    (ran,) = RAN
    assert ran == (EPOCH + timedelta(minutes=2), {"label": "new"})


def test_a_delete_written_between_a_workers_read_and_its_start_stops_that_run(system):
    job = every_10s(system)
    sent_then_due(system)
    after_the_workers_read(system, job.id, lambda: system.api.delete_job(job.id, system.clock.now))
    system.deliver()
    system.run(until=timedelta(minutes=20))
    assert RAN == []


def test_a_run_that_started_first_keeps_its_record_and_the_pause_is_written(system):
    job = every_10s(system)
    sent_then_due(system)
    system.deliver()  # 2:00 starts (and ends) before the pause
    assert [t for t, _ in RAN] == [EPOCH + timedelta(minutes=2)]
    system.clock.now += timedelta(seconds=1)
    paused = system.api.pause_job(job.id, system.clock.now)
    assert paused.paused_at == system.clock.now
    system.run(until=timedelta(minutes=20))
    runs = check_invariants(system, [job])
    assert runs[(job.id, EPOCH + timedelta(minutes=2))][-1].status == "completed"
    assert [t for t, _ in RAN] == [EPOCH + timedelta(minutes=2)]
