"""Scheduling control on the engine (issue 13): pause until, calendars and blackout windows,
cancel, and the waiting turn of `buffer_one` and `replace` jobs, through the real tick and
worker on moto, with the virtual clock of the harness."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from chalicelib.calendars_api import CalendarService
from chalicelib.engine.control import Controls
from chalicelib.engine.lifecycle import LEASE_MARGIN, execution_id
from chalicelib.engine.pauses import RESUME, PauseEnds, resume_message
from chalicelib.engine.worker import DONE, Worker
from chalicelib.errors import ExecutionNotFound, InvalidInput, RunAlreadyFinal
from chalicelib.models import Execution
from chalicelib.tasks import registry
from tests.engine.harness import EPOCH, System


@pytest.fixture
def system(aws: None) -> System:
    engine = System("nexus-control")
    controls = Controls()
    controls.register(RESUME, PauseEnds(engine.store, engine.dispatcher.dispatch_job).handle)
    engine.worker = Worker(
        engine.store,
        engine.queue,
        registry,
        clock=engine.clock,
        sleep=engine.clock.sleep,
        rng=lambda: 0.0,
        on_stuck=lambda reason: None,
        controls=controls,
    )
    return engine


def by_status(system: System, job_id: int) -> Counter[str]:
    return Counter(r.status for r in system.records() if r.job_id == job_id)


# -- pause until ------------------------------------------------------------------------------


def test_a_job_paused_until_an_instant_resumes_by_itself_then_with_no_burst_of_old_runs(system):
    job = system.create_job(job_type="interval", interval_seconds=60)
    until = EPOCH + timedelta(minutes=10, seconds=30)
    paused = system.api.pause_job(
        job.id, EPOCH, None, {"note": "db upgrade", "until": until.isoformat()}
    )
    assert (paused.is_active, paused.paused_note, paused.paused_until) == (
        False,
        "db upgrade",
        until,
    )
    system.run(until=timedelta(minutes=15), stop_when_quiet=False)
    resumed = system.job(job.id)
    assert (resumed.is_active, resumed.paused_note, resumed.paused_until) == (True, None, None)
    runs = [r for r in system.records() if r.job_id == job.id]
    # Nothing ran while paused: the runs the create sent ahead whose times fall in the pause
    # are dropped unrecorded, as runs the tick never sends during a pause are (SP); and
    # nothing of the paused time is replayed afterwards.
    during = [r for r in runs if r.scheduled_for < until]
    after = [r for r in runs if r.scheduled_for >= until]
    assert during == []
    assert [r.status for r in after] == ["completed"] * 5  # 11 to 15 min: one a minute
    assert after[0].scheduled_for == EPOCH + timedelta(minutes=11)


def test_a_resume_message_delivered_twice_or_after_a_new_pause_changes_nothing(system):
    job = system.create_job(job_type="interval", interval_seconds=60)
    until = EPOCH + timedelta(minutes=2)
    system.api.pause_job(job.id, EPOCH, None, {"until": until.isoformat()})
    old = resume_message(system.job(job.id))
    # Paused again, now with another end: the first pause's timer must not resume it.
    later = EPOCH + timedelta(hours=1)
    system.api.pause_job(job.id, EPOCH, None, {"until": later.isoformat()})
    system.clock.now = until
    assert system.worker.process(old) is DONE
    assert system.worker.process(old) is DONE
    assert (system.job(job.id).is_active, system.job(job.id).paused_until) == (False, later)


def test_a_pause_until_the_past_is_refused_naming_the_field_and_changes_nothing(system):
    job = system.create_job(job_type="interval", interval_seconds=60)
    with pytest.raises(InvalidInput) as refused:
        system.api.pause_job(
            job.id, EPOCH, None, {"until": (EPOCH - timedelta(seconds=1)).isoformat()}
        )
    assert refused.value.errors[0].loc == ("body", "until")
    assert system.job(job.id).is_active


# -- calendars and blackout windows -------------------------------------------------------------


def test_a_job_does_not_run_on_a_day_of_its_excluded_calendar_and_the_history_says_why(system):
    today = EPOCH.date()
    calendar = {"name": "shutdown", "timezone": "UTC", "dates": [today.isoformat()]}
    CalendarService(system.store).create(calendar, EPOCH, None)
    job = system.create_job(
        job_type="interval", interval_seconds=600, exclude_calendars=["shutdown"]
    )
    system.run(until=timedelta(minutes=35), stop_when_quiet=False)
    runs = [r for r in system.records() if r.job_id == job.id]
    assert runs and {r.status for r in runs} == {"skipped"}
    assert all("calendar 'shutdown'" in (r.reason or "") for r in runs)


def test_a_blackout_with_defer_runs_once_at_the_window_end_for_all_its_occurrences(system):
    start = (EPOCH + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    end = (EPOCH + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M")
    job = system.create_job(
        job_type="interval",
        interval_seconds=120,
        blackout_windows=[{"start": start, "end": end}],
        blackout_policy="defer",
    )
    system.run(until=timedelta(minutes=25), stop_when_quiet=False)
    runs = [r for r in system.records() if r.job_id == job.id]
    window = [
        r
        for r in runs
        if EPOCH + timedelta(minutes=10) <= r.scheduled_for < EPOCH + timedelta(minutes=20)
    ]
    completed = [r for r in window if r.status == "completed"]
    assert len(completed) == 1
    assert completed[0].started_at is not None
    assert completed[0].started_at >= EPOCH + timedelta(minutes=20)
    assert all(r.status == "skipped" for r in window if r is not completed[0])


def test_a_job_naming_a_calendar_that_does_not_exist_is_refused_naming_it(system):
    with pytest.raises(InvalidInput) as refused:
        system.create_job(job_type="interval", interval_seconds=60, only_calendars=["nope"])
    assert refused.value.errors[0].loc == ("body", "only_calendars", 0)


# -- cancel ------------------------------------------------------------------------------------


def test_a_cancelled_future_occurrence_never_runs_and_the_next_one_does(system):
    job = system.create_job(job_type="interval", interval_seconds=3600)
    first = system.job(job.id).next_run_at
    assert first is not None
    cancelled = system.api.cancel_execution(execution_id(job.id, first, 1), None, EPOCH)
    assert cancelled.status == "cancelled"
    system.run(until=timedelta(hours=2, minutes=1), stop_when_quiet=False)
    runs = {r.scheduled_for: r.status for r in system.records() if r.job_id == job.id}
    assert runs[first] == "cancelled"
    assert runs[first + timedelta(hours=1)] == "completed"


def test_a_cancelled_pending_run_never_starts_and_a_second_cancel_is_a_conflict(system):
    job = system.create_job(job_type="interval", interval_seconds=3600)
    manual = system.api.execute_job(job.id, None, EPOCH)
    system.api.cancel_execution(manual.id, {"reason": "wrong input"}, EPOCH)
    system.run(until=timedelta(minutes=5))
    record = system.store.runs.get(job.id, manual.run_key)
    assert record is not None and record.status == "cancelled" and record.started_at is None
    assert "wrong input" in (record.reason or "")
    with pytest.raises(RunAlreadyFinal):
        system.api.cancel_execution(manual.id, None, EPOCH)


def test_an_execution_id_that_is_not_an_occurrence_is_not_found(system):
    job = system.create_job(job_type="interval", interval_seconds=3600)
    for text in (f"{job.id}-20000101T000001Z-1", "garbage", f"{job.id}-20270101T000000Z-x"):
        with pytest.raises(ExecutionNotFound):
            system.api.cancel_execution(text, None, EPOCH)


def test_a_running_run_asked_to_stop_ends_cancelled_with_no_retry(system):
    job = system.create_job(
        job_type="interval",
        interval_seconds=3600,
        task_name="nexus.sleep",
        task_kwargs={"seconds": 30},
        max_retries=2,
    )
    manual = system.api.execute_job(job.id, None, EPOCH)
    # A worker is running it (as another process would be) ...
    owner = "other"
    assert system.store.runs.start_pending(manual, EPOCH, EPOCH + timedelta(minutes=5), owner)
    system.api.cancel_execution(manual.id, None, EPOCH)
    record = system.store.runs.get(job.id, manual.run_key)
    assert record is not None and record.cancel_requested
    # ... and dies: its takeover finds the cancel and ends the run without running it again.
    system.clock.now = EPOCH + timedelta(minutes=6)
    system.run(until=timedelta(minutes=30))
    runs = [r for r in system.records() if r.job_id == job.id]
    assert [(r.attempt, r.status) for r in runs] == [(1, "cancelled")]


# -- waiting turns: buffer_one and replace ----------------------------------------------------


def _holder(system: System, job_id: int, minutes: int) -> Execution:
    """A run of the job held by another worker for `minutes` (its slot and its record)."""
    job = system.job(job_id)
    manual = system.api.execute_job(job_id, None, system.clock.now)
    lease = system.clock.now + timedelta(minutes=minutes)
    assert system.store.jobs.take_slot(job, manual.run_key, lease, system.clock.now)
    assert system.store.runs.start_pending(manual, system.clock.now, lease, "other")
    return manual


def _deliver_scheduled(system: System, job_id: int, at) -> None:
    system.clock.now = at
    system.tick()
    system.deliver()


def test_buffer_one_keeps_one_run_waiting_and_skips_the_others(system):
    job = system.create_job(
        job_type="interval", interval_seconds=60, concurrency_policy="buffer_one"
    )
    first = EPOCH + timedelta(seconds=60)  # its first run (created at EPOCH)
    system.clock.now = first - timedelta(seconds=50)
    holder = _holder(system, job.id, minutes=10)
    system.deliver()  # the holder's own message: its lease is good, it comes back later
    for n in range(3):
        _deliver_scheduled(system, job.id, first + timedelta(minutes=n))
    records = {
        r.scheduled_for: r
        for r in system.records()
        if r.job_id == job.id and r.trigger == "scheduled"
    }
    assert [records[first + timedelta(minutes=n)].status for n in range(3)] == [
        "pending",
        "skipped",
        "skipped",
    ]
    assert "already waiting" in (records[first + timedelta(minutes=1)].reason or "")
    assert system.job(job.id).buffered == records[first].run_key
    # The holder finishes: the waiting run starts at once, and only it.
    done = system.store.runs.get(job.id, holder.run_key)
    assert done is not None
    finished = done.model_copy(update={"status": "completed", "completed_at": system.clock.now})
    assert system.store.runs.commit([system.store.runs.outcome(finished, "other", {})])[0]
    system.worker._resume(finished)
    system.run(until=timedelta(minutes=1), stop_when_quiet=False)
    waited = system.store.runs.get(job.id, records[first].run_key)
    assert waited is not None and waited.status == "completed"
    assert waited.started_at is not None and waited.started_at >= finished.completed_at
    assert system.job(job.id).buffered is None


def test_replace_asks_the_running_run_to_stop_and_the_new_one_waits_for_it(system):
    job = system.create_job(job_type="interval", interval_seconds=60, concurrency_policy="replace")
    first = EPOCH + timedelta(seconds=60)  # its first run (created at EPOCH)
    system.clock.now = first - timedelta(seconds=50)
    holder = _holder(system, job.id, minutes=10)
    _deliver_scheduled(system, job.id, first)
    running = system.store.runs.get(job.id, holder.run_key)
    assert running is not None and "replaced by run" in (running.cancel_requested or "")
    new = system.store.runs.get(job.id, execution_id_key(first))
    assert new is not None and new.status == "pending"
    # A second newer run replaces the waiting one, which is skipped.
    _deliver_scheduled(system, job.id, first + timedelta(minutes=1))
    older = system.store.runs.get(job.id, execution_id_key(first))
    assert older is not None and older.status == "skipped" and "replaced" in (older.reason or "")
    # The holder's worker died: after its lease, its takeover ends it cancelled, and the newest
    # waiting run starts. (Runs sent ahead that arrive meanwhile may replace it in turn: each
    # one replaced says by which run.)
    system.clock.now += timedelta(minutes=10) + LEASE_MARGIN
    system.run(until=timedelta(minutes=5), stop_when_quiet=False)
    stopped = system.store.runs.get(job.id, holder.run_key)
    assert stopped is not None and stopped.status == "cancelled"
    waited = system.store.runs.get(job.id, execution_id_key(first + timedelta(minutes=1)))
    assert waited is not None
    if waited.status != "completed":
        assert waited.status == "skipped" and "replaced it while it waited" in (waited.reason or "")
    later = [r for r in system.records() if r.job_id == job.id and r.scheduled_for > first]
    assert any(r.status == "completed" for r in later)
    assert not [r for r in later if r.status in ("pending", "running")]
    for r in later:
        if r.status == "skipped":
            assert "replaced it while it waited" in (r.reason or ""), r.reason


def execution_id_key(scheduled_for) -> str:
    from chalicelib.store.items import run_key

    return run_key(scheduled_for, 1)
