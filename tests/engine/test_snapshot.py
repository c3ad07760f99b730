"""A plain job's runs sent ahead carry the job, and start from it without reading it; a pause,
a PUT or a delete fences them first, so that none starts from the job as it was
(chalicelib.snapshot)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.store.items import is_fence
from chalicelib.tasks import registry
from tests.engine.harness import System, check_invariants
from tests.faults import Crash

# What test.tally ran: (job id, scheduled_for, label), in order.
TALLY: list[tuple[int, datetime, str]] = []


@registry.task("test.tally")
def tally(ctx: Any, label: str = "", **_: Any) -> str:
    TALLY.append((ctx.job_id, ctx.scheduled_for, label))
    return label


@pytest.fixture(autouse=True)
def _fresh_tally() -> None:
    TALLY.clear()


def every_minute(system: System, **fields: Any) -> Any:
    body = {"job_type": "cron", "cron_expression": "* * * * *", "task_name": "test.tally"}
    return system.create_job(**{**body, **fields})


class Reads:
    """GetItem and BatchGetItem calls that read a job item."""

    def __init__(self, system: System) -> None:
        self.jobs = 0
        system.db.meta.events.register("provide-client-params.dynamodb.GetItem", self._get)
        system.db.meta.events.register("provide-client-params.dynamodb.BatchGetItem", self._batch)

    def _get(self, params: dict[str, Any], **_: Any) -> None:
        self.jobs += params["Key"]["sk"]["S"] == "JOB"

    def _batch(self, params: dict[str, Any], **_: Any) -> None:
        for table in params["RequestItems"].values():
            self.jobs += sum(key["sk"]["S"] == "JOB" for key in table["Keys"])


def sent_bodies(system: System) -> list[dict[str, Any]]:
    """The bodies of the runs' messages the work queue took, as they are sent."""
    bodies: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        bodies.extend(json.loads(e["MessageBody"]) for e in params["Entries"])

    system.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", keep)
    return bodies


def settle(system: System, job: Any) -> None:
    """Pause the job, let every message left end, and check the engine's invariants."""
    system.api.pause_job(job.id, system.clock.now, None, None)
    system.run(until=timedelta(minutes=20))
    check_invariants(system, [job])


def ran(job_id: int) -> list[datetime]:
    return [t for j, t, _label in TALLY if j == job_id]


def fences(system: System, job_id: int) -> list[dict[str, Any]]:
    items = system.db.query(
        TableName=system.store.table_name,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
        ExpressionAttributeValues={":pk": {"S": f"JOB#{job_id}"}, ":run": {"S": "RUN#"}},
    )["Items"]
    return [i for i in items if is_fence(i)]


def test_a_plain_jobs_runs_start_from_the_job_their_message_carries_without_reading_it(system):
    job = every_minute(system, task_kwargs={"label": "plain"})
    system.run(until=timedelta(minutes=2), stop_when_quiet=False)  # the first claim is made
    reads = Reads(system)
    sent = sent_bodies(system)
    system.run(until=timedelta(minutes=40), stop_when_quiet=False)
    times = ran(job.id)
    assert times == sorted(set(times)) and len(times) >= 40  # every minute, once each
    assert sent and all(body["job"]["task_kwargs"] == {"label": "plain"} for body in sent)
    # The tick reads the job for each claim (one a window of ~14 runs); no start reads it.
    assert reads.jobs <= len(times) // 10
    settle(system, job)


@pytest.mark.parametrize(
    "fields",
    [
        {"concurrency_policy": "forbid"},
        {"task_kwargs": {"label": "x", "password": "in clear"}},
        {"job_type": "interval", "interval_seconds": 10, "cron_expression": None},
        {"expect_success_within": 3600},
    ],
    ids=["forbid", "a credential in clear", "every 10 seconds", "a dead-man's switch"],
)
def test_a_job_whose_runs_need_more_than_its_definition_is_read_at_each_start(system, fields):
    sent = sent_bodies(system)
    reads = Reads(system)
    job = every_minute(system, **fields)
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    assert len(ran(job.id)) >= 18
    assert sent and not [body for body in sent if "job" in body]
    assert reads.jobs >= len(ran(job.id))


