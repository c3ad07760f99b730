"""`make deploy` and `make destroy`, run for real against a fresh embedded AWS (issue 16).

`make deploy-check` runs this module alone; `make test` runs it with the rest.

The module's fixture copies this checkout into a temporary folder (a deploy writes the stage's
settings into `.chalice/config.json`, which must not change here), starts a fresh embedded AWS
(`local.aws_process`, the moto server `make run` uses) and, with `AWS_ENDPOINT_URL` pointing at
it, dummy credentials and no AWS CLI on PATH, runs what a user runs:

1. `make deploy STAGE=dev`, then reads back everything that exists;
2. `make admin-key STAGE=dev`, and a job created with that key through the API function's code
   and environment (moto runs no Lambda function without Docker, so the function's handler is
   run here, with the environment the deployed function has);
3. `make deploy STAGE=dev` again, and reads everything back;
4. a changed build (a source file edited) deployed with `make deploy STAGE=dev`: the job is
   read back through the new build's API;
5. `make destroy STAGE=dev`, and what is left.

Each test below checks one thing of what was read back. Where the embedded AWS lacks a call
`make deploy` makes, `local.aws_process` stands in for that call alone (import_swagger_2,
websocket_deployments); the README's deploy section lists them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from local.aws_process import EmbeddedAws

ROOT = Path(__file__).resolve().parents[2]
STAGE = "dev"
APP = "nexus-scheduler"
PREFIX = f"{APP}-{STAGE}"  # Chalice's names: nexus-scheduler-dev-<function>
STACK = f"nexus-{STAGE}"
REGION = "us-east-1"
# Not copied into the deploy's folder: what a clone does not have, or what the deploy makes.
NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    ".local",
    "deployed",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".out",
    "node_modules",
)

# What the API function's handler is asked, in a process of its own (the deployed code's
# folder, the deployed function's environment): chalice.test runs the app's routes with its
# authorizer, as API Gateway would call them.
THROUGH_THE_API = """
import json, sys
from chalice.test import Client
from app import app
method, path, key, body = sys.argv[1:5]
with Client(app, stage_name="dev") as client:
    answer = getattr(client.http, method)(
        path,
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
        body=body or None,
    )
print(json.dumps({"status": answer.status_code, "body": json.loads(answer.body or "null")}))
"""


@dataclass
class Deployment:
    """What the fixture did and read back."""

    work: Path
    endpoint: str
    env: dict[str, str]
    output: dict[str, str] = field(default_factory=dict)
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    job_after_upgrade: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        return cast(Any, boto3.session.Session()).client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="deploy-check",
            aws_secret_access_key="deploy-check",
        )

    def make(self, *args: str) -> str:
        proc = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        said = proc.stdout + proc.stderr
        print(f"\n$ make {' '.join(args)}\n{said}", flush=True)
        assert proc.returncode == 0, f"make {' '.join(args)} failed:\n{said}"
        return said

    def api(self, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
        """`method path` through the deployed API function's code and environment."""
        function = self.client("lambda").get_function_configuration(FunctionName=PREFIX)
        env = {k: v for k, v in self.env.items() if not k.startswith("NEXUS_")}
        env.update(function["Environment"]["Variables"])
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                THROUGH_THE_API,
                method,
                path,
                key,
                "" if body is None else json.dumps(body),
            ],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
        return answer["status"], answer["body"]


def path_without_aws_cli() -> str:
    """PATH less every folder with an `aws` command in it: the deploy must not need one."""
    kept = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    kept = [d for d in kept if not os.access(os.path.join(d, "aws"), os.X_OK)]
    return os.pathsep.join(kept)


