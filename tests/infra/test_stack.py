"""infra/stack.py: `make deploy` and `make destroy`'s stack, with boto3 alone, on moto.

moto (5.2) cannot create AWS::CloudWatch::Alarm in a CloudFormation stack: it warns "not
supported by moto's CloudFormation implementation", lists each alarm as a resource with no
name and creates no alarm. These tests therefore deploy nexus.yaml without its 7 alarms (the
`template` fixture; every other resource, parameter and output as it is);
tests/infra/test_templates.py checks the alarms themselves offline.

moto does not fail or roll back a stack either: where a test needs a stack that CloudFormation
left in ROLLBACK_COMPLETE, it sets that status and the events CloudFormation writes on the
stack in moto's backend (`leave_creation_failed`).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from moto import mock_aws
from moto.cloudformation.models import Event, cloudformation_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

from infra.stack import TEMPLATE, main

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"  # tests/conftest.py's AWS_DEFAULT_REGION
TABLE_FAILURE = (
    'Resource handler returned message: "Table quota exceeded" '
    "(HandlerErrorCode: ServiceLimitExceeded)"
)


@pytest.fixture
def template(tmp_path: Path) -> Path:
    """infra/nexus.yaml without its AWS::CloudWatch::Alarm resources, which moto cannot
    create (see the module docstring), as a JSON template file."""
    loaded, matches = decode(str(TEMPLATE))
    assert not matches and loaded is not None
    resources = loaded["Resources"]
    kept = {k: r for k, r in resources.items() if r["Type"] != "AWS::CloudWatch::Alarm"}
    assert len(resources) - len(kept) == 7
    path = tmp_path / "nexus-without-alarms.json"
    path.write_text(json.dumps({**loaded, "Resources": kept}))
    return path


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process, in tests/conftest.py's region with its fake credentials."""
    for variable in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    with mock_aws():
        yield


def deploy(template: Path, config: Path, stage: str = "dev", *more: str, **kw: Any) -> int:
    return main(
        ["deploy", stage, "--template", str(template), "--config", str(config), *more], **kw
    )


def stack(name: str = "nexus-dev") -> dict[str, Any]:
    described: dict[str, Any] = boto3.client("cloudformation").describe_stacks(StackName=name)
    return dict(described["Stacks"][0])


def stage_env(config: Path, stage: str = "dev") -> dict[str, str]:
    env: dict[str, str] = json.loads(config.read_text())["stages"][stage]["environment_variables"]
    return env


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def leave_creation_failed(name: str = "nexus-dev") -> None:
    """Give the stack the status and the events CloudFormation leaves after a failed
    creation: the table failed, the queue being created was cancelled, all was rolled back."""
    backend = cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION]
    moto_stack = next(s for s in backend.stacks.values() if s.name == name)

    def event(logical_id: str, resource_type: str, status: str, reason: str | None) -> Event:
        return Event(moto_stack.stack_id, name, logical_id, "", resource_type, status, reason, None)

    stack_type = "AWS::CloudFormation::Stack"
    moto_stack.events = [  # oldest first; DescribeStackEvents gives them newest first
        event(name, stack_type, "CREATE_IN_PROGRESS", "User Initiated"),
        event("Table", "AWS::DynamoDB::Table", "CREATE_IN_PROGRESS", None),
        event("WorkQueue", "AWS::SQS::Queue", "CREATE_IN_PROGRESS", None),
        event("Table", "AWS::DynamoDB::Table", "CREATE_FAILED", TABLE_FAILURE),
        event("WorkQueue", "AWS::SQS::Queue", "CREATE_FAILED", "Resource creation cancelled"),
        event(
            name,
            stack_type,
            "ROLLBACK_IN_PROGRESS",
            "The following resource(s) failed to create: [WorkQueue, Table]. "
            "Rollback requested by user.",
        ),
        event("WorkQueue", "AWS::SQS::Queue", "DELETE_COMPLETE", None),
        event("Table", "AWS::DynamoDB::Table", "DELETE_COMPLETE", None),
        event(name, stack_type, "ROLLBACK_COMPLETE", None),
    ]
    moto_stack.status = "ROLLBACK_COMPLETE"


# -- deploy ----------------------------------------------------------------------------------


def test_a_first_deploy_creates_the_stack_its_table_and_its_two_queues(
    cloud: None, template: Path, config_file: Path
) -> None:
    assert deploy(template, config_file) == 0
    assert stack()["StackStatus"] == "CREATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack()["Parameters"]} == {
        "Stage": "dev",
        "AlarmTopicArn": "",
    }
    table = boto3.client("dynamodb").describe_table(TableName="nexus-dev")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert {index["IndexName"] for index in table["GlobalSecondaryIndexes"]} == {
        "by_created",
        "by_due",
    }
    queues = boto3.client("sqs").list_queues()["QueueUrls"]
    assert sorted(url.rsplit("/", 1)[1] for url in queues) == [
        "nexus-dev-work",
        "nexus-dev-work-dlq",
    ]


