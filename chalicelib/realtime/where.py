"""Where clients connect for real-time updates (GET /v1/realtime)."""

from __future__ import annotations

import functools
import os

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws import client
from chalicelib.errors import Unavailable

APP_NAME = "nexus-scheduler"
STAGE = "api"  # api_gateway_stage in .chalice/config.json: the WebSocket API's stage too


def realtime_url() -> str:
    """NEXUS_WEBSOCKET_URL (make run sets it), else the stage's WebSocket API, found by the
    name `chalice deploy` gives it: `nexus-scheduler-<stage>-websocket-api`."""
    configured = os.environ.get("NEXUS_WEBSOCKET_URL")
    if configured:
        return configured
    return _deployed_url(os.environ.get("NEXUS_STAGE", "dev"))


@functools.lru_cache(maxsize=4)
def _deployed_url(stage: str) -> str:
    name = f"{APP_NAME}-{stage}-websocket-api"
    try:
        pages = client("apigatewayv2").get_paginator("get_apis").paginate()
        for page in pages:
            for found in page.get("Items", []):
                if found.get("Name") == name and found.get("ApiEndpoint"):
                    return f"{found['ApiEndpoint']}/{STAGE}"
    except (ClientError, BotoCoreError) as exc:
        raise Unavailable(f"the WebSocket API could not be looked up just now: {exc}") from exc
    raise Unavailable(f"no WebSocket API named {name} is deployed: run make deploy")
