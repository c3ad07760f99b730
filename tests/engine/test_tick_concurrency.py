"""The tick with its calls in flight at once: each run sent once and claimed once, a second
tick beside it doubles nothing, the limit defers the lowest priority, and a fault at any call
of a concurrent tick loses and doubles nothing.

Every test here makes DynamoDB requests from several threads, so each answers them one at a
time, as DynamoDB applies each request atomically (`atomic_dynamodb`; in-process moto does
not). None depends on the threads' timing: the outcome must be the same in any order.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from botocore.exceptions import ReadTimeoutError

from chalicelib.engine.tick import Dispatcher, TickReport
from chalicelib.models import Job
from tests.engine.conftest import Engine, body_of, sent_bodies
from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector


def run_identities(bodies: list[str]) -> Counter[tuple[int, str]]:
    return Counter((body_of(b)["job_id"], body_of(b)["scheduled_for"]) for b in bodies)


def settle(engine: Engine) -> int:
    """Deliver every message to the worker until none is left; how many were handled."""
    handled = 0
    while bodies := engine.receive():
        for body in bodies:
            engine.worker.process(body)
            handled += 1
    return handled


@pytest.fixture
def concurrent(engine: Engine, atomic_dynamodb: None) -> Engine:
    # The window alone, as the engine fixture's dispatcher: claims ahead have their own tests
    # (test_claims_ahead), and the counts below are the window's runs.
    engine.dispatcher = Dispatcher(
        engine.store, engine.queue, concurrency=8, claim_ahead=timedelta(0)
    )
    return engine


def test_a_tick_with_eight_calls_at_once_sends_and_claims_each_of_200_runs_once(concurrent):
    engine = concurrent
    jobs = engine.add_jobs(150) + engine.add_jobs(50, interval_seconds=20)
    reports: list[TickReport] = []
    bodies = sent_bodies(engine, lambda: reports.append(engine.dispatcher.tick(engine.clock.now)))
    (report,) = reports
    # 150 hourly jobs with one run in the window, 50 with a run every 20 s: 4 each.
    assert (report.jobs_dispatched, report.runs_sent, report.jobs_failed) == (200, 350, 0)
    sent = run_identities(bodies)
    assert len(sent) == 350 and set(sent.values()) == {1}
    for job in jobs:
        stored = engine.job(job.id)
        step = timedelta(seconds=job.interval_seconds or 0)
        runs = 1 if step == timedelta(hours=1) else 4
        assert stored.next_run_at == job.next_run_at + runs * step
        assert stored.version == job.version + 1


def test_two_concurrent_ticks_at_once_give_each_run_one_execution(concurrent):
    engine = concurrent
    jobs = engine.add_jobs(120)
    reports: list[TickReport] = []
    start = threading.Barrier(2)

    def tick() -> None:
        start.wait()
        reports.append(engine.dispatcher.tick(engine.clock.now))

    ticks = [threading.Thread(target=tick) for _ in range(2)]
    for thread in ticks:
        thread.start()
    for thread in ticks:
        thread.join()
    # Each job is claimed by one tick; the other's claim fails, or it read the job claimed.
    assert sum(r.jobs_dispatched for r in reports) == 120
    assert sum(r.jobs_failed for r in reports) == 0
    # A message sent by both ticks is a duplicate the worker's conditional start drops.
    assert settle(engine) >= 120
    runs = engine.executions()
    assert len({(r.job_id, r.scheduled_for) for r in runs}) == len(runs) == 120
    assert Counter(r.status for r in runs) == Counter({"completed": 120})
    assert engine.stats()["total_executions"] == 120
    for job in jobs[:10]:
        assert engine.job(job.id).next_run_at == job.next_run_at + timedelta(hours=1)


def test_more_due_runs_than_the_limit_sends_the_highest_priority_now_and_the_rest_next_tick(
    concurrent, monkeypatch, capsys, caplog
):
    engine = concurrent
    monkeypatch.setenv("NEXUS_METRICS", "on")
    low = engine.add_jobs(30, priority=1)
    middle = engine.add_jobs(10, priority=5)
    high = engine.add_jobs(20, priority=9)
    engine.dispatcher.max_runs_per_tick = 25
    with caplog.at_level(logging.WARNING, logger="nexus.dispatch"):
        first = engine.dispatcher.tick(engine.clock.now)
    # The 20 of priority 9 and 5 of the 10 of priority 5 go; the other 35 wait, untouched.
    assert (first.runs_sent, first.deferred) == (25, 35)
    sent = {body_of(b)["job_id"] for b in engine.receive()}
    assert {j.id for j in high} <= sent and not sent & {j.id for j in low}
    assert len(sent & {j.id for j in middle}) == 5
    waiting = [j for j in low + middle if j.id not in sent]
    assert all(engine.job(j.id).next_run_at == j.next_run_at for j in waiting)
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert [m["JobsDeferred"] for m in metrics if "JobsDeferred" in m] == [35]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "next tick" in warning.getMessage() and warning.deferred == 35
    second = engine.dispatcher.tick(engine.clock.now)
    assert (second.runs_sent, second.deferred) == (25, 10)
    third = engine.dispatcher.tick(engine.clock.now)
    assert (third.runs_sent, third.deferred) == (10, 0)
    everything = run_identities(engine.receive())
    assert len(everything) == 35 and set(everything.values()) == {1}
    assert {job_id for job_id, _ in everything} == {j.id for j in waiting}


# -- faults ---------------------------------------------------------------------------------

JOBS = 12


@pytest.fixture
def fresh_system(aws: None, atomic_dynamodb: None) -> Iterator[Callable[[], System]]:
    """A new table and queue per call, with a tick of 4 calls at once."""
    made = itertools.count(1)

    def make() -> System:
        system = System(f"tick-faults-{next(made)}")
        system.dispatcher.concurrency = 4
        return system

    yield make


def play(system: System, faults: FaultInjector) -> int:
    """12 one-off jobs due at once; a tick under `faults`, then the system recovers alone.
    How many calls the faulty part made."""
    at = EPOCH + timedelta(minutes=5)
    jobs: list[Job] = [
        system.create_job(job_type="date", scheduled_time=at.isoformat(), priority=i % 3)
        for i in range(JOBS)
    ]
    system.clock.now = at - timedelta(seconds=30)
    system.inject(faults)
    try:
        system.tick()
    except ReadTimeoutError:
        # The index read timed out before anything was done: the invocation fails (Lambda
        # records it), and the next tick goes on. Past that read, a job's error is its own.
        assert faults.fired[0].call <= 8, "an error past the index read stopped the tick"
    system.stop_faults()
    system.next_tick = system.clock.now + timedelta(seconds=60)
    system.run(until=timedelta(hours=1))
    runs = check_invariants(system, jobs)
    assert sorted(job_id for job_id, _ in runs) == sorted(j.id for j in jobs), "a run was lost"
    for attempts in runs.values():
        assert [a.status for a in attempts] == ["completed"]
    return faults.count


@pytest.mark.parametrize(
    "kind, fields",
    [
        ("crash", {}),
        ("crash_after", {}),
        ("error", {"code": "InternalServerError"}),
        ("timeout_after", {}),
    ],
)
def test_a_fault_at_any_call_of_a_concurrent_tick_loses_and_doubles_nothing(
    fresh_system, kind, fields
):
    calls = play(fresh_system(), FaultInjector())
    # The index's 8 shards, the jobs' read (one BatchGetItem), per job its claim, the sends.
    assert calls >= 8 + 1 + JOBS
    failures = []
    for n in range(1, calls + 1):
        try:
            play(fresh_system(), FaultInjector().inject(n, kind, **fields))
        except AssertionError as exc:
            failures.append(f"call {n} ({kind}): {exc}")
    assert not failures, "\n".join(failures)


def test_a_crash_in_one_thread_ends_the_tick_before_anything_later_is_sent_or_claimed(
    fresh_system,
):
    """The crash comes out of tick() as the process would die; the jobs after it in
    priority order are neither sent nor claimed, and the next tick sends every run once."""
    system = fresh_system()
    at = EPOCH + timedelta(minutes=5)
    jobs = [system.create_job(job_type="date", scheduled_time=at.isoformat()) for _ in range(JOBS)]
    system.clock.now = at - timedelta(seconds=30)
    # The jobs' read together fails, so each job's task reads its own, in the pool's threads.
    faults = system.inject(
        FaultInjector()
        .inject(1, "error", op="BatchGetItem", code="ValidationException")
        .inject(3, "crash", op="GetItem")
    )
    system.tick()
    system.stop_faults()
    assert system.deaths.by_part["tick"] == 1
    # Commits start from 10 runs on: the reads of jobs before the crash's were not enough.
    assert not [op for op in faults.calls if op.endswith(("SendMessageBatch", "UpdateItem"))]
    assert all(system.job(j.id).next_run_at == at for j in jobs)
    assert system.queues_empty()
    report = system.dispatcher.tick(system.clock.now)
    assert (report.runs_sent, report.jobs_dispatched) == (JOBS, JOBS)
