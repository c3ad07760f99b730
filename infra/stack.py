"""Create, update or delete a stage's infrastructure stack with boto3 alone.

    python -m infra.stack deploy dev [--alarm-topic ARN]
    python -m infra.stack destroy dev

`deploy` creates the stack `nexus-<stage>` from infra/nexus.yaml if there is none, else updates
it, waits until it has settled, and writes its outputs into the stage's environment in
`.chalice/config.json` (`infra.configure.write_stage`). `destroy` deletes the stack and waits
until it is gone. `make deploy` and `make destroy` run them around `chalice deploy` and
`chalice delete`, so that deploying needs Python and credentials, not the AWS CLI.

Credentials, region and endpoint are boto3's own: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
AWS_PROFILE; AWS_DEFAULT_REGION or the profile's region, the one `chalice deploy` uses too, so
that the functions land beside their table and queues (us-east-1 when none is set); and
AWS_ENDPOINT_URL, e.g. `make run`'s embedded AWS.

Exit status 0 when the stack is as asked (nothing to change and nothing to delete included);
2 with one line on stderr that says what is wrong and what to do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, WaiterError

from infra.configure import CONFIG, stack_outputs, write_stage

TEMPLATE = Path(__file__).resolve().parent / "nexus.yaml"
STAGES = ("dev", "prod")
DEFAULT_REGION = "us-east-1"

# How long a deploy or destroy waits for the stack to settle: up to 60 minutes (as long as the
# AWS CLI waited), looking every 5 s. Creating the table with its two indexes takes minutes.
WAIT = {"Delay": 5, "MaxAttempts": 720}

# The statuses a stack can be updated from. UPDATE_ROLLBACK_COMPLETE is one: a failed update
# was undone and the stack is as it was before it.
UPDATABLE = {
    "CREATE_COMPLETE",
    "UPDATE_COMPLETE",
    "UPDATE_ROLLBACK_COMPLETE",
    "IMPORT_COMPLETE",
    "IMPORT_ROLLBACK_COMPLETE",
}

# What CloudFormation says of the resources it stopped because another one failed; their
# events come after the one that says why, so they are passed over.
CANCELLED = {"Resource creation cancelled", "Resource update cancelled"}

HOW_TO_GIVE_CREDENTIALS = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
    "ones), or AWS_PROFILE to a profile of ~/.aws/credentials or ~/.aws/config"
)


class StackError(Exception):
    """What stops a deploy or a destroy; the message is the one line the command prints."""


@dataclass(frozen=True)
class Aws:
    """The clients a deploy or destroy calls, in one region."""

    cloudformation: Any
    sts: Any
    region: str
    region_is_default: bool = False  # none was set: DEFAULT_REGION


def connect(session: boto3.Session | None = None) -> Aws:
    """Clients on `session` (a new default one if None) in its region, else DEFAULT_REGION.
    The endpoint is left to boto3, which reads AWS_ENDPOINT_URL itself."""
    session = session or boto3.Session()
    region = session.region_name or DEFAULT_REGION
    return Aws(
        cloudformation=session.client("cloudformation", region_name=region),
        sts=session.client("sts", region_name=region),
        region=region,
        region_is_default=not session.region_name,
    )


# -- what to send and what to say (no AWS calls) ------------------------------------------


def stack_name(stage: str) -> str:
    """The stage's stack, `nexus-<stage>`; only the stages of nexus.yaml's `Stage` parameter
    and of the Chalice config are accepted."""
    if stage not in STAGES:
        raise StackError(f"unknown stage {stage!r}: the stages are {' and '.join(STAGES)}")
    return f"nexus-{stage}"


def parameters(stage: str, alarm_topic: str | None, existing: Collection[str]) -> list[Any]:
    """The stack's parameters: Stage, and AlarmTopicArn when given (`""` for none).

    When it is not given, a stack that has the parameter keeps the topic it has
    (UsePreviousValue), as `aws cloudformation deploy` did: a deploy without ALARM_TOPIC_ARN
    does not silence the alarms of a stage deployed with one. `existing` is the stack's
    parameter names (empty for a new stack).
    """
    sent: list[Any] = [{"ParameterKey": "Stage", "ParameterValue": stage}]
    if alarm_topic is not None:
        sent.append({"ParameterKey": "AlarmTopicArn", "ParameterValue": alarm_topic})
    elif "AlarmTopicArn" in existing:
        sent.append({"ParameterKey": "AlarmTopicArn", "UsePreviousValue": True})
    return sent


def failure_reason(events: list[dict[str, Any]]) -> str | None:
    """`Resource: reason` of the latest failed event of the stack's latest operation, from its
    events newest first (as DescribeStackEvents gives them); None if it has none."""
    for event in events:
        reason = event.get("ResourceStatusReason")
        if event["ResourceStatus"].endswith("_FAILED") and reason and reason not in CANCELLED:
            return f"{event['LogicalResourceId']}: {reason}"
        if event["ResourceType"] == "AWS::CloudFormation::Stack" and reason == "User Initiated":
            return None  # the start of the latest operation: older failures are not its own
    return None


def advice(status: str, stage: str) -> str:
    """What to do with a stack left in `status` for a deploy to go through."""
    deploy, destroy = f"make deploy STAGE={stage}", f"make destroy STAGE={stage}"
    if status in {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "REVIEW_IN_PROGRESS"}:
        # REVIEW_IN_PROGRESS: a stack `aws cloudformation deploy` began and never created.
        return f"its creation never completed, so it cannot be updated: {destroy}, then {deploy}"
    if status == "DELETE_FAILED":
        return (
            f"it can only be deleted now: fix what stopped the deletion (prod's table has "
            f"deletion protection), {destroy} again, then {deploy}"
        )
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return f"the update was undone and the stack is as it was: fix the cause, then {deploy}"
    if status == "UPDATE_ROLLBACK_FAILED":
        return (
            "continue its rollback (CloudFormation console: Stack actions, Continue update "
            f"rollback), then {deploy} again"
        )
    if status.endswith("_IN_PROGRESS"):
        return "another deploy or destroy is under way: wait until it ends, then run this again"
    return f"see the stack's events in the CloudFormation console, then {deploy} again"


def _said(name: str, status: str, reason: str | None) -> str:
    return f"{name} is {status}" + (f" ({reason})" if reason else "")


# -- calls ------------------------------------------------------------------------------


def check_credentials(aws: Aws) -> str:
    """The account the credentials are for. Asked first, so that missing or refused
    credentials are this one error rather than whichever call happens to come first."""
    try:
        return str(aws.sts.get_caller_identity()["Account"])
    except NoCredentialsError as exc:
        raise StackError(f"no AWS credentials found: {HOW_TO_GIVE_CREDENTIALS}") from exc
    except ClientError as exc:  # InvalidClientTokenId, ExpiredToken, SignatureDoesNotMatch
        error = exc.response["Error"]
        raise StackError(
            f"AWS refused the credentials ({error.get('Code')}: {error.get('Message')}): "
            f"renew or replace them: {HOW_TO_GIVE_CREDENTIALS}"
        ) from exc


def where(aws: Aws) -> str:
    """The account and region the stack is in, once the credentials are known to work."""
    account = check_credentials(aws)
    region = f"{aws.region} (no region set: the default)" if aws.region_is_default else aws.region
    return f"account {account}, region {region}"


def describe(aws: Aws, name_or_id: str) -> dict[str, Any] | None:
    """The stack's description, or None if there is no such stack."""
    try:
        stacks = aws.cloudformation.describe_stacks(StackName=name_or_id)["Stacks"]
    except ClientError as exc:
        error = exc.response["Error"]
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            return None
        raise
    return dict(stacks[0]) if stacks else None


