"""Shared pieces of the benchmarks: an in-process moto AWS, counting AWS calls, the table."""

from __future__ import annotations

import os
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The admin key the benchmarks start make run with (NEXUS_ADMIN_KEY) and send.
BENCH_KEY = "bench-admin-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}


def local_env() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "NEXUS_TABLE": "nexus-bench",
            "NEXUS_METRICS": "off",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("NEXUS_AWS_ENDPOINT_URL", None)


@contextmanager
def embedded_aws() -> Any:
    """The embedded AWS of make run (moto's server in a process of its own,
    local/aws_process.py) as every client's endpoint while the block runs: what moto spends
    answering a call is then not CPU of this process, and a call waits on a socket as it
    would on AWS."""
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.aws_process import EmbeddedAws

    server = EmbeddedAws().start()
    os.environ["NEXUS_AWS_ENDPOINT_URL"] = server.endpoint
    get_settings.cache_clear()
    client.cache_clear()
    try:
        yield server
    finally:
        os.environ.pop("NEXUS_AWS_ENDPOINT_URL", None)
        get_settings.cache_clear()
        client.cache_clear()
        server.stop()


@dataclass
class CallCounter:
    """AWS calls by service and operation, and DynamoDB items read, from botocore events."""

    calls: Counter[str] = field(default_factory=Counter)
    items_read: int = 0

    def __call__(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.calls[f"{service}.{model.name}"] += 1
        if model.name in ("Query", "Scan"):
            self.items_read += parsed.get("ScannedCount", parsed.get("Count", 0))
        elif model.name == "GetItem":
            self.items_read += 1
        elif model.name == "BatchGetItem":
            self.items_read += sum(len(v) for v in parsed.get("Responses", {}).values())

    def total(self, prefix: str = "") -> int:
        return sum(n for k, n in self.calls.items() if k.startswith(prefix))


@contextmanager
def counting(*clients: Any):  # type: ignore[no-untyped-def]
    counter = CallCounter()
    for c in clients:
        c.meta.events.register("after-call", counter)
    try:
        yield counter
    finally:
        for c in clients:
            c.meta.events.unregister("after-call", counter)


def seed_jobs(
    db: Any, table: str, count: int, *, first_id: int, next_run_at: datetime | None, **fields: Any
) -> None:
    from chalicelib.store import job_item

    # Off the hour, so that no job has a second run inside the tick's window.
    created = datetime.now(UTC) - timedelta(days=1, minutes=30)
    batch: list[dict[str, Any]] = []
    for i in range(count):
        job = bench_job(first_id + i, created=created, next_run_at=next_run_at, **fields)
        batch.append({"PutRequest": {"Item": job_item(job)}})
        if len(batch) == 25:
            db.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        db.batch_write_item(RequestItems={table: batch})


def bench_job(
    job_id: int, *, created: datetime, next_run_at: datetime | None, **fields: Any
) -> Any:
    """An hourly echo job, created at `created`, next due at `next_run_at`."""
    from chalicelib.models import Job

    return Job(
        id=job_id,
        name=f"bench {job_id}",
        job_type="interval",
        interval_seconds=3600,
        task_name="nexus.echo",
        created_at=created,
        updated_at=created,
        next_run_at=next_run_at,
        **fields,
    )


def command() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
