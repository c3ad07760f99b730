"""Backfills (issue 13, item 1) on the whole engine on a virtual clock: the tick, the worker
with the `backfill` control handler, the queue, moto's DynamoDB; and a crash at every AWS call
a backfill makes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.engine.backfill import (
    CHECK_MARGIN,
    CONTROL,
    COUNT_LIMIT,
    DUE_PREFIX,
    RATE_PER_SECOND,
    Backfills,
    window_occurrences,
)
from chalicelib.engine.control import Controls
from chalicelib.engine.lifecycle import execution_id, task_id
from chalicelib.engine.tick import Dispatcher
from chalicelib.engine.worker import Worker
from chalicelib.models import Execution, Job
from chalicelib.service import JobService
from chalicelib.store.backfills import Backfill, backfill_from_item
from chalicelib.tasks import registry
from tests.conftest import FIGURES
from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector

# The system whose clock the slow task moves (a task cannot see the test).
CURRENT: list[System] = []


@registry.task("test.backfill_slow", timeout=60)
def backfill_slow(ctx: Any, seconds: float = 3) -> str:
    """Takes `seconds` of the system's virtual time."""
    CURRENT[-1].clock.sleep(seconds)
    return "slow"


class Wired:
    """A System whose worker handles `backfill` control messages and whose tick meets the
    backfills' due entries (the wiring app.py makes)."""

    def __init__(self, system: System, rate: float = RATE_PER_SECOND) -> None:
        self.system = system
        self.backfills = Backfills(
            system.store, system.queue, retention=timedelta(days=90), rate=rate
        )
        # Faults for the backfill's own calls only (its request, steps and due checks).
        self.faults: FaultInjector | None = None
        controls = Controls()
        controls.register(CONTROL, self._faulty(self.backfills.handle))
        system.worker = Worker(
            system.store,
            system.queue,
            registry,
            clock=system.clock,
            sleep=system.clock.sleep,
            rng=lambda: 0.0,
            on_stuck=lambda reason: None,
            controls=controls,
        )
        system.dispatcher = Dispatcher(
            system.store,
            system.queue,
            monotonic=lambda: 0.0,
            on_due={DUE_PREFIX: self._faulty(self.backfills.on_due)},
        )
        system.api = JobService(system.store, registry, system.dispatcher, system.queue, system.sqs)
        CURRENT.append(system)

    def _faulty(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """`call` with `faults` attached to the system's clients while it runs."""

        def run(*args: Any) -> Any:
            if self.faults is None:
                return call(*args)
            self.faults.attach(self.system.db, self.system.sqs)
            try:
                return call(*args)
            finally:
                self.faults.detach()

        return run

    @property
    def now(self) -> datetime:
        return self.system.clock.now

    def job(self, **fields: Any) -> Job:
        """A paused every-minute job (a backfill runs even so; its own runs stay quiet)."""
        return self.system.create_job(
            job_type="cron", cron_expression="* * * * *", is_active=False, **fields
        )

    def ask(self, job: Job, minutes: int = 10, **fields: Any) -> tuple[int, dict[str, Any]]:
        """A backfill of the last `minutes` whole minutes before now (one occurrence each)."""
        body = {
            "start": (self.now - timedelta(minutes=minutes)).isoformat(),
            "end": (self.now - timedelta(minutes=1)).isoformat(),
            **fields,
        }
        answer: tuple[int, dict[str, Any]] = self._faulty(self.backfills.request)(
            job.id, body, self.now
        )
        return answer

    def item(self, answer: dict[str, Any]) -> Backfill:
        found = self.system.store.backfills.get(answer["job_id"], answer["backfill_id"])
        assert found is not None
        return found

    def all_backfills(self) -> list[Backfill]:
        """Every backfill item (a Scan: fine in a test)."""
        items = self.system.db.scan(TableName=self.system.store.table_name)["Items"]
        return [backfill_from_item(i) for i in items if i["sk"]["S"].startswith(DUE_PREFIX)]

    def runs(self, job: Job) -> list[Execution]:
        return sorted(
            (r for r in self.system.records() if r.job_id == job.id),
            key=lambda r: (r.scheduled_for, r.attempt),
        )


@pytest.fixture
def wired(aws: None) -> Iterator[Callable[..., Wired]]:
    """A new table and queue per call."""
    made = itertools.count(1)

    def make(rate: float = RATE_PER_SECOND, **options: Any) -> Wired:
        return Wired(System(f"backfill-{next(made)}", **options), rate)

    yield make
    CURRENT.clear()


def minutes_before(now: datetime, minutes: int, last: int = 1) -> list[datetime]:
    return [now - timedelta(minutes=m) for m in range(minutes, last - 1, -1)]


# -- the window -----------------------------------------------------------------------------


class EveryMinuteOffAtEvenMinutes:
    """A schedule as calendars and blackouts make it: `decide(t)` has no time (`at` None)
    for an occurrence they exclude."""

    def next_after(self, after: datetime) -> datetime | None:
        return after.replace(second=0, microsecond=0) + timedelta(minutes=1)

    def decide(self, t: datetime) -> Any:
        return SimpleNamespace(at=None if t.minute % 2 == 0 else t)


def test_occurrences_a_calendar_excludes_are_left_out_and_counted():
    start = EPOCH - timedelta(minutes=10)
    window = window_occurrences(EveryMinuteOffAtEvenMinutes(), start, EPOCH - timedelta(minutes=1))
    assert window.occurrences == [t for t in minutes_before(EPOCH, 10) if t.minute % 2]
    assert (window.excluded, window.counted, window.more) == (5, 5, False)


def test_a_window_is_counted_past_the_limit_then_cut_short():
    start = EPOCH - timedelta(days=30)
    schedule = EveryMinuteOffAtEvenMinutes()
    window = window_occurrences(schedule, start, EPOCH, limit=3)
    assert len(window.occurrences) == 3
    assert window.counted + window.excluded == COUNT_LIMIT and window.more


# -- runs ---------------------------------------------------------------------------------


def test_a_backfill_of_10_occurrences_makes_10_runs_each_once(wired):
    w = wired()
    job = w.job()
    status, answer = w.ask(job)
    assert status == 202
    assert (answer["occurrences"], answer["status"], answer["sent"]) == (10, "running", 0)
    w.system.run(until=timedelta(minutes=10))
    runs = w.runs(job)
    assert [r.scheduled_for for r in runs] == minutes_before(EPOCH, 10)
    assert {(r.status, r.trigger, r.attempt, r.backfill_id) for r in runs} == {
        ("completed", "backfill", 1, answer["backfill_id"])
    }
    assert all(r.overlap == "allow" for r in runs)
    assert all(r.task_id == task_id(job.id, r.scheduled_for) for r in runs)
    done = w.item(answer)
    assert (done.status, done.position, done.sent, done.existing, done.skipped) == (
        "done",
        10,
        10,
        0,
        0,
    )
    assert done.cursor == EPOCH - timedelta(minutes=1)
    check_invariants(w.system, [job])


def test_asking_twice_for_the_same_window_runs_nothing_new(wired):
    w = wired()
    job = w.job()
    body = {
        "start": (EPOCH - timedelta(minutes=10)).isoformat(),
        "end": (EPOCH - timedelta(minutes=1)).isoformat(),
    }
    _, first = w.backfills.request(job.id, body, w.now)
    w.system.run(until=timedelta(minutes=10))
    _, second = w.backfills.request(job.id, body, w.now)
    w.system.run(until=timedelta(minutes=10))
    assert len(w.runs(job)) == 10
    again = w.item(second)
    assert (again.status, again.sent, again.existing) == ("done", 0, 10)
    assert w.system.store.backfills.outcomes(again) == {}
    assert w.system.store.backfills.outcomes(w.item(first)) == {"completed": 10}


def test_an_occurrence_whose_scheduled_run_exists_is_not_run_again(wired):
    w = wired()
    job = w.job()
    ran = EPOCH - timedelta(minutes=4)
    w.system.store.runs.put_final(
        Execution(
            id=execution_id(job.id, ran, 1),
            job_id=job.id,
            status="completed",
            trigger="scheduled",
            scheduled_for=ran,
            task_id=task_id(job.id, ran),
            task_name=job.task_name,
            created_at=ran,
            completed_at=ran,
        )
    )
    _, answer = w.ask(job)
    w.system.run(until=timedelta(minutes=10))
    runs = w.runs(job)
    assert len(runs) == 10
    (scheduled,) = [r for r in runs if r.scheduled_for == ran]
    assert (scheduled.trigger, scheduled.backfill_id) == ("scheduled", None)
    done = w.item(answer)
    assert (done.sent, done.existing) == (9, 1)


@pytest.mark.parametrize("rate", [RATE_PER_SECOND, 0.5], ids=["default", "a deployment's 0.5"])
def test_runs_start_at_most_rate_a_second(wired, rate):
    w = wired(rate)
    job = w.job()
    w.ask(job, minutes=30)
    w.system.run(until=timedelta(minutes=10))
    runs = w.runs(job)
    assert len(runs) == 30
    slots = sorted(r.not_before for r in runs if r.not_before is not None)
    assert len(slots) == 30
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 1 / rate - 1e-6, gaps
    starts = sorted(r.started_at for r in runs if r.started_at is not None)
    # Thirty runs at five a second take at least six seconds (at 0.5, 58 seconds).
    assert (starts[-1] - starts[0]).total_seconds() >= (30 - 1) / rate - 1e-6
    for first in starts:
        window = [s for s in starts if first <= s < first + timedelta(seconds=1)]
        assert len(window) <= max(1, rate)


def test_a_backfill_runs_while_its_job_is_paused_and_stays_out_of_its_schedule(wired):
    w = wired()
    job = w.job()
    w.ask(job, minutes=3)
    w.system.run(until=timedelta(minutes=10))
    assert [r.status for r in w.runs(job)] == ["completed"] * 3
    stored = w.system.job(job.id)
    assert (stored.is_active, stored.next_run_at) == (False, None)


def test_skip_runs_are_skipped_while_another_run_of_the_job_is_running(wired):
    w = wired()
    job = w.job()
    # Another run of the job is running (on another worker) the whole time.
    holder = "RUN#elsewhere#001"
    assert w.system.store.jobs.take_slot(
        job, holder, w.now + timedelta(hours=1), w.now, exclusive=False
    )
    _, skipping = w.ask(job, minutes=3, overlap="skip")
    w.system.run(until=timedelta(minutes=5))
    runs = w.runs(job)
    assert [(r.status, r.overlap) for r in runs] == [("skipped", "skip")] * 3
    assert w.system.store.backfills.outcomes(w.item(skipping)) == {"skipped": 3}


def test_allow_runs_run_beside_another_run_of_the_job(wired):
    w = wired()
    job = w.job()
    holder = "RUN#elsewhere#001"
    assert w.system.store.jobs.take_slot(
        job, holder, w.now + timedelta(hours=1), w.now, exclusive=False
    )
    w.ask(job, minutes=3, overlap="allow")
    w.system.run(until=timedelta(minutes=5))
    assert [r.status for r in w.runs(job)] == ["completed"] * 3


def test_buffer_all_runs_one_at_a_time_each_after_the_previous_ended(wired):
    w = wired()
    job = w.job(task_name="test.backfill_slow", task_kwargs={"seconds": 3})
    _, answer = w.ask(job, minutes=4, overlap="buffer_all")
    w.system.run(until=timedelta(minutes=10))
    runs = w.runs(job)
    assert [r.status for r in runs] == ["completed"] * 4
    for before, after in itertools.pairwise(runs):
        assert before.completed_at is not None and after.not_before is not None
        # Sent only once the one before had ended: it could not start earlier.
        assert after.not_before >= before.completed_at
    assert w.item(answer).sent == 4


def test_a_dry_run_lists_the_occurrences_and_writes_nothing(wired):
    w = wired()
    job = w.job()
    before = w.system.db.scan(TableName=w.system.store.table_name)["Count"]
    status, answer = w.ask(job, minutes=3, dry_run=True)
    assert status == 200
    assert answer == {
        "occurrences": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in minutes_before(EPOCH, 3)],
        "excluded": 0,
    }
    assert w.system.db.scan(TableName=w.system.store.table_name)["Count"] == before
    assert w.system.queues_empty()


