"""Failure notifications wired into the engine (issue 14, item 3): the worker decides, sends
and records a run's notifications once its final outcome is recorded (engine.lifecycle, N).

The whole engine on a virtual clock (tests/engine/harness.py: moto's DynamoDB and SSM, an
in-memory SQS, the tick, the worker's batch handler), and a real webhook receiver on
127.0.0.1 (an http.server thread; NEXUS_HTTP_ALLOW lists 127.0.0.1, as a stage would list an
internal service). The signing secret is an SSM parameter named by a `$secret` reference.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest

from chalicelib import config, notify
from chalicelib.aws import client
from chalicelib.errors import InvalidInput
from chalicelib.models import Execution, Job
from chalicelib.tasks import registry
from tests.engine.conftest import FLAKY
from tests.engine.harness import EPOCH, System, check_invariants
from tests.receiver import Receiver

SECRET = "whsec-from-ssm-5e4d3c"


def put_secret(name: str, value: str = SECRET) -> None:
    client("ssm").put_parameter(Name=f"/nexus/local/{name}", Value=value, Type="SecureString")


def hook(url: str, secret: str | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {"webhook_url": url}
    if secret is not None:
        channel["secret"] = {"$secret": f"ssm:/nexus/{secret}"}
    return channel


def date_job(system: System, **fields: Any) -> Job:
    return system.create_job(
        job_type="date", scheduled_time=(EPOCH + timedelta(seconds=30)).isoformat(), **fields
    )


def every_minute(system: System, **fields: Any) -> Job:
    return system.create_job(
        job_type="interval",
        interval_seconds=60,
        start_time=(EPOCH + timedelta(seconds=30)).isoformat(),
        task_name="test.flaky",
        **fields,
    )


def run_to(system: System, offset: timedelta) -> None:
    """Everything due until EPOCH + offset, quiet or not."""
    system.run(until=EPOCH + offset - system.clock.now, stop_when_quiet=False)


def attempts(system: System, job: Job) -> list[Execution]:
    return sorted(
        (r for r in system.records() if r.job_id == job.id and r.attempt >= 1),
        key=lambda r: (r.scheduled_for, r.attempt),
    )


def test_on_failure_notifies_once_after_the_last_retry_signed(
    system: System, receiver: Receiver
) -> None:
    put_secret("hook")
    job = date_job(
        system,
        task_name="nexus.fail",
        max_retries=2,
        retry_delay=600,
        notify={"on_failure": True, "channels": [hook(receiver.url, secret="hook")]},
    )
    # The job's answer shows its policy, the secret as its reference.
    shown = system.api.get_job(job.id).to_api()["notify"]
    assert shown["channels"][0]["secret"] == {"$secret": "ssm:/nexus/hook"}

    run_to(system, timedelta(minutes=1))
    assert [a.status for a in attempts(system, job)] == ["failed", "pending"]
    assert receiver.posts == []  # attempt 1 failed, but it is retried
    run_to(system, timedelta(minutes=11))
    assert [a.status for a in attempts(system, job)] == ["failed", "failed", "pending"]
    assert receiver.posts == []  # attempt 2 neither
    system.run()

    runs = attempts(system, job)
    assert [a.status for a in runs] == ["failed"] * 3
    assert len(receiver.posts) == 1
    _, headers, data = receiver.posts[0]
    body = json.loads(data)
    assert body["event"] == "run.failed_final"
    assert body["execution"]["id"] == runs[2].id
    assert body["execution"]["attempt"] == 3
    assert headers[notify.EVENT_HEADER] == "run.failed_final"
    timestamp = int(headers[notify.SIGNATURE_HEADER].split(",")[0].removeprefix("t="))
    notify.verify(data, headers[notify.SIGNATURE_HEADER], SECRET, now=timestamp)
    with pytest.raises(notify.InvalidSignature):
        notify.verify(data, headers[notify.SIGNATURE_HEADER], "another", now=timestamp)
    # Recorded on the last attempt only, and shown in its answer.
    assert [a.notifications is not None for a in runs] == [False, False, True]
    page, _ = system.api.list_executions(job.id, {})
    shown_runs = {r.id: r.to_api() for r in page}
    assert shown_runs[runs[0].id]["notifications"] is None
    (recorded,) = shown_runs[runs[2].id]["notifications"]
    assert recorded["status"] == "sent"
    assert recorded["event"] == "run.failed_final"
    assert recorded["channel"] == receiver.url
    assert recorded["attempts"] == 1
    check_invariants(system, [job])


def test_recovery_fires_once(system: System, receiver: Receiver) -> None:
    job = every_minute(
        system,
        notify={"on_failure": False, "on_recovery": True, "channels": [hook(receiver.url)]},
    )
    run_to(system, timedelta(minutes=2, seconds=45))  # runs at 0:30, 1:30, 2:30 fail
    assert [a.status for a in attempts(system, job)] == ["failed"] * 3
    FLAKY["fail"] = False
    run_to(system, timedelta(minutes=5, seconds=45))  # 3:30, 4:30, 5:30 succeed
    runs = attempts(system, job)
    assert [a.status for a in runs] == ["failed"] * 3 + ["completed"] * 3
    assert [b["event"] for b in receiver.bodies()] == ["run.recovered"]
    assert receiver.bodies()[0]["execution"]["id"] == runs[3].id
    assert [r.notifications is not None for r in runs] == [False] * 3 + [True, False, False]


def test_recovery_is_from_a_failed_run_not_a_failed_attempt(
    system: System, receiver: Receiver
) -> None:
    """A run whose first attempt fails and whose retry succeeds did not recover anything: the
    job's previous run had not failed."""

    @registry.task("test.notify.second_time")
    def second_time(ctx: Any) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    job = date_job(
        system,
        task_name="test.notify.second_time",
        max_retries=1,
        retry_delay=1,
        notify={"on_recovery": True, "channels": [hook(receiver.url)]},
    )
    system.run()
    assert [a.status for a in attempts(system, job)] == ["failed", "completed"]
    assert receiver.posts == []