def inventory(d: Deployment) -> dict[str, Any]:
    """Everything the stage's deploy makes, as the embedded AWS describes it (the fields that
    say what a resource is and how it is set, not when it was last touched)."""
    dynamodb, sqs, lam = d.client("dynamodb"), d.client("sqs"), d.client("lambda")
    iam, events, apigw = d.client("iam"), d.client("events"), d.client("apigateway")
    apigw2, cloudwatch, cfn = (
        d.client("apigatewayv2"),
        d.client("cloudwatch"),
        d.client("cloudformation"),
    )
    logs = d.client("logs")
    seen: dict[str, Any] = {}

    tables = {}
    for name in dynamodb.list_tables()["TableNames"]:
        table = dynamodb.describe_table(TableName=name)["Table"]
        tables[name] = {
            "arn": table["TableArn"],
            "created": table["CreationDateTime"].isoformat(),
            "keys": {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]},
            "indexes": {
                i["IndexName"]: {
                    "keys": {k["AttributeName"]: k["KeyType"] for k in i["KeySchema"]},
                    "projection": i["Projection"]["ProjectionType"],
                }
                for i in table.get("GlobalSecondaryIndexes", [])
            },
            "billing": table.get("BillingModeSummary", {}).get("BillingMode"),
            "stream": table.get("StreamSpecification", {}),
            "encryption": table.get("SSEDescription", {}).get("Status"),
            "ttl": dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
            "pitr": dynamodb.describe_continuous_backups(TableName=name)[
                "ContinuousBackupsDescription"
            ]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"],
        }
    seen["tables"] = tables

    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        queues[url.rsplit("/", 1)[-1]] = {
            "arn": attributes["QueueArn"],
            "url": url,
            "visibility_timeout": int(attributes["VisibilityTimeout"]),
            "retention": int(attributes["MessageRetentionPeriod"]),
            "redrive": json.loads(attributes.get("RedrivePolicy", "null")),
        }
    seen["queues"] = queues

    functions = {}
    for page in lam.get_paginator("list_functions").paginate():
        for f in page["Functions"]:
            functions[f["FunctionName"]] = {
                "arn": f["FunctionArn"],
                "handler": f["Handler"],
                "runtime": f["Runtime"],
                "architectures": f.get("Architectures", ["x86_64"]),
                "memory": f["MemorySize"],
                "timeout": f["Timeout"],
                "environment": f.get("Environment", {}).get("Variables", {}),
                "role": f["Role"],
                "code": f["CodeSha256"],
            }
    seen["functions"] = functions

    roles = {}
    for page in iam.get_paginator("list_roles").paginate():
        for role in page["Roles"]:
            name = role["RoleName"]
            policies = iam.list_role_policies(RoleName=name)["PolicyNames"]
            roles[name] = {
                "arn": role["Arn"],
                "policies": {
                    p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                    for p in policies
                },
            }
    seen["roles"] = roles

    rules = {}
    for rule in events.list_rules()["Rules"]:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        rules[rule["Name"]] = {
            "schedule": rule.get("ScheduleExpression"),
            "state": rule.get("State"),
            "targets": sorted(t["Arn"] for t in targets),
        }
    seen["rules"] = rules

    seen["mappings"] = sorted(
        (m["EventSourceArn"], m["FunctionArn"], m.get("BatchSize"), m["UUID"])
        for m in lam.list_event_source_mappings()["EventSourceMappings"]
    )

    apis = {}
    for api in apigw.get_rest_apis()["items"]:
        resources = apigw.get_resources(restApiId=api["id"], limit=500)["items"]
        apis[api["name"]] = {
            "id": api["id"],
            "stages": sorted(s["stageName"] for s in apigw.get_stages(restApiId=api["id"])["item"]),
            "routes": sorted(
                (r["path"], method) for r in resources for method in r.get("resourceMethods", {})
            ),
        }
    seen["rest_apis"] = apis

    seen["websocket_apis"] = {
        api["Name"]: {
            "id": api["ApiId"],
            "routes": sorted(r["RouteKey"] for r in apigw2.get_routes(ApiId=api["ApiId"])["Items"]),
        }
        for api in apigw2.get_apis()["Items"]
    }

    seen["alarms"] = {
        a["AlarmName"]: {"metric": a.get("MetricName"), "threshold": a.get("Threshold")}
        for a in cloudwatch.describe_alarms()["MetricAlarms"]
    }
    seen["stacks"] = {
        s["StackName"]: {"status": s["StackStatus"], "id": s["StackId"]}
        for s in cfn.describe_stacks()["Stacks"]
    }
    seen["log_groups"] = sorted(g["logGroupName"] for g in logs.describe_log_groups()["logGroups"])
    return seen


