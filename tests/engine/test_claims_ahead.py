"""A job due in the tick's window has its runs sent and claimed up to CLAIM_AHEAD in one write;
a change made meanwhile still applies from its moment, and the API shows the next run."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from chalicelib import queued
from chalicelib.engine.lifecycle import CLAIM_AHEAD, MAX_RUNS_AHEAD
from tests.engine.harness import System


def counting_claims(system: System) -> Counter[str]:
    """Writes to jobs that move their due entry (the tick's claims, T2)."""
    writes: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        names = (params.get("ExpressionAttributeNames") or {}).values()
        if params.get("Key", {}).get("sk", {}).get("S") == "JOB" and "due_sk" in names:
            writes["claim"] += 1

    system.db.meta.events.register("provide-client-params.dynamodb.UpdateItem", count)
    return writes


def completed_times(system: System, job_id: int) -> list[Any]:
    return sorted(
        r.scheduled_for for r in system.records() if r.job_id == job_id and r.status == "completed"
    )


def test_a_job_that_runs_every_minute_runs_each_minute_once_with_one_claim_per_window(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    start = system.clock.now
    claims = counting_claims(system)
    system.run(until=timedelta(hours=1), stop_when_quiet=False)
    times = completed_times(system, job.id)
    expected = [times[0] + timedelta(minutes=i) for i in range(len(times))]
    assert times == expected  # every minute, in order, none twice, none left out
    assert len(times) >= 60
    assert times[-1] >= start + timedelta(minutes=59)
    # One claim for every 14 runs or so, not one a run.
    window_runs = int(CLAIM_AHEAD.total_seconds() // 60)
    assert claims["claim"] <= len(times) // window_runs + 2


def test_the_api_shows_the_next_run_not_how_far_the_tick_has_sent(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=3, seconds=30), stop_when_quiet=False)
    stored = system.job(job.id)
    now = system.clock.now
    assert stored.next_run_at is not None
    assert stored.next_run_at > now + timedelta(minutes=5)  # sent that far ahead
    shown = stored.to_api(now)["next_run_at"]
    following = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    assert shown == following.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_new_schedule_applies_from_the_put_and_the_runs_sent_ahead_under_the_old_do_not_run(
    system,
):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=2, seconds=30), stop_when_quiet=False)
    changed_at = system.clock.now
    before = completed_times(system, job.id)
    assert before and all(t <= changed_at for t in before)
    # Every five minutes from now on; the every-minute runs already in the queue are old.
    system.api.update_job(job.id, {"cron_expression": "*/5 * * * *"}, changed_at)
    system.run(until=timedelta(minutes=30), stop_when_quiet=False)
    after = [t for t in completed_times(system, job.id) if t > changed_at]
    assert after, "the new schedule ran"
    assert all(t.minute % 5 == 0 and t.second == 0 for t in after), after
    assert len(after) == len(set(after))
    # Nothing is recorded for the old schedule's runs after the change.
    later = [r for r in system.records() if r.job_id == job.id and r.scheduled_for > changed_at]
    assert all(r.scheduled_for.minute % 5 == 0 for r in later)


