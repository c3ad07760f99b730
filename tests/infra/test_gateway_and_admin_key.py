"""No stage may be deployable open (issue 10): what `make deploy` does to API Gateway after
`chalice deploy` (infra/gateway.py), and the first admin key of a stage (infra/admin_key.py).

moto implements every API Gateway call used here (put/get_gateway_response, get/update_stage
with the `/*/*/throttling/...` and `/deploymentId` paths, create_deployment), so no call is
stubbed. One moto quirk shapes the fake deploy below: its create_deployment(stageName=...)
replaces the stage with a new one, settings and all, where API Gateway keeps them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from chalicelib.security.gate import Gate
from chalicelib.security.keys import parse_key
from chalicelib.store import Store
from infra import admin_key, gateway
from infra.gateway import Throttle
from local.resources import ensure_table

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
TABLE = "nexus-dev"


# -- infra.gateway ---------------------------------------------------------------------------


@pytest.fixture
def apigw() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("apigateway", region_name="us-east-1")


def chalice_deploy(apigw: Any, deployed_dir: Path, stage: str = "dev") -> str:
    """What `chalice deploy` leaves behind: a REST API with a method, deployed to the stage
    `api`, and `.chalice/deployed/<stage>.json` naming it. Returns the API's id."""
    api_id: str = apigw.create_rest_api(name="nexus-scheduler")["id"]
    root = apigw.get_resources(restApiId=api_id)["items"][0]["id"]
    apigw.put_method(
        restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="CUSTOM"
    )
    apigw.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    apigw.create_deployment(restApiId=api_id, stageName="api")
    deployed_dir.mkdir(parents=True, exist_ok=True)
    (deployed_dir / f"{stage}.json").write_text(
        json.dumps(
            {
                "resources": [
                    {
                        "name": "api_handler",
                        "resource_type": "lambda_function",
                        "lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:nexus",
                    },
                    {
                        "name": "rest_api",
                        "resource_type": "rest_api",
                        "rest_api_id": api_id,
                        "rest_api_url": f"https://{api_id}.execute-api.us-east-1.amazonaws.com/api/",
                    },
                ],
                "schema_version": "2.0",
                "backend": "api",
            }
        )
    )
    return api_id


def apply_gateway(deployed_dir: Path, *flags: str) -> int:
    config = ROOT / ".chalice" / "config.json"
    return gateway.main(
        ["dev", "--deployed-dir", str(deployed_dir), "--config", str(config), *flags]
    )


def settings(apigw: Any, api_id: str) -> dict[str, Any]:
    """The stage's responses and settings, leaving out which deployment it serves."""
    stage = apigw.get_stage(restApiId=api_id, stageName="api")
    stage.pop("ResponseMetadata")
    stage.pop("deploymentId")
    stage.pop("lastUpdatedDate", None)
    responses = {
        t: apigw.get_gateway_response(restApiId=api_id, responseType=t)
        for t in gateway.GATEWAY_RESPONSES
    }
    for response in responses.values():
        response.pop("ResponseMetadata")
    return {"stage": stage, "responses": responses}


def test_a_request_without_a_key_gets_401_with_www_authenticate_and_the_apis_error_body(
    apigw: Any, tmp_path: Path
) -> None:
    api_id = chalice_deploy(apigw, tmp_path)
    assert apply_gateway(tmp_path) == 0
    response = apigw.get_gateway_response(restApiId=api_id, responseType="UNAUTHORIZED")
    assert response["statusCode"] == "401"
    # A static header value is quoted with single quotes; the double quotes inside stay.
    assert response["responseParameters"] == {
        "gatewayresponse.header.WWW-Authenticate": "'Bearer realm=\"nexus\"'"
    }
    body = json.loads(response["responseTemplates"]["application/json"])
    assert body == {"detail": "send an API key: Authorization: Bearer <key>"}