def test_a_pause_fences_the_runs_sent_ahead_and_none_of_them_runs_or_shows(system):
    job = every_minute(system)
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    paused_at = system.clock.now
    system.api.pause_job(job.id, paused_at, None, None)
    fenced = fences(system, job.id)
    assert len(fenced) >= 13  # the runs sent ahead to 14 minutes on
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    assert [t for t in ran(job.id) if t > paused_at] == []
    # A fence is no record: not in the history the API shows, not counted, no event.
    history, _ = system.api.list_executions(job.id, {"limit": "100"})
    assert history and all(r.scheduled_for <= paused_at for r in history)
    # (A run due at the pause that had not started is skipped: SK.)
    assert {r.status for r in history if r.scheduled_for < paused_at} == {"completed"}
    completed = [r for r in history if r.status == "completed"]
    assert system.stats()["successful_executions"] == len(completed)
    check_invariants(system, [job])


def test_a_pause_between_a_ticks_read_and_its_send_fences_what_the_tick_sends(system):
    job = every_minute(system)
    system.run(until=timedelta(minutes=3), stop_when_quiet=False)
    # The next claim's runs are due in the tick's window, not yet due: the tick reads the
    # job, then the pause is made and answered, then the tick sends its runs, with the job
    # as it read it, and its claim fails.
    due = system.job(job.id).next_run_at
    assert due is not None
    system.run(until=due - system.clock.now - timedelta(seconds=90), stop_when_quiet=False)
    system.clock.now = due - timedelta(seconds=30)
    paused: list[datetime] = []

    def pause_first(**_: Any) -> None:
        if not paused:
            paused.append(system.clock.now)
            system.api.pause_job(job.id, system.clock.now, None, None)

    sent = sent_bodies(system)
    system.sqs.meta.events.register("before-call.sqs.SendMessageBatch", pause_first)
    system.tick()
    system.sqs.meta.events.unregister("before-call.sqs.SendMessageBatch", pause_first)
    assert paused and [body for body in sent if "job" in body]  # sent with the job
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    assert [t for t in ran(job.id) if t > paused[0]] == []
    check_invariants(system, [job])


def test_a_pause_that_fails_after_its_fences_changes_nothing_and_the_runs_still_run(system):
    job = every_minute(system)
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    tried_at = system.clock.now

    # The pause writes its fences, then the job: the API's process dies before the latter.
    def die_writing_the_job(params: dict[str, Any], **_: Any) -> None:
        keys = [next(iter(item.values())).get("Key", {}) for item in params["TransactItems"]]
        if any(key.get("sk", {}).get("S") == "JOB" for key in keys):
            raise Crash("the API's process died")

    event = "provide-client-params.dynamodb.TransactWriteItems"
    system.db.meta.events.register(event, die_writing_the_job)
    with pytest.raises(Crash):
        system.api.pause_job(job.id, tried_at, None, None)
    system.db.meta.events.unregister(event, die_writing_the_job)
    assert fences(system, job.id)
    assert system.job(job.id).is_active
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    after = [t for t in ran(job.id) if t > tried_at]
    assert after == sorted(set(after)) and len(after) >= 19  # every minute, once each
    settle(system, job)


def test_a_put_of_new_arguments_applies_to_the_runs_sent_ahead(system):
    job = every_minute(system, task_kwargs={"label": "old"})
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    changed_at = system.clock.now
    system.api.update_job(job.id, {"task_kwargs": {"label": "new"}}, changed_at)
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    labels = {label for j, t, label in TALLY if j == job.id and t > changed_at}
    assert labels == {"new"}
    assert len([t for t in ran(job.id) if t > changed_at]) >= 19
    settle(system, job)


def test_the_task_of_a_deleted_jobs_runs_sent_ahead_never_runs(system):
    job = every_minute(system)
    system.run(until=timedelta(minutes=1, seconds=30), stop_when_quiet=False)
    deleted_at = system.clock.now
    system.api.delete_job(job.id, deleted_at)
    system.run(until=timedelta(minutes=20), stop_when_quiet=False)
    assert [t for t in ran(job.id) if t > deleted_at] == []
    assert system.queues_empty()
