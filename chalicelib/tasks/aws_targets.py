"""AWS targets: tasks that invoke a Lambda function, send to SQS, publish to SNS, start a
Step Functions execution or put an EventBridge event, without code of one's own.

Each target is planned first, then called: `_plan_*` turns a job's kwargs into the call it
makes (or the FieldErrors that prevent it) without I/O, and is both the task's `validate`
(a 422 naming the field when the job is written) and the first step of the run, so the
worker refuses what the API would, with the stage's NEXUS_TARGET_ALLOW as it is at run time.

Idempotency. A run may be delivered and attempted more than once; every call carries the
run's identity, `idempotency_key(ctx)` (job id and scheduled time, never the attempt):

- Lambda: in the payload's `nexus` envelope, for the function to deduplicate on;
- SQS FIFO / SNS FIFO: as MessageDeduplicationId, so a second delivery within the service's
  five-minute deduplication window sends nothing; standard queues and topics deliver at least
  once, with the key in the `nexus-idempotency-key` message attribute;
- Step Functions: the execution's name, unique per state machine (Standard workflows), so a
  second delivery finds the execution the first one started;
- EventBridge: in the event's `detail.nexus`.

Allowlist. A stage lists the ARNs its jobs may call in NEXUS_TARGET_ALLOW (config.target_allow);
nothing is allowed while it is empty. A queue is matched by its ARN, a function and a state
machine by their unqualified ARN (an alias or version is the same function), an event bus
given by name as `arn:aws:events:<stage region>:*:event-bus/<name>` (its account is not known
without asking AWS, so only a pattern with `*` for the account matches it).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import config
from chalicelib.aws import LAMBDA_TARGET_TIMEOUT, target_client
from chalicelib.engine.lifecycle import execution_id
from chalicelib.errors import FieldError
from chalicelib.security import secrets
from chalicelib.tasks.builtin import _unless_cancelled
from chalicelib.tasks.registry import RunContext, task

# SQS, SNS, Step Functions and EventBridge cap a message, input or entry at 256 KB.
MAX_JSON_BYTES = 256 * 1024
# How much of a function's answer the run records.
LAMBDA_RESULT_CAP = 4096
# Step Functions: an execution name is 1-80 characters.
MAX_EXECUTION_NAME = 80
IDEMPOTENCY_ATTRIBUTE = "nexus-idempotency-key"


class TargetNotAllowed(PermissionError):
    """The target is outside the stage's NEXUS_TARGET_ALLOW (or the setting is malformed)."""


class TargetInvalid(ValueError):
    """The run's arguments cannot make the call (the API refuses them; a run can still meet
    them when a secret reference resolves to something else)."""


class TargetFailed(RuntimeError):
    """The service answered, and its answer is a failure of the run."""


# -- the run's identity ----------------------------------------------------------------------


def idempotency_key(ctx: RunContext) -> str:
    """`<job_id>-<scheduled_for>Z`, the same for every attempt and delivery of a run.

    lifecycle.execution_id without its attempt; not lifecycle.task_id, which drops the
    microseconds a manual run's time has, so two manual runs in one second would share it."""
    return execution_id(ctx.job_id, ctx.scheduled_for, 0).rsplit("-", 1)[0]