def test_after_consecutive_failures_fires_at_the_third_failed_run_only(
    system: System, receiver: Receiver
) -> None:
    job = every_minute(
        system,
        notify={
            "on_failure": False,
            "after_consecutive_failures": 3,
            "channels": [hook(receiver.url)],
        },
    )
    run_to(system, timedelta(minutes=5, seconds=45))  # six failed runs
    runs = attempts(system, job)
    assert [a.status for a in runs] == ["failed"] * 6
    assert [b["event"] for b in receiver.bodies()] == ["job.failing"]
    assert receiver.bodies()[0]["execution"]["id"] == runs[2].id
    stored = system.store.jobs.get_job(job.id)
    assert stored.failure_streak == 6
    # A success ends the streak; three more failures fire again.
    FLAKY["fail"] = False
    run_to(system, timedelta(minutes=6, seconds=45))
    FLAKY["fail"] = True
    run_to(system, timedelta(minutes=9, seconds=45))
    runs = attempts(system, job)
    assert [a.status for a in runs] == ["failed"] * 6 + ["completed"] + ["failed"] * 3
    assert [b["execution"]["id"] for b in receiver.bodies()] == [runs[2].id, runs[9].id]


def test_a_duplicated_final_message_sends_one_notification(aws: None, receiver: Receiver) -> None:
    system = System("notify-duplicates", duplicate_every_delivery=True)
    job = date_job(
        system,
        task_name="nexus.fail",
        notify={"after_consecutive_failures": 2, "channels": [hook(receiver.url)]},
    )
    system.run()
    assert [a.status for a in attempts(system, job)] == ["failed"]
    assert [b["event"] for b in receiver.bodies()] == ["run.failed_final"]
    # The repeat counted the run once.
    assert system.store.jobs.get_job(job.id).failure_streak == 1
    check_invariants(system, [job])


