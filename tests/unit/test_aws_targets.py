"""The AWS targets (chalicelib/tasks/aws_targets.py) on moto: what each sends or starts, what a
run delivered twice does, what validation refuses, and the NEXUS_TARGET_ALLOW matching.

Lambda cannot be invoked on moto without Docker: its client (the one the task uses, from
chalicelib.aws.target_client) is stubbed with botocore's Stubber, which checks the request
against the service model.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from moto import mock_aws

from chalicelib import aws, config
from chalicelib.tasks import RunContext, registry
from chalicelib.tasks.aws_targets import (
    TargetFailed,
    TargetNotAllowed,
    execution_name,
    idempotency_key,
    target_allowed,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's account
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CTX = RunContext(job_id=7, scheduled_for=AT, execution_id="7-20260302T090000Z-1", attempt=1)
# The same run, delivered again and attempted again.
AGAIN = RunContext(job_id=7, scheduled_for=AT, execution_id="7-20260302T090000Z-2", attempt=2)
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:report"
ALLOW = [
    f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-*",
    f"arn:aws:lambda:*:{ACCOUNT}:function:report",
    f"arn:aws:sns:{REGION}:{ACCOUNT}:*",
    f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:*",
    f"arn:aws:events:{REGION}:*:event-bus/default",
]


def run(name: str, ctx: RunContext = CTX, **kwargs: Any) -> Any:
    return registry.get(name).func(ctx, **kwargs)


def check(name: str, **kwargs: Any) -> list[tuple[tuple[str | int, ...], str]]:
    return [(e.loc, e.msg) for e in registry.get(name).check_arguments([], kwargs)]


@pytest.fixture(autouse=True)
def _stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, json.dumps(ALLOW))
    monkeypatch.delenv("NEXUS_AWS_ENDPOINT_URL", raising=False)
    config.get_settings.cache_clear()
    aws.target_client.cache_clear()
    yield
    config.get_settings.cache_clear()
    aws.target_client.cache_clear()


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


def sqs() -> Any:
    return boto3.client("sqs", region_name=REGION)


def queue(name: str) -> str:
    attributes = {"FifoQueue": "true"} if name.endswith(".fifo") else {}
    return str(sqs().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])


def received(url: str) -> list[dict[str, Any]]:
    """Every message now in the queue (moto hands them out at once)."""
    answer = sqs().receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )
    return list(answer.get("Messages", []))


# -- the allowlist's matching ------------------------------------------------------------------

MATCHES = [
    # (arn, patterns, allowed)
    ("arn:aws:sqs:us-east-1:123456789012:orders-eu", ["arn:aws:sqs:us-east-1:*:orders-*"], True),
    ("arn:aws:sqs:us-east-1:123456789012:orders", ["arn:aws:sqs:us-east-1:*:orders-*"], False),
    ("arn:aws:sqs:us-east-1:123456789012:billing", ["arn:aws:sqs:*"], True),
    ("arn:aws:sqs:us-east-1:123456789012:billing", [], False),
    # whole match: a pattern is not a prefix
    ("arn:aws:lambda:eu-west-1:123456789012:function:reports", [FUNCTION], False),
    ("arn:aws:lambda:us-east-1:123456789012:function:report", [FUNCTION], True),
    # the account is matched too
    ("arn:aws:lambda:us-east-1:999999999999:function:report", ALLOW, False),
    ("arn:aws:lambda:eu-west-1:123456789012:function:report", ALLOW, True),
    # regex characters in a pattern are themselves
    ("arn:aws:sns:us-east-1:123456789012:aXfifo", ["arn:aws:sns:us-east-1:*:a.fifo"], False),
    ("arn:aws:sns:us-east-1:123456789012:a.fifo", ["arn:aws:sns:us-east-1:*:a.fifo"], True),
    # case matters, as it does to AWS
    ("arn:aws:sqs:us-east-1:123456789012:Orders-1", ["arn:aws:sqs:*:orders-*"], False),
    # one of several
    ("arn:aws:events:us-east-1:*:event-bus/default", ["arn:aws:sqs:*", ALLOW[-1]], True),
]


@pytest.mark.parametrize("arn, patterns, allowed", MATCHES)
def test_an_arn_is_allowed_only_when_a_pattern_matches_it_whole(arn, patterns, allowed):
    assert target_allowed(arn, patterns) is allowed


def test_a_malformed_allowlist_is_refused_with_what_is_accepted(monkeypatch):
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, "arn:aws:sqs:*")
    with pytest.raises(ValueError) as refused:
        config.target_allow()
    assert str(refused.value) == (
        "NEXUS_TARGET_ALLOW is 'arn:aws:sqs:*'; a JSON list of ARN patterns is accepted, "
        'e.g. ["arn:aws:sqs:us-east-1:123456789012:orders-*"]'
    )


# -- the run's identity ------------------------------------------------------------------------


def test_the_idempotency_key_is_the_runs_identity_whatever_the_attempt():
    assert idempotency_key(CTX) == idempotency_key(AGAIN) == "7-20260302T090000Z"
    later = RunContext(7, AT.replace(microsecond=250), "7-x-1", 1)
    assert idempotency_key(later) == "7-20260302T090000.000250Z"


def test_an_execution_name_uses_only_what_step_functions_allows_and_at_most_80_characters():
    huge = RunContext(10**17, AT.replace(microsecond=1), "x", 1)
    for ctx in (CTX, huge):
        name = execution_name(ctx)
        assert 1 <= len(name) <= 80
        assert all(c.isalnum() or c in "-_." for c in name), name
    assert execution_name(CTX) == "nexus-7-20260302T090000Z"


# -- SQS ---------------------------------------------------------------------------------------


def test_a_message_is_sent_to_a_standard_queue_with_the_runs_key(moto):
    url = queue("orders-new")
    result = run("aws.sqs.send", queue_url=url, body={"order": 1})
    [message] = received(url)
    assert result == {"message_id": message["MessageId"], "sequence_number": None}
    assert json.loads(message["Body"]) == {"order": 1}
    key = message["MessageAttributes"]["nexus-idempotency-key"]["StringValue"]
    assert key == "7-20260302T090000Z"


def test_a_run_delivered_twice_sends_one_fifo_sqs_message(moto):
    url = queue("orders-new.fifo")
    first = run("aws.sqs.send", queue_url=url, body="hello", group_id="g1")
    run("aws.sqs.send", AGAIN, queue_url=url, body="hello", group_id="g1")
    [message] = received(url)
    assert message["Body"] == "hello"
    assert first["message_id"] == message["MessageId"]


def test_two_runs_of_a_job_send_two_fifo_sqs_messages(moto):
    url = queue("orders-new.fifo")
    run("aws.sqs.send", queue_url=url, body="hello", group_id="g1")
    next_run = RunContext(7, AT.replace(hour=10), "7-20260302T100000Z-1", 1)
    run("aws.sqs.send", next_run, queue_url=url, body="hello", group_id="g1")
    assert len(received(url)) == 2


# -- SNS ---------------------------------------------------------------------------------------


def subscribed_queue(topic_arn: str, name: str) -> str:
    url = queue(name)
    arn = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    sns = boto3.client("sns", region_name=REGION)
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=arn["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return url


def test_a_message_is_published_to_a_topic_with_its_attributes(moto):
    topic = boto3.client("sns", region_name=REGION).create_topic(Name="alerts")["TopicArn"]
    url = subscribed_queue(topic, "alerts-copy")
    result = run(
        "aws.sns.publish", topic_arn=topic, message={"level": "high"}, attributes={"team": "ops"}
    )
    [message] = received(url)
    assert json.loads(message["Body"]) == {"level": "high"}
    assert message["MessageAttributes"]["team"]["StringValue"] == "ops"
    assert message["MessageAttributes"]["nexus-idempotency-key"]["StringValue"] == (
        "7-20260302T090000Z"
    )
    assert isinstance(result["message_id"], str) and result["message_id"]


def test_a_run_delivered_twice_publishes_to_a_fifo_topic_with_one_deduplication_id(moto):
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="alerts.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url = subscribed_queue(topic, "alerts-copy.fifo")
    run("aws.sns.publish", topic_arn=topic, message="m", group_id="g")
    run("aws.sns.publish", AGAIN, topic_arn=topic, message="m", group_id="g")
    # The copy queue deduplicates on the id SNS passes on: one message, so one id was sent.
    [message] = received(url)
    assert message["Body"] == "m"


# -- Step Functions ----------------------------------------------------------------------------

DEFINITION = json.dumps({"StartAt": "S", "States": {"S": {"Type": "Pass", "End": True}}})


def state_machine() -> tuple[Any, str]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = sfn.create_state_machine(
        name="nightly", definition=DEFINITION, roleArn=f"arn:aws:iam::{ACCOUNT}:role/sfn"
    )["stateMachineArn"]
    return sfn, str(arn)


def test_an_execution_is_started_with_the_input_and_named_after_the_run(moto):
    sfn, machine = state_machine()
    result = run("aws.stepfunctions.start", state_machine_arn=machine, input={"day": "mon"})
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert execution["name"] == "nexus-7-20260302T090000Z"
    assert result["execution_arn"] == execution["executionArn"]
    assert result["already_started"] is False
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"day": "mon"}
    assert datetime.fromisoformat(result["start_date"]) == described["startDate"]


def test_a_run_delivered_twice_starts_one_step_functions_execution(moto):
    sfn, machine = state_machine()
    first = run("aws.stepfunctions.start", state_machine_arn=machine, input={"day": "mon"})
    second = run("aws.stepfunctions.start", AGAIN, state_machine_arn=machine, input={"day": "mon"})
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    assert second["execution_arn"] == first["execution_arn"]


def test_a_run_delivered_after_its_execution_ended_returns_that_execution(moto):
    sfn, machine = state_machine()
    first = run("aws.stepfunctions.start", state_machine_arn=machine, input={"day": "mon"})
    sfn.stop_execution(executionArn=first["execution_arn"])
    # Step Functions answers ExecutionAlreadyExists now; same input: the run's own execution.
    again = run("aws.stepfunctions.start", AGAIN, state_machine_arn=machine, input={"day": "mon"})
    assert again["execution_arn"] == first["execution_arn"]
    assert again["already_started"] is True
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1


def test_a_run_whose_execution_exists_with_another_input_fails_and_starts_nothing(moto):
    sfn, machine = state_machine()
    run("aws.stepfunctions.start", state_machine_arn=machine, input={"day": "mon"})
    with pytest.raises(TargetFailed) as failed:
        run("aws.stepfunctions.start", AGAIN, state_machine_arn=machine, input={"day": "tue"})
    assert "exists with another input" in str(failed.value)
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 1


# -- EventBridge -------------------------------------------------------------------------------


def test_an_event_is_put_on_the_default_bus_with_the_runs_identity_in_its_detail(moto):
    url = queue("orders-events")
    arn = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["com.example.orders"]}))
    events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    result = run("aws.events.put", source="com.example.orders", detail_type="tick", detail={"n": 1})
    [message] = received(url)
    event = json.loads(message["Body"])
    assert event["id"] == result["event_id"]
    assert event["detail-type"] == "tick"
    assert event["detail"] == {
        "n": 1,
        "nexus": {
            "job_id": 7,
            "scheduled_for": "2026-03-02T09:00:00+00:00",
            "execution_id": "7-20260302T090000Z-1",
            "idempotency_key": "7-20260302T090000Z",
        },
    }


def test_an_event_eventbridge_refuses_fails_the_run():
    client = aws.target_client("events", REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "put_events",
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}],
            },
        )
        with pytest.raises(TargetFailed) as failed:
            run("aws.events.put", source="com.example.orders", detail_type="tick")
        stub.assert_no_pending_responses()
    assert str(failed.value) == (
        "EventBridge refused the event on default: InternalFailure: try later"
    )


# -- Lambda (stubbed) --------------------------------------------------------------------------


def streamed(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


ENVELOPE = {
    "nexus": {
        "execution_id": "7-20260302T090000Z-1",
        "idempotency_key": "7-20260302T090000Z",
        "job_id": 7,
        "scheduled_for": "2026-03-02T09:00:00+00:00",
    },
    "payload": {"day": "mon"},
}


def test_a_function_is_invoked_with_the_runs_identity_and_its_answer_is_recorded():
    client = aws.target_client("lambda", REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": streamed(b'{"ok":1}')},
            {
                "FunctionName": FUNCTION,
                "InvocationType": "RequestResponse",
                "Payload": json.dumps(ENVELOPE, sort_keys=True, separators=(",", ":")).encode(),
            },
        )
        result = run("aws.lambda.invoke", function_arn=FUNCTION, payload={"day": "mon"})
        stub.assert_no_pending_responses()
    assert result == {
        "status_code": 200,
        "function_error": None,
        "executed_version": "$LATEST",
        "payload": {"ok": 1},
        "truncated": False,
    }


def test_a_long_answer_is_recorded_as_its_first_4_kb():
    client = aws.target_client("lambda", REGION)
    with Stubber(client) as stub:
        stub.add_response("invoke", {"StatusCode": 200, "Payload": streamed(b'"' + b"x" * 9000)})
        result = run("aws.lambda.invoke", function_arn=FUNCTION)
    assert result["truncated"] is True
    assert len(result["payload"]) == 4096


def test_an_asynchronous_invoke_records_its_status_only():
    client = aws.target_client("lambda", REGION)
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202, "Payload": streamed(b"")},
            {"FunctionName": FUNCTION, "InvocationType": "Event", "Payload": ANY},
        )
        result = run("aws.lambda.invoke", function_arn=FUNCTION, invocation_type="Event")
    assert result == {"status_code": 202, "function_error": None, "executed_version": None}


def test_a_function_error_fails_the_run_so_the_engine_retries_it():
    client = aws.target_client("lambda", REGION)
    answer = b'{"errorMessage":"boom","errorType":"Exception"}'
    with Stubber(client) as stub:
        stub.add_response(
            "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": streamed(answer)}
        )
        with pytest.raises(TargetFailed) as failed:
            run("aws.lambda.invoke", function_arn=FUNCTION)
    assert str(failed.value) == f"function {FUNCTION} failed (Unhandled): {answer.decode()}"


# -- the allowlist at run time -----------------------------------------------------------------


def test_a_target_removed_from_the_allowlist_since_the_job_was_made_fails_its_run_unsent(
    moto, monkeypatch
):
    url = queue("orders-new")
    assert check("aws.sqs.send", queue_url=url, body="x") == []
    monkeypatch.setenv(config.TARGET_ALLOW_ENV, "[]")
    with pytest.raises(TargetNotAllowed) as refused:
        run("aws.sqs.send", queue_url=url, body="x")
    assert str(refused.value) == (
        f"queue_url: arn:aws:sqs:{REGION}:{ACCOUNT}:orders-new is not allowed: this stage "
        "allows no AWS target; list ARN patterns in NEXUS_TARGET_ALLOW to allow some"
    )
    assert received(url) == []


def test_a_local_queue_url_is_accepted_only_with_the_embedded_aws(monkeypatch):
    local = f"http://127.0.0.1:4566/{ACCOUNT}/orders-local"
    [(loc, _)] = check("aws.sqs.send", queue_url=local, body="x")
    assert loc == ("task_kwargs", "queue_url")
    monkeypatch.setenv("NEXUS_AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    config.get_settings.cache_clear()
    assert check("aws.sqs.send", queue_url=local, body="x") == []


# -- validation --------------------------------------------------------------------------------

SQS_URL = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders-new"
SQS_FORM = "https://sqs.REGION.amazonaws.com/ACCOUNT/NAME"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:nightly"
LAMBDA_FORM = "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]"

REFUSED = [
    # (task, kwargs, field, message)
    (
        "aws.lambda.invoke",
        {},
        "function_arn",
        f"function_arn is required: the function's ARN, {LAMBDA_FORM}",
    ),
    (
        "aws.lambda.invoke",
        {"function_arn": "report"},
        "function_arn",
        f'function_arn "report" is not accepted; accepted: {LAMBDA_FORM}',
    ),
    (  # an ARN of the wrong service
        "aws.lambda.invoke",
        {"function_arn": TOPIC},
        "function_arn",
        f'function_arn "{TOPIC}" is not accepted; accepted: {LAMBDA_FORM}',
    ),
    (
        "aws.lambda.invoke",
        {"function_arn": FUNCTION, "invocation_type": "Later"},
        "invocation_type",
        "invocation_type must be one of RequestResponse, Event, DryRun",
    ),
    (
        "aws.lambda.invoke",
        {"function_arn": FUNCTION, "payload": "x" * (256 * 1024)},
        "payload",
        "payload is 262146 bytes; at most 262144 are accepted",
    ),
    (
        "aws.lambda.invoke",
        {"function_arn": FUNCTION, "payload": float("nan")},
        "payload",
        "payload must be a JSON value (no NaN or infinity)",
    ),
    (
        "aws.lambda.invoke",
        {"function_arn": FUNCTION, "functon": 1},
        "functon",
        "aws.lambda.invoke has no argument functon; accepted: function_arn, payload, "
        "invocation_type",
    ),
    (  # outside the allowlist: another account
        "aws.lambda.invoke",
        {"function_arn": "arn:aws:lambda:us-east-1:999999999999:function:report"},
        "function_arn",
        "arn:aws:lambda:us-east-1:999999999999:function:report is not in NEXUS_TARGET_ALLOW; "
        f"allowed: {', '.join(ALLOW)} (add a pattern to NEXUS_TARGET_ALLOW to allow it)",
    ),
    (
        "aws.sqs.send",
        {"queue_url": SQS_URL.replace("https://", "http://"), "body": "x"},
        "queue_url",
        f'queue_url "{SQS_URL.replace("https://", "http://")}" is not accepted; '
        f"accepted: {SQS_FORM}",
    ),
    (
        "aws.sqs.send",
        {"queue_url": SQS_URL + ".fifo", "body": "x"},
        "group_id",
        "group_id is required for a FIFO queue: 1-128 letters, digits or punctuation",
    ),
    (
        "aws.sqs.send",
        {"queue_url": SQS_URL, "body": "x", "group_id": "g"},
        "group_id",
        "group_id is only for a FIFO queue (a name ending in .fifo); leave it out for this one",
    ),
    (
        "aws.sqs.send",
        {"queue_url": SQS_URL, "body": ""},
        "body",
        "body must not be empty",
    ),
    (
        "aws.sqs.send",
        {"queue_url": SQS_URL.replace("orders-new", "billing"), "body": "x"},
        "queue_url",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing is not in NEXUS_TARGET_ALLOW; "
        f"allowed: {', '.join(ALLOW)} (add a pattern to NEXUS_TARGET_ALLOW to allow it)",
    ),
    (
        "aws.sns.publish",
        {"topic_arn": TOPIC + ".fifo", "message": "m"},
        "group_id",
        "group_id is required for a FIFO topic: 1-128 letters, digits or punctuation",
    ),
    (
        "aws.sns.publish",
        {"topic_arn": TOPIC, "message": "m", "attributes": {"team": 1}},
        "attributes",
        "attributes must be an object of at most 9 names (letters, digits, _ . -; not starting "
        "with AWS. or Amazon.; not nexus-idempotency-key) to non-empty strings",
    ),
    (
        "aws.stepfunctions.start",
        {"state_machine_arn": MACHINE.replace("stateMachine", "activity")},
        "state_machine_arn",
        f'state_machine_arn "{MACHINE.replace("stateMachine", "activity")}" is not accepted; '
        "accepted: arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
    ),
    (
        "aws.events.put",
        {"source": "aws.ec2", "detail_type": "t"},
        "source",
        "source must not start with aws. (AWS keeps it for its services)",
    ),
    (
        "aws.events.put",
        {"source": "s", "detail_type": "t", "detail": [1]},
        "detail",
        "detail must be a JSON object",
    ),
    (
        "aws.events.put",
        {"source": "s", "detail_type": "t", "event_bus": "orders"},
        "event_bus",
        f"arn:aws:events:{REGION}:*:event-bus/orders is not in NEXUS_TARGET_ALLOW; "
        f"allowed: {', '.join(ALLOW)} (add a pattern to NEXUS_TARGET_ALLOW to allow it)",
    ),
]


@pytest.mark.parametrize("name, kwargs, field, message", REFUSED)
def test_arguments_a_target_cannot_use_are_refused_naming_the_field(name, kwargs, field, message):
    assert check(name, **kwargs) == [(("task_kwargs", field), message)]


ACCEPTED = [
    ("aws.lambda.invoke", {"function_arn": FUNCTION + ":prod", "payload": [1, "a"]}),
    ("aws.lambda.invoke", {"function_arn": FUNCTION, "invocation_type": "DryRun"}),
    ("aws.sqs.send", {"queue_url": SQS_URL, "body": {"a": 1}}),
    ("aws.sqs.send", {"queue_url": SQS_URL + ".fifo", "body": "x", "group_id": "g-1"}),
    ("aws.sns.publish", {"topic_arn": TOPIC, "message": "m", "attributes": {"team": "ops"}}),
    ("aws.sns.publish", {"topic_arn": TOPIC + ".fifo", "message": "m", "group_id": "g"}),
    ("aws.stepfunctions.start", {"state_machine_arn": MACHINE, "input": {"x": [1]}}),
    ("aws.events.put", {"source": "com.example", "detail_type": "t", "detail": {"a": 1}}),
]


@pytest.mark.parametrize("name, kwargs", ACCEPTED)
def test_arguments_inside_the_allowlist_are_accepted(name, kwargs):
    assert check(name, **kwargs) == []


def test_an_empty_allowlist_refuses_every_target_saying_which_setting_to_change(monkeypatch):
    monkeypatch.delenv(config.TARGET_ALLOW_ENV)
    assert check("aws.stepfunctions.start", state_machine_arn=MACHINE) == [
        (
            ("task_kwargs", "state_machine_arn"),
            f"{MACHINE} is not allowed: this stage allows no AWS target; "
            "list ARN patterns in NEXUS_TARGET_ALLOW to allow some",
        )
    ]


def test_positional_arguments_are_refused():
    errors = registry.get("aws.sqs.send").check_arguments([SQS_URL], {"body": "x"})
    assert [(e.loc, e.msg) for e in errors] == [
        (
            ("task_args",),
            "aws.sqs.send takes no positional arguments; give queue_url, body, group_id in "
            "task_kwargs",
        ),
        (
            ("task_kwargs", "queue_url"),
            f"queue_url is required: the queue's URL, {SQS_FORM}",
        ),
    ]
