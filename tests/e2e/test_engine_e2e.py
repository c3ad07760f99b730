"""The engine end to end on the local stack: jobs really run, on their second."""

from __future__ import annotations

import http.client
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import request


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_second(seconds_ahead: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).replace(microsecond=0)


def create(conn: http.client.HTTPConnection, **fields: Any) -> dict[str, Any]:
    body = {"name": "e2e", "task_name": "nexus.echo", **fields}
    status, job = request(conn, "POST", "/api/v1/jobs", body)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


def executions(conn: http.client.HTTPConnection, job_id: int) -> list[dict[str, Any]]:
    status, runs = request(conn, "GET", f"/api/v1/jobs/{job_id}/executions?limit=500")
    assert status == 200, runs
    return runs  # type: ignore[no-any-return]


def wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


def lateness(run: dict[str, Any]) -> float:
    return (at(run["started_at"]) - at(run["scheduled_for"])).total_seconds()


def test_a_date_job_5_s_ahead_runs_once_within_a_second_of_its_time(conn):
    when = whole_second(5)
    job = create(conn, job_type="date", scheduled_time=iso(when))
    wait_for(lambda: any(r["status"] == "completed" for r in executions(conn, job["id"])), 15)
    time.sleep(1)
    (run,) = executions(conn, job["id"])
    assert at(run["scheduled_for"]) == when
    assert 0 <= lateness(run) < 1.0, run
    _status, stored = request(conn, "GET", f"/api/v1/jobs/{job['id']}")
    assert (stored["status"], stored["next_run_at"], stored["last_run_status"]) == (
        "completed",
        None,
        "completed",
    )


def test_a_2_s_interval_job_runs_on_its_seconds_without_duplicates_and_stops_when_paused(conn):
    start = whole_second(2)
    job = create(conn, job_type="interval", interval_seconds=2, start_time=iso(start))
    time.sleep(7.5)
    status, _ = request(conn, "POST", f"/api/v1/jobs/{job['id']}/pause")
    paused_at = datetime.now(UTC)
    assert status == 200
    time.sleep(4)
    runs = executions(conn, job["id"])
    done = [r for r in runs if r["status"] == "completed"]
    times = sorted(at(r["scheduled_for"]) for r in done)
    assert len(times) >= 3
    assert len(times) == len(set(times)), "a run happened twice"
    assert times[0] == start
    assert all((t - start).total_seconds() % 2 == 0 for t in times)
    assert all(0 <= lateness(r) < 1.0 for r in done), [lateness(r) for r in done]
    assert all(at(r["started_at"]) < paused_at for r in done)
    # The runs sent ahead for after the pause (two of them came due in the 4 s since) are
    # not run, and nothing is recorded for them: the history is what it would be had the
    # tick never sent them (engine.worker, SP).
    later = [r for r in runs if at(r["scheduled_for"]) > paused_at + timedelta(seconds=1)]
    assert later == []


def test_a_failing_task_makes_3_attempts_1_s_and_2_s_apart_then_fails(conn):
    job = create(
        conn,
        job_type="interval",
        interval_seconds=86400,
        task_name="nexus.fail",
        max_retries=2,
        retry_delay=1,
        retry_backoff=True,
    )
    status, started = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute")
    assert status == 200

    def attempts() -> list[dict[str, Any]]:
        return [r for r in executions(conn, job["id"]) if r["task_id"] == started["task_id"]]

    wait_for(lambda: sum(r["status"] == "failed" for r in attempts()) == 3, 20)
    time.sleep(2)
    runs = sorted(attempts(), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["trigger"], r["status"]) for r in runs] == [
        (1, "manual", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "failed"),
    ]
    gaps = [
        (at(b["started_at"]) - at(a["completed_at"])).total_seconds()
        for a, b in itertools.pairwise(runs)
    ]
    assert 0.9 <= gaps[0] <= 1.9, gaps
    assert 1.9 <= gaps[1] <= 3.0, gaps
    status, stored = request(conn, "GET", f"/api/v1/jobs/{job['id']}")
    assert stored["status"] == "failed"


def test_a_manual_run_with_overrides_runs_once_with_the_task_id_execute_returned(conn):
    job = create(conn, job_type="interval", interval_seconds=86400, task_args=["job"])
    status, started = request(
        conn,
        "POST",
        f"/api/v1/jobs/{job['id']}/execute",
        {"task_args": [1, 2], "task_kwargs": {"override": True}},
    )
    assert status == 200
    wait_for(lambda: any(r["status"] == "completed" for r in executions(conn, job["id"])), 10)
    time.sleep(1)
    (run,) = executions(conn, job["id"])
    assert run["task_id"] == started["task_id"]
    assert run["trigger"] == "manual"
    assert run["result"] == {"args": [1, 2], "kwargs": {"override": True}}
    # The stats count a run from its record's change, through the table's stream: shortly.
    wait_for(
        lambda: (
            request(conn, "GET", "/api/v1/jobs/stats/overview")[1]["successful_executions"] >= 1
        ),
        10,
    )
