"""`make chaos`'s pieces (local/chaos.py): the injected AWS errors, the kill, the double
delivery and the second tick, and the audit that reads what a soak left behind."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.engine.batch import Record, handle_batch
from chalicelib.store.items import is_retryable, run_key
from chalicelib.timefmt import iso
from local.chaos import Chaos, ChaosConfig, Killed, audit, current_invocation
from local.engine import SqsPoller, TickLoop

TABLE = "chaos"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield db, boto3.client("sqs", region_name="us-east-1")


def chaos(**settings: Any) -> Chaos:
    base = {"aws_errors": 0.0, "kill": 0.0, "tick_kill": 0.0, "duplicate": False}
    return Chaos(ChaosConfig(**{**base, **settings}))


def in_thread(target: Any, name: str = "nexus-test") -> Any:
    """Run `target` on a thread of the app (MainThread is left alone by the chaos)."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = target()
        except BaseException as exc:
            out["error"] = exc

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join(60)
    if "error" in out:
        raise out["error"]
    return out.get("value")


def get(db: Any) -> Any:
    return db.get_item(TableName=TABLE, Key={"pk": {"S": "x"}})


# -- the spec --------------------------------------------------------------------------------


def test_the_spec_is_a_seed_then_settings():
    assert ChaosConfig.parse("7") == ChaosConfig(seed=7)
    config = ChaosConfig.parse("3,aws_errors=0.05,duplicate=0,second_tick=off,tick_jitter=1")
    assert (config.seed, config.aws_errors, config.duplicate, config.second_tick) == (
        3,
        0.05,
        False,
        False,
    )
    assert config.tick_jitter == 1.0
    with pytest.raises(ValueError, match="unknown setting"):
        ChaosConfig.parse("1,kills=0.1")
    with pytest.raises(ValueError, match="probability"):
        ChaosConfig.parse("1,aws_errors=2")


# -- AWS errors ------------------------------------------------------------------------------


def count_errors(db: Any, calls: int) -> tuple[int, set[str]]:
    failed, codes = 0, set()
    for _ in range(calls):
        try:
            get(db)
        except ClientError as exc:
            assert is_retryable(exc), exc.response
            failed += 1
            codes.add(exc.response["Error"]["Code"])
    return failed, codes


def test_aws_errors_fail_about_p_of_the_calls_with_retryable_codes(aws):
    db, _ = aws
    first = chaos(aws_errors=0.2, seed=11).install(db)
    try:
        failed, codes = in_thread(lambda: count_errors(db, 500))
    finally:
        first.uninstall()
    assert 70 <= failed <= 130  # 100 expected
    assert first.counts["aws_errors"] == failed
    assert first.counts["aws_errors.dynamodb.GetItem"] == failed
    assert codes <= {"ProvisionedThroughputExceededException", "ThrottlingException"} | {
        "InternalServerError"
    }
    # The same seed fails the same calls.
    again = chaos(aws_errors=0.2, seed=11).install(db)
    try:
        assert in_thread(lambda: count_errors(db, 500))[0] == failed
    finally:
        again.uninstall()


def test_sqs_errors_are_retryable_too_and_main_thread_and_receivers_are_left_alone(aws):
    db, sqs = aws
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    injector = chaos(aws_errors=1.0).install(db, sqs)
    try:
        with pytest.raises(ClientError) as caught:
            in_thread(lambda: sqs.send_message(QueueUrl=url, MessageBody="m"))
        assert is_retryable(caught.value)
        get(db)  # MainThread: setup and shutdown
        in_thread(lambda: sqs.receive_message(QueueUrl=url), name="nexus-local-worker-receiver")
    finally:
        injector.uninstall()
    in_thread(lambda: get(db))  # uninstalled: nothing fails


# -- kills -----------------------------------------------------------------------------------