def latest_failure(aws: Aws, stack_id: str) -> str | None:
    """The reason of the stack's latest failed event (`failure_reason`), from the first page
    of its events; None if there is none or the events cannot be read."""
    try:
        events = aws.cloudformation.describe_stack_events(StackName=stack_id)["StackEvents"]
    except ClientError:
        return None
    return failure_reason(events)


def settle(aws: Aws, waiter: str, name: str, stack_id: str, then: Callable[[str], str]) -> None:
    """Wait with boto3's `waiter` until the stack has settled, within WAIT. A failure is a
    StackError with the status the stack ended in, its latest failure's reason and what to do
    (`then(status)`); a timeout, one with the status it is still in."""
    try:
        aws.cloudformation.get_waiter(waiter).wait(StackName=stack_id, WaiterConfig=WAIT)
    except WaiterError as exc:
        now = describe(aws, stack_id)
        status = now["StackStatus"] if now else "gone"
        if "Max attempts exceeded" in str(exc):
            minutes = WAIT["Delay"] * WAIT["MaxAttempts"] // 60
            raise StackError(
                f"{name} is still {status} after {minutes} minutes; CloudFormation carries on: "
                "follow its events in the CloudFormation console, then run this again"
            ) from exc
        reason = latest_failure(aws, stack_id)
        raise StackError(f"{_said(name, status, reason)}: {then(status)}") from exc


