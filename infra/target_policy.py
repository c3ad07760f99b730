"""The IAM statements that let the functions call a stage's AWS targets, from its allowlist.

    python -m infra.target_policy dev [--check]

reads the stage's NEXUS_TARGET_ALLOW in `.chalice/config.json` (a JSON list of ARN patterns,
`*` matching any run of characters; see chalicelib/tasks/aws_targets.py) and rewrites the
`Targets*` statements of the stage's policy file (`iam_policy_file`, e.g. policy-dev.json) to
grant exactly the calls the five AWS target tasks make on those ARNs, nothing else:

- lambda:InvokeFunction on the function (and `ARN:*`, its versions and aliases);
- sqs:SendMessage on the queue; sns:Publish on the topic; events:PutEvents on the bus;
- states:StartExecution on the state machine (and `ARN:*`, its versions and aliases) and
  states:DescribeExecution on its executions, `arn:aws:states:R:A:execution:MACHINE:*` (a run
  delivered twice finds the execution the first delivery started).

Every other statement of the file is left as it is, in its place. A pattern that would allow a
whole service (`*` alone, a `*` service, or a resource that is only `*`, e.g.
`arn:aws:sqs:*:*:*`) is refused: the policy has no `*` resource. With `--check` nothing is
written; the command exits 1 if the file is not what the allowlist generates. `make deploy`
runs it before `chalice deploy`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).resolve().parent.parent / ".chalice" / "config.json"
TARGET_ALLOW_ENV = "NEXUS_TARGET_ALLOW"  # chalicelib.config.TARGET_ALLOW_ENV
SID_PREFIX = "Targets"

# Statement id -> the one action it grants, in the order the statements are written.
ACTIONS = {
    "TargetsLambda": "lambda:InvokeFunction",
    "TargetsSqs": "sqs:SendMessage",
    "TargetsSns": "sns:Publish",
    "TargetsStepFunctions": "states:StartExecution",
    "TargetsStepFunctionsExecutions": "states:DescribeExecution",
    "TargetsEvents": "events:PutEvents",
}

_PATTERN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):(?P<service>[^:]*):(?P<region>[a-z0-9*-]+):"
    r"(?P<account>\d{12}|\*):(?P<resource>.*)"
)
# service -> (the resource part of a pattern, with the name it allows; the form, as said)
_RESOURCES: dict[str, tuple[re.Pattern[str], str]] = {
    "lambda": (re.compile(r"function:(?P<name>[A-Za-z0-9_*-]+)"), "function:NAME"),
    "sqs": (re.compile(r"(?P<name>[A-Za-z0-9_.*-]+)"), "QUEUE_NAME"),
    "sns": (re.compile(r"(?P<name>[A-Za-z0-9_.*-]+)"), "TOPIC_NAME"),
    "states": (re.compile(r"stateMachine:(?P<name>[A-Za-z0-9_.*-]+)"), "stateMachine:NAME"),
    "events": (re.compile(r"event-bus/(?P<name>[A-Za-z0-9/._*-]+)"), "event-bus/NAME"),
}
_FORM = "arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE (REGION and ACCOUNT may be `*`)"
_EXAMPLE = "arn:aws:sqs:us-east-1:123456789012:orders-*"


class TargetPatternError(ValueError):
    """A pattern of the allowlist the policy cannot grant without a `*` resource, or that is
    not an ARN pattern of a target service."""


def _resources(pattern: str) -> list[tuple[str, str]]:
    """(statement id, resource) pairs granting the calls on the targets `pattern` allows."""
    if pattern.strip("*") == "":
        raise TargetPatternError(
            f"{pattern!r} would allow every target of every service; list ARN patterns "
            f"instead, e.g. {_EXAMPLE} (no `*` resources)"
        )
    arn = _PATTERN.fullmatch(pattern)
    if arn is None:
        raise TargetPatternError(f"{pattern!r} is not an ARN pattern: write {_FORM}")
    service, resource = arn["service"], arn["resource"]
    if service not in _RESOURCES:
        raise TargetPatternError(
            f"{pattern!r}: the service must be one of {', '.join(_RESOURCES)}, written out (no `*`)"
        )
    form, said = _RESOURCES[service]
    parsed = form.fullmatch(resource)
    if resource.strip("*") == "" or (parsed is not None and parsed["name"].strip("*") == ""):
        raise TargetPatternError(
            f"{pattern!r} would allow every {service} resource: name the {service} target "
            f"(a `*` may complete a name, e.g. {_EXAMPLE}); no `*` resources"
        )
    if parsed is None:
        raise TargetPatternError(
            f"{pattern!r}: a {service} pattern's resource is {said}, `*` allowed in the name"
        )
    if service == "lambda":
        return [("TargetsLambda", pattern), ("TargetsLambda", f"{pattern}:*")]
    if service == "states":
        prefix = pattern[: arn.start("resource")]
        return [
            ("TargetsStepFunctions", pattern),
            ("TargetsStepFunctions", f"{pattern}:*"),
            ("TargetsStepFunctionsExecutions", f"{prefix}execution:{parsed['name']}:*"),
        ]
    sid = {"sqs": "TargetsSqs", "sns": "TargetsSns", "events": "TargetsEvents"}[service]
    return [(sid, pattern)]


def target_statements(patterns: Sequence[str]) -> list[dict[str, Any]]:
    """The IAM statements granting the AWS target tasks' calls on the ARNs `patterns` allow:
    one per action, its resources in the patterns' order. Raises TargetPatternError."""
    resources: dict[str, list[str]] = {sid: [] for sid in ACTIONS}
    for pattern in patterns:
        for sid, resource in _resources(pattern):
            if resource not in resources[sid]:
                resources[sid].append(resource)
    return [
        {"Sid": sid, "Effect": "Allow", "Action": [ACTIONS[sid]], "Resource": arns}
        for sid, arns in resources.items()
        if arns
    ]