def test_a_kill_is_not_swallowed_by_except_exception_and_the_invocation_stays_dead(aws):
    db, _ = aws
    killer = chaos(kill=1.0, kill_after=0.0).install(db)
    seen: dict[str, Any] = {}

    def child() -> None:
        try:
            get(db)
        except BaseException as exc:
            seen["child"] = exc

    def deliver() -> None:
        seen["invocation"] = current_invocation()
        seen["thread"] = threading.Thread(target=child)  # one of its threads
        try:
            get(db)
        except Exception:  # what the handler and the event source catch
            seen["swallowed"] = True
        seen["not reached"] = True

    try:
        in_thread(lambda: killer.invoke("fn", [{}], deliver))
        assert seen["invocation"].dead
        # Its threads die with it: a call from a thread it started raises too.
        seen["thread"].start()
        seen["thread"].join()
    finally:
        killer.uninstall()
    assert "swallowed" not in seen and "not reached" not in seen
    assert isinstance(seen["child"], Killed)
    assert killer.counts["killed.fn"] == 1
    assert killer.counts["kills.before.dynamodb.GetItem"] == 1
    assert killer.counts["invocations_ended_by_kill.fn"] == 1


def test_a_kill_after_the_call_lets_it_land(aws):
    db, _ = aws
    killer = chaos(kill=1.0, kill_after=1.0).install(db)

    def deliver() -> None:
        db.put_item(TableName=TABLE, Item={"pk": {"S": "landed"}})

    try:
        in_thread(lambda: killer.invoke("fn", [{}], deliver))
    finally:
        killer.uninstall()
    assert "Item" in db.get_item(TableName=TABLE, Key={"pk": {"S": "landed"}})
    assert killer.counts["kills.after.dynamodb.PutItem"] == 1


