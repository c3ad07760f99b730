"""Overview stats, and how many DynamoDB items each read endpoint touches.

Items read are counted from botocore's after-call events, so the numbers are what DynamoDB
would bill, whatever moto does inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.models import Job
from chalicelib.store import COUNTER_SHARDS, Store, job_item
from tests.app.test_jobs_api import create


class ReadCounter:
    def __init__(self) -> None:
        self.items = 0
        self.calls = 0

    @staticmethod
    def note_key_reads(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """The authorizer's read of the API key (API Gateway caches it for 60 s per key): not
        a read of the route's own."""
        key = params.get("Key") or {}
        context["api_key_read"] = str(key.get("pk", {}).get("S", "")).startswith("KEY#")

    def __call__(
        self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any
    ) -> None:
        op = model.name
        if context.get("api_key_read"):
            return
        if op in ("Query", "Scan"):
            self.calls += 1
            self.items += parsed.get("ScannedCount", parsed.get("Count", 0))
        elif op == "GetItem":
            self.calls += 1
            self.items += 1
        elif op == "BatchGetItem":
            self.calls += 1
            self.items += sum(len(v) for v in parsed.get("Responses", {}).values())


@pytest.fixture
def reads(api: Any) -> Iterator[ReadCounter]:
    counter = ReadCounter()
    events = client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb", ReadCounter.note_key_reads)
    events.register("after-call.dynamodb", counter)
    yield counter
    events.unregister("after-call.dynamodb", counter)
    events.unregister("provide-client-params.dynamodb", ReadCounter.note_key_reads)


def store_jobs(count: int) -> None:
    """Write `count` jobs straight to the table, in batches (the API path is too slow on moto)."""
    db = client("dynamodb")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    items = []
    for i in range(count):
        created = start + timedelta(seconds=i)
        job = Job(
            id=100_000 + i,
            name=f"job {i}",
            job_type="interval",
            interval_seconds=60,
            task_name="nexus.echo",
            created_at=created,
            updated_at=created,
            next_run_at=created + timedelta(minutes=1),
        )
        items.append({"PutRequest": {"Item": job_item(job)}})
    for i in range(0, len(items), 25):
        db.batch_write_item(RequestItems={get_settings().table_name: items[i : i + 25]})


def test_overview_counts_jobs_as_they_change(api):
    a, b, c = create(api), create(api), create(api)
    api.post(f"/v1/jobs/{b['id']}/pause")
    api.delete(f"/v1/jobs/{c['id']}")
    stats = api.get("/v1/jobs/stats/overview").json
    assert stats["total_jobs"] == 2
    assert stats["active_jobs"] == 1
    assert stats["paused_jobs"] == 1
    assert stats["active_jobs"] + stats["paused_jobs"] == stats["total_jobs"]
    api.post(f"/v1/jobs/{b['id']}/resume")
    api.put(f"/v1/jobs/{a['id']}", {"is_active": False})
    stats = api.get("/v1/jobs/stats/overview").json
    assert (stats["active_jobs"], stats["paused_jobs"]) == (1, 1)


def test_overview_has_every_contract_field_with_zeroes_at_start(api):
    stats = api.get("/v1/jobs/stats/overview").json
    hours = stats.pop("last_24h_by_hour")
    assert len(hours) == 24
    assert all(h["succeeded"] == 0 and h["failed"] == 0 for h in hours)
    assert stats == {
        "total_jobs": 0,
        "active_jobs": 0,
        "paused_jobs": 0,
        "total_executions": 0,
        "successful_executions": 0,
        "failed_executions": 0,
        "running_executions": 0,
        "average_duration": 0.0,
        "last_24h_executions": 0,
        "overdue_jobs": 0,
    }


def test_overview_reads_execution_counters_and_the_last_24_hourly_buckets(api):
    store = Store.over(client("dynamodb"), get_settings().table_name)
    now = datetime.now(UTC)
    store.counters.add(
        store.counters.run_delta(
            [
                (
                    now - timedelta(hours=30),
                    dict(
                        total_executions=5,
                        successful_executions=5,
                        duration_sum=50,
                        duration_count=5,
                    ),
                )
            ]
        )
    )
    store.counters.add(
        store.counters.run_delta(
            [
                (
                    now - timedelta(hours=2),
                    dict(
                        total_executions=3,
                        failed_executions=1,
                        successful_executions=2,
                        duration_sum=1.5,
                        duration_count=3,
                    ),
                )
            ]
        )
    )
    stats = api.get("/v1/jobs/stats/overview").json
    assert stats["total_executions"] == 8
    assert stats["successful_executions"] == 7
    assert stats["failed_executions"] == 1
    assert stats["average_duration"] == pytest.approx(51.5 / 8)
    assert stats["last_24h_executions"] == 3
    # The chart's hours: the 24 up to now, oldest first, by outcome; 30 hours ago is out.
    hours = stats["last_24h_by_hour"]
    assert [h["hour"] for h in hours] == [
        f"{now - timedelta(hours=h):%Y-%m-%dT%H}:00:00Z" for h in range(23, -1, -1)
    ]
    two_hours_ago = hours[-3]
    assert (two_hours_ago["succeeded"], two_hours_ago["failed"]) == (2, 1)
    assert sum(h["succeeded"] + h["failed"] for h in hours) == 3


def test_listing_ten_of_a_thousand_jobs_reads_in_proportion_to_the_page(api, reads):
    store_jobs(1000)
    reads.items = reads.calls = 0
    response = api.get("/v1/jobs/?limit=10")
    assert response.status_code == 200
    assert len(response.json) == 10
    assert response.json[0]["name"] == "job 999"
    ten = reads.items
    # 10 index entries, then the 10 jobs: nothing proportional to the 1,000 stored.
    assert ten <= 25, ten

    reads.items = 0
    assert len(api.get("/v1/jobs/?limit=100").json) == 100
    assert reads.items <= 10 * ten + 10

    reads.items = 0
    assert len(api.get("/v1/jobs/?skip=50&limit=10").json) == 10
    assert reads.items <= 60 + 10 + 5


def test_a_jobs_executions_come_from_one_query(api, reads):
    job = create(api)
    other = create(api)
    for _ in range(30):
        api.post(f"/v1/jobs/{job['id']}/execute")
        api.post(f"/v1/jobs/{other['id']}/execute")
    reads.items = reads.calls = 0
    listed = api.get(f"/v1/jobs/{job['id']}/executions?limit=5").json
    assert len(listed) == 5
    # One GetItem for the job (404 if unknown) and one Query of five items.
    assert (reads.calls, reads.items) == (2, 6)


def test_the_overview_reads_the_same_items_whatever_is_accepted(api, reads):
    reads.items = reads.calls = 0
    api.get("/v1/jobs/stats/overview")
    empty = (reads.calls, reads.items)
    store_jobs(300)
    job = create(api)
    for _ in range(20):
        api.post(f"/v1/jobs/{job['id']}/execute")
    counters = Store.over(client("dynamodb"), get_settings().table_name).counters
    counters.add(counters.run_delta([(datetime.now(UTC), {"total_executions": 20})]))
    reads.items = reads.calls = 0
    api.get("/v1/jobs/stats/overview")
    assert reads.calls == empty[0] == 1
    # The counter shards, however many jobs and runs exist.
    assert reads.items <= COUNTER_SHARDS
