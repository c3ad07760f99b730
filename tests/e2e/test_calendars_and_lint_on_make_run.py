"""Issue 13 on make run: holiday calendars and blackout windows keep a job from running (and
the history says why), `H` spreads a job's time, and the schedule lint and cost estimate come
back from the API of the real local stack."""

from __future__ import annotations

import http.client
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.conftest import request


def create(conn: http.client.HTTPConnection, **fields: Any) -> dict[str, Any]:
    body = {"name": "calendars", "job_type": "interval", "task_name": "nexus.echo", **fields}
    status, job = request(conn, "POST", "/api/v1/jobs", body)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


def runs_after(conn: http.client.HTTPConnection, job_id: int, seconds: float) -> list[Any]:
    time.sleep(seconds)
    status, found = request(conn, "GET", f"/api/v1/jobs/{job_id}/executions?limit=500")
    assert status == 200, found
    return found  # type: ignore[no-any-return]


def test_a_job_excluded_on_todays_date_does_not_run_today_and_its_history_says_why(conn):
    now = datetime.now(UTC)
    # Today and tomorrow (UTC), so the test holds across midnight.
    days = f"{now:%Y-%m-%d}/{now + timedelta(days=1):%Y-%m-%d}"
    status, calendar = request(
        conn,
        "POST",
        "/api/v1/calendars",
        {"name": "e2e-today", "timezone": "UTC", "dates": [days]},
    )
    assert status == 201, calendar
    job = create(conn, interval_seconds=2, exclude_calendars=["e2e-today"])
    found = runs_after(conn, job["id"], 7)
    assert len(found) >= 2
    assert {r["status"] for r in found} == {"skipped"}
    assert all("calendar 'e2e-today'" in r["reason"] for r in found)
    # The calendar cannot go while the job names it; the job's delete releases it.
    status, refused = request(conn, "DELETE", "/api/v1/calendars/e2e-today")
    assert status == 409, refused
    assert str(job["id"]) in refused["detail"]
    assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")[0] == 204
    assert request(conn, "DELETE", "/api/v1/calendars/e2e-today")[0] == 204


def test_a_job_runs_only_on_its_only_calendars_days(conn):
    now = datetime.now(UTC)
    today = f"{now:%Y-%m-%d}/{now + timedelta(days=1):%Y-%m-%d}"
    assert (
        request(
            conn,
            "POST",
            "/api/v1/calendars",
            {"name": "e2e-on", "timezone": "UTC", "dates": [today]},
        )[0]
        == 201
    )
    job = create(conn, interval_seconds=2, only_calendars=["e2e-on"])
    found = runs_after(conn, job["id"], 6)
    assert found and {r["status"] for r in found} == {"completed"}
    assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")[0] == 204


def test_a_job_inside_a_blackout_window_is_skipped_with_the_window_named(conn):
    now = datetime.now(UTC)
    window = {
        "start": f"{now - timedelta(minutes=5):%Y-%m-%dT%H:%M}",
        "end": f"{now + timedelta(minutes=5):%Y-%m-%dT%H:%M}",
    }
    job = create(conn, interval_seconds=2, blackout_windows=[window])
    found = runs_after(conn, job["id"], 6)
    assert found and {r["status"] for r in found} == {"skipped"}
    assert all("blackout window" in r["reason"] for r in found)
    assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")[0] == 204


def test_h_fixes_a_minute_per_job_and_the_job_shows_the_real_time(conn):
    minutes = set()
    for _ in range(6):
        job = create(conn, job_type="cron", cron_expression="H * * * *", interval_seconds=None)
        next_run = datetime.fromisoformat(job["next_run_at"].replace("Z", "+00:00"))
        assert next_run.second == 0
        minutes.add(next_run.minute)
        # A preview for the same job, from when it was made, shows the same time (from
        # "now", it would show the next hour's once the minute has passed meanwhile).
        body = {
            "job_type": "cron",
            "cron_expression": "H * * * *",
            "job_id": job["id"],
            "count": 1,
            "start": job["created_at"],
        }
        status, preview = request(conn, "POST", "/api/v1/schedules/preview", body)
        assert status == 200, preview
        assert preview["next_runs"] == [job["next_run_at"]]
        assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")[0] == 204
    assert len(minutes) >= 3  # six jobs do not all share one minute


def test_the_lint_and_the_estimate_come_back_on_preview_and_on_create(conn):
    body = {
        "job_type": "cron",
        "cron_expression": "30 2 * * *",
        "timezone": "US/Eastern",
        "start": "2027-01-01T00:00:00Z",
    }
    status, preview = request(conn, "POST", "/api/v1/schedules/preview", body)
    assert status == 200, preview
    codes = {w["code"]: w for w in preview["warnings"]}
    assert codes["dst_gap"]["dates"] == ["2027-03-14"]
    assert preview["estimate"]["runs_per_month"] > 30
    assert preview["estimate"]["cost_per_month_usd"] > 0
    job = create(conn, job_type="cron", cron_expression="0 0 31 * *", interval_seconds=None)
    assert [w["code"] for w in job["warnings"]] == ["missing_day"]
    assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}")[0] == 204
