"""What API Gateway answers itself, before any of our code runs, shaped like the app's own
errors; `local/gateway.py` answers the same way on make run.

A request with no `Authorization` header never reaches the authorizer: API Gateway answers
UNAUTHORIZED. A stage-wide throttle (THROTTLED) caps requests before Lambda, whoever sends
them, key or not.

`python -m infra.gateway STAGE` gives a deployed stage these responses and that throttle
(`make deploy` runs it after `chalice deploy`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# response type -> (status, body, headers)
GATEWAY_RESPONSES: dict[str, tuple[int, dict[str, str], dict[str, str]]] = {
    "UNAUTHORIZED": (
        401,
        {"detail": "send an API key: Authorization: Bearer <key>"},
        {"WWW-Authenticate": 'Bearer realm="nexus"'},
    ),
    "THROTTLED": (
        429,
        {"detail": "the API's request rate limit was reached; retry shortly"},
        {"Retry-After": "1"},
    ),
}


# -- Applying them to a deployed stage -------------------------------------------------------
#
#     python -m infra.gateway dev [--rate 100] [--burst 200]
#
# `make deploy` runs it right after `chalice deploy`, every time: Chalice updates the REST API
# with put_rest_api(mode="overwrite"), which drops the gateway responses set outside its
# OpenAPI document (aws/serverless-application-model#390 describes the same loss), so the
# 401 answers with API Gateway's default `{"message": "Unauthorized"}` from Chalice's
# deployment until this one replaces it.

ROOT = Path(__file__).resolve().parent.parent
DEPLOYED_DIR = ROOT / ".chalice" / "deployed"
CONFIG = ROOT / ".chalice" / "config.json"

# Stage-wide: every route and method together, whatever the key (each key has its own,
# lower, limit in chalicelib/security/gate.py).
DEFAULT_RATE = 100.0
DEFAULT_BURST = 200
# Stage settings for every resource and method: API Gateway's `*/*` method settings.
_ALL_METHODS = "*/*"


class NotDeployed(LookupError):
    def __init__(self, missing: str) -> None:
        super().__init__(f"{missing}: run chalice deploy first (make deploy STAGE=...)")


@dataclass(frozen=True)
class DeployedApi:
    """The REST API `chalice deploy` made for a stage, from `.chalice/deployed/<stage>.json`."""

    rest_api_id: str
    # Where Chalice deployed it (from the API's URL), so that calls go to that region
    # whatever the caller's default is; None when the file has no URL.
    region: str | None


@dataclass(frozen=True)
class Throttle:
    """The stage's request rate (a second, on average) and burst, over all callers."""

    rate: float
    burst: int

    @classmethod
    def parse(cls, rate: str | float, burst: str | int) -> Throttle:
        try:
            parsed_rate = float(rate)
        except ValueError:
            parsed_rate = 0.0
        if not 0 < parsed_rate < float("inf"):  # also refuses nan
            raise ValueError(
                f"rate (--rate, NEXUS_API_RATE): {rate!r} is not a number of requests a second > 0"
            )
        try:
            parsed_burst = int(burst)
        except ValueError:
            parsed_burst = 0
        if parsed_burst < 1:
            raise ValueError(
                f"burst (--burst, NEXUS_API_BURST): {burst!r} is not a whole number >= 1"
            )
        return cls(parsed_rate, parsed_burst)

    @classmethod
    def chosen(cls, rate: str | None, burst: str | None, environ: Mapping[str, str]) -> Throttle:
        """--rate/--burst, else NEXUS_API_RATE/NEXUS_API_BURST, else the defaults."""
        return cls.parse(
            rate or environ.get("NEXUS_API_RATE") or DEFAULT_RATE,
            burst or environ.get("NEXUS_API_BURST") or DEFAULT_BURST,
        )


@dataclass(frozen=True)
class Plan:
    """What a stage lacks: the gateway responses to put, the stage patch to make."""

    responses: list[dict[str, Any]]
    throttling: list[dict[str, str]]


def deployed_api(stage: str, deployed_dir: Path = DEPLOYED_DIR) -> DeployedApi:
    """The stage's REST API as `chalice deploy` recorded it: the `rest_api` resource of its
    schema 2.0 file, `{"resources": [{"name": "rest_api", "resource_type": "rest_api",
    "rest_api_id": ..., "rest_api_url": ...}, ...]}`."""
    path = deployed_dir / f"{stage}.json"
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotDeployed(f"no {path}") from None
    for resource in recorded.get("resources", []):
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_id"):
            # https://{rest_api_id}.execute-api.{region}.{dns_suffix}/{api_gateway_stage}/
            found = re.search(r"\.execute-api\.([a-z0-9-]+)\.", resource.get("rest_api_url", ""))
            return DeployedApi(str(resource["rest_api_id"]), found.group(1) if found else None)
    raise NotDeployed(f"{path} records no REST API")


def api_gateway_stage(stage: str, config: dict[str, Any]) -> str:
    """The API Gateway stage Chalice deploys the Chalice stage to (`api` unless configured)."""
    chalice_stage = config.get("stages", {}).get(stage, {})
    return str(chalice_stage.get("api_gateway_stage") or config.get("api_gateway_stage") or "api")


