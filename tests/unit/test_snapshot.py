"""Which runs may start from the job their message carries, and which runs a change fences
(chalicelib.snapshot); the engine's side is tests/engine/test_snapshot.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import queued, snapshot
from chalicelib.engine.lifecycle import CLAIM_AHEAD
from chalicelib.models import Job

NOW = datetime(2030, 1, 7, 12, 0, 30, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def a_job(**fields: Any) -> Job:
    base: dict[str, Any] = {
        "id": 7,
        "name": "report",
        "job_type": "cron",
        "cron_expression": "* * * * *",
        "task_name": "nexus.echo",
        "created_at": NOW - timedelta(days=1),
        "updated_at": NOW - timedelta(days=1),
        "next_run_at": NOW + 30 * MINUTE,
    }
    return Job.model_validate({**base, **fields})


def minutes(first: int, last: int) -> list[datetime]:
    top = NOW.replace(second=0)
    return [top + i * MINUTE for i in range(first, last + 1)]


def test_a_claim_of_a_plain_job_carries_the_job_as_the_claim_leaves_it():
    sent = minutes(1, 14)
    data = snapshot.of(a_job(version=3), sent[-1] + MINUTE, sent, NOW)
    assert data is not None
    carried = snapshot.job_from(data, sent[0], sent[0] + timedelta(seconds=1))
    assert carried is not None
    assert queued.runs(carried.queued_runs) == sent
    assert carried.next_run_at == sent[-1] + MINUTE and carried.version == 4


def test_runs_closer_than_a_minute_credentials_in_clear_and_big_jobs_carry_no_job():
    sent = [NOW + timedelta(seconds=10 * i) for i in range(1, 7)]
    assert snapshot.of(a_job(), sent[-1] + timedelta(seconds=10), sent, NOW) is None
    sent = minutes(1, 3)
    secret = a_job(task_kwargs={"api_key": "in clear"})
    assert snapshot.of(secret, sent[-1] + MINUTE, sent, NOW) is None
    reference = a_job(task_kwargs={"api_key": {"$secret": "ssm:/nexus/key"}})
    assert snapshot.of(reference, sent[-1] + MINUTE, sent, NOW) is not None
    big = a_job(task_args=["x" * snapshot.SNAPSHOT_LIMIT])
    assert snapshot.of(big, sent[-1] + MINUTE, sent, NOW) is None


def test_a_delivery_later_than_fresh_for_or_of_something_else_reads_the_job():
    sent = minutes(1, 3)
    data = snapshot.of(a_job(), sent[-1] + MINUTE, sent, NOW)
    late = sent[0] + snapshot.FRESH_FOR + timedelta(seconds=1)
    assert snapshot.job_from(data, sent[0], late) is None
    assert snapshot.job_from({"id": "not a job"}, sent[0], sent[0]) is None
    assert snapshot.job_from(None, sent[0], sent[0]) is None


def test_a_fence_covers_the_runs_sent_ahead_and_what_a_tick_that_read_the_job_may_send():
    job = a_job(queued_runs=queued.encode(minutes(-3, 14)), next_run_at=minutes(15, 15)[0])
    fenced = snapshot.fence_times(job, NOW, CLAIM_AHEAD)
    # The list from FENCE_BACK ago, then the schedule's runs to a tick's reach and the slack.
    reach = NOW + CLAIM_AHEAD + snapshot.FENCE_SLACK
    assert fenced == [t for t in minutes(-1, 30) if t <= reach]
    assert fenced[-1] > NOW + CLAIM_AHEAD


def test_no_fence_for_a_job_whose_runs_carry_no_job():
    every_ten_seconds = a_job(
        job_type="interval", cron_expression=None, interval_seconds=10, next_run_at=NOW
    )
    assert snapshot.fence_times(every_ten_seconds, NOW, CLAIM_AHEAD) == []
    assert snapshot.fence_times(a_job(concurrency_policy="forbid"), NOW, CLAIM_AHEAD) == []
    assert snapshot.fence_times(a_job(is_active=False), NOW, CLAIM_AHEAD) == []
