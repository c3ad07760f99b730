"""Issue 14, item 3 on make run: a failing job with `notify.on_failure` to a local webhook
receiver delivers one signed notification, after its last retry.

The module starts its own stack (tests/e2e/conftest.py's LocalServer) with
NEXUS_HTTP_ALLOW=127.0.0.1, so the worker may POST to the receiver this test runs on loopback
(an http.server thread). The signing secret is a SecureString the test puts in the stack's
embedded SSM (`/nexus/local/NAME`, what `{"$secret": "ssm:/nexus/NAME"}` names in stage local).
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib import notify
from tests.e2e.conftest import LocalServer, request, until
from tests.receiver import Receiver, receiving

SECRET = "whsec-e2e-8a7b6c5d"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    local = LocalServer(
        tmp_path_factory.mktemp("notify-state"),
        extra_env={"NEXUS_HTTP_ALLOW": "127.0.0.1"},
    )
    yield local
    local.stop()


@pytest.fixture
def conn(stack: LocalServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    yield connection
    connection.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as server:
        yield server


def put_secret(stack: LocalServer, name: str, value: str) -> None:
    ssm = stack.client("ssm")
    ssm.put_parameter(Name=f"/nexus/local/{name}", Value=value, Type="SecureString")


def runs(conn: http.client.HTTPConnection, job_id: int) -> list[dict[str, Any]]:
    status, found = request(conn, "GET", f"/api/v1/jobs/{job_id}/executions")
    assert status == 200, found
    return sorted(found, key=lambda r: r["attempt"])


def test_a_failing_job_sends_one_signed_notification_after_its_last_retry(
    stack: LocalServer, conn: http.client.HTTPConnection, receiver: Receiver
) -> None:
    put_secret(stack, "e2e-hook", SECRET)
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    status, job = request(
        conn,
        "POST",
        "/api/v1/jobs",
        {
            "name": "fails, and says so",
            "job_type": "date",
            "scheduled_time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "task_name": "nexus.fail",
            "max_retries": 2,
            "retry_delay": 1,
            "notify": {
                "on_failure": True,
                "channels": [
                    {"webhook_url": receiver.url, "secret": {"$secret": "ssm:/nexus/e2e-hook"}}
                ],
            },
        },
    )
    assert status == 201, job
    assert job["notify"]["channels"][0]["webhook_url"] == receiver.url

    found = until(
        lambda: (
            (r := runs(conn, job["id"]))
            and len(r) == 3
            and all(a["status"] == "failed" for a in r)
            and r[2]["notifications"]
            and r
        ),
        60,
        "three failed attempts, the last one notified",
    )
    time.sleep(3)  # nothing else comes
    assert len(receiver.posts) == 1, [p.data for p in receiver.posts]
    arrived, headers, data = receiver.posts[0]
    last = found[2]
    completed = datetime.fromisoformat(last["completed_at"].replace("Z", "+00:00"))
    assert arrived >= completed  # after the last retry had failed, not before
    body = json.loads(data)
    assert body["event"] == "run.failed_final"
    assert body["job"] == {"id": job["id"], "name": "fails, and says so"}
    assert body["execution"]["id"] == last["id"]
    assert body["execution"]["attempt"] == 3
    assert body["execution"]["error"]["message"] == last["error"]["message"]
    notify.verify(data, headers[notify.SIGNATURE_HEADER], SECRET, now=time.time())
    with pytest.raises(notify.InvalidSignature):
        notify.verify(data, headers[notify.SIGNATURE_HEADER], "not the secret", now=time.time())
    assert [r["notifications"] for r in found[:2]] == [None, None]
    (recorded,) = last["notifications"]
    assert recorded["status"] == "sent"
    assert recorded["event"] == "run.failed_final"
    assert recorded["attempts"] == 1


def test_a_paused_job_that_expects_a_success_within_5_s_raises_one_overdue(
    stack: LocalServer, conn: http.client.HTTPConnection, receiver: Receiver
) -> None:
    put_secret(stack, "e2e-watch", SECRET)
    status, job = request(
        conn,
        "POST",
        "/api/v1/jobs",
        {
            "name": "paused by mistake",
            "job_type": "cron",
            "cron_expression": "0 3 * * *",
            "task_name": "nexus.echo",
            "is_active": False,
            "expect_success_within": 5,
            "notify": {
                "channels": [
                    {"webhook_url": receiver.url, "secret": {"$secret": "ssm:/nexus/e2e-watch"}}
                ]
            },
        },
    )
    assert status == 201, job
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))

    until(lambda: receiver.posts, 30, "a job.overdue notification")
    time.sleep(6)  # a further deadline's worth: nothing else comes
    assert len(receiver.posts) == 1, [p.data for p in receiver.posts]
    arrived, headers, data = receiver.posts[0]
    assert arrived >= created + timedelta(seconds=5)
    notify.verify(data, headers[notify.SIGNATURE_HEADER], SECRET, now=time.time())
    body = json.loads(data)
    assert body["event"] == "job.overdue"
    assert body["job"] == {"id": job["id"], "name": "paused by mistake"}
    assert body["execution"] is None
    since = body["overdue"]["since"]
    assert datetime.fromisoformat(since.replace("Z", "+00:00")) == created + timedelta(seconds=5)
    assert body["overdue"]["expect_success_within"] == 5

    status, shown = request(conn, "GET", f"/api/v1/jobs/{job['id']}")
    assert status == 200, shown
    assert shown["overdue_since"] == since
    (recorded,) = shown["overdue_notifications"]
    assert (recorded["event"], recorded["status"]) == ("job.overdue", "sent")
    status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
    assert (status, stats["overdue_jobs"]) == (200, 1), stats

    status, _ = request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")
    assert status in (200, 204)
    status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
    assert (status, stats["overdue_jobs"]) == (200, 0), stats
