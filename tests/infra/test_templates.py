"""The deployment, checked offline: the infrastructure stack, the Chalice stages, and the IAM
policies against what the code calls.

`chalice package` runs once per session, without AWS credentials; it builds the Lambda bundle
from PyPI wheels the first time (about 20 s) and reuses `.chalice/deployments/` after that.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
import zipfile
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from cfnlint.api import lint_file
from cfnlint.decode import decode

from chalicelib.security import secrets
from chalicelib.store import table_definition
from chalicelib.tasks import registry
from infra.bytecode import cached_package
from infra.target_policy import is_target_statement, stage_allowlist, target_statements

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "nexus.yaml"
CHALICE_DIR = ROOT / ".chalice"
STAGES = ("dev", "prod")
HANDLERS = (
    "api_handler",
    "api_key",
    "tick",
    "worker",
    "dead_letter",
    "websocket_connect",
    "websocket_message",
    "websocket_disconnect",
    "table_changes",
)
HANDLER_OF = {"app.app": "api_handler"}  # the packaged Handler of each lambda_functions key
LAMBDA_MAX_TIMEOUT = 900
# Every function's runtime and instruction set. Chalice takes the runtime from the Python that
# runs it (make builds .venv with 3.13) and the architecture from config.json's
# lambda_architecture; Lambda deprecates python3.11 on 2027-06-30.
RUNTIME = "python3.13"
ARCHITECTURE = "arm64"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
# ELF's e_machine of a 64-bit Arm (Graviton) build: what an arm64 Lambda loads.
EM_AARCH64 = 183
# The only actions allowed on every resource: X-Ray's trace upload has no resource type.
WILDCARD_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


# -- loading ---------------------------------------------------------------------------------


@cache
def template() -> dict[str, Any]:
    loaded, matches = decode(str(TEMPLATE))
    assert not matches, matches
    assert loaded is not None
    return dict(loaded)


@cache
def chalice_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((CHALICE_DIR / "config.json").read_text())
    return config


@cache
def policy(stage: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CHALICE_DIR / f"policy-{stage}.json").read_text())
    return document


def resource(logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = template()["Resources"][logical_id]
    return found


def resources_of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template()["Resources"].items() if v["Type"] == kind}


def resolve(value: Any, stage: str) -> Any:
    """The few intrinsic functions the template uses, evaluated for `stage`."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, arg),) = value.items()
        if name == "Ref" and arg == "Stage":
            return stage
        if name == "Fn::Sub" and isinstance(arg, str):
            return arg.replace("${Stage}", stage)
        if name == "Fn::If" and arg[0] == "IsProd":
            return resolve(arg[1] if stage == "prod" else arg[2], stage)
        if name == "Fn::GetAtt" and arg[1] == "QueueName":
            return resolve(resource(arg[0])["Properties"]["QueueName"], stage)
    if isinstance(value, dict):
        return {k: resolve(v, stage) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, stage) for v in value]
    return value


def lambda_setting(stage: str, handler: str, name: str) -> Any:
    return chalice_config()["stages"][stage]["lambda_functions"][handler][name]


def function_name(stage: str, handler: str) -> str:
    """The name `chalice deploy` gives a handler's Lambda function."""
    app = chalice_config()["app_name"]
    return f"{app}-{stage}" if handler == "api_handler" else f"{app}-{stage}-{handler}"


def lint(path: Path) -> list[str]:
    return [str(match) for match in lint_file(path)]


# -- the chalice package output --------------------------------------------------------------