def test_a_receiver_that_is_down_does_not_change_the_run(
    system: System, receiver: Receiver
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/hook"
    failing = date_job(
        system, task_name="nexus.fail", notify={"channels": [hook(closed)]}, name="fails"
    )
    system.run()
    (run,) = attempts(system, failing)
    assert run.status == "failed"
    assert run.error is not None and run.error["type"] != "DeliveryFailed"
    (recorded,) = run.notifications or []
    assert recorded["status"] == "failed"
    assert recorded["attempts"] == 3
    assert "127.0.0.1" in recorded["error"]
    assert system.job(failing.id).last_run_status == "failed"
    check_invariants(system, [failing])


def test_the_stage_default_channel(
    system: System, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NEXUS_NOTIFY_DEFAULT gets the failed runs of jobs without `notify`, and every event of
    jobs with one (beside their own channels)."""
    monkeypatch.setenv(notify.DEFAULT_ENV, json.dumps({"webhook_url": receiver.url}))
    plain = date_job(system, task_name="nexus.fail", name="plain")
    fine = date_job(system, task_name="nexus.echo", name="fine")
    system.run()
    assert [(b["event"], b["job"]["id"]) for b in receiver.bodies()] == [
        ("run.failed_final", plain.id)
    ]
    assert attempts(system, fine)[0].notifications is None


def test_bad_notify_values_are_refused_naming_the_field(system: System) -> None:
    cases = [
        ({"channels": []}, "body.notify.channels"),
        ({"channels": [{"webhook_url": "http://169.254.169.254/"}]}, "body.notify.channels.0"),
        ({"channels": [{"sns_topic_arn": "nope"}]}, "body.notify.channels.0.sns_topic_arn"),
        (
            {"on_failure": "yes", "channels": [{"webhook_url": "https://x.example/h"}]},
            "body.notify.on_failure",
        ),
        (
            {"after_consecutive_failures": 1, "channels": [{"webhook_url": "https://a.b/h"}]},
            "body.notify.after_consecutive_failures",
        ),
    ]
    for value, field in cases:
        with pytest.raises(InvalidInput) as caught:
            date_job(system, task_name="nexus.echo", notify=value)
        assert field in str(caught.value), (field, str(caught.value))


def test_an_sns_channel_gets_the_failed_run_through_the_worker(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, '["arn:aws:sns:us-east-1:123456789012:ops-*"]')
    topic = client("sns").create_topic(Name="ops-alerts")["TopicArn"]
    sqs = client("sqs")
    inbox = sqs.create_queue(QueueName="ops-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
    client("sns").subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn["Attributes"]["QueueArn"]
    )
    job = date_job(system, task_name="nexus.fail", notify={"channels": [{"sns_topic_arn": topic}]})
    system.run()
    (attempt,) = attempts(system, job)
    assert [(n["channel"], n["status"]) for n in attempt.notifications or []] == [(topic, "sent")]
    messages = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]
    (envelope,) = [json.loads(m["Body"]) for m in messages]
    assert envelope["Subject"] == "NEXUS run.failed_final: job"
    body = json.loads(envelope["Message"])
    assert (body["event"], body["execution"]["id"]) == ("run.failed_final", attempt.id)


def test_a_dead_lettered_run_is_notified_once(system: System, receiver: Receiver) -> None:
    job = date_job(system, notify={"channels": [hook(receiver.url)]})
    system.clock.now = EPOCH + timedelta(seconds=25)
    system.next_tick = system.clock.now
    system.tick()
    system.next_tick = system.clock.now + timedelta(seconds=60)
    system.clock.now = EPOCH + timedelta(seconds=30)
    system.die_on_next_message(5)
    system.run()
    (attempt,) = attempts(system, job)
    assert (attempt.status, attempt.reason) == ("failed", "dead-lettered")
    assert receiver.events() == ["run.failed_final"]
    assert receiver.bodies()[0]["execution"]["id"] == attempt.id
    assert [n["status"] for n in attempt.notifications or []] == ["sent"]


def test_a_topic_the_stage_no_longer_allows_is_a_failed_delivery_not_a_failed_run(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = "arn:aws:sns:us-east-1:123456789012:ops-alerts"
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, json.dumps([topic]))
    job = date_job(system, task_name="nexus.fail", notify={"channels": [{"sns_topic_arn": topic}]})
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, "[]")  # the stage narrowed its list since
    system.run()
    (attempt,) = attempts(system, job)
    assert attempt.status == "failed"  # the run's outcome is its own
    (delivery,) = attempt.notifications or []
    assert delivery["status"] == "failed"
    assert "this stage allows no AWS target" in delivery["error"]
    assert system.job(job.id).to_api()["notify"]["channels"][0]["sns_topic_arn"] == topic
