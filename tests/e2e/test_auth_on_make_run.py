"""Issue 10 on make run: with NEXUS_ADMIN_KEY set (tests/e2e/conftest.py starts the server so),
the contract's example flow works with that key, and without a key every route but the open
one answers 401 in the API's error shape."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any

from tests.e2e.conftest import request

OPEN = {
    ("GET", "/api/v1/cron/presets"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/docs"),
    ("GET", "/api/v1/docs/{asset}"),
    # The dashboard's page and files (its calls carry the key the user signs in with).
    ("GET", "/api/ui"),
    ("GET", "/api/ui/{asset}"),
}


def routes() -> list[tuple[str, str]]:
    import app as app_module

    return sorted(
        (method, "/api" + path)
        for path, methods in app_module.app.routes.items()
        for method in methods
    )


def test_without_a_key_every_route_but_the_open_one_answers_401_with_how_to_authenticate(
    conn: http.client.HTTPConnection,
) -> None:
    for method, route in routes():
        if (method, route) in OPEN:
            continue  # tests/app/test_openapi.py and the flow below read them without a key
        path = re.sub(r"\{\w+\}", "1", route)
        conn.request(method, path, body="{}", headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = json.loads(response.read() or b"null")
        assert response.status == 401, (method, path, body)
        assert set(body) == {"detail"} and "Bearer" in body["detail"], (method, path, body)
        assert response.getheader("WWW-Authenticate", "").startswith("Bearer"), (method, path)


def test_the_contracts_example_flow_works_with_the_admin_key(
    conn: http.client.HTTPConnection, contract_job: dict[str, Any]
) -> None:
    status, job = request(conn, "POST", "/api/v1/jobs/", contract_job)
    assert status == 201, job
    job_id = job["id"]
    assert request(conn, "GET", f"/api/v1/jobs/{job_id}")[0] == 200
    status, listed = request(
        conn, "GET", "/api/v1/jobs/?is_active=true&job_type=cron&tags=report,analytics"
    )
    assert status == 200 and job_id in [j["id"] for j in listed]
    status, updated = request(conn, "PUT", f"/api/v1/jobs/{job_id}", {"priority": 8})
    assert status == 200 and updated["priority"] == 8
    status, started = request(
        conn, "POST", f"/api/v1/jobs/{job_id}/execute", {"task_kwargs": {"format": "csv"}}
    )
    assert status == 200 and started["message"] == "Job execution started"
    assert request(conn, "POST", f"/api/v1/jobs/{job_id}/pause")[1] == {"message": "Job paused"}
    status, resumed = request(conn, "POST", f"/api/v1/jobs/{job_id}/resume")
    assert status == 200 and resumed["next_run_at"]
    assert request(conn, "GET", f"/api/v1/jobs/{job_id}/executions?limit=10")[0] == 200
    assert request(conn, "GET", "/api/v1/jobs/stats/overview")[0] == 200
    status, valid = request(
        conn, "POST", "/api/v1/cron/validate", {"expression": "0 9 * * 1-5", "timezone": "UTC"}
    )
    assert status == 200 and valid["is_valid"] is True
    assert request(conn, "GET", "/api/v1/cron/presets", key=None)[0] == 200
    status, trail = request(conn, "GET", f"/api/v1/jobs/{job_id}/audit")
    assert status == 200 and trail[-1]["action"] == "job.create"
    assert request(conn, "DELETE", f"/api/v1/jobs/{job_id}")[0] == 204
    assert request(conn, "GET", f"/api/v1/jobs/{job_id}")[0] == 404


def test_the_open_routes_answer_without_a_key(
    conn: http.client.HTTPConnection,
) -> None:
    for method, route in sorted(OPEN):
        asset = "app.js" if route.startswith("/api/ui") else "nexus-docs.js"
        path = route.replace("{asset}", asset)
        conn.request(method, path)
        response = conn.getresponse()
        response.read()
        assert response.status == 200, (method, path)
