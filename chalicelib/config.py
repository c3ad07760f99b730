"""Settings from the environment, read once on first use."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache

# AWS calls the tick makes at once (engine.tick): each waits a few ms on the network, so
# threads overlap them. The DynamoDB and SQS clients keep this many connections (chalicelib.aws).
# At 5 ms a DynamoDB call and 10 ms an SQS batch, 32 calls at once keep a tick's runs a
# minute near what its CPU allows (bench/RESULTS.md, "Dispatch capacity with latency").
TICK_CONCURRENCY = 32


@dataclass(frozen=True)
class Settings:
    table_name: str
    queue_url: str | None
    region: str
    # Set only locally, where every AWS call goes to the embedded moto server.
    endpoint_url: str | None
    max_body_bytes: int
    dlq_url: str | None
    # Queue names: Chalice wires the SQS event sources by name when it deploys.
    queue_name: str
    dlq_name: str
    history_days: int
    # Runs a second one backfill starts (engine.backfill), to spare what its task calls.
    backfill_rate: float


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings(
        table_name=os.environ.get("NEXUS_TABLE", "nexus"),
        queue_url=os.environ.get("NEXUS_QUEUE_URL") or None,
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        endpoint_url=os.environ.get("NEXUS_AWS_ENDPOINT_URL") or None,
        max_body_bytes=int(os.environ.get("NEXUS_MAX_BODY_BYTES", str(64 * 1024))),
        dlq_url=os.environ.get("NEXUS_DLQ_URL") or None,
        queue_name=queue_name(),
        dlq_name=dlq_name(),
        history_days=int(os.environ.get("NEXUS_HISTORY_DAYS", "90")),
        backfill_rate=backfill_rate(),
    )


def backfill_rate() -> float:
    """NEXUS_BACKFILL_RATE_PER_SECOND, 5 if unset: a number from 0.01 to 100."""
    raw = os.environ.get("NEXUS_BACKFILL_RATE_PER_SECOND", "5")
    try:
        rate = float(raw)
    except ValueError:
        rate = 0.0
    if not 0.01 <= rate <= 100:  # also false for nan
        raise ValueError(
            f"NEXUS_BACKFILL_RATE_PER_SECOND is {raw!r}; a number from 0.01 to 100 is accepted"
        )
    return rate


def queue_name() -> str:
    return os.environ.get("NEXUS_QUEUE_NAME", "nexus-work")


def dlq_name() -> str:
    return os.environ.get("NEXUS_DLQ_NAME", "nexus-work-dlq")


def stream_arn() -> str:
    """The table's change stream, for the stream handler's event source (set by make deploy
    from the stack's outputs; make run feeds the handler itself, local/realtime.py)."""
    return os.environ.get(
        "NEXUS_STREAM_ARN",
        "arn:aws:dynamodb:us-east-1:000000000000:table/nexus-local/stream/local",
    )


TARGET_ALLOW_ENV = "NEXUS_TARGET_ALLOW"


def target_allow() -> tuple[str, ...]:
    """NEXUS_TARGET_ALLOW: the ARN patterns of the AWS targets jobs may call (a JSON list,
    `*` matching any run of characters); unset or `[]` allows none.

    Read on every call rather than with the settings: a malformed list then refuses AWS
    targets only (each job and run says why) instead of every request, and the worker sees
    the list as it is when the run starts."""
    raw = os.environ.get(TARGET_ALLOW_ENV, "").strip()
    if not raw:
        return ()
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(
        isinstance(p, str) and p.startswith("arn:") for p in value
    ):
        shown = raw if len(raw) <= 200 else raw[:200] + "..."
        raise ValueError(
            f"{TARGET_ALLOW_ENV} is {shown!r}; a JSON list of ARN patterns is accepted, "
            'e.g. ["arn:aws:sqs:us-east-1:123456789012:orders-*"]'
        )
    return tuple(value)