def execution_name(ctx: RunContext) -> str:
    """The Step Functions execution name of a run: its key, in the characters a name may
    have (letters, digits, `-`, `_`, `.`), at most 80."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"nexus-{idempotency_key(ctx)}")
    return name[:MAX_EXECUTION_NAME]


def _identity(ctx: RunContext) -> dict[str, Any]:
    return {
        "job_id": ctx.job_id,
        "scheduled_for": ctx.scheduled_for.isoformat(),
        "execution_id": ctx.execution_id,
        "idempotency_key": idempotency_key(ctx),
    }


# -- ARNs, URLs and the allowlist --------------------------------------------------------------

_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):(?P<service>[a-z0-9-]+):"
    r"(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+):(?P<account>\d{12}):(?P<resource>.+)"
)
_LAMBDA_RESOURCE = re.compile(
    r"function:(?P<name>[A-Za-z0-9_-]{1,64})(?::(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)
_SNS_RESOURCE = re.compile(r"[A-Za-z0-9_-]{1,251}\.fifo|[A-Za-z0-9_-]{1,256}")
_STATES_RESOURCE = re.compile(r"stateMachine:(?P<name>[A-Za-z0-9_.-]{1,80})(?::[A-Za-z0-9_.-]+)?")
_EVENTS_RESOURCE = re.compile(r"event-bus/(?P<name>[A-Za-z0-9/._-]{1,256})")
_BUS_NAME = re.compile(r"[A-Za-z0-9/._-]{1,256}")
_QUEUE_NAME = r"(?P<name>[A-Za-z0-9_-]{1,75}(?:\.fifo)?|[A-Za-z0-9_-]{1,80})"
_SQS_URL = re.compile(
    r"https://sqs\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?P<cn>\.cn)?/"
    rf"(?P<account>\d{{12}})/{_QUEUE_NAME}"
)
# The embedded AWS (make run; NEXUS_AWS_ENDPOINT_URL set) answers with its own address.
_LOCAL_SQS_URL = re.compile(
    rf"https?://[A-Za-z0-9.-]+(?::\d+)?/(?P<account>\d{{12}})/{_QUEUE_NAME}"
)

FORMS = {
    "lambda": "arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]",
    "sqs": "https://sqs.REGION.amazonaws.com/ACCOUNT/NAME",
    "sns": "arn:aws:sns:REGION:ACCOUNT:NAME",
    "states": "arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
    "events": "a bus name or arn:aws:events:REGION:ACCOUNT:event-bus/NAME",
}


@dataclass(frozen=True)
class Target:
    """What a run calls: its region (the client's), and the ARN the allowlist is matched on."""

    region: str
    allow_arn: str


def _parse_arn(text: str, service: str, resource: re.Pattern[str]) -> re.Match[str] | None:
    arn = _ARN.fullmatch(text)
    if arn is None or arn["service"] != service or not resource.fullmatch(arn["resource"]):
        return None
    return arn


def _sqs_target(url: str) -> Target | None:
    match = _SQS_URL.fullmatch(url)
    if match is not None:
        region = match["region"]
        partition = "aws-cn" if match["cn"] else "aws-us-gov" if "-gov-" in region else "aws"
    elif config.get_settings().endpoint_url and (match := _LOCAL_SQS_URL.fullmatch(url)):
        region, partition = config.get_settings().region, "aws"
    else:
        return None
    return Target(region, f"arn:{partition}:sqs:{region}:{match['account']}:{match['name']}")


def target_allowed(arn: str, patterns: Sequence[str]) -> bool:
    """Whether `arn` matches one of `patterns`, whole; `*` matches any run of characters
    (`:` too), every other character only itself, case and all."""
    return any(
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), arn)
        for pattern in patterns
    )


def allowlist_problem(arn: str) -> str | None:
    """Why the stage does not allow `arn` (NEXUS_TARGET_ALLOW as it is now), or None."""
    try:
        patterns = config.target_allow()
    except ValueError as exc:
        return str(exc)
    if not patterns:
        return (
            f"{arn} is not allowed: this stage allows no AWS target; "
            f"list ARN patterns in {config.TARGET_ALLOW_ENV} to allow some"
        )
    if target_allowed(arn, patterns):
        return None
    return (
        f"{arn} is not in {config.TARGET_ALLOW_ENV}; allowed: {', '.join(patterns)} "
        f"(add a pattern to {config.TARGET_ALLOW_ENV} to allow it)"
    )


# -- planning: kwargs -> the call, or what is wrong with them ----------------------------------