def gateway_response(response_type: str) -> dict[str, Any]:
    """put_gateway_response's arguments (without the API's id) for one of GATEWAY_RESPONSES."""
    status, body, headers = GATEWAY_RESPONSES[response_type]
    template = json.dumps(body)
    # API Gateway fills `$context...` references into a gateway response's template: a `$` in
    # our text would be read as one.
    if "$" in template:
        raise ValueError(f"{response_type}: the body may not contain '$' ({template})")
    parameters = {}
    for name, value in headers.items():
        # A static header value is written between single quotes, with no way to escape one.
        if "'" in value:
            raise ValueError(
                f"{response_type}: header {name} may not contain a single quote: {value}"
            )
        parameters[f"gatewayresponse.header.{name}"] = f"'{value}'"
    return {
        "responseType": response_type,
        "statusCode": str(status),
        "responseParameters": parameters,
        "responseTemplates": {"application/json": template},
    }


def throttling_patch(throttle: Throttle) -> list[dict[str, str]]:
    return [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": str(throttle.rate)},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(throttle.burst)},
    ]


def plan(
    current: Mapping[str, Mapping[str, Any] | None],
    method_settings: Mapping[str, Any],
    throttle: Throttle,
) -> Plan:
    """What to change, given the stage's gateway responses by type (None: not set) and its
    `*/*` method settings. Pure: `apply` reads and writes."""
    fields = ("statusCode", "responseParameters", "responseTemplates")
    responses = []
    for response_type in GATEWAY_RESPONSES:
        wanted = gateway_response(response_type)
        have = current.get(response_type) or {}
        if any(have.get(field) != wanted[field] for field in fields):
            responses.append(wanted)
    throttled = (
        method_settings.get("throttlingRateLimit") == throttle.rate
        and method_settings.get("throttlingBurstLimit") == throttle.burst
    )
    return Plan(responses, [] if throttled else throttling_patch(throttle))


def apply(apigateway: Any, rest_api_id: str, api_stage: str, throttle: Throttle) -> list[str]:
    """Give the stage our gateway responses and its throttle, then deploy; returns what it did.

    Running it again changes no setting. It always deploys: a deployment is a snapshot of the
    API, cheap and harmless to repeat, and a run stopped between its put and its deployment
    would otherwise leave responses that are set but not live, with nothing showing it.
    """
    try:
        stage = apigateway.get_stage(restApiId=rest_api_id, stageName=api_stage)
    except apigateway.exceptions.NotFoundException:
        raise NotDeployed(f"no REST API {rest_api_id} with a stage {api_stage!r}") from None
    current: dict[str, Mapping[str, Any] | None] = {}
    for response_type in GATEWAY_RESPONSES:
        try:
            current[response_type] = apigateway.get_gateway_response(
                restApiId=rest_api_id, responseType=response_type
            )
        except apigateway.exceptions.NotFoundException:
            current[response_type] = None
    todo = plan(current, stage.get("methodSettings", {}).get(_ALL_METHODS, {}), throttle)

    done = []
    for request in todo.responses:
        apigateway.put_gateway_response(restApiId=rest_api_id, **request)
        done.append(f"gateway response {request['responseType']}: {request['statusCode']} set")
    # Deploying apart from the stage, then pointing the stage at the deployment, leaves the
    # stage's other settings (tracing, throttling) as they are.
    deployment = apigateway.create_deployment(
        restApiId=rest_api_id, description="infra.gateway: gateway responses"
    )
    apigateway.update_stage(
        restApiId=rest_api_id,
        stageName=api_stage,
        patchOperations=[
            *todo.throttling,
            {"op": "replace", "path": "/deploymentId", "value": deployment["id"]},
        ],
    )
    if todo.throttling:
        done.append(
            f"stage {api_stage}: throttled to {throttle.rate:g} req/s, burst {throttle.burst}"
        )
    if not done:
        done.append(f"stage {api_stage}: gateway responses and throttling were already set")
    done.append(f"stage {api_stage}: deployment {deployment['id']}")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Set the gateway responses and the throttle of a deployed stage's API."
    )
    parser.add_argument("stage", help="the Chalice stage (dev, prod)")
    parser.add_argument(
        "--rate", help=f"requests a second over the stage (NEXUS_API_RATE; {DEFAULT_RATE:g})"
    )
    parser.add_argument("--burst", help=f"burst over the stage (NEXUS_API_BURST; {DEFAULT_BURST})")
    parser.add_argument("--deployed-dir", type=Path, default=DEPLOYED_DIR)
    parser.add_argument("--config", type=Path, default=CONFIG, help="the Chalice config file")
    args = parser.parse_args(argv)
    try:
        throttle = Throttle.chosen(args.rate, args.burst, os.environ)
        api = deployed_api(args.stage, args.deployed_dir)
        api_stage = api_gateway_stage(args.stage, json.loads(args.config.read_text()))
    except (ValueError, LookupError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1

    client = boto3.client("apigateway", region_name=api.region)
    try:
        done = apply(client, api.rest_api_id, api_stage, throttle)
    except (NotDeployed, ClientError, BotoCoreError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    for line in done:
        print(f"{args.stage}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