def is_target_statement(statement: dict[str, Any]) -> bool:
    return str(statement.get("Sid", "")).startswith(SID_PREFIX)


def with_target_statements(
    policy: dict[str, Any], statements: list[dict[str, Any]]
) -> dict[str, Any]:
    """`policy` with its Targets* statements replaced by `statements`, where the first of them
    was (at the end if there was none); every other statement as it is, in its order."""
    current = policy.get("Statement", [])
    kept = [s for s in current if not is_target_statement(s)]
    at = next((i for i, s in enumerate(current) if is_target_statement(s)), len(kept))
    return {**policy, "Statement": [*kept[:at], *statements, *kept[at:]]}


def stage_allowlist(config: dict[str, Any], stage: str) -> list[str]:
    """The stage's NEXUS_TARGET_ALLOW in the Chalice config; unset allows none."""
    stages = config.get("stages", {})
    if stage not in stages:
        raise ValueError(f"no stage {stage!r} in the Chalice config ({', '.join(stages)})")
    raw = stages[stage].get("environment_variables", {}).get(TARGET_ALLOW_ENV, "[]")
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ValueError(
            f"{stage}'s {TARGET_ALLOW_ENV} is {raw!r}; a string holding a JSON list of ARN "
            f'patterns is accepted, e.g. "[\\"{_EXAMPLE}\\"]"'
        )
    return value


def policy_path(config: dict[str, Any], stage: str, config_path: Path) -> Path:
    name = str(config["stages"][stage].get("iam_policy_file", f"policy-{stage}.json"))
    return config_path.parent / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", help="the Chalice stage (dev, prod)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the policy is stale"
    )
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Chalice config file")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config.read_text())
        statements = target_statements(stage_allowlist(config, args.stage))
        path = policy_path(config, args.stage, args.config)
        text = path.read_text()
        updated = with_target_statements(json.loads(text), statements)
    except (OSError, ValueError) as exc:
        print(f"target_policy: {exc}", file=sys.stderr)
        return 2
    resources = sum(len(s["Resource"]) for s in statements)
    if args.check:
        if json.loads(text) != updated:
            print(
                f"target_policy: {path} is stale: its {SID_PREFIX}* statements are not what "
                f"{args.stage}'s {TARGET_ALLOW_ENV} generates; run "
                f"`python -m infra.target_policy {args.stage}`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.stage}: {path.name} is up to date ({resources} target resources)")
        return 0
    new_text = json.dumps(updated, indent=2) + "\n"
    if new_text != text:
        path.write_text(new_text)
    print(f"{args.stage}: {path.name} grants {resources} target resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