class _Plan:
    """Reads one task's kwargs, collecting a FieldError per problem."""

    def __init__(
        self, name: str, args: list[Any], kwargs: dict[str, Any], accepted: Sequence[str]
    ) -> None:
        self.name = name
        self.kwargs = kwargs
        self.errors: list[FieldError] = []
        if args:
            self.errors.append(
                FieldError(
                    ("task_args",),
                    f"{name} takes no positional arguments; give "
                    f"{', '.join(accepted)} in task_kwargs",
                )
            )
        for key in kwargs:
            if key not in accepted:
                self.fail(key, f"{name} has no argument {key}; accepted: {', '.join(accepted)}")

    def fail(self, field: str, msg: str, type: str = "value_error") -> None:
        self.errors.append(FieldError(("task_kwargs", field), msg, type))

    def required(self, field: str, what: str) -> Any:
        if field not in self.kwargs:
            self.fail(field, f"{field} is required: {what}", "value_error.missing")
            return None
        return self.kwargs[field]

    def text(self, field: str, value: Any, limit: int, what: str) -> str | None:
        if isinstance(value, str) and 0 < len(value) <= limit:
            return value
        self.fail(field, f"{field} must be {what} (a string of 1-{limit} characters)")
        return None

    def target(
        self, field: str, value: Any, parse: Callable[[str], Target | None]
    ) -> Target | None:
        """The target `value` names, checked against the allowlist; None if it is not one
        (an error recorded) or is a secret reference (checked at run time, resolved)."""
        if secrets.is_reference(value):
            return None
        form = FORMS[field_service[field]]
        target = parse(value) if isinstance(value, str) else None
        if target is None:
            self.fail(
                field,
                f"{field} {json.dumps(value, default=str)[:300]} is not accepted; accepted: {form}",
            )
            return None
        problem = allowlist_problem(target.allow_arn)
        if problem is not None:
            self.fail(field, problem, "value_error.not_allowed")
        return target

    def json_value(self, field: str, value: Any, *, as_text: bool = False) -> str | None:
        """`value` as the JSON (or, `as_text`, the string itself) the service receives."""
        if as_text and isinstance(value, str):
            encoded = value
        else:
            try:
                encoded = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
            except (TypeError, ValueError):
                self.fail(field, f"{field} must be a JSON value (no NaN or infinity)")
                return None
        size = len(encoded.encode())
        if size > MAX_JSON_BYTES:
            self.fail(field, f"{field} is {size} bytes; at most {MAX_JSON_BYTES} are accepted")
            return None
        if not encoded:
            self.fail(field, f"{field} must not be empty")
            return None
        return encoded

    def group_id(self, fifo: bool, kind: str) -> str | None:
        value = self.kwargs.get("group_id")
        if not fifo:
            if value is not None:
                self.fail(
                    "group_id",
                    f"group_id is only for a FIFO {kind} (a name ending in .fifo); "
                    f"leave it out for this one",
                )
            return None
        if value is None:
            self.fail(
                "group_id",
                f"group_id is required for a FIFO {kind}: 1-128 letters, digits or punctuation",
                "value_error.missing",
            )
            return None
        if not (isinstance(value, str) and re.fullmatch(r"[!-~]{1,128}", value)):
            self.fail("group_id", "group_id must be 1-128 letters, digits or punctuation")
            return None
        return value


# Which service each target field names (its accepted form is FORMS[service]).
field_service = {
    "function_arn": "lambda",
    "queue_url": "sqs",
    "topic_arn": "sns",
    "state_machine_arn": "states",
    "event_bus": "events",
}


def _arn_target(service: str, resource: re.Pattern[str]) -> Callable[[str], Target | None]:
    def parse(text: str) -> Target | None:
        arn = _parse_arn(text, service, resource)
        if arn is None:
            return None
        unqualified = arn.group(0)
        if service in ("lambda", "states"):  # an alias or version is the same function
            unqualified = unqualified[: arn.start("resource")] + ":".join(
                arn["resource"].split(":")[:2]
            )
        return Target(arn["region"], unqualified)

    return parse


def _bus_target(text: str) -> Target | None:
    if text.startswith("arn:"):
        return _arn_target("events", _EVENTS_RESOURCE)(text)
    if not _BUS_NAME.fullmatch(text):
        return None
    region = config.get_settings().region
    return Target(region, f"arn:aws:events:{region}:*:event-bus/{text}")


