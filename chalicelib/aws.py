"""boto3 clients, created once per Lambda container and reused by every invocation."""

from __future__ import annotations

from functools import cache
from typing import Any, cast

import boto3
from botocore.config import Config

from chalicelib.config import TICK_CONCURRENCY, get_settings

# One connection per call in flight: with botocore's default of 10, the tick's threads past
# the tenth would open (and discard) a connection per call.
_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=2,
    read_timeout=10,
    max_pool_connections=max(10, TICK_CONCURRENCY),
)


@cache
def client(service: str) -> Any:
    settings = get_settings()
    session = cast(Any, boto3.session.Session())
    return session.client(
        service,
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=_CONFIG,
    )


_MANAGEMENT_CONFIG = Config(
    retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=1, read_timeout=3
)


@cache
def connections_client(endpoint: str) -> Any:
    """The WebSocket API's management API at `endpoint` (post_to_connection): the stage's
    `https://<api>.execute-api.<region>.amazonaws.com/<stage>`, or make run's local one."""
    settings = get_settings()
    session = cast(Any, boto3.session.Session())
    return session.client(
        "apigatewaymanagementapi",
        region_name=settings.region,
        endpoint_url=endpoint,
        config=_MANAGEMENT_CONFIG,
    )


# A RequestResponse invoke answers when the function ends, and botocore retries a read timeout
# by sending the request again, which would run the function a second time: the Lambda
# target's client waits as long as the task may run and never retries (the engine retries the
# run, and the function sees the run's idempotency key).
LAMBDA_TARGET_TIMEOUT = 300

_LAMBDA_TARGET_CONFIG = Config(
    retries={"max_attempts": 1, "mode": "standard"},
    connect_timeout=2,
    read_timeout=LAMBDA_TARGET_TIMEOUT,
)


@cache
def target_client(service: str, region: str) -> Any:
    """A client for an AWS target (chalicelib.tasks.aws_targets) in the region its ARN names:
    most services refuse a resource of another region. Locally every call goes to the
    embedded AWS, as `client`'s do."""
    settings = get_settings()
    session = cast(Any, boto3.session.Session())
    return session.client(
        service,
        region_name=region,
        endpoint_url=settings.endpoint_url,
        config=_LAMBDA_TARGET_CONFIG if service == "lambda" else _CONFIG,
    )