def test_a_throttled_request_gets_429_with_retry_after(apigw: Any, tmp_path: Path) -> None:
    api_id = chalice_deploy(apigw, tmp_path)
    assert apply_gateway(tmp_path) == 0
    response = apigw.get_gateway_response(restApiId=api_id, responseType="THROTTLED")
    assert response["statusCode"] == "429"
    assert response["responseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}
    assert json.loads(response["responseTemplates"]["application/json"])["detail"].startswith(
        "the API's request rate limit"
    )


def test_the_stage_is_throttled_to_100_a_second_with_bursts_of_200_by_default(
    apigw: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEXUS_API_RATE", raising=False)
    monkeypatch.delenv("NEXUS_API_BURST", raising=False)
    api_id = chalice_deploy(apigw, tmp_path)
    assert apply_gateway(tmp_path) == 0
    every_method = apigw.get_stage(restApiId=api_id, stageName="api")["methodSettings"]["*/*"]
    assert (every_method["throttlingRateLimit"], every_method["throttlingBurstLimit"]) == (
        100.0,
        200,
    )


def test_the_throttle_comes_from_the_environment_and_the_flags_win_over_it(
    apigw: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api_id = chalice_deploy(apigw, tmp_path)
    monkeypatch.setenv("NEXUS_API_RATE", "50")
    monkeypatch.setenv("NEXUS_API_BURST", "80")
    assert apply_gateway(tmp_path) == 0
    every_method = apigw.get_stage(restApiId=api_id, stageName="api")["methodSettings"]["*/*"]
    assert (every_method["throttlingRateLimit"], every_method["throttlingBurstLimit"]) == (50, 80)

    assert apply_gateway(tmp_path, "--burst", "120") == 0
    every_method = apigw.get_stage(restApiId=api_id, stageName="api")["methodSettings"]["*/*"]
    assert (every_method["throttlingRateLimit"], every_method["throttlingBurstLimit"]) == (50, 120)


def test_applying_twice_changes_nothing_more_and_serves_a_fresh_deployment(
    apigw: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api_id = chalice_deploy(apigw, tmp_path)
    assert apply_gateway(tmp_path) == 0
    first = settings(apigw, api_id)
    capsys.readouterr()

    assert apply_gateway(tmp_path) == 0
    assert settings(apigw, api_id) == first
    said = capsys.readouterr().out
    assert "already set" in said
    assert " set" not in said.replace("already set", "")
    # The stage serves the deployment the second run made (a snapshot with the responses).
    deployments = apigw.get_deployments(restApiId=api_id)["items"]
    assert len(deployments) == 3  # Chalice's, then one per run
    served = apigw.get_stage(restApiId=api_id, stageName="api")["deploymentId"]
    assert f"deployment {served}" in said


def test_responses_a_redeploy_by_chalice_dropped_are_put_back(apigw: Any, tmp_path: Path) -> None:
    api_id = chalice_deploy(apigw, tmp_path)
    assert apply_gateway(tmp_path) == 0
    first = settings(apigw, api_id)
    # chalice deploy's put_rest_api(mode="overwrite") leaves no gateway response of ours.
    for response_type in gateway.GATEWAY_RESPONSES:
        apigw.delete_gateway_response(restApiId=api_id, responseType=response_type)

    assert apply_gateway(tmp_path) == 0
    assert settings(apigw, api_id) == first


def test_the_stages_other_settings_survive(apigw: Any, tmp_path: Path) -> None:
    api_id = chalice_deploy(apigw, tmp_path)
    # prod deploys with X-Ray tracing (xray: true in .chalice/config.json).
    apigw.update_stage(
        restApiId=api_id,
        stageName="api",
        patchOperations=[{"op": "replace", "path": "/tracingEnabled", "value": "true"}],
    )
    assert apply_gateway(tmp_path) == 0
    assert apigw.get_stage(restApiId=api_id, stageName="api")["tracingEnabled"] is True


def test_a_stage_never_deployed_is_refused_with_run_chalice_deploy_first(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.gateway", "dev", "--deployed-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "run chalice deploy first" in done.stderr
    assert str(tmp_path / "dev.json") in done.stderr


def test_a_deployed_file_without_a_rest_api_is_refused(tmp_path: Path) -> None:
    (tmp_path / "dev.json").write_text(json.dumps({"resources": [], "schema_version": "2.0"}))
    with pytest.raises(gateway.NotDeployed, match=r"records no REST API.*run chalice deploy"):
        gateway.deployed_api("dev", tmp_path)


@pytest.mark.parametrize(
    ("rate", "burst", "wrong"),
    [("fast", "200", "rate"), ("0", "200", "rate"), ("nan", "200", "rate"), ("100", "0", "burst")],
)
def test_a_throttle_that_is_not_a_positive_number_is_refused(
    rate: str, burst: str, wrong: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{wrong} \(--{wrong}, NEXUS_API_{wrong.upper()}\)"):
        Throttle.parse(rate, burst)


def test_a_header_value_api_gateway_cannot_quote_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        gateway.GATEWAY_RESPONSES, "UNAUTHORIZED", (401, {"detail": "x"}, {"X-Note": "it's"})
    )
    with pytest.raises(ValueError, match="X-Note may not contain a single quote"):
        gateway.gateway_response("UNAUTHORIZED")


# -- infra.admin_key -------------------------------------------------------------------------


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.delenv("AWS_REGION", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        ensure_table(client, TABLE)
        yield client


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """The Chalice config after `make deploy STAGE=dev` set the stage's table."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["NEXUS_TABLE"] = TABLE
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def scan(dynamodb: Any) -> str:
    return json.dumps(dynamodb.scan(TableName=TABLE)["Items"])


def test_make_admin_key_prints_only_a_key_the_authorizer_takes_as_admin(
    dynamodb: Any, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert admin_key.main(["--stage", "dev", "--config", str(config_file)], now=NOW) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert out == key + "\n"
    assert parse_key(key) is not None
    assert "export NEXUS_KEY=" in err
    assert "shown this once" in err
    assert key not in err

    context = Gate(Store.over(dynamodb, TABLE)).authorize(f"Bearer {key}", NOW)
    assert context["scopes"] == "keys:admin"
    assert context["key_name"] == admin_key.DEFAULT_NAME


def test_the_table_holds_the_keys_hash_never_its_secret(
    dynamodb: Any, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert admin_key.main(["--stage", "dev", "--config", str(config_file)], now=NOW) == 0
    key = capsys.readouterr().out.strip()
    parsed = parse_key(key)
    assert parsed is not None
    _, secret = parsed
    stored = scan(dynamodb)
    assert "secret_hash" in stored
    assert secret not in stored
    assert key not in stored


def test_a_named_key_with_an_expiry_stops_working_when_it_expires(
    dynamodb: Any, config_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--stage", "dev", "--config", str(config_file), "--name", "ops"]
    assert admin_key.main([*argv, "--expires-at", "2026-04-01T00:00:00Z"], now=NOW) == 0
    key = capsys.readouterr().out.strip()
    gate = Gate(Store.over(dynamodb, TABLE))
    assert gate.authorize(f"Bearer {key}", NOW)["key_name"] == "ops"
    refused = gate.authorize(f"Bearer {key}", datetime(2026, 4, 1, tzinfo=UTC))
    assert "expired" in refused["refused"]


@pytest.mark.parametrize(
    ("expires_at", "reason"),
    [
        ("2026-01-01T00:00:00Z", "must be in the future"),
        ("2027-01-01T00:00:00", "needs a UTC offset"),
        ("next week", "Invalid isoformat"),
    ],
)
def test_an_expiry_that_is_past_or_without_an_offset_is_refused_and_nothing_is_written(
    dynamodb: Any,
    config_file: Path,
    capsys: pytest.CaptureFixture[str],
    expires_at: str,
    reason: str,
) -> None:
    argv = ["--stage", "dev", "--config", str(config_file), "--expires-at", expires_at]
    assert admin_key.main(argv, now=NOW) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert reason in err
    assert dynamodb.scan(TableName=TABLE)["Items"] == []


def test_a_stage_whose_table_does_not_exist_is_refused(
    config_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    with mock_aws():
        assert admin_key.main(["--stage", "dev", "--config", str(config_file)], now=NOW) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "ResourceNotFoundException" in err
    assert "run make deploy STAGE=dev first" in err


def test_an_unknown_stage_is_refused_before_any_aws_call() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.admin_key", "--stage", "qa"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert "no stage 'qa'" in done.stderr
    assert done.stdout == ""


# -- the Makefile ----------------------------------------------------------------------------


def recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target, continuation lines joined."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    found = re.search(rf"^{re.escape(target)}:[^\n]*\n((?:\t[^\n]*\n)*)", text, re.MULTILINE)
    assert found, f"no target {target} in the Makefile"
    return [line.strip() for line in found.group(1).splitlines()]


def test_make_deploy_applies_the_gateway_right_after_chalice_deploy() -> None:
    lines = recipe("deploy")
    chalice = next(i for i, line in enumerate(lines) if "chalice deploy --stage $(STAGE)" in line)
    assert lines[chalice + 1] == "$(BIN)/python -m infra.gateway $(STAGE)"


def test_make_admin_key_is_a_phony_target_that_checks_the_stage() -> None:
    text = (ROOT / "Makefile").read_text()
    assert re.search(r"^admin-key: \$\(BIN\)/\.installed stage$", text, re.MULTILINE)
    (command,) = recipe("admin-key")
    assert command.startswith("@$(BIN)/python -m infra.admin_key --stage $(STAGE)")
    phony = re.search(r"^\.PHONY:(.*)$", text.replace("\\\n", " "), re.MULTILINE)
    assert phony and "admin-key" in phony.group(1).split()