@dataclass(frozen=True)
class Call:
    """One planned call: the client's service and region, and its parameters."""

    service: str
    region: str
    params: dict[str, Any]


INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


def _plan_lambda(args: list[Any], kwargs: dict[str, Any]) -> tuple[Call | None, _Plan]:
    plan = _Plan("aws.lambda.invoke", args, kwargs, ("function_arn", "payload", "invocation_type"))
    arn = plan.required("function_arn", f"the function's ARN, {FORMS['lambda']}")
    target = (
        None
        if arn is None
        else plan.target("function_arn", arn, _arn_target("lambda", _LAMBDA_RESOURCE))
    )
    plan.json_value("payload", kwargs.get("payload"))
    invocation = kwargs.get("invocation_type", "RequestResponse")
    if invocation not in INVOCATION_TYPES:
        plan.fail(
            "invocation_type", f"invocation_type must be one of {', '.join(INVOCATION_TYPES)}"
        )
    if plan.errors or target is None:
        return None, plan
    params = {"FunctionName": arn, "InvocationType": invocation}
    return Call("lambda", target.region, params), plan


def _plan_sqs(args: list[Any], kwargs: dict[str, Any]) -> tuple[Call | None, _Plan]:
    plan = _Plan("aws.sqs.send", args, kwargs, ("queue_url", "body", "group_id"))
    url = plan.required("queue_url", f"the queue's URL, {FORMS['sqs']}")
    target = None if url is None else plan.target("queue_url", url, _sqs_target)
    body = plan.required("body", "the message, a string or a JSON value")
    text = plan.json_value("body", body, as_text=True) if "body" in kwargs else None
    fifo = isinstance(url, str) and url.endswith(".fifo")
    group = plan.group_id(fifo, "queue") if target is not None else None
    if plan.errors or target is None:
        return None, plan
    params: dict[str, Any] = {"QueueUrl": url, "MessageBody": text}
    if group is not None:
        params["MessageGroupId"] = group
    return Call("sqs", target.region, params), plan


MAX_SNS_ATTRIBUTES = 9  # SNS takes 10; NEXUS adds its idempotency key


def _plan_sns(args: list[Any], kwargs: dict[str, Any]) -> tuple[Call | None, _Plan]:
    plan = _Plan(
        "aws.sns.publish", args, kwargs, ("topic_arn", "message", "attributes", "group_id")
    )
    arn = plan.required("topic_arn", f"the topic's ARN, {FORMS['sns']}")
    target = (
        None if arn is None else plan.target("topic_arn", arn, _arn_target("sns", _SNS_RESOURCE))
    )
    message = plan.required("message", "a string or a JSON value")
    text = plan.json_value("message", message, as_text=True) if "message" in kwargs else None
    attributes = kwargs.get("attributes") or {}
    if not (
        isinstance(attributes, dict)
        and len(attributes) <= MAX_SNS_ATTRIBUTES
        and all(
            isinstance(k, str)
            and re.fullmatch(r"[A-Za-z0-9_.-]{1,256}", k)
            and not k.lower().startswith(("aws.", "amazon."))
            and k != IDEMPOTENCY_ATTRIBUTE
            and isinstance(v, str)
            and v
            for k, v in attributes.items()
        )
    ):
        plan.fail(
            "attributes",
            f"attributes must be an object of at most {MAX_SNS_ATTRIBUTES} names "
            "(letters, digits, _ . -; not starting with AWS. or Amazon.; not "
            f"{IDEMPOTENCY_ATTRIBUTE}) to non-empty strings",
        )
    fifo = isinstance(arn, str) and arn.endswith(".fifo")
    group = plan.group_id(fifo, "topic") if target is not None else None
    if plan.errors or target is None:
        return None, plan
    params: dict[str, Any] = {
        "TopicArn": arn,
        "Message": text,
        "MessageAttributes": {
            k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()
        },
    }
    if group is not None:
        params["MessageGroupId"] = group
    return Call("sns", target.region, params), plan


