"""Issue 14, item 5 on make run: the built-in AWS targets run against the stack's embedded AWS.

The module starts its own stack (tests/e2e/conftest.py's LocalServer) with a
NEXUS_TARGET_ALLOW that lists the `e2e-*` queues, state machines and buses, as a stage's
variables would. The test makes those resources in the embedded AWS, and a job of each kind
sends to them: what arrives there, and what the run records of the service's answer, is checked
through the embedded AWS's own API.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import LocalServer, request, until

ACCOUNT = "123456789012"  # the embedded AWS's account
ALLOW = [
    f"arn:aws:sqs:us-east-1:{ACCOUNT}:e2e-*",
    f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:e2e-*",
    # a bus named without its ARN is matched as ...:*:event-bus/NAME (README, AWS targets)
    "arn:aws:events:us-east-1:*:event-bus/e2e-*",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    local = LocalServer(
        tmp_path_factory.mktemp("targets-state"),
        extra_env={"NEXUS_TARGET_ALLOW": json.dumps(ALLOW)},
    )
    yield local
    local.stop()


@pytest.fixture
def conn(stack: LocalServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    yield connection
    connection.close()


def run_once_soon(
    conn: http.client.HTTPConnection, name: str, task: str, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Create a date job 2 s ahead calling `task`, and wait for its one run to finish."""
    at = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    status, job = request(
        conn,
        "POST",
        "/api/v1/jobs",
        {
            "name": name,
            "job_type": "date",
            "scheduled_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "task_name": task,
            "task_kwargs": kwargs,
        },
    )
    assert status == 201, job

    def finished() -> list[dict[str, Any]]:
        status, found = request(conn, "GET", f"/api/v1/jobs/{job['id']}/executions")
        assert status == 200, found
        return [r for r in found if r["status"] in ("completed", "failed")]

    (run,) = until(finished, 60, f"the run of {name}")
    assert isinstance(run, dict) and run["status"] == "completed", run
    assert run["scheduled_for"] == at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return run


def key_of(run: dict[str, Any]) -> str:
    """The run's idempotency key: its execution id without the attempt."""
    return str(run["id"]).rsplit("-", 1)[0]


def test_a_job_sends_one_message_to_a_fifo_queue_of_the_embedded_aws(
    stack: LocalServer, conn: http.client.HTTPConnection
) -> None:
    sqs = stack.client("sqs")
    url = sqs.create_queue(QueueName="e2e-orders.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]

    run = run_once_soon(
        conn,
        "send the order batch",
        "aws.sqs.send",
        {"queue_url": url, "body": {"batch": 7}, "group_id": "orders"},
    )

    got = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=1,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )["Messages"]
    (message,) = got
    assert json.loads(message["Body"]) == {"batch": 7}
    assert message["Attributes"]["MessageGroupId"] == "orders"
    assert message["Attributes"]["MessageDeduplicationId"] == key_of(run)
    assert message["MessageAttributes"]["nexus-idempotency-key"]["StringValue"] == key_of(run)
    assert run["result"]["message_id"] == message["MessageId"]


def test_a_job_starts_one_step_functions_execution_named_after_its_run(
    stack: LocalServer, conn: http.client.HTTPConnection
) -> None:
    states = stack.client("stepfunctions")
    machine = states.create_state_machine(
        name="e2e-nightly-etl",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/e2e-states",
    )["stateMachineArn"]

    run = run_once_soon(
        conn,
        "start the nightly ETL",
        "aws.stepfunctions.start",
        {"state_machine_arn": machine, "input": {"day": "2026-11-27"}},
    )

    (execution,) = states.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"] == f"nexus-{key_of(run)}".replace(":", "_")
    assert run["result"]["execution_arn"] == execution["executionArn"]
    assert run["result"]["already_started"] is False
    described = states.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"day": "2026-11-27"}


def test_a_job_puts_one_event_on_a_bus_of_the_embedded_aws(
    stack: LocalServer, conn: http.client.HTTPConnection
) -> None:
    events = stack.client("events")
    sqs = stack.client("sqs")
    events.create_event_bus(Name="e2e-billing")
    url = sqs.create_queue(QueueName="e2e-billing-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="e2e-all-billing",
        EventBusName="e2e-billing",
        EventPattern=json.dumps({"source": ["nexus.e2e"]}),
    )
    events.put_targets(
        Rule="e2e-all-billing", EventBusName="e2e-billing", Targets=[{"Id": "q", "Arn": queue_arn}]
    )

    run = run_once_soon(
        conn,
        "close the billing day",
        "aws.events.put",
        {
            "event_bus": "e2e-billing",
            "source": "nexus.e2e",
            "detail_type": "BillingDayClosed",
            "detail": {"day": "2026-11-27"},
        },
    )

    got = until(
        lambda: sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"),
        10,
        "the event, delivered by the bus's rule to a queue",
    )
    (message,) = got
    event = json.loads(message["Body"])
    assert (event["source"], event["detail-type"]) == ("nexus.e2e", "BillingDayClosed")
    assert event["detail"]["day"] == "2026-11-27"
    assert event["detail"]["nexus"]["execution_id"] == run["id"]
    assert run["result"]["event_id"] == event["id"]


def test_a_target_outside_the_stages_list_is_refused_and_nothing_is_stored(
    stack: LocalServer, conn: http.client.HTTPConnection
) -> None:
    status, before = request(conn, "GET", "/api/v1/jobs")
    assert status == 200, before
    status, answer = request(
        conn,
        "POST",
        "/api/v1/jobs",
        {
            "name": "not ours",
            "job_type": "interval",
            "interval_seconds": 60,
            "task_name": "aws.sqs.send",
            "task_kwargs": {
                "queue_url": f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/payroll",
                "body": "pay",
            },
        },
    )
    assert status == 422, answer
    text = json.dumps(answer)
    assert "task_kwargs" in text and "queue_url" in text, answer
    assert f"arn:aws:sqs:us-east-1:{ACCOUNT}:payroll is not in NEXUS_TARGET_ALLOW" in text
    status, after = request(conn, "GET", "/api/v1/jobs")
    assert (status, after) == (200, before)
