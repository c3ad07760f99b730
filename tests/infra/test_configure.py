"""infra/configure.py: the stack's outputs become a Chalice stage's environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.configure import configure, main, stack_outputs

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"


def describe_stacks(stage: str) -> dict[str, Any]:
    """What `aws cloudformation describe-stacks --output json` says of a created stack."""
    queue = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/nexus-{stage}-work"
    outputs = {
        "TableName": f"nexus-{stage}",
        "TableArn": f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/nexus-{stage}",
        "StreamArn": f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/nexus-{stage}/stream/2026-11-26",
        "QueueUrl": queue,
        "QueueName": f"nexus-{stage}-work",
        "QueueArn": f"arn:aws:sqs:eu-west-1:{ACCOUNT}:nexus-{stage}-work",
        "DlqUrl": f"{queue}-dlq",
        "DlqName": f"nexus-{stage}-work-dlq",
        "DlqArn": f"arn:aws:sqs:eu-west-1:{ACCOUNT}:nexus-{stage}-work-dlq",
    }
    return {
        "Stacks": [
            {
                "StackName": f"nexus-{stage}",
                "StackStatus": "CREATE_COMPLETE",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
            }
        ]
    }


def test_the_stage_gets_the_stacks_table_and_queue_names_and_urls(config_file: Path) -> None:
    before = json.loads(config_file.read_text())
    after = configure(before, "prod", stack_outputs(describe_stacks("prod")))
    env = after["stages"]["prod"]["environment_variables"]
    assert env["NEXUS_TABLE"] == "nexus-prod"
    assert env["NEXUS_STREAM_ARN"].endswith(":table/nexus-prod/stream/2026-11-26")
    assert (
        env["NEXUS_QUEUE_URL"] == f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/nexus-prod-work"
    )
    assert env["NEXUS_DLQ_URL"].endswith(f"/{ACCOUNT}/nexus-prod-work-dlq")
    assert (env["NEXUS_QUEUE_NAME"], env["NEXUS_DLQ_NAME"]) == (
        "nexus-prod-work",
        "nexus-prod-work-dlq",
    )


def test_everything_else_in_the_config_stays_as_it_was(config_file: Path) -> None:
    before = json.loads(config_file.read_text())
    after = configure(before, "dev", stack_outputs(describe_stacks("dev")))
    assert after["stages"]["prod"] == before["stages"]["prod"]
    assert after["stages"]["dev"]["lambda_functions"] == before["stages"]["dev"]["lambda_functions"]
    dev_env = after["stages"]["dev"]["environment_variables"]
    assert dev_env["NEXUS_STAGE"] == "dev"
    assert {k: v for k, v in after.items() if k != "stages"} == {
        k: v for k, v in before.items() if k != "stages"
    }


def test_the_command_rewrites_the_file_from_a_describe_stacks_file(
    config_file: Path, tmp_path: Path
) -> None:
    described = tmp_path / "stack.json"
    described.write_text(json.dumps(describe_stacks("dev")))
    assert main(["dev", "--outputs", str(described), "--config", str(config_file)]) == 0
    env = json.loads(config_file.read_text())["stages"]["dev"]["environment_variables"]
    assert ACCOUNT in env["NEXUS_QUEUE_URL"]


def test_the_command_reads_the_stack_from_stdin(config_file: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.configure", "dev", "--config", str(config_file)],
        input=json.dumps(describe_stacks("dev")),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"NEXUS_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/" in done.stdout
    env = json.loads(config_file.read_text())["stages"]["dev"]["environment_variables"]
    assert env["NEXUS_DLQ_NAME"] == "nexus-dev-work-dlq"


def test_a_stack_without_the_outputs_changes_nothing_and_says_why(
    config_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = config_file.read_text()
    described = tmp_path / "stack.json"
    described.write_text(json.dumps({"Stacks": [{"StackName": "other", "Outputs": []}]}))
    assert main(["dev", "--outputs", str(described), "--config", str(config_file)]) == 1
    assert "no output" in capsys.readouterr().err
    assert config_file.read_text() == before


def test_an_unknown_stage_is_refused(config_file: Path) -> None:
    with pytest.raises(ValueError, match="no stage 'qa'"):
        configure(json.loads(config_file.read_text()), "qa", stack_outputs(describe_stacks("qa")))