def _plan_states(args: list[Any], kwargs: dict[str, Any]) -> tuple[Call | None, _Plan]:
    plan = _Plan("aws.stepfunctions.start", args, kwargs, ("state_machine_arn", "input"))
    arn = plan.required("state_machine_arn", f"the state machine's ARN, {FORMS['states']}")
    target = (
        None
        if arn is None
        else plan.target("state_machine_arn", arn, _arn_target("states", _STATES_RESOURCE))
    )
    text = plan.json_value("input", kwargs.get("input", {}))
    if plan.errors or target is None:
        return None, plan
    return Call("stepfunctions", target.region, {"stateMachineArn": arn, "input": text}), plan


def _plan_events(args: list[Any], kwargs: dict[str, Any]) -> tuple[Call | None, _Plan]:
    plan = _Plan("aws.events.put", args, kwargs, ("event_bus", "source", "detail_type", "detail"))
    bus = kwargs.get("event_bus", "default")
    target = plan.target("event_bus", bus, _bus_target)
    source = plan.required("source", "the event's source, e.g. com.example.orders")
    if (
        source is not None
        and plan.text("source", source, 256, "the event's source")
        and source.startswith("aws.")
    ):
        plan.fail("source", "source must not start with aws. (AWS keeps it for its services)")
    detail_type = plan.required("detail_type", "the event's detail-type")
    if detail_type is not None:
        plan.text("detail_type", detail_type, 128, "the event's detail-type")
    detail = kwargs.get("detail", {})
    if not isinstance(detail, dict):
        plan.fail("detail", "detail must be a JSON object")
    elif "nexus" in detail:
        plan.fail("detail", "detail.nexus is set by NEXUS (the run's identity); use another key")
    else:
        plan.json_value("detail", detail)
    if plan.errors or target is None:
        return None, plan
    entry = {"EventBusName": bus, "Source": source, "DetailType": detail_type}
    return Call("events", target.region, {"Entry": entry, "detail": detail}), plan


Planner = Callable[[list[Any], dict[str, Any]], tuple[Call | None, _Plan]]


def _validator(planner: Planner) -> Callable[[list[Any], dict[str, Any]], list[FieldError]]:
    def validate(args: list[Any], kwargs: dict[str, Any]) -> list[FieldError]:
        return planner(args, kwargs)[1].errors

    return validate


def _planned(planner: Planner, kwargs: dict[str, Any]) -> Call:
    """The call the run makes, with the allowlist as it is now; TargetNotAllowed or
    TargetInvalid if the run cannot make it."""
    call, plan = planner([], kwargs)
    denied = [e for e in plan.errors if e.type == "value_error.not_allowed"]
    if denied:
        raise TargetNotAllowed("; ".join(f"{e.loc[-1]}: {e.msg}" for e in denied))
    if call is None:
        raise TargetInvalid("; ".join(f"{e.loc[-1]}: {e.msg}" for e in plan.errors))
    return call


def _client(call: Call) -> Any:
    return target_client(call.service, call.region)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


# -- the tasks ---------------------------------------------------------------------------------