def summary(seen: dict[str, Any]) -> str:
    """What an inventory holds, a line per kind, by name."""

    def name(arn: str) -> str:  # a queue's or function's name; a table's stream by its table
        return (
            arn.split("table/")[1].split("/")[0] + " stream"
            if ":table/" in arn
            else arn.split(":")[-1]
        )

    lines = [
        f"  {kind}: {', '.join(sorted(map(str, things))) or '-'}"
        for kind, things in seen.items()
        if kind != "mappings"
    ]
    mappings = [f"{name(source)} -> {name(function)}" for source, function, *_ in seen["mappings"]]
    lines.append(f"  event source mappings: {', '.join(mappings) or '-'}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("deploy") / "nexus"
    shutil.copytree(ROOT, work, ignore=NOT_COPIED, copy_function=shutil.copy2, symlinks=True)
    (work / ".venv").symlink_to((ROOT / ".venv").resolve())
    embedded = EmbeddedAws().start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NEXUS_"))}
    env.update(
        AWS_ENDPOINT_URL=embedded.endpoint,
        AWS_ACCESS_KEY_ID="deploy-check",
        AWS_SECRET_ACCESS_KEY="deploy-check",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        PATH=path_without_aws_cli(),
    )
    d = Deployment(work, embedded.endpoint, env)
    try:
        d.seen["before"] = inventory(d)
        d.output["deploy"] = d.make("deploy", f"STAGE={STAGE}")
        d.seen["deployed"] = inventory(d)
        (stack,) = d.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"]
        d.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        made = summary(d.seen["deployed"])
        print(f"\nmake deploy STAGE={STAGE} made, on a fresh embedded AWS:\n{made}")

        key = d.make("-s", "admin-key", f"STAGE={STAGE}").strip().splitlines()[0]
        status, job = d.api(
            "post",
            "/v1/jobs",
            key,
            {
                "name": "kept across deploys",
                "job_type": "cron",
                "cron_expression": "0 9 * * 1-5",
                "timezone": "US/Eastern",
                "task_name": "nexus.echo",
            },
        )
        assert status == 201, job
        d.job = job

        d.output["again"] = d.make("deploy", f"STAGE={STAGE}")
        d.seen["again"] = inventory(d)

        # A changed build: an edited module, so every function gets new code.
        module = work / "chalicelib" / "__init__.py"
        module.write_text(module.read_text() + "\n# deploy-check: a changed build\n")
        d.output["upgrade"] = d.make("deploy", f"STAGE={STAGE}")
        d.seen["upgraded"] = inventory(d)
        status, d.job_after_upgrade = d.api("get", f"/v1/jobs/{job['id']}", key)
        assert status == 200, d.job_after_upgrade

        d.output["destroy"] = d.make("destroy", f"STAGE={STAGE}")
        d.seen["destroyed"] = inventory(d)
        print(f"\nleft after make destroy STAGE={STAGE}:\n{summary(d.seen['destroyed'])}")
        yield d
    finally:
        embedded.stop()


def packaged(d: Deployment) -> dict[str, Any]:
    """The SAM template `make deploy` packaged (build/deploy/sam.json): what was deployed."""
    return cast(dict[str, Any], json.loads((d.work / "build" / "deploy" / "sam.json").read_text()))


def stack_output(d: Deployment, name: str) -> str:
    """An output of the stage's stack, as the first deploy left it."""
    return d.outputs[name]


def test_make_deploy_ran_with_no_aws_cli_on_path(deployed: Deployment) -> None:
    assert shutil.which("aws", path=deployed.env["PATH"]) is None
    assert deployed.seen["before"]["functions"] == {} and deployed.seen["before"]["tables"] == {}
    assert "Resources deployed:" in deployed.output["deploy"]


def test_the_table_has_its_keys_both_indexes_ttl_recovery_and_encryption(
    deployed: Deployment,
) -> None:
    table = deployed.seen["deployed"]["tables"][STACK]
    assert table["keys"] == {"pk": "HASH", "sk": "RANGE"}
    assert set(table["indexes"]) == {"by_due", "by_created"}
    assert table["billing"] == "PAY_PER_REQUEST"
    assert table["stream"]["StreamEnabled"] is True
    assert table["ttl"] == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    assert table["pitr"] == "ENABLED"
    assert table["encryption"] == "ENABLED"


def test_the_work_queue_hands_a_run_to_the_dead_letter_queue_after_five_receives(
    deployed: Deployment,
) -> None:
    queues = deployed.seen["deployed"]["queues"]
    work, dlq = queues[f"{STACK}-work"], queues[f"{STACK}-work-dlq"]
    assert work["redrive"] == {"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 5}
    assert work["visibility_timeout"] == 5400
    assert dlq["visibility_timeout"] == 360
    assert dlq["retention"] > work["retention"]


def test_every_function_is_as_packaged_and_points_at_the_stacks_resources(
    deployed: Deployment,
) -> None:
    functions = deployed.seen["deployed"]["functions"]
    template = packaged(deployed)["Resources"]
    wanted = {
        r["Properties"]["Handler"]: r["Properties"]
        for r in template.values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    by_handler = {f["handler"]: f for f in functions.values()}
    assert set(by_handler) == set(wanted)
    assert len(functions) == 9
    for handler, props in wanted.items():
        f = by_handler[handler]
        assert (f["runtime"], f["architectures"]) == ("python3.13", ["arm64"]), handler
        assert (f["runtime"], f["architectures"]) == (props["Runtime"], props["Architectures"])
        assert (f["memory"], f["timeout"]) == (props["MemorySize"], props["Timeout"]), handler
        env = f["environment"]
        assert env["NEXUS_STAGE"] == STAGE
        assert env["NEXUS_TABLE"] == stack_output(deployed, "TableName")
        assert env["NEXUS_QUEUE_URL"] == stack_output(deployed, "QueueUrl")
        assert env["NEXUS_DLQ_URL"] == stack_output(deployed, "DlqUrl")
        assert env["NEXUS_STREAM_ARN"] == stack_output(deployed, "StreamArn")


def test_every_functions_role_carries_the_stages_policy(deployed: Deployment) -> None:
    policy = json.loads((deployed.work / ".chalice" / f"policy-{STAGE}.json").read_text())
    roles = deployed.seen["deployed"]["roles"]
    for name, f in deployed.seen["deployed"]["functions"].items():
        (role,) = [r for r in roles.values() if r["arn"] == f["role"]]
        assert list(role["policies"].values()) == [policy], name


def test_the_tick_runs_every_minute_and_the_queues_and_stream_feed_their_functions(
    deployed: Deployment,
) -> None:
    seen = deployed.seen["deployed"]
    functions = {f["handler"]: f["arn"] for f in seen["functions"].values()}
    (tick_rule,) = [r for r in seen["rules"].values() if functions["app.tick"] in r["targets"]]
    assert tick_rule == {
        "schedule": "rate(1 minute)",
        "state": "ENABLED",
        "targets": [functions["app.tick"]],
    }
    queues = seen["queues"]
    table = seen["tables"][STACK]
    mappings = {(src, fn) for src, fn, *_ in seen["mappings"]}
    assert mappings == {
        (queues[f"{STACK}-work"]["arn"], functions["app.worker"]),
        (queues[f"{STACK}-work-dlq"]["arn"], functions["app.dead_letter"]),
        (stack_output(deployed, "StreamArn"), functions["app.table_changes"]),
    }
    assert table["stream"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_the_rest_api_has_stage_api_and_every_route_of_the_app(deployed: Deployment) -> None:
    (api,) = deployed.seen["deployed"]["rest_apis"].values()
    assert api["stages"] == ["api"]
    paths = packaged(deployed)["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]["paths"]
    wanted = sorted(
        (path, method.upper())
        for path, methods in paths.items()
        for method in methods
        if method.startswith(("get", "post", "put", "delete", "patch", "options", "head"))
    )
    assert api["routes"] == wanted
    assert ("/v1/jobs", "POST") in api["routes"] and len(wanted) > 30
    (ws,) = deployed.seen["deployed"]["websocket_apis"].values()
    assert ws["routes"] == ["$connect", "$default", "$disconnect"]


def test_the_alarms_of_the_stack_exist(deployed: Deployment) -> None:
    assert set(deployed.seen["deployed"]["alarms"]) == {
        f"{STACK}-dlq-not-empty",
        f"{STACK}-runs-dead-lettered",
        f"{STACK}-tick-errors",
        f"{STACK}-tick-not-running",
        f"{STACK}-worker-errors",
        f"{STACK}-worker-throttles",
        f"{STACK}-runs-starting-late",
    }


def test_a_second_deploy_changes_nothing(deployed: Deployment) -> None:
    assert deployed.seen["again"] == deployed.seen["deployed"]
    assert "nothing changed" in deployed.output["again"]
    assert "Creating" not in deployed.output["again"].replace("Creating deployment package", "")


def test_a_changed_build_replaces_the_code_and_keeps_the_jobs(deployed: Deployment) -> None:
    before, after = deployed.seen["again"], deployed.seen["upgraded"]
    assert set(after["functions"]) == set(before["functions"])
    for name, f in after["functions"].items():
        assert f["code"] != before["functions"][name]["code"], name
        assert {**f, "code": None} == {**before["functions"][name], "code": None}, name
    assert after["tables"] == before["tables"]  # the same table: not made again
    created = {k: v for k, v in deployed.job.items() if k != "warnings"}  # a create's answer
    assert deployed.job_after_upgrade == created
    assert deployed.job["name"] == "kept across deploys"


def test_destroy_leaves_nothing_of_the_stage(deployed: Deployment) -> None:
    left = deployed.seen["destroyed"]
    assert left["tables"] == {} and left["queues"] == {} and left["functions"] == {}
    assert left["rules"] == {} and left["mappings"] == [] and left["alarms"] == {}
    assert left["rest_apis"] == {} and left["websocket_apis"] == {} and left["log_groups"] == []
    assert [r for r in left["roles"] if r.startswith(PREFIX)] == []
    assert all(s["status"] == "DELETE_COMPLETE" for s in left["stacks"].values())