class CallingWorker:
    """A worker whose every message makes one AWS call (from the batch's thread pool)."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.processed: list[str] = []

    def expect(self, messages: int) -> None:
        """The batch announces its messages (Worker.expect); nothing to wait for here."""

    def process(self, body: str, hold: Any = None, remaining: Any = None) -> bool:
        get(self.db)
        self.processed.append(body)
        return True


class RecordingSqs:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def delete_message_batch(self, **_: Any) -> dict[str, Any]:
        self.calls.append("delete")
        return {}

    def change_message_visibility_batch(self, **_: Any) -> dict[str, Any]:
        self.calls.append("hold")
        return {}


def test_the_handlers_thread_pool_passes_a_kill_on_and_deletes_nothing(aws):
    db, _ = aws
    killer = chaos(kill=1.0, kill_after=0.0).install(db)
    worker, sqs = CallingWorker(db), RecordingSqs()
    records = [Record(f"m{i}", f"h{i}") for i in range(3)]
    messages = [{"MessageId": f"m{i}", "Body": "{}"} for i in range(3)]
    ended: list[str] = []

    def deliver() -> None:
        try:
            handle_batch(records, worker, None, sqs, "url")  # type: ignore[arg-type]
        except Exception as exc:  # BatchIncomplete would land here: it must not
            ended.append(type(exc).__name__)
            return
        ended.append("returned")

    try:
        in_thread(lambda: killer.invoke("nexus-local-worker", messages, deliver))
    finally:
        killer.uninstall()
    assert ended == []  # neither returned nor failed: killed
    assert worker.processed == [] and sqs.calls == []
    assert killer.counts["invocations_ended_by_kill.nexus-local-worker"] == 1


def wait_for(check: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


def visible_and_hidden(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def test_the_event_source_survives_a_killed_invocation_and_leaves_its_messages(aws):
    _, sqs = aws
    url = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    calls: list[list[str]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append([r["body"] for r in event["Records"]])
        if len(calls) == 1:
            raise Killed("the first invocation dies")

    poller = SqsPoller(handler, url, sqs=sqs, concurrency=1, chaos=chaos()).start()
    try:
        sqs.send_message(QueueUrl=url, MessageBody="run")
        wait_for(lambda: len(calls) >= 2)  # back after its visibility timeout
        wait_for(lambda: visible_and_hidden(sqs, url) == 0)  # deleted once handled
    finally:
        poller.stop(5)
    assert calls[:2] == [["run"], ["run"]]


# -- double delivery ---------------------------------------------------------------------------


def test_each_batch_goes_to_two_invocations_that_both_reach_the_handler(aws):
    _, sqs = aws
    url = sqs.create_queue(QueueName="work")["QueueUrl"]
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        invocation = current_invocation()
        assert invocation is not None
        with lock:
            seen.extend((r["body"], invocation.id) for r in event["Records"])

    doubled = chaos(duplicate=True)
    poller = SqsPoller(handler, url, sqs=sqs, concurrency=2, chaos=doubled).start()
    try:
        for body in ("a", "b", "c"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        wait_for(lambda: len(seen) >= 6 and visible_and_hidden(sqs, url) == 0)
    finally:
        poller.stop(5)
    for body in ("a", "b", "c"):
        invocations = [i for b, i in seen if b == body]
        assert len(invocations) == 2 and len(set(invocations)) == 2
    assert doubled.counts["duplicate_deliveries"] == 3


# -- the second tick ---------------------------------------------------------------------------


def test_a_second_tick_fires_beside_the_first():
    names: list[str] = []
    ticks = chaos(second_tick=True, tick_jitter=0.0)
    loop = TickLoop(
        lambda event, context: names.append(context.function_name), period=0.2, chaos=ticks
    ).start()
    try:
        wait_for(lambda: {"nexus-local-tick", "nexus-local-tick-2"} <= set(names), 10)
    finally:
        loop.stop(5)
    assert ticks.counts["ticks"] >= 1 and ticks.counts["second_ticks"] >= 1


def test_a_killed_tick_does_not_end_the_tick_loop(aws):
    db, _ = aws
    ticks = chaos(tick_kill=1.0, kill_after=0.0, second_tick=False).install(db)
    fired: list[int] = []

    def tick(event: dict[str, Any], context: Any) -> None:
        fired.append(1)
        get(db)

    loop = TickLoop(tick, period=0.2, chaos=ticks).start()
    try:
        wait_for(lambda: len(fired) >= 3, 10)
    finally:
        loop.stop(5)
        ticks.uninstall()
    assert ticks.counts["invocations_ended_by_kill.nexus-local-tick"] >= 3


# -- the task log --------------------------------------------------------------------------------


def test_chaos_tasks_log_each_execution_with_its_invocation(aws, tmp_path):
    from chalicelib.tasks import RunContext, registry

    db, _ = aws
    logged = Chaos(ChaosConfig(aws_errors=0.0, duplicate=False), tmp_path).install(db)
    ctx = RunContext(job_id=5, scheduled_for=T0, execution_id="5-x-1", attempt=1)
    try:
        assert registry.get("chaos.sleep").timeout_seconds == 5.0
        logged.invoke("fn", [{}], lambda: registry.get("chaos.echo").func(ctx, 1))
        with pytest.raises(RuntimeError):
            registry.get("chaos.fail").func(ctx)
    finally:
        logged.uninstall()
    lines = (tmp_path / "chaos-executions.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    executions = [e for e in entries if "e" in e]
    assert [(e["e"], e["ok"], e["inv"] is not None) for e in executions] == [
        ("5-x-1", True, True),
        ("5-x-1", False, False),
    ]
    report = json.loads((tmp_path / "chaos.json").read_text())
    assert report["counts"]["task_executions"] == 2


# -- the audit -----------------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def job(job_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "job_type": "interval",
        "interval_seconds": 10,
        "concurrency_policy": "allow",
        "max_retries": 0,
        "misfire_grace_seconds": 5,
        "running": {},
        "created_at": at(0),
        **fields,
    }


def run(job_id: int, t: float, attempt: int = 1, status: str = "completed", **fields: Any) -> Any:
    started = fields.pop("started", t + 0.1)
    ended = fields.pop("ended", t + 0.5)
    record = {
        "id": f"{job_id}-{t:g}-{attempt}",
        "job_id": job_id,
        "scheduled_for": at(t),
        "attempt": attempt,
        "status": status,
        "trigger": "scheduled",
        "started_at": None if status in ("missed", "skipped") else at(started),
        "completed_at": None if status in ("pending", "running") else at(ended),
        **fields,
    }
    return record


def every_ten(job: Any, first: datetime, last: datetime) -> list[datetime]:
    out, t = [], at(10)
    while t <= last:
        if t >= first:
            out.append(t)
        t += timedelta(seconds=10)
    return out


def clean() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs = [
        job(1, last_run_at=at(30.5), last_run_status="completed"),
        job(2, max_retries=2, last_run_at=at(22), last_run_status="completed"),
    ]
    runs = [
        run(1, 10),
        run(1, 20, status="missed"),
        run(1, 30),
        run(2, 10, status="failed", ended=11),
        run(2, 10, attempt=2, status="failed", ended=13),
        run(2, 10, attempt=3, ended=15),
        run(2, 20, ended=22),
        run(2, 30, status="skipped"),
    ]
    return jobs, runs


def check(jobs: Any, runs: Any, **kw: Any) -> dict[str, Any]:
    kw.setdefault("occurrences", every_ten)
    kw.setdefault("paused_at", {1: at(36), 2: at(36)})
    return audit(jobs, runs, **kw)


INVARIANTS = (
    "duplicates",
    "lost",
    "stuck",
    "overlaps",
    "record_overlaps",
    "status_mismatches",
    "counter_mismatches",
    "api_mismatches",
)


def test_a_clean_history_passes():
    jobs, runs = clean()
    stats = {"total_executions": 6, "successful_executions": 4, "failed_executions": 2}
    result = check(jobs, runs, stats=stats)
    assert {k: result[k] for k in INVARIANTS} == dict.fromkeys(INVARIANTS, 0)
    assert result["occurrences_checked"] == 6
    assert result["attempts_run"] == 6 and result["retries"] == 2


def test_it_reports_a_duplicate_attempt():
    jobs, runs = clean()
    runs.append(run(2, 20, attempt=2))  # a second attempt after a completed one
    result = check(jobs, runs)
    assert result["duplicates"] == 1
    assert "attempt 2 exists after attempt 1 ended completed" in result["findings"]["duplicates"][0]


def test_it_reports_attempts_beyond_max_retries_and_after_a_dead_letter():
    jobs, runs = clean()
    runs.append(run(1, 30, attempt=2))
    runs[2] = run(1, 30, status="failed", reason="dead-lettered")
    result = check(jobs, runs)
    assert any("beyond max_retries" in f for f in result["findings"]["duplicates"])
    assert any("dead-lettered" in f for f in result["findings"]["duplicates"])


def test_it_reports_a_stuck_run():
    jobs, runs = clean()
    runs[0] = run(1, 10, status="running", lease_until=at(40))
    result = check(jobs, runs)
    assert result["stuck"] == 1
    assert "still running" in result["findings"]["stuck"][0]


def test_it_reports_an_overlapping_forbid_pair_in_the_records_and_in_the_task_log():
    jobs = [job(3, concurrency_policy="forbid")]
    runs = [run(3, 10, started=10, ended=14), run(3, 20, started=20, ended=21)]
    assert check(jobs, runs, paused_at={})["record_overlaps"] == 0
    runs[1] = run(3, 20, started=13, ended=21)
    result = check(jobs, runs, paused_at={})
    assert result["record_overlaps"] == 1
    executions = [
        {"e": "3-10-1", "job": 3, "t0": 100.0, "t1": 104.0, "inv": 1},
        {"e": "3-20-1", "job": 3, "t0": 103.0, "t1": 105.0, "inv": 2},
    ]
    assert check(jobs, runs, paused_at={}, executions=executions)["overlaps"] == 1


def test_it_reports_lost_occurrences_retries_and_manual_runs():
    jobs, runs = clean()
    del runs[2]  # job 1's run at 30 s: no record
    runs = [r for r in runs if not (r["job_id"] == 2 and r["attempt"] == 3)]  # no third attempt
    result = check(jobs, runs, manual=["1-manual-1"])
    lost = result["findings"]["lost"]
    assert result["lost"] == 3, lost
    assert any("retry (of 3) never came" in f for f in lost)
    assert any("job 1 run 2026-01-05T12:00:30Z: no record" in f for f in lost)
    assert any("manual run 1-manual-1" in f for f in lost)


def test_a_missed_range_covers_its_occurrences_and_may_not_repeat_them():
    jobs, runs = clean()
    runs = [r for r in runs if r["job_id"] == 2]
    runs.append(run(1, 10, attempt=0, status="missed", missed_until=at(30)))
    jobs[0] = job(1)
    assert check(jobs, runs)["lost"] == 0
    runs.append(run(1, 20))
    assert check(jobs, runs)["duplicates"] == 1


def test_a_task_run_twice_at_once_or_after_its_outcome_is_a_duplicate():
    jobs, runs = clean()
    done = runs[0]["completed_at"].timestamp()
    takeover = [
        {"e": "1-10-1", "job": 1, "t0": done - 40, "t1": done - 39, "inv": 1},
        {"e": "1-10-1", "job": 1, "t0": done - 1, "t1": done, "inv": 2},
    ]
    result = check(jobs, runs, executions=takeover, deaths={1: done - 39})
    assert result["duplicates"] == 0 and result["re_executions_after_kill"] == 1
    at_once = [dict(takeover[0], t1=done - 0.5), takeover[1]]
    assert check(jobs, runs, executions=at_once)["duplicates"] == 1
    after = [takeover[1], dict(takeover[1], t0=done + 5, t1=done + 6, inv=3)]
    assert check(jobs, runs, executions=after)["duplicates"] == 1


def test_it_reports_a_stale_slot_a_wrong_last_run_and_counters_off_by_one():
    jobs, runs = clean()
    jobs[0]["running"] = {run_key(at(30), 1): "2026-01-05T12:01:00.000000Z"}
    jobs[1]["last_run_status"] = "failed"
    stats = {"total_executions": 7, "successful_executions": 4, "failed_executions": 2}
    api_jobs = {
        1: {"status": "running", "running_count": 1, **shown_last_run(at(30.5), "completed")},
        2: {"status": "paused", **shown_last_run(at(22), "failed")},
    }
    result = check(jobs, runs, stats=stats, api_jobs=api_jobs)
    assert result["status_mismatches"] == 4, result["findings"]["status_mismatches"]
    assert result["counter_mismatches"] == 1
    assert "stats total_executions 7, records 6" in result["findings"]["counter_mismatches"][0]


def shown_last_run(when: datetime, status: str) -> dict[str, Any]:
    return {"last_run_at": iso(when), "last_run_status": status}


def test_the_last_run_is_checked_as_the_api_shows_it_when_the_job_item_does_not_hold_it():
    # A plain job's quick success is not written on the job item (engine.worker, F2): the API
    # reads it from the run's record. The audit checks what the API shows.
    jobs, runs = clean()
    jobs[0]["last_run_at"], jobs[0]["last_run_status"] = at(10.5), "completed"
    api_jobs = {
        1: {"status": "completed", **shown_last_run(at(30.5), "completed")},
        2: {"status": "completed", **shown_last_run(at(22), "completed")},
    }
    assert check(jobs, runs, api_jobs=api_jobs)["status_mismatches"] == 0
    api_jobs[1] = {"status": "completed", **shown_last_run(at(10.5), "completed")}
    result = check(jobs, runs, api_jobs=api_jobs)
    assert result["status_mismatches"] == 1
    assert result["findings"]["status_mismatches"][0].startswith("job 1: last run completed at")


def test_it_compares_the_history_the_api_shows_with_the_table():
    jobs, runs = clean()
    api_runs = {
        1: [{"id": r["id"], "status": r["status"]} for r in runs if r["job_id"] == 1],
        2: [{"id": r["id"], "status": r["status"]} for r in runs if r["job_id"] == 2][1:],
    }
    result = check(jobs, runs, api_runs=api_runs)
    assert result["api_mismatches"] == 1
    assert result["findings"]["api_mismatches"][0].startswith("job 2: 5 records in the table, 4")