@task("aws.lambda.invoke", timeout=LAMBDA_TARGET_TIMEOUT + 5, validate=_validator(_plan_lambda))
def lambda_invoke(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    """Invoke a Lambda function with the run's identity and `payload`."""
    call = _planned(_plan_lambda, kwargs)
    envelope = {"nexus": _identity(ctx), "payload": kwargs.get("payload")}
    params = {**call.params, "Payload": _dumps(envelope).encode()}
    answer = _unless_cancelled(ctx, lambda: _client(call).invoke(**params), "its Lambda invoke")
    body = answer["Payload"].read() if answer.get("Payload") is not None else b""
    text = body.decode("utf-8", errors="replace")
    if answer.get("FunctionError"):
        raise TargetFailed(
            f"function {call.params['FunctionName']} failed ({answer['FunctionError']}): "
            f"{text[:LAMBDA_RESULT_CAP]}"
        )
    result: dict[str, Any] = {
        "status_code": answer["StatusCode"],
        "function_error": None,
        "executed_version": answer.get("ExecutedVersion"),
    }
    if call.params["InvocationType"] == "RequestResponse":
        truncated = len(body) > LAMBDA_RESULT_CAP
        payload: Any = text[:LAMBDA_RESULT_CAP]
        if not truncated:
            with contextlib.suppress(ValueError):  # not JSON: recorded as text
                payload = json.loads(text) if text else None
        result.update(payload=payload, truncated=truncated)
    return result


@task("aws.sqs.send", timeout=30, validate=_validator(_plan_sqs))
def sqs_send(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    """Send `body` to an SQS queue; a FIFO queue deduplicates a run delivered twice."""
    call = _planned(_plan_sqs, kwargs)
    answer = _client(call).send_message(**_with_idempotency(call.params, ctx))
    return {"message_id": answer["MessageId"], "sequence_number": answer.get("SequenceNumber")}


def _with_idempotency(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    """A queue's or topic's message with the run's idempotency key: as a message attribute
    (standard queues and topics deliver at least once), and as the deduplication id of a
    FIFO one (it has a MessageGroupId)."""
    key = idempotency_key(ctx)
    attributes = {
        **params.get("MessageAttributes", {}),
        IDEMPOTENCY_ATTRIBUTE: {"DataType": "String", "StringValue": key},
    }
    out = {**params, "MessageAttributes": attributes}
    if "MessageGroupId" in out:
        out["MessageDeduplicationId"] = key
    return out


@task("aws.sns.publish", timeout=30, validate=_validator(_plan_sns))
def sns_publish(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    """Publish `message` to an SNS topic; a FIFO topic deduplicates a run delivered twice."""
    call = _planned(_plan_sns, kwargs)
    answer = _client(call).publish(**_with_idempotency(call.params, ctx))
    return {"message_id": answer["MessageId"], "sequence_number": answer.get("SequenceNumber")}


@task("aws.stepfunctions.start", timeout=30, validate=_validator(_plan_states))
def stepfunctions_start(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    """Start a Step Functions execution named after the run: one per run, however delivered."""
    call = _planned(_plan_states, kwargs)
    client = _client(call)
    name = execution_name(ctx)
    try:
        answer = client.start_execution(**call.params, name=name)
        return {
            "execution_arn": answer["executionArn"],
            "start_date": answer["startDate"].isoformat(),
            "already_started": False,
        }
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
            raise
        already = exc
    # A Standard workflow returns the running execution for the same name and input, and
    # answers ExecutionAlreadyExists once it has ended (or for another input): an ended one
    # with this run's input is this run's, started by an earlier delivery.
    arn = _parse_arn(call.params["stateMachineArn"], "states", _STATES_RESOURCE)
    assert arn is not None  # planned
    machine = arn["resource"].split(":")[1]
    execution_arn = f"{arn.group(0)[: arn.start('resource')]}execution:{machine}:{name}"
    existing = client.describe_execution(executionArn=execution_arn)
    if existing.get("input") != call.params["input"]:
        raise TargetFailed(
            f"execution {name} of {call.params['stateMachineArn']} exists with another input; "
            "this run's arguments changed since it was started, so it is not started again"
        ) from already
    return {
        "execution_arn": existing["executionArn"],
        "start_date": existing["startDate"].isoformat(),
        "already_started": True,
    }


@task("aws.events.put", timeout=30, validate=_validator(_plan_events))
def events_put(ctx: RunContext, **kwargs: Any) -> dict[str, Any]:
    """Put one event on an EventBridge bus, the run's identity in `detail.nexus`."""
    call = _planned(_plan_events, kwargs)
    detail = {**call.params["detail"], "nexus": _identity(ctx)}
    entry = {**call.params["Entry"], "Detail": _dumps(detail)}
    answer = _client(call).put_events(Entries=[entry])
    if answer.get("FailedEntryCount"):
        [failed] = answer["Entries"]
        raise TargetFailed(
            f"EventBridge refused the event on {entry['EventBusName']}: "
            f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
        )
    return {"event_id": answer["Entries"][0]["EventId"]}
