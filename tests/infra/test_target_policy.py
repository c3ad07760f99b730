"""infra/target_policy.py: the functions' IAM policy grants the AWS target tasks' calls on
exactly the ARNs the stage's NEXUS_TARGET_ALLOW lists, and never on a `*` resource."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from chalicelib.tasks.aws_targets import target_allowed
from infra.target_policy import (
    ACTIONS,
    TargetPatternError,
    is_target_statement,
    main,
    stage_allowlist,
    target_statements,
)

ROOT = Path(__file__).resolve().parents[2]
CHALICE_DIR = ROOT / ".chalice"
STAGES = ("dev", "prod")
ACCOUNT = "123456789012"

QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders.fifo"
FUNCTION = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:report"
MACHINES = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders-*"
BUS = "arn:aws:events:eu-west-1:*:event-bus/audit"
EXAMPLE = [QUEUE, FUNCTION, MACHINES, BUS]


def statement(sid: str, action: str, *arns: str) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": [action], "Resource": list(arns)}


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def grants(policy: dict[str, Any], action: str, arn: str) -> bool:
    """Whether an Allow statement of `policy` names `action` and a resource matching `arn`
    (`*` and `?` as IAM matches them)."""
    return any(
        action in as_list(s["Action"])
        and any(fnmatch.fnmatchcase(arn, r) for r in as_list(s["Resource"]))
        for s in policy["Statement"]
        if s["Effect"] == "Allow"
    )


# -- target_statements: a pattern -> the statements of its service ---------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            FUNCTION,
            [statement("TargetsLambda", "lambda:InvokeFunction", FUNCTION, f"{FUNCTION}:*")],
        ),
        (QUEUE, [statement("TargetsSqs", "sqs:SendMessage", QUEUE)]),
        (
            "arn:aws:sns:*:123456789012:alerts-*",
            [statement("TargetsSns", "sns:Publish", "arn:aws:sns:*:123456789012:alerts-*")],
        ),
        (
            f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:nightly",
            [
                statement(
                    "TargetsStepFunctions",
                    "states:StartExecution",
                    f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:nightly",
                    f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:nightly:*",
                ),
                statement(
                    "TargetsStepFunctionsExecutions",
                    "states:DescribeExecution",
                    f"arn:aws:states:us-east-1:{ACCOUNT}:execution:nightly:*",
                ),
            ],
        ),
        (BUS, [statement("TargetsEvents", "events:PutEvents", BUS)]),
        (
            "arn:aws-cn:events:cn-north-1:123456789012:event-bus/team/audit",
            [
                statement(
                    "TargetsEvents",
                    "events:PutEvents",
                    "arn:aws-cn:events:cn-north-1:123456789012:event-bus/team/audit",
                )
            ],
        ),
    ],
)
def test_each_service_gets_its_one_action_on_the_pattern(
    pattern: str, expected: list[dict[str, Any]]
) -> None:
    assert target_statements([pattern]) == expected


def test_a_state_machine_pattern_gets_describe_execution_on_its_executions() -> None:
    (start, describe) = target_statements([MACHINES])
    assert start["Resource"] == [MACHINES, f"{MACHINES}:*"]
    assert describe == statement(
        "TargetsStepFunctionsExecutions",
        "states:DescribeExecution",
        f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders-*:*",
    )


def test_no_pattern_no_statement_and_repeated_patterns_are_granted_once() -> None:
    assert target_statements([]) == []
    assert target_statements([QUEUE, QUEUE]) == [statement("TargetsSqs", "sqs:SendMessage", QUEUE)]


def test_statements_come_in_a_fixed_order_resources_in_the_patterns_order() -> None:
    other_queue = f"arn:aws:sqs:us-east-1:{ACCOUNT}:billing"
    found = target_statements([BUS, other_queue, MACHINES, QUEUE, FUNCTION])
    assert [s["Sid"] for s in found] == [
        "TargetsLambda",
        "TargetsSqs",
        "TargetsStepFunctions",
        "TargetsStepFunctionsExecutions",
        "TargetsEvents",
    ]
    assert found[1]["Resource"] == [other_queue, QUEUE]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("*", "'*' would allow every target of every service"),
        ("**", "would allow every target of every service"),
        ("arn:aws:sqs:*:*:*", "would allow every sqs resource"),
        ("arn:aws:sns:us-east-1:123456789012:*", "would allow every sns resource"),
        ("arn:aws:lambda:*:*:*", "would allow every lambda resource"),
        ("arn:aws:lambda:*:*:function:*", "would allow every lambda resource"),
        ("arn:aws:states:*:*:stateMachine:**", "would allow every states resource"),
        ("arn:aws:events:*:*:event-bus/*", "would allow every events resource"),
        ("arn:aws:*:us-east-1:123456789012:orders", "the service must be one of"),
        ("arn:aws:sqs*:us-east-1:123456789012:orders", "the service must be one of"),
        ("arn:aws:s3:::bucket", "is not an ARN pattern"),
        ("arn:aws:sqs:*:orders", "is not an ARN pattern"),
        ("arn:*:sqs:us-east-1:123456789012:orders", "is not an ARN pattern"),
        ("arn:aws:sqs:us-east-1:12345*:orders", "is not an ARN pattern"),
        ("https://sqs.us-east-1.amazonaws.com/123456789012/orders", "is not an ARN pattern"),
        ("arn:aws:dynamodb:us-east-1:123456789012:table/t", "the service must be one of"),
        ("arn:aws:lambda:us-east-1:123456789012:report", "resource is function:NAME"),
        ("arn:aws:lambda:us-east-1:123456789012:function:report:live", "function:NAME"),
        ("arn:aws:lambda:us-east-1:123456789012:*:report", "resource is function:NAME"),
        ("arn:aws:states:us-east-1:123456789012:execution:m:x", "stateMachine:NAME"),
        ("arn:aws:sqs:us-east-1:123456789012:orders?", "resource is QUEUE_NAME"),
        ("arn:aws:events:us-east-1:*:rule/r", "resource is event-bus/NAME"),
    ],
)
def test_a_pattern_that_is_too_wide_or_not_a_target_is_refused_saying_why(
    pattern: str, message: str
) -> None:
    with pytest.raises(TargetPatternError, match=re.escape(message)) as refused:
        target_statements([QUEUE, pattern])
    assert repr(pattern) in str(refused.value)
    if "would allow" in message:
        assert "no `*` resources" in str(refused.value)


def test_every_generated_action_is_an_iam_action() -> None:
    known = json.loads(
        resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text()
    )
    topic = f"arn:aws:sns:us-east-1:{ACCOUNT}:alerts"
    generated = {a for s in target_statements([*EXAMPLE, topic]) for a in s["Action"]}
    assert generated == set(ACTIONS.values())
    for action in generated:
        service, name = action.split(":")
        assert name.lower() in known[service]["Actions"], f"{action} is not an IAM action"


# -- the stages' policy files ---------------------------------------------------------------


def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((CHALICE_DIR / "config.json").read_text())
    return config


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_policy_grants_what_its_allowlist_generates(
    stage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    env = chalice_config()["stages"][stage]["environment_variables"]
    # Unset allows none. (Not written as "[]": chalice.test's Client applies the stage's
    # variables to every request, over what an API test sets.) Lambda's variables are strings.
    assert isinstance(env.get("NEXUS_TARGET_ALLOW", "[]"), str)
    policy = json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())
    assert [s for s in policy["Statement"] if is_target_statement(s)] == target_statements(
        stage_allowlist(chalice_config(), stage)
    )
    assert main([stage, "--check"]) == 0, capsys.readouterr().err
    assert "is up to date" in capsys.readouterr().out


def test_the_check_runs_as_a_module_from_the_repository() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.target_policy", "dev", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_make_deploy_generates_the_policy_between_the_stack_and_chalice_deploy() -> None:
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(r"^deploy:[^\n]*\n((?:\t[^\n]*\n)*)", text, re.MULTILINE)
    assert found
    lines = [line.strip() for line in found.group(1).splitlines()]
    generate = lines.index("$(BIN)/python -m infra.target_policy $(STAGE)")
    # infra.stack deploy writes the stack's outputs into the stage (infra.configure.write_stage).
    assert "infra.stack deploy $(STAGE)" in lines[generate - 1]
    assert "chalice deploy --stage $(STAGE)" in lines[generate + 1]


# -- an example allowlist, generated into a copy of the stage's files --------------------------


@pytest.fixture
def stage_copy(tmp_path: Path) -> Path:
    """A copy of .chalice's config and policies; the config file's path."""
    for name in ("config.json", "policy-dev.json", "policy-prod.json"):
        (tmp_path / name).write_text((CHALICE_DIR / name).read_text())
    return tmp_path / "config.json"


def allow(config_file: Path, stage: str, patterns: list[str]) -> None:
    config = json.loads(config_file.read_text())
    config["stages"][stage]["environment_variables"]["NEXUS_TARGET_ALLOW"] = json.dumps(patterns)
    config_file.write_text(json.dumps(config, indent=2) + "\n")


def generated(config_file: Path, stage: str) -> dict[str, Any]:
    assert main([stage, "--config", str(config_file)]) == 0
    policy: dict[str, Any] = json.loads((config_file.parent / f"policy-{stage}.json").read_text())
    return policy


@pytest.mark.parametrize("stage", STAGES)
def test_the_generated_policy_lists_exactly_the_allowed_arns(stage: str, stage_copy: Path) -> None:
    before = json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())
    allow(stage_copy, stage, EXAMPLE)
    policy = generated(stage_copy, stage)

    targets = [s for s in policy["Statement"] if is_target_statement(s)]
    by_action = {s["Action"][0]: set(s["Resource"]) for s in targets}
    assert by_action == {
        "sqs:SendMessage": {QUEUE},
        "lambda:InvokeFunction": {FUNCTION, f"{FUNCTION}:*"},  # its versions and aliases
        "states:StartExecution": {MACHINES, f"{MACHINES}:*"},
        "states:DescribeExecution": {f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders-*:*"},
        "events:PutEvents": {BUS},
    }
    assert all(len(s["Action"]) == 1 for s in targets)
    # Nothing but the allowed ARNs, their qualifier forms and the machines' executions.
    derived = {f"{FUNCTION}:*", f"{MACHINES}:*", f"arn:aws:states:us-east-1:{ACCOUNT}:execution:"}
    for arn in set().union(*by_action.values()) - set(EXAMPLE):
        assert any(arn.startswith(d) for d in derived), arn
        assert arn != "*"
    # Every other statement as it was, in its order.
    assert [s for s in policy["Statement"] if not is_target_statement(s)] == [
        s for s in before["Statement"] if not is_target_statement(s)
    ]
    assert main([stage, "--check", "--config", str(stage_copy)]) == 0


def test_the_generated_policy_grants_the_calls_the_allowlist_allows_and_no_other(
    stage_copy: Path,
) -> None:
    allow(stage_copy, "dev", EXAMPLE)
    policy = generated(stage_copy, "dev")
    machine = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders-daily"
    execution = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:orders-daily:nexus-j1-2026-01-01"
    bus = f"arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/audit"
    calls = [
        ("sqs:SendMessage", QUEUE, True),
        ("lambda:InvokeFunction", FUNCTION, True),
        ("lambda:InvokeFunction", f"{FUNCTION}:live", True),
        ("states:StartExecution", machine, True),
        ("states:StartExecution", f"{machine}:prod", True),
        ("states:DescribeExecution", execution, True),
        ("events:PutEvents", bus, True),
        ("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:orders", False),
        ("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:nexus-dev-work-dlq", False),
        ("lambda:InvokeFunction", f"{FUNCTION}2", False),
        ("lambda:InvokeFunction", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:other", False),
        ("states:StartExecution", machine.replace("orders-", "billing-"), False),
        ("states:DescribeExecution", execution.replace("orders-", "billing-"), False),
        ("events:PutEvents", bus.replace("audit", "default"), False),
        ("events:PutEvents", bus.replace("eu-west-1", "us-east-1"), False),
        ("sns:Publish", f"arn:aws:sns:us-east-1:{ACCOUNT}:orders", False),
        ("states:StartExecution", execution, False),
        ("sqs:ReceiveMessage", QUEUE, False),
    ]
    for action, arn, expected in calls:
        assert grants(policy, action, arn) is expected, (action, arn)
    # And the tasks' own allowlist check (on the unqualified ARN) agrees on each target.
    for action, arn, expected in calls:
        if action in ("states:DescribeExecution", "sqs:ReceiveMessage"):
            continue
        unqualified = arn.removesuffix(":live").removesuffix(":prod")
        assert target_allowed(unqualified, EXAMPLE) is expected, arn


def test_a_stale_policy_fails_the_check_and_regenerating_is_stable(
    stage_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file = stage_copy.parent / "policy-dev.json"
    allow(stage_copy, "dev", [])  # whatever the stage allows now
    generated(stage_copy, "dev")
    original = policy_file.read_text()
    allow(stage_copy, "dev", EXAMPLE)
    assert main(["dev", "--check", "--config", str(stage_copy)]) == 1
    err = capsys.readouterr().err
    assert "is stale" in err and "python -m infra.target_policy dev" in err
    assert policy_file.read_text() == original  # --check writes nothing

    first = generated(stage_copy, "dev")
    text = policy_file.read_text()
    assert text == json.dumps(first, indent=2) + "\n"  # 2-space JSON, like the file was
    assert generated(stage_copy, "dev") == first
    assert policy_file.read_text() == text

    # A narrower list replaces the statements where they are; an empty one removes them.
    at = [i for i, s in enumerate(first["Statement"]) if is_target_statement(s)]
    allow(stage_copy, "dev", [QUEUE])
    narrower = generated(stage_copy, "dev")
    assert [i for i, s in enumerate(narrower["Statement"]) if is_target_statement(s)] == at[:1]
    assert narrower["Statement"][at[0]] == statement("TargetsSqs", "sqs:SendMessage", QUEUE)
    allow(stage_copy, "dev", [])
    generated(stage_copy, "dev")
    assert policy_file.read_text() == original
    # The other stage's file is untouched.
    assert (stage_copy.parent / "policy-prod.json").read_text() == (
        CHALICE_DIR / "policy-prod.json"
    ).read_text()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('["*"]', "would allow every target of every service"),
        ('["arn:aws:sqs:*:*:*"]', "would allow every sqs resource"),
        ("arn:aws:sqs:us-east-1:123456789012:orders", "a string holding a JSON list"),
        ('{"queue": "x"}', "a string holding a JSON list"),
        ("[1]", "a string holding a JSON list"),
    ],
)
def test_a_bad_allowlist_writes_nothing_and_says_why(
    stage_copy: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    config = json.loads(stage_copy.read_text())
    config["stages"]["dev"]["environment_variables"]["NEXUS_TARGET_ALLOW"] = value
    stage_copy.write_text(json.dumps(config))
    policy_file = stage_copy.parent / "policy-dev.json"
    original = policy_file.read_text()
    for argv in (["dev"], ["dev", "--check"]):
        assert main([*argv, "--config", str(stage_copy)]) == 2
        assert message in capsys.readouterr().err
    assert policy_file.read_text() == original


def test_an_unknown_stage_is_refused(stage_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["staging", "--config", str(stage_copy)]) == 2
    assert "no stage 'staging'" in capsys.readouterr().err