def test_a_window_without_occurrences_is_done_at_once(wired):
    w = wired()
    job = w.system.create_job(
        job_type="cron", cron_expression="0 3 * * *", is_active=False
    )  # 03:00 daily
    status, answer = w.ask(job, minutes=30)
    assert status == 202
    assert (answer["occurrences"], answer["status"]) == (0, "done")
    assert w.system.queues_empty()
    assert not w.system.store.jobs.query_due(w.now + timedelta(days=1))


def test_a_deleted_job_ends_its_backfill_with_the_rest_skipped(wired):
    w = wired()
    job = w.job()
    _, answer = w.ask(job, minutes=20)
    w.system.deliver()  # the first step: five runs sent
    w.system.api.delete_job(job.id, w.now)
    w.system.run(until=timedelta(minutes=30))
    done = w.item(answer)
    assert (done.status, done.reason) == ("done", "the job was deleted")
    assert done.sent + done.skipped == 20 and done.skipped > 0


def test_a_lost_step_message_is_sent_again_by_the_tick(wired):
    w = wired()
    job = w.job()
    _, answer = w.ask(job)
    w.system.sqs.drain(w.system.queue_url)  # the first step's message is lost
    w.system.run(until=timedelta(minutes=10))
    assert len(w.runs(job)) == 10
    done = w.item(answer)
    assert (done.status, done.sent) == ("done", 10)
    assert done.updated_at - done.created_at >= CHECK_MARGIN


