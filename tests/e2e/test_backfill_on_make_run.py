"""Backfills on the real `make run` stack (issue 13, item 1): the API, the queue, the worker
and the tick as separate parts, on the wall clock."""

from __future__ import annotations

import http.client
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import request
from tests.e2e.test_engine_e2e import create, executions, iso, wait_for


def backfill(conn: http.client.HTTPConnection, job_id: int, body: dict[str, Any]) -> Any:
    status, answer = request(conn, "POST", f"/api/v1/jobs/{job_id}/backfill", body)
    assert status == 202, answer
    return answer


def progress(conn: http.client.HTTPConnection, backfill_id: str) -> Any:
    status, answer = request(conn, "GET", f"/api/v1/backfills/{backfill_id}")
    assert status == 200, answer
    return answer


def test_a_backfill_of_the_last_10_minutes_runs_each_once_and_asking_again_adds_none(conn):
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = [end - timedelta(minutes=m) for m in range(9, -1, -1)]
    # Paused: its own runs stay out of the way; a backfill runs all the same.
    job = create(conn, job_type="cron", cron_expression="* * * * *", is_active=False)
    body = {"start": iso(minutes[0]), "end": iso(end)}
    first = backfill(conn, job["id"], body)
    assert (first["occurrences"], first["status"]) == (10, "running")

    def backfilled() -> list[dict[str, Any]]:
        return [r for r in executions(conn, job["id"]) if r["trigger"] == "backfill"]

    wait_for(lambda: sum(r["status"] == "completed" for r in backfilled()) == 10, 30)
    wait_for(lambda: progress(conn, first["backfill_id"])["status"] == "done", 10)
    runs = backfilled()
    assert sorted(r["scheduled_for"] for r in runs) == [iso(t) for t in minutes]
    assert {(r["status"], r["attempt"], r["backfill_id"]) for r in runs} == {
        ("completed", 1, first["backfill_id"])
    }
    shown = progress(conn, first["backfill_id"])
    assert (shown["sent"], shown["existing"], shown["runs"]) == (10, 0, {"completed": 10})

    second = backfill(conn, job["id"], body)
    wait_for(lambda: progress(conn, second["backfill_id"])["status"] == "done", 15)
    again = progress(conn, second["backfill_id"])
    assert (again["sent"], again["existing"], again["runs"]) == (0, 10, {})
    assert len(executions(conn, job["id"])) == 10