def test_a_change_that_leaves_the_schedule_alone_keeps_the_runs_sent_ahead(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    changed_at = system.clock.now
    system.api.update_job(job.id, {"description": "same schedule"}, changed_at)
    system.run(until=timedelta(minutes=10), stop_when_quiet=False)
    times = completed_times(system, job.id)
    expected = [times[0] + timedelta(minutes=i) for i in range(len(times))]
    assert times == expected
    assert times[-1] >= changed_at + timedelta(minutes=9)


def test_runs_sent_ahead_into_a_pause_are_not_recorded_and_a_resume_runs_the_rest_once(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    paused_at = system.clock.now
    system.api.pause_job(job.id, paused_at, None, None)
    system.run(until=timedelta(minutes=3), stop_when_quiet=False)
    resumed_at = system.clock.now
    system.api.resume_job(job.id, resumed_at)
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    records = [r for r in system.records() if r.job_id == job.id]
    # The pause's history is what it would be with nothing sent ahead: no run in it.
    assert [r for r in records if paused_at < r.scheduled_for < resumed_at] == []
    assert {r.status for r in records if r.scheduled_for < paused_at} == {"completed"}
    after = sorted(r.scheduled_for for r in records if r.scheduled_for > resumed_at)
    assert after == sorted(set(after))  # once each
    assert {r.status for r in records if r.scheduled_for > resumed_at} == {"completed"}
    assert after[-1] >= resumed_at + timedelta(minutes=19)


def test_a_run_due_before_a_pause_that_had_not_started_is_recorded_skipped(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    # The next run is due; the pause comes before any worker starts it.
    due = system.clock.now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    system.clock.now = due + timedelta(seconds=1)
    system.api.pause_job(job.id, system.clock.now, None, None)
    system.run(until=timedelta(minutes=5), stop_when_quiet=False)
    record = next(r for r in system.records() if r.job_id == job.id and r.scheduled_for == due)
    assert record.status == "skipped" and "paused" in (record.reason or "")
    assert not [r for r in system.records() if r.job_id == job.id and r.scheduled_for > due]


def test_the_runs_sent_ahead_of_a_deleted_job_write_nothing(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    deleted_at = system.clock.now
    system.api.delete_job(job.id, deleted_at)
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    assert not [r for r in system.records() if r.scheduled_for > deleted_at]
    assert system.queues_empty()


def job_writes(system: System) -> Counter[str]:
    """Writes to job items, by what they are: claims (they move the due entry) and others."""
    writes: Counter[str] = Counter()

    def count(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key", {}).get("sk", {}).get("S") != "JOB":
            return
        names = (params.get("ExpressionAttributeNames") or {}).values()
        writes["claim" if "due_sk" in names else "other"] += 1

    system.db.meta.events.register("provide-client-params.dynamodb.UpdateItem", count)
    return writes


@pytest.mark.parametrize(
    "schedule",
    [
        {"job_type": "cron", "cron_expression": "* * * * *"},
        # Sent 15 runs past the window: a claim comes while the last one's runs are to come.
        {"job_type": "interval", "interval_seconds": 10},
    ],
    ids=["every minute", "every 10 seconds"],
)
def test_a_plain_jobs_successes_write_nothing_on_the_job_and_the_api_shows_the_last(
    system, schedule
):
    job = system.create_job(**schedule)
    writes = job_writes(system)
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    runs = [r for r in system.records() if r.job_id == job.id and r.status == "completed"]
    assert len(runs) >= 20
    assert writes["other"] == 0  # no F2: only the tick's claims wrote the job
    stored = system.store.jobs.get_job(job.id)
    last = max(runs, key=lambda r: r.scheduled_for)
    shown = system.job(job.id)
    assert (shown.last_run_at, shown.last_run_status) == (last.completed_at, "completed")
    assert shown.last_success_at == last.completed_at
    assert shown.current_status == "completed"
    assert stored.last_run_at is None or stored.last_run_at < last.completed_at


def test_a_failed_run_and_a_forbid_jobs_run_still_write_the_job(system):
    failing = system.create_job(
        job_type="cron", cron_expression="* * * * *", task_name="nexus.fail", max_retries=0
    )
    exclusive = system.create_job(
        job_type="cron", cron_expression="* * * * *", concurrency_policy="forbid"
    )
    system.run(until=timedelta(minutes=5), stop_when_quiet=False)
    assert system.store.jobs.get_job(failing.id).last_run_status == "failed"
    stored = system.store.jobs.get_job(exclusive.id)
    assert stored.last_run_status == "completed" and stored.running == {}


def test_a_claim_sends_at_most_fifteen_runs_past_the_window_of_a_job_every_second(system):
    job = system.create_job(job_type="interval", interval_seconds=1)
    stored = system.store.jobs.get_job(job.id)
    sent = queued.runs(stored.queued_runs)
    in_window = [t for t in sent if t <= system.clock.now + system.dispatcher.window]
    assert len(in_window) == 60  # every run due before the next tick
    assert len(sent) - len(in_window) == MAX_RUNS_AHEAD
    assert sent == [sent[0] + timedelta(seconds=i) for i in range(len(sent))]
    assert stored.next_run_at == sent[-1] + timedelta(seconds=1)
    # And they run, each once, in order.
    system.run(until=timedelta(minutes=5), stop_when_quiet=False)
    times = completed_times(system, job.id)
    assert times == [times[0] + timedelta(seconds=i) for i in range(len(times))]
    assert len(times) >= 290


def latest_completed(system: System, job_id: int) -> Any:
    done = [r for r in system.records() if r.job_id == job_id and r.status == "completed"]
    return max(done, key=lambda r: r.completed_at)


def test_after_a_new_schedule_the_api_shows_its_next_run_and_still_the_last_run(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=2, seconds=30), stop_when_quiet=False)
    changed_at = system.clock.now
    system.api.update_job(job.id, {"cron_expression": "*/5 * * * *"}, changed_at)
    shown = system.job(job.id)
    following = changed_at.replace(second=0, microsecond=0)
    following += timedelta(minutes=5 - following.minute % 5)
    assert shown.to_api(changed_at)["next_run_at"] == following.strftime("%Y-%m-%dT%H:%M:%SZ")
    last = latest_completed(system, job.id)
    assert (shown.last_run_at, shown.last_run_status) == (last.completed_at, "completed")


def test_a_paused_job_still_shows_its_last_run(system):
    job = system.create_job(job_type="cron", cron_expression="* * * * *")
    system.run(until=timedelta(minutes=2, seconds=30), stop_when_quiet=False)
    system.api.pause_job(job.id, system.clock.now, None, None)
    shown = system.job(job.id)
    last = latest_completed(system, job.id)
    assert not shown.is_active
    assert (shown.last_run_at, shown.last_run_status) == (last.completed_at, "completed")


def _quick_interval_job(system: System, **fields: Any) -> Any:
    """Every 10 s from 12:02, its first run done on time (no F2: nothing written on the job)."""
    start = system.clock.now + timedelta(minutes=2)
    job = system.create_job(
        job_type="interval", interval_seconds=10, start_time=start.isoformat(), **fields
    )
    system.run(until=timedelta(minutes=2, seconds=5), stop_when_quiet=False)
    first = latest_completed(system, job.id)
    assert first.scheduled_for == start
    assert system.store.jobs.get_job(job.id).last_run_at is None
    return job, first


def test_a_success_stays_shown_when_the_runs_after_it_are_missed(system):
    job, first = _quick_interval_job(system, misfire_grace_seconds=2)
    # The workers were away: the runs at 2:10 and 2:20 are delivered at 2:25, past their grace.
    system.clock.now = first.scheduled_for + timedelta(seconds=25)
    system.deliver()
    missed = [r for r in system.records() if r.job_id == job.id and r.status == "missed"]
    assert len(missed) == 2
    # The runs the API reads the last run from are those two now; the job item has it.
    system.api.pause_job(job.id, system.clock.now)
    shown = system.job(job.id)
    assert (shown.last_run_at, shown.last_run_status) == (first.completed_at, "completed")
    assert system.store.jobs.get_job(job.id).last_run_at == first.completed_at


def test_a_success_stays_shown_when_the_runs_after_it_are_skipped_by_a_pause(system):
    job, first = _quick_interval_job(system)
    system.clock.now = first.scheduled_for + timedelta(seconds=25)
    system.api.pause_job(job.id, system.clock.now)
    system.run(until=timedelta(minutes=5))
    skipped = [r for r in system.records() if r.job_id == job.id and r.status == "skipped"]
    assert len(skipped) == 2  # 2:10 and 2:20, due before the pause, not started before it
    shown = system.job(job.id)
    assert (shown.last_run_at, shown.last_run_status) == (first.completed_at, "completed")


def test_a_run_that_ends_after_the_next_was_due_is_written_on_the_job(system):
    job, first = _quick_interval_job(system)
    # The worker that took the run at 2:10 died before it started it: the message comes back
    # 121 s later, after the runs that followed it were due.
    system.die_on_next_message(1)
    system.run(until=timedelta(seconds=30), stop_when_quiet=False)
    late = next(
        r
        for r in system.records()
        if r.job_id == job.id and r.scheduled_for == first.scheduled_for + timedelta(seconds=10)
    )
    assert late.status == "completed"
    assert late.completed_at is not None
    assert late.completed_at > late.scheduled_for + timedelta(seconds=10)
    stored = system.store.jobs.get_job(job.id)
    assert stored.last_run_at is not None and stored.last_run_at >= late.completed_at
    shown = system.job(job.id)
    assert shown.last_run_at == latest_completed(system, job.id).completed_at


def test_jobs_that_run_every_minute_have_their_runs_sent_ten_to_a_request(system):
    # A claim sends a job's next fourteen runs. The tick commits jobs together until their
    # runs fill whole requests (five such jobs, 70 runs, 7 requests), where one job at a
    # time took two requests for its fourteen (ten and four).
    jobs = [
        system.create_job(name=f"every minute {i}", job_type="cron", cron_expression="* * * * *")
        for i in range(10)
    ]
    sizes: list[int] = []
    send_message_batch = system.sqs.send_message_batch

    def recording(**params: Any) -> Any:
        sizes.append(len(params["Entries"]))
        return send_message_batch(**params)

    system.sqs.send_message_batch = recording
    system.run(until=timedelta(minutes=45), stop_when_quiet=False)
    assert all(len(completed_times(system, job.id)) >= 44 for job in jobs)
    assert len(sizes) >= 3 * 14  # three windows of 140 runs
    assert set(sizes) == {10}