def test_the_deploy_writes_the_stacks_resources_into_the_stage_and_nothing_else(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json.loads(config_file.read_text())
    assert deploy(template, config_file) == 0
    env = stage_env(config_file)
    sqs = boto3.client("sqs")
    assert env["NEXUS_TABLE"] == "nexus-dev"
    assert env["NEXUS_QUEUE_URL"] == sqs.get_queue_url(QueueName="nexus-dev-work")["QueueUrl"]
    assert env["NEXUS_DLQ_URL"] == sqs.get_queue_url(QueueName="nexus-dev-work-dlq")["QueueUrl"]
    assert (env["NEXUS_QUEUE_NAME"], env["NEXUS_DLQ_NAME"]) == (
        "nexus-dev-work",
        "nexus-dev-work-dlq",
    )
    table = boto3.client("dynamodb").describe_table(TableName="nexus-dev")["Table"]
    assert env["NEXUS_STREAM_ARN"] == table["LatestStreamArn"]
    after = json.loads(config_file.read_text())
    assert after["stages"]["prod"] == before["stages"]["prod"]
    assert f"dev: NEXUS_QUEUE_URL={env['NEXUS_QUEUE_URL']}" in capsys.readouterr().out


def test_a_second_deploy_changes_nothing_and_says_so(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(template, config_file) == 0
    events = boto3.client("cloudformation").describe_stack_events(StackName="nexus-dev")
    capsys.readouterr()

    assert deploy(template, config_file) == 0
    out = capsys.readouterr().out
    assert "nexus-dev: nothing changed" in out
    # moto updates a stack when it is asked to, even to the same template (it would then be
    # UPDATE_COMPLETE with two more events): it was not asked.
    assert stack()["StackStatus"] == "CREATE_COMPLETE"
    again = boto3.client("cloudformation").describe_stack_events(StackName="nexus-dev")
    assert len(again["StackEvents"]) == len(events["StackEvents"])
    assert "dev: NEXUS_TABLE=nexus-dev" in out


def test_a_deploy_without_an_alarm_topic_keeps_the_one_the_stack_has(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"arn:aws:sns:{REGION}:{DEFAULT_ACCOUNT_ID}:oncall"
    assert deploy(template, config_file, "dev", "--alarm-topic", topic) == 0
    assert deploy(template, config_file) == 0
    assert "nothing changed" in capsys.readouterr().out
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack()["Parameters"]}
    assert parameters["AlarmTopicArn"] == topic


def test_with_aws_endpoint_url_set_the_deploy_goes_to_that_aws(
    monkeypatch: pytest.MonkeyPatch, template: Path, config_file: Path
) -> None:
    """The embedded AWS of make run is a moto server: the same, on a port of this host."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        assert deploy(template, config_file) == 0
        described = boto3.client("cloudformation", endpoint_url=endpoint).describe_stacks(
            StackName="nexus-dev"
        )
        assert described["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
        assert stage_env(config_file)["NEXUS_QUEUE_URL"].endswith("/nexus-dev-work")
        assert main(["destroy", "dev"]) == 0
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("set_region", "region", "said"),
    [
        ("eu-west-1", "eu-west-1", "region eu-west-1\n"),
        (None, "us-east-1", "region us-east-1 (no region set: the default)\n"),
    ],
)
def test_the_stack_goes_to_the_region_boto3_reads_else_to_us_east_1(
    cloud: None,
    template: Path,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    set_region: str | None,
    region: str,
    said: str,
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))  # no profile's region either
    if set_region:
        monkeypatch.setenv("AWS_DEFAULT_REGION", set_region)
    else:
        monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert deploy(template, config_file) == 0
    assert f"nexus-dev: account {DEFAULT_ACCOUNT_ID}, {said}" in capsys.readouterr().out
    there = boto3.client("cloudformation", region_name=region).describe_stacks(
        StackName="nexus-dev"
    )
    assert there["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert stage_env(config_file)["NEXUS_QUEUE_URL"].startswith(f"https://sqs.{region}.")


# -- destroy ---------------------------------------------------------------------------------


def test_destroy_removes_the_stack_with_its_table_and_queues(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(template, config_file) == 0
    assert main(["destroy", "dev"]) == 0
    assert "nexus-dev: deleted" in capsys.readouterr().out
    summaries = boto3.client("cloudformation").list_stacks()["StackSummaries"]
    assert [(s["StackName"], s["StackStatus"]) for s in summaries] == [
        ("nexus-dev", "DELETE_COMPLETE")
    ]
    assert boto3.client("dynamodb").list_tables()["TableNames"] == []
    assert "QueueUrls" not in boto3.client("sqs").list_queues()


def test_destroying_a_stack_that_is_not_there_succeeds_and_says_so(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(template, config_file) == 0
    assert main(["destroy", "dev"]) == 0
    capsys.readouterr()
    assert main(["destroy", "dev"]) == 0
    assert "nexus-dev: no such stack, nothing to delete" in capsys.readouterr().out


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["deploy", "destroy"])
def test_a_stage_other_than_dev_or_prod_is_refused_naming_both(
    cloud: None, config_file: Path, action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    more = ["--config", str(config_file)] if action == "deploy" else []
    assert main([action, "qa", *more]) == 2
    err = one_error_line(capsys)
    assert "unknown stage 'qa': the stages are dev and prod" in err
    assert boto3.client("cloudformation").list_stacks()["StackSummaries"] == []


def test_without_credentials_the_deploy_says_how_to_give_them(
    cloud: None,
    template: Path,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ):
        monkeypatch.delenv(variable, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    # Otherwise botocore would ask an EC2 instance metadata service for credentials.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    before = config_file.read_text()

    assert deploy(template, config_file) == 2
    err = one_error_line(capsys)
    assert "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in err
    assert "AWS_PROFILE" in err
    assert cloudformation_backends[DEFAULT_ACCOUNT_ID][REGION].stacks == {}
    assert config_file.read_text() == before


def test_credentials_that_aws_refuses_are_named_with_its_reason(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = boto3.Session()

    def expired(**_: Any) -> tuple[Any, dict[str, Any]]:
        # What STS answers for expired temporary credentials.
        error = {
            "Code": "ExpiredToken",
            "Message": "The security token included in the request is expired",
        }
        return SimpleNamespace(status_code=403), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": 403},
        }

    session.events.register("before-call.sts.GetCallerIdentity", expired)
    assert deploy(template, config_file, session=session) == 2
    err = one_error_line(capsys)
    assert "AWS refused the credentials (ExpiredToken: The security token" in err
    assert "renew or replace them" in err


def test_a_stack_left_in_rollback_complete_is_refused_with_its_reason_and_the_way_out(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(template, config_file) == 0
    leave_creation_failed()
    before = config_file.read_text()
    capsys.readouterr()

    assert deploy(template, config_file) == 2
    err = one_error_line(capsys)
    assert f"nexus-dev is ROLLBACK_COMPLETE (Table: {TABLE_FAILURE})" in err
    assert "cannot be updated: make destroy STAGE=dev, then make deploy STAGE=dev" in err
    assert config_file.read_text() == before
    # The way out works: destroy, then deploy.
    assert main(["destroy", "dev"]) == 0
    assert deploy(template, config_file) == 0
    assert stack()["StackStatus"] == "CREATE_COMPLETE"


def test_a_creation_that_rolls_back_says_why_and_how_to_recover(
    cloud: None, template: Path, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    session = boto3.Session()
    # The creation fails while the waiter waits: CloudFormation has accepted CreateStack.
    session.events.register(
        "after-call.cloudformation.CreateStack", lambda **_: leave_creation_failed()
    )
    before = config_file.read_text()

    assert deploy(template, config_file, session=session) == 2
    err = one_error_line(capsys)
    assert f"nexus-dev is ROLLBACK_COMPLETE (Table: {TABLE_FAILURE})" in err
    assert "cannot be updated: make destroy STAGE=dev, then make deploy STAGE=dev" in err
    assert config_file.read_text() == before


# -- the Makefile ----------------------------------------------------------------------------


def target(name: str) -> tuple[list[str], list[str]]:
    """A Makefile target's prerequisites and recipe lines (continuation lines joined)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(rf"^{name}:([^\n]*)\n((?:\t[^\n]*\n)*)", text, re.MULTILINE)
    assert found, f"no target {name} in the Makefile"
    return found.group(1).split(), [" ".join(line.split()) for line in found.group(2).splitlines()]


def test_make_deploy_runs_infra_stack_first_and_needs_no_aws_cli() -> None:
    prerequisites, lines = target("deploy")
    assert prerequisites == ["$(BIN)/.installed", "stage"]
    # First the bundle, offline (chalice package, then its bytecode: tests/infra/
    # test_templates.py), so that a bundle that cannot be built stops the deploy before AWS.
    offline = [
        "rm -rf build/deploy",
        "$(BIN)/chalice package --stage $(STAGE) build/deploy",
        "$(BIN)/python -m infra.bytecode --cached",
    ]
    assert lines[: len(offline)] == offline
    assert lines[len(offline)] == (
        "$(BIN)/python -m infra.stack deploy $(STAGE) "
        "$(if $(ALARM_TOPIC_ARN),--alarm-topic $(ALARM_TOPIC_ARN))"
    )
    assert not [line for line in lines if line.startswith("aws ")]


def test_make_destroy_deletes_the_chalice_app_then_the_stack_and_needs_no_aws_cli() -> None:
    prerequisites, lines = target("destroy")
    assert prerequisites == ["$(BIN)/.installed", "stage"]
    assert lines == [
        "$(BIN)/chalice delete --stage $(STAGE)",
        "$(BIN)/python -m infra.stack destroy $(STAGE)",
    ]


@pytest.mark.parametrize("stage", ["qa", ""])
def test_make_refuses_a_stage_other_than_dev_or_prod_before_it_calls_aws(stage: str) -> None:
    out = subprocess.run(
        ["make", "-s", "stage", f"STAGE={stage}"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode != 0
    assert f"STAGE must be dev or prod, not '{stage}'" in out.stdout


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_make_accepts_dev_and_prod(stage: str) -> None:
    out = subprocess.run(["make", "-s", "stage", f"STAGE={stage}"], cwd=ROOT, capture_output=True)
    assert out.returncode == 0, out