def test_a_duplicate_step_message_changes_nothing(wired):
    w = wired(duplicate_every_delivery=True)
    job = w.job()
    _, answer = w.ask(job, minutes=12)
    w.system.run(until=timedelta(minutes=10))
    assert [r.status for r in w.runs(job)] == ["completed"] * 12
    done = w.item(answer)
    assert (done.status, done.sent, done.existing) == ("done", 12, 0)
    check_invariants(w.system, [job])


# -- a crash at every AWS call of a backfill ------------------------------------------------


def _scenario(w: Wired, faults: FaultInjector) -> tuple[int, Job, list[Backfill]]:
    """A backfill of 7 occurrences (two steps) with `faults` in its own calls, then the
    system left to recover by itself."""
    job = w.job()
    w.faults = faults
    w.system._survive("api", lambda: w.ask(job, minutes=7))
    w.system.run(until=timedelta(minutes=10))
    w.faults = None
    w.system.run(until=timedelta(minutes=30))
    return faults.count, job, w.all_backfills()


@pytest.mark.parametrize("kind", ["crash", "crash_after"])
def test_a_crash_at_any_call_of_a_backfill_runs_each_occurrence_exactly_once(wired, kind):
    calls, _, _ = _scenario(wired(), FaultInjector())
    assert calls > 10
    failures = []
    for n in range(1, calls + 1):
        w = wired()
        try:
            _, job, backfills = _scenario(w, FaultInjector().inject(n, kind))
            check_invariants(w.system, [job])
            runs = w.runs(job)
            if not backfills:
                # The API died before it recorded the backfill: the caller got an error.
                assert runs == [], "runs without a backfill"
                continue
            (done,) = backfills
            assert done.status == "done", "the backfill did not end"
            assert [r.scheduled_for for r in runs] == minutes_before(EPOCH, 7), "lost or doubled"
            assert all(r.status == "completed" and r.attempt == 1 for r in runs)
            assert (done.sent, done.existing, done.skipped) == (7, 0, 0), "counts drifted"
        except AssertionError as exc:
            failures.append(f"call {n} ({kind}): {exc}")
    FIGURES[f"crash point: backfill / {kind}"] = calls
    assert not failures, "\n".join(failures)