def deploy(
    aws: Aws,
    stage: str,
    template: str,
    config: Path = CONFIG,
    alarm_topic: str | None = None,
) -> None:
    """Create or update the stage's stack from `template` (a template body), wait until it
    has settled, and write its outputs into the stage in the Chalice config file `config`."""
    name = stack_name(stage)
    print(f"{name}: {where(aws)}")
    stack = describe(aws, name)

    def then(status: str) -> str:
        return advice(status, stage)

    if stack is None:
        print(f"{name}: creating")
        created = aws.cloudformation.create_stack(
            StackName=name, TemplateBody=template, Parameters=parameters(stage, alarm_topic, ())
        )
        settle(aws, "stack_create_complete", name, created["StackId"], then)
    else:
        status = stack["StackStatus"]
        if status not in UPDATABLE:
            reason = latest_failure(aws, stack["StackId"])
            raise StackError(f"{_said(name, status, reason)}: {advice(status, stage)}")
        existing = {p["ParameterKey"] for p in stack.get("Parameters") or []}
        print(f"{name}: updating ({status})")
        try:
            aws.cloudformation.update_stack(
                StackName=name,
                TemplateBody=template,
                Parameters=parameters(stage, alarm_topic, existing),
            )
        except ClientError as exc:
            # CloudFormation's answer when the template and parameters are those the stack
            # has: nothing to do, which is what was asked for.
            if "No updates are to be performed" not in exc.response["Error"].get("Message", ""):
                raise
            print(f"{name}: nothing changed (the stack already has this template and parameters)")
        else:
            settle(aws, "stack_update_complete", name, stack["StackId"], then)

    settled = describe(aws, name)
    if settled is None:  # deleted by someone else between the two calls
        raise StackError(f"{name} disappeared as it settled: run make deploy STAGE={stage} again")
    print(f"{name}: {settled['StackStatus']}")
    try:
        written = write_stage(config, stage, stack_outputs({"Stacks": [settled]}))
    except (ValueError, KeyError, OSError) as exc:
        raise StackError(
            f"{name} is {settled['StackStatus']}, but {config} was not written: {exc}"
        ) from exc
    for variable, value in written.items():
        print(f"{stage}: {variable}={value}")


def destroy(aws: Aws, stage: str) -> None:
    """Delete the stage's stack and wait until it is gone; no stack is nothing to do."""
    name = stack_name(stage)
    print(f"{name}: {where(aws)}")
    stack = describe(aws, name)
    if stack is None:
        print(f"{name}: no such stack, nothing to delete")
        return
    print(f"{name}: deleting ({stack['StackStatus']})")
    aws.cloudformation.delete_stack(StackName=name)

    def then(status: str) -> str:
        return (
            "fix what stopped the deletion (prod's table has deletion protection: turn it off "
            f"first), then make destroy STAGE={stage} again"
        )

    settle(aws, "stack_delete_complete", name, stack["StackId"], then)
    print(f"{name}: deleted")


def main(argv: list[str] | None = None, session: boto3.Session | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    actions = parser.add_subparsers(dest="action", required=True)
    deploying = actions.add_parser("deploy", help="create or update the stack, write its outputs")
    deploying.add_argument("stage", help="dev or prod")
    deploying.add_argument(
        "--alarm-topic",
        metavar="ARN",
        help='the SNS topic the alarms notify ("" for none; default: the one the stack has)',
    )
    deploying.add_argument("--template", type=Path, default=TEMPLATE, help="infra/nexus.yaml")
    deploying.add_argument("--config", type=Path, default=CONFIG, help="the Chalice config file")
    destroying = actions.add_parser("destroy", help="delete the stack")
    destroying.add_argument("stage", help="dev or prod")
    args = parser.parse_args(argv)
    try:
        stack_name(args.stage)  # before any AWS configuration is read
        if args.action == "deploy":
            template = args.template.read_text()
            deploy(connect(session), args.stage, template, args.config, args.alarm_topic)
        else:
            destroy(connect(session), args.stage)
    except StackError as exc:
        return _fail(str(exc))
    except OSError as exc:  # the template cannot be read
        return _fail(f"{exc.filename}: {exc.strerror}")
    except (ClientError, BotoCoreError) as exc:  # e.g. AccessDenied, an unreachable endpoint
        return _fail(f"nexus-{args.stage}: {exc}")
    return 0


def _fail(message: str) -> int:
    print(f"stack: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