def _without_credentials() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and not k.startswith("NEXUS_")
    }
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture(scope="session")
def sam_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package") / "dev"
    chalice = Path(sys.executable).parent / "chalice"
    done = subprocess.run(
        [str(chalice), "package", "--stage", "dev", str(out)],
        cwd=ROOT,
        env=_without_credentials(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # As `make package` does after it: the modules' bytecode into the zip.
    done = subprocess.run(
        [sys.executable, "-m", "infra.bytecode", str(out / "deployment.zip")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "sam.json"


def sam_resources(path: Path) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = json.loads(path.read_text())["Resources"]
    return found


# -- lint ------------------------------------------------------------------------------------


def test_the_infrastructure_template_passes_cfn_lint() -> None:
    assert lint(TEMPLATE) == []


def test_chalice_packages_the_dev_stage_without_credentials_into_a_template_that_passes_cfn_lint(
    sam_template: Path,
) -> None:
    assert lint(sam_template) == []


# -- the table -------------------------------------------------------------------------------


def test_the_table_is_the_table_the_code_creates_locally() -> None:
    for stage in STAGES:
        table = resolve(resource("Table")["Properties"], stage)
        expected = table_definition(f"nexus-{stage}")
        assert table["TableName"] == expected["TableName"]
        assert table["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
        assert table["KeySchema"] == expected["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=str) == sorted(
            expected["AttributeDefinitions"], key=str
        )
        assert table["GlobalSecondaryIndexes"] == expected["GlobalSecondaryIndexes"]


def test_the_table_has_point_in_time_recovery_encryption_and_ttl_on_expires_at() -> None:
    table = resource("Table")["Properties"]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"] == {"SSEEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_prod_table_cannot_be_deleted_with_the_stack_by_accident() -> None:
    assert resolve(resource("Table")["Properties"], "prod")["DeletionProtectionEnabled"] is True
    assert resource("Table")["UpdateReplacePolicy"] == "Retain"


# -- the queues ------------------------------------------------------------------------------


def test_the_queues_are_named_for_the_stage_and_encrypted() -> None:
    for stage in STAGES:
        work = resolve(resource("WorkQueue")["Properties"], stage)
        dlq = resolve(resource("DeadLetterQueue")["Properties"], stage)
        assert work["QueueName"] == f"nexus-{stage}-work"
        assert dlq["QueueName"] == f"nexus-{stage}-work-dlq"
        assert work["SqsManagedSseEnabled"] is True
        assert dlq["SqsManagedSseEnabled"] is True


def test_the_work_queue_gives_up_on_a_message_after_at_least_five_receives() -> None:
    redrive = resource("WorkQueue")["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert int(redrive["maxReceiveCount"]) >= 5


def test_the_visibility_timeout_is_at_least_six_times_the_worker_timeout_of_every_stage() -> None:
    visibility = int(resource("WorkQueue")["Properties"]["VisibilityTimeout"])
    for stage in STAGES:
        assert visibility >= 6 * lambda_setting(stage, "worker", "lambda_timeout")
    assert visibility <= 12 * 3600  # SQS's maximum


def test_the_dead_letter_queue_keeps_messages_fourteen_days_longer_than_the_work_queue() -> None:
    dlq = int(resource("DeadLetterQueue")["Properties"]["MessageRetentionPeriod"])
    work = int(resource("WorkQueue")["Properties"]["MessageRetentionPeriod"])
    assert dlq == 14 * 24 * 3600
    assert dlq > work


# -- alarms ----------------------------------------------------------------------------------


def alarm_on(namespace: str, metric: str, dimension: str, stage: str) -> dict[str, Any]:
    found = [
        resolve(a["Properties"], stage)
        for a in resources_of_type("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["Namespace"] == namespace
        and a["Properties"]["MetricName"] == metric
        and resolve(a["Properties"]["Dimensions"], stage)[0]["Value"] == dimension
    ]
    assert len(found) == 1, f"{len(found)} alarms on {namespace} {metric} {dimension}"
    return found[0]


def test_an_alarm_fires_when_the_dead_letter_queue_is_not_empty() -> None:
    alarm = alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", "nexus-dev-work-dlq", "dev")
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": "nexus-dev-work-dlq"}]
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_an_alarm_fires_on_any_tick_error() -> None:
    alarm = alarm_on("AWS/Lambda", "Errors", function_name("dev", "tick"), "dev")
    assert (alarm["Statistic"], alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "Sum",
        "GreaterThanThreshold",
        0,
    )


def test_an_alarm_fires_when_the_tick_has_not_run_for_five_minutes() -> None:
    alarm = alarm_on("AWS/Lambda", "Invocations", function_name("prod", "tick"), "prod")
    assert alarm["Statistic"] == "Sum"
    assert (alarm["Period"], alarm["EvaluationPeriods"]) == (60, 5)
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    assert alarm["TreatMissingData"] == "breaching"


def test_alarms_fire_on_worker_errors_and_throttles() -> None:
    for metric in ("Errors", "Throttles"):
        alarm = alarm_on("AWS/Lambda", metric, function_name("dev", "worker"), "dev")
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)


def test_an_alarm_fires_when_the_99th_percentile_run_starts_over_a_second_late() -> None:
    alarm = alarm_on("NEXUS", "StartLatenessSeconds", "prod", "prod")
    assert alarm["Dimensions"] == [{"Name": "Stage", "Value": "prod"}]
    assert (alarm["ExtendedStatistic"], alarm["Period"], alarm["EvaluationPeriods"]) == (
        "p99",
        300,
        1,
    )
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 1)


def test_every_alarm_notifies_the_topic_only_when_one_is_given() -> None:
    assert template()["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for alarm in resources_of_type("AWS::CloudWatch::Alarm").values():
        assert alarm["Properties"]["AlarmActions"] == expected
        assert alarm["Properties"]["OKActions"] == expected


def test_the_stack_outputs_what_the_deploy_configures_chalice_with() -> None:
    assert set(template()["Outputs"]) == {
        "TableName",
        "QueueUrl",
        "QueueName",
        "DlqUrl",
        "DlqName",
        "TableArn",
        "QueueArn",
        "DlqArn",
        "StreamArn",
    }


def test_every_function_has_a_log_group_with_a_retention() -> None:
    groups = resources_of_type("AWS::Logs::LogGroup").values()
    for stage in STAGES:
        names = {resolve(g["Properties"]["LogGroupName"], stage) for g in groups}
        assert names == {f"/aws/lambda/{function_name(stage, h)}" for h in HANDLERS}
        for group in groups:
            assert resolve(group["Properties"]["RetentionInDays"], stage) > 0


# -- the chalice stages ----------------------------------------------------------------------


def test_each_stage_serves_the_api_on_the_api_stage_with_its_own_policy_file() -> None:
    config = chalice_config()
    assert config["api_gateway_stage"] == "api"
    assert config["autogen_policy"] is False
    assert set(config["stages"]) == set(STAGES)
    for stage in STAGES:
        assert config["stages"][stage]["iam_policy_file"] == f"policy-{stage}.json"
        assert isinstance(config["stages"][stage]["xray"], bool)


def test_each_stage_points_at_the_resources_its_stack_creates() -> None:
    for stage in STAGES:
        env = chalice_config()["stages"][stage]["environment_variables"]
        assert env["NEXUS_STAGE"] == stage
        assert env["NEXUS_TABLE"] == resolve(resource("Table")["Properties"]["TableName"], stage)
        work = resolve(resource("WorkQueue")["Properties"]["QueueName"], stage)
        dlq = resolve(resource("DeadLetterQueue")["Properties"]["QueueName"], stage)
        assert env["NEXUS_QUEUE_NAME"] == work
        assert env["NEXUS_DLQ_NAME"] == dlq
        assert env["NEXUS_QUEUE_URL"].endswith(f"/{work}")
        assert env["NEXUS_DLQ_URL"].endswith(f"/{dlq}")
        assert (
            env["NEXUS_STREAM_ARN"].split(":table/")[1].startswith(f"{env['NEXUS_TABLE']}/stream/")
        )


def test_every_function_has_its_memory_and_a_timeout_lambda_accepts() -> None:
    for stage in STAGES:
        assert set(chalice_config()["stages"][stage]["lambda_functions"]) == set(HANDLERS)
        for handler in HANDLERS:
            assert 128 <= lambda_setting(stage, handler, "lambda_memory_size") <= 10240
            assert 1 <= lambda_setting(stage, handler, "lambda_timeout") <= LAMBDA_MAX_TIMEOUT
        # API Gateway gives up on a request after 29 s.
        assert lambda_setting(stage, "api_handler", "lambda_timeout") <= 29


def test_the_worker_timeout_covers_the_longest_task_and_its_bookkeeping() -> None:
    longest = max(registry.get(name).timeout_seconds or 60 for name in registry.names())
    for stage in STAGES:
        assert lambda_setting(stage, "worker", "lambda_timeout") >= longest + 30


def test_the_packaged_functions_have_the_configured_settings_and_policy(
    sam_template: Path,
) -> None:
    functions = {
        HANDLER_OF.get(props["Handler"], props["Handler"].removeprefix("app.")): props
        for props in (
            r["Properties"]
            for r in sam_resources(sam_template).values()
            if r["Type"] == "AWS::Serverless::Function"
        )
    }
    assert set(functions) == set(HANDLERS)
    tracing = "Active" if chalice_config()["stages"]["dev"]["xray"] else "PassThrough"
    for handler, props in functions.items():
        assert props["Timeout"] == lambda_setting("dev", handler, "lambda_timeout")
        assert props["MemorySize"] == lambda_setting("dev", handler, "lambda_memory_size")
        assert props["Tracing"] == tracing
    roles = [
        r["Properties"]
        for r in sam_resources(sam_template).values()
        if r["Type"] == "AWS::IAM::Role"
        and r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
        == {"Service": "lambda.amazonaws.com"}
    ]
    assert roles
    for role in roles:
        assert [p["PolicyDocument"] for p in role["Policies"]] == [policy("dev")]


def test_every_packaged_function_skips_pydantics_plugin_lookup(sam_template: Path) -> None:
    # pydantic looks its plugins up in every installed package's metadata when it builds its
    # first model, on each cold start; the bundle installs none (bench/NOTES.md, Cold start).
    functions = packaged_functions(sam_template)
    assert set(functions)
    for name, function in functions.items():
        env = function["Properties"]["Environment"]["Variables"]
        assert env.get("PYDANTIC_DISABLE_PLUGINS") == "__all__", name
    for stage in STAGES:
        env = chalice_config()["stages"][stage]["environment_variables"]
        assert env.get("PYDANTIC_DISABLE_PLUGINS") == "__all__", stage


def test_the_bundle_installs_no_pydantic_plugin_that_disabling_them_would_drop(
    sam_template: Path,
) -> None:
    with zipfile.ZipFile(sam_template.parent / "deployment.zip") as archive:
        entry_points = [
            archive.read(name).decode()
            for name in archive.namelist()
            if name.endswith(".dist-info/entry_points.txt")
        ]
    assert not [text for text in entry_points if re.search(r"^\[pydantic\]", text, re.M)]


# -- the runtime and the architecture ----------------------------------------------------------


def packaged_functions(path: Path) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in sam_resources(path).items() if r["Type"] in FUNCTION_TYPES}


def elf_machine(code: bytes) -> tuple[int, int]:
    """(EI_CLASS, e_machine) of an ELF file: 2 is 64-bit; 183 is aarch64, 62 x86-64."""
    assert code[:4] == b"\x7fELF", "not an ELF file"
    byte_order = "<" if code[5] == 1 else ">"
    (machine,) = struct.unpack(byte_order + "H", code[18:20])
    return code[4], machine


def native_modules(bundle: Path) -> dict[str, bytes]:
    """The compiled extension modules (and any shared library) of a deployment zip."""
    with zipfile.ZipFile(bundle) as archive:
        return {
            name: archive.read(name)
            for name in archive.namelist()
            if name.endswith(".so") or ".so." in name.rsplit("/", 1)[-1]
        }


def test_every_stage_runs_its_functions_on_arm64_from_the_top_level_setting() -> None:
    # Chalice reads lambda_architecture per stage, never per function: one bundle for all.
    config = chalice_config()
    assert config["lambda_architecture"] == ARCHITECTURE
    for stage in STAGES:
        assert "lambda_architecture" not in config["stages"][stage]
        for handler in HANDLERS:
            assert "lambda_architecture" not in config["stages"][stage]["lambda_functions"][handler]


def test_every_packaged_function_runs_python_3_13_on_arm64(sam_template: Path) -> None:
    functions = packaged_functions(sam_template)
    assert len(functions) == len(HANDLERS)
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Runtime"] == RUNTIME, (
            f"{name} runs {props['Runtime']}: chalice packages for the Python that runs it "
            f"({sys.version_info.major}.{sys.version_info.minor} here); build .venv with 3.13"
        )
        assert props["Architectures"] == [ARCHITECTURE], name
    globals_ = json.loads(sam_template.read_text()).get("Globals", {}).get("Function", {})
    assert globals_.get("Runtime", RUNTIME) == RUNTIME
    assert globals_.get("Architectures", [ARCHITECTURE]) == [ARCHITECTURE]


def test_the_bundles_native_modules_are_aarch64_builds_for_cpython_3_13(
    sam_template: Path,
) -> None:
    modules = native_modules(sam_template.parent / "deployment.zip")
    # pydantic's core is compiled: a bundle without it would fail to import on Lambda.
    assert any(name.startswith("pydantic_core/") for name in modules), sorted(modules)
    for name, code in modules.items():
        assert elf_machine(code) == (2, EM_AARCH64), f"{name} is not a 64-bit aarch64 build"
        tag = re.search(r"\.(cpython-\d+-[^.]+|abi3)\.so", name)
        if tag and tag.group(1) != "abi3":
            assert tag.group(1) == "cpython-313-aarch64-linux-gnu", name


def test_the_bundles_compiled_wheels_are_tagged_for_cpython_3_13_on_aarch64(
    sam_template: Path,
) -> None:
    with zipfile.ZipFile(sam_template.parent / "deployment.zip") as archive:
        wheels = {
            name.split("/")[0]: archive.read(name).decode()
            for name in archive.namelist()
            if name.endswith(".dist-info/WHEEL")
        }
    compiled = {
        wheel: re.findall(r"^Tag: (.+)$", text, re.MULTILINE)
        for wheel, text in wheels.items()
        if "Root-Is-Purelib: false" in text
    }
    assert any(wheel.startswith("pydantic_core-") for wheel in compiled), sorted(wheels)
    for wheel, tags in compiled.items():
        assert tags, wheel
        for tag in tags:
            python, abi, platform = tag.split("-")
            assert abi in ("abi3", "none") or (python, abi) == ("cp313", "cp313"), f"{wheel}: {tag}"
            assert platform.endswith("_aarch64"), f"{wheel}: {tag}"


UNCHECKED_HASH = 0b01  # a .pyc's flags word: bit 0 hash-based, bit 1 check_source (PEP 552)


def bundle_bytecode(path: Path) -> tuple[set[str], dict[str, bytes]]:
    """The .py files of the zip at `path` and its .pyc files by the source they compile."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        sources = {name for name in names if name.endswith(".py")}
        pycs = {
            importlib.util.source_from_cache(name): archive.read(name)
            for name in names
            if name.endswith(".pyc")
        }
        hashes = {name: importlib.util.source_hash(archive.read(name)) for name in sources}
    for source, pyc in pycs.items():
        assert pyc[8:16] == hashes[source], f"the bytecode of {source} is not of its source"
    return sources, pycs


def test_the_bundle_carries_unchecked_hash_bytecode_of_the_runtimes_python_beside_every_module(
    sam_template: Path,
) -> None:
    sources, pycs = bundle_bytecode(sam_template.parent / "deployment.zip")
    ours = {"app.py"} | {
        path.relative_to(ROOT).as_posix() for path in (ROOT / "chalicelib").rglob("*.py")
    }
    pydantic = {name for name in sources if name.startswith("pydantic/")}
    assert len(pydantic) > 50, sorted(pydantic)
    # The source stays: tracebacks show its lines.
    assert ours <= sources
    for source in sorted(ours | pydantic):
        assert source in pycs, f"{source} has no bytecode in the bundle"
        pyc = pycs[source]
        assert pyc[:4] == importlib.util.MAGIC_NUMBER, f"{source}: not bytecode of {RUNTIME}"
        flags = int.from_bytes(pyc[4:8], "little")
        assert flags == UNCHECKED_HASH, f"{source}: flags {flags:#b}, not unchecked-hash"
    with zipfile.ZipFile(sam_template.parent / "deployment.zip") as archive:
        names = set(archive.namelist())
    assert {
        "__pycache__/app.cpython-313.pyc",
        "chalicelib/__pycache__/models.cpython-313.pyc",
    } <= names


def test_make_package_and_make_deploy_put_the_bytecode_in_the_zip_they_ship() -> None:
    makefile = (ROOT / "Makefile").read_text()
    package = re.search(r"^package:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    deploy = re.search(r"^deploy:.*\n((?:(?:\t|#).*\n)+)", makefile, re.MULTILINE)
    assert package and deploy
    steps = package.group(1)
    assert steps.index("chalice package --stage $(STAGE) build/package") < steps.index(
        "-m infra.bytecode build/package/deployment.zip"
    )
    steps = deploy.group(1)
    assert (
        steps.index("chalice package --stage $(STAGE)")
        < steps.index("-m infra.bytecode --cached")
        < steps.index("chalice deploy --stage $(STAGE)")
    )


def test_the_cached_zip_infra_bytecode_compiles_is_the_one_chalice_deploy_reuses(
    sam_template: Path,
) -> None:
    # chalice package (the fixture) built the zip chalice deploy would reuse for these
    # sources; infra.bytecode --cached names it, and its sources are the packaged ones.
    cached = cached_package(ROOT)
    assert cached.is_file(), f"chalice package left no {cached}"
    with (
        zipfile.ZipFile(cached) as reused,
        zipfile.ZipFile(sam_template.parent / "deployment.zip") as packaged,
    ):
        in_cache = {n for n in reused.namelist() if not n.endswith(".pyc")}
        in_package = {n for n in packaged.namelist() if not n.endswith(".pyc")}
    assert in_cache == in_package


def test_the_infrastructure_stack_declares_no_function_so_chalice_sets_every_runtime() -> None:
    # Every function is Chalice's (above): none of nexus.yaml's resources has a runtime to age.
    for kind in FUNCTION_TYPES:
        assert resources_of_type(kind) == {}
    assert "Runtime" not in TEMPLATE.read_text()


def test_cfn_lint_is_the_version_requirements_dev_pins() -> None:
    # The lint tests' verdict changes with cfn-lint's rules: one exact version, the pinned one.
    pins = re.findall(
        r"^cfn-lint==(\S+)$", (ROOT / "requirements-dev.txt").read_text(), re.MULTILINE
    )
    assert pins == [metadata.version("cfn-lint")]


def test_the_packaged_event_sources_read_the_stacks_queues(sam_template: Path) -> None:
    queues = {
        event["Properties"]["Queue"]["Fn::Sub"].rsplit(":", 1)[1]
        for r in sam_resources(sam_template).values()
        if r["Type"] == "AWS::Serverless::Function"
        for event in r["Properties"].get("Events", {}).values()
        if event["Type"] == "SQS"
    }
    assert queues == {
        resolve(resource("WorkQueue")["Properties"]["QueueName"], "dev"),
        resolve(resource("DeadLetterQueue")["Properties"]["QueueName"], "dev"),
    }


def test_the_stream_handler_reads_the_tables_change_stream_and_the_websocket_api_is_packaged(
    sam_template: Path,
) -> None:
    streams = [
        (name, event["Properties"])
        for name, r in sam_resources(sam_template).items()
        if r["Type"] == "AWS::Serverless::Function"
        for event in r["Properties"].get("Events", {}).values()
        if event["Type"] == "DynamoDB"
    ]
    assert len(streams) == 1
    _, source = streams[0]
    # The stage's configured stream: make deploy writes the stack's (infra.configure).
    assert (
        source["Stream"]
        == chalice_config()["stages"]["dev"]["environment_variables"]["NEXUS_STREAM_ARN"]
    )
    assert source["StartingPosition"] == "LATEST"
    assert resource("Table")["Properties"]["StreamSpecification"] == {
        "StreamViewType": "NEW_AND_OLD_IMAGES"
    }
    kinds = {r["Type"] for r in sam_resources(sam_template).values()}
    assert {"AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route"} <= kinds
    routes = {
        r["Properties"]["RouteKey"]
        for r in sam_resources(sam_template).values()
        if r["Type"] == "AWS::ApiGatewayV2::Route"
    }
    assert routes == {"$connect", "$default", "$disconnect"}


# -- the IAM policies ------------------------------------------------------------------------

# How IAM authorises an API call when the action is not named after it.
AUTHORISED_AS = {
    ("sqs", "SendMessageBatch"): ("SendMessage",),
    ("sqs", "DeleteMessageBatch"): ("DeleteMessage",),
    ("sqs", "ChangeMessageVisibilityBatch"): ("ChangeMessageVisibility",),
    ("dynamodb", "TransactGetItems"): ("GetItem",),
}
TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# What Lambda's event source mappings do with the role's permissions, on both queues.
EVENT_SOURCE_ACTIONS = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


def deployed_sources() -> list[Path]:
    return [ROOT / "app.py", *sorted((ROOT / "chalicelib").rglob("*.py"))]


@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method name -> API operation, from botocore's model of `service`."""
    model = botocore.session.get_session().get_service_model(service)
    return {xform_name(name): name for name in model.operation_names}


def called_operations(service: str) -> set[str]:
    """The operations of `service` the deployed code calls (`<anything>.<operation>(...)`)."""
    known = operations(service)
    found = set()
    for path in deployed_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in known
            ):
                found.add(known[node.func.attr])
    return found


def transaction_item_kinds() -> set[str]:
    """The kinds of item a transaction of the code writes (`{"Put": {...}}` and so on)."""
    kinds = set()
    for path in deployed_sources():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Dict):
                for key in node.keys:
                    if isinstance(key, ast.Constant) and key.value in TRANSACTION_ITEM_ACTIONS:
                        kinds.add(key.value)
    return kinds


def required_actions(service: str) -> set[str]:
    actions = set()
    for operation in called_operations(service):
        if (service, operation) == ("dynamodb", "TransactWriteItems"):
            names: tuple[str, ...] = tuple(
                TRANSACTION_ITEM_ACTIONS[k] for k in transaction_item_kinds()
            )
        else:
            names = AUTHORISED_AS.get((service, operation), (operation,))
        actions.update(f"{service}:{name}" for name in names)
    return actions


def allowed(stage: str, action: str, arn: str) -> bool:
    for statement in policy(stage)["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = as_list(statement["Action"])
        resources_ = as_list(statement["Resource"])
        if action in actions and arn in resources_:
            return True
    return False


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_code_calls_dynamodb_and_sqs_operations_the_scan_finds() -> None:
    assert {"GetItem", "UpdateItem", "Query", "TransactWriteItems"} <= called_operations("dynamodb")
    assert {"SendMessageBatch", "DeleteMessageBatch"} <= called_operations("sqs")


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_allows_every_dynamodb_action_the_code_calls_on_the_stage_table(
    stage: str,
) -> None:
    table = f"arn:aws:dynamodb:*:*:table/nexus-{stage}"
    for action in required_actions("dynamodb"):
        assert allowed(stage, action, table), action
    for index in ("by_created", "by_due"):
        assert allowed(stage, "dynamodb:Query", f"{table}/index/{index}")


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_allows_every_sqs_action_the_code_and_its_event_sources_need(
    stage: str,
) -> None:
    work = f"arn:aws:sqs:*:*:nexus-{stage}-work"
    dlq = f"arn:aws:sqs:*:*:nexus-{stage}-work-dlq"
    for action in required_actions("sqs") | EVENT_SOURCE_ACTIONS:
        assert allowed(stage, action, work), action
    for action in EVENT_SOURCE_ACTIONS:
        assert allowed(stage, action, dlq), action


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_lets_every_function_write_its_logs_and_traces(stage: str) -> None:
    for handler in HANDLERS:
        group = f"arn:aws:logs:*:*:log-group:/aws/lambda/{function_name(stage, handler)}"
        for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
            assert allowed(stage, action, f"{group}:*"), (action, group)
    for action in WILDCARD_ACTIONS:
        assert allowed(stage, action, "*")


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_lets_the_stream_handler_read_the_stage_tables_stream_and_post_to_clients(
    stage: str,
) -> None:
    stream = f"arn:aws:dynamodb:us-east-1:123456789012:table/nexus-{stage}/stream/2026-11-26"
    for action in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"):
        assert grants(stage, f"dynamodb:{action}", stream), action
    other = "arn:aws:dynamodb:us-east-1:123456789012:table/other/stream/2026-11-26"
    assert not grants(stage, "dynamodb:GetRecords", other)
    post = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/POST/@connections/Xy="
    assert grants(stage, "execute-api:ManageConnections", post)
    # Only the @connections of an `api` stage: never the REST API's own routes.
    rest = "arn:aws:execute-api:us-east-1:123456789012:abc123/api/POST/v1/jobs"
    assert not grants(stage, "execute-api:ManageConnections", rest)


# The WebSocket API's id is made by `chalice deploy`, after the policy is written: these two
# resources name no stage. They reach only the connections API of a stage named `api`, and the
# read-only list of APIs (GET /v1/realtime finds the stage's WebSocket URL there).
UNNAMED_RESOURCES = {
    "arn:aws:execute-api:*:*:*/api/POST/@connections/*": {"execute-api:ManageConnections"},
    "arn:aws:execute-api:*:*:*/api/DELETE/@connections/*": {"execute-api:ManageConnections"},
    "arn:aws:apigateway:*::/apis": {"apigateway:GET"},
}


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_names_only_real_actions_and_no_wildcards_but_x_rays(stage: str) -> None:
    known = json.loads(
        resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text()
    )
    for statement in policy(stage)["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in as_list(statement["Action"]):
            service, name = action.split(":")
            assert "*" not in action, action
            assert name.lower() in known[service]["Actions"], f"{action} is not an IAM action"
        for arn in as_list(statement["Resource"]):
            if arn == "*":
                assert set(as_list(statement["Action"])) <= WILDCARD_ACTIONS, statement
            elif arn in UNNAMED_RESOURCES:
                assert set(as_list(statement["Action"])) <= UNNAMED_RESOURCES[arn], statement
            elif is_target_statement(statement):
                # The stage's AWS targets: what its NEXUS_TARGET_ALLOW generates, no more
                # (tests/infra/test_target_policy.py); a `*` resource is refused above.
                assert statement in target_statements(stage_allowlist(chalice_config(), stage)), (
                    statement
                )
            elif arn == ANY_KMS_KEY:
                # Any key, but only to decrypt the stage's parameters through SSM (below).
                assert as_list(statement["Action"]) == ["kms:Decrypt"], statement
                assert statement["Condition"] == {"StringLike": ssm_decrypt_only(stage)}
            else:
                assert (
                    f"nexus-{stage}" in arn
                    or f"nexus-scheduler-{stage}" in arn
                    or arn == stage_parameters(stage)
                ), arn


def test_the_prod_policy_is_the_dev_policy_for_the_prod_resources() -> None:
    # But for the AWS targets, each stage's own (its NEXUS_TARGET_ALLOW).
    def without_targets(stage: str) -> list[dict[str, Any]]:
        return [s for s in policy(stage)["Statement"] if not is_target_statement(s)]

    as_prod = json.dumps(without_targets("dev")).replace("-dev", "-prod").replace("/dev/", "/prod/")
    assert json.loads(as_prod) == without_targets("prod")
    assert {**policy("dev"), "Statement": []} == {**policy("prod"), "Statement": []}


# -- secrets: SSM Parameter Store, read by the worker (security.secrets) ----------------------

ANY_KMS_KEY = "arn:aws:kms:*:*:key/*"


def stage_parameters(stage: str) -> str:
    return f"arn:aws:ssm:*:*:parameter{secrets.stage_path(stage)}*"


def ssm_decrypt_only(stage: str) -> dict[str, str]:
    return {
        "kms:ViaService": "ssm.*.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": stage_parameters(stage),
    }


def parameter_arn(name: str) -> str:
    return f"arn:aws:ssm:us-east-1:123456789012:parameter{name}"


def grants(stage: str, action: str, arn: str) -> list[dict[str, Any]]:
    """The statements that allow `action` on `arn`, wildcards matched as IAM does."""
    return [
        statement
        for statement in policy(stage)["Statement"]
        if statement["Effect"] == "Allow"
        and action in as_list(statement["Action"])
        and any(fnmatch.fnmatchcase(arn, pattern) for pattern in as_list(statement["Resource"]))
    ]


# References the API accepts, and the parameter each names in the stage.
ACCEPTED = ("ssm:/nexus/api", "ssm:/nexus/team-a/db.password", "ssm:/nexus/a/b_c/D-9")
# References it refuses: another stage's or no stage's parameter, or a way out of the path.
REFUSED = (
    "ssm:/other/api",
    "ssm:/nexus/../prod/api",
    "ssm:/nexus/./api",
    "ssm:/nexus//api",
    "ssm:/nexus/",
    "ssm:nexus/api",
    "/nexus/api",
    "ssm:/nexus/api/",
    "ssm:/nexus/a b",
)


def test_the_only_ssm_call_the_code_makes_is_get_parameters() -> None:
    # KMS is never called by the code: SSM decrypts on its behalf (kms:ViaService).
    assert called_operations("ssm") == {"GetParameters"}


@pytest.mark.parametrize("stage", STAGES)
def test_each_policy_allows_every_ssm_call_of_the_code_on_every_parameter_a_reference_names(
    stage: str,
) -> None:
    for reference in ACCEPTED:
        assert secrets.reference_problem({"$secret": reference}, stage) is None, reference
        name = secrets.parameter_name(reference, stage)
        assert name.startswith(f"/nexus/{stage}/")
        for action in required_actions("ssm"):
            assert grants(stage, action, parameter_arn(name)), (action, name)
        decrypt = grants(stage, "kms:Decrypt", "arn:aws:kms:us-east-1:123456789012:key/abc")
        assert [s["Condition"]["StringLike"] for s in decrypt] == [ssm_decrypt_only(stage)]
        context = ssm_decrypt_only(stage)["kms:EncryptionContext:PARAMETER_ARN"]
        assert fnmatch.fnmatchcase(parameter_arn(name), context)


@pytest.mark.parametrize("stage", STAGES)
def test_no_reference_reaches_outside_the_stage_path_and_the_policy_allows_nothing_outside_it(
    stage: str,
) -> None:
    other = next(s for s in STAGES if s != stage)
    for reference in (*REFUSED, f"ssm:/nexus/{stage}/api"):
        assert secrets.reference_problem({"$secret": reference}, stage), reference
    for name in (f"/nexus/{other}/api", "/nexus/api", "/other/api", f"/nexus/{stage}"):
        assert not grants(stage, "ssm:GetParameters", parameter_arn(name)), name
    for statement in policy(stage)["Statement"]:
        for action in as_list(statement["Action"]):
            if action.startswith("ssm:"):
                assert as_list(statement["Resource"]) == [stage_parameters(stage)], statement
                assert "Condition" not in statement
            if action.startswith("kms:"):
                assert action == "kms:Decrypt"
                assert statement["Condition"] == {"StringLike": ssm_decrypt_only(stage)}
