"""`make run`'s server: the API at http://127.0.0.1:PORT/api/v1."""

from __future__ import annotations

import socket
import time

from tests.e2e.conftest import LocalServer, request


def test_the_api_is_served_under_api_v1_with_keep_alive(conn):
    status, job = request(
        conn,
        "POST",
        "/api/v1/jobs/",
        {
            "name": "e2e",
            "job_type": "interval",
            "interval_seconds": 3600,
            "task_name": "nexus.echo",
        },
    )
    assert status == 201, job
    stored = {k: v for k, v in job.items() if k != "warnings"}  # only writes answer warnings
    assert request(conn, "GET", f"/api/v1/jobs/{job['id']}") == (200, stored)
    status, listed = request(conn, "GET", "/api/v1/jobs?limit=5")
    assert status == 200 and job["id"] in [j["id"] for j in listed]
    status, started = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute", {"task_args": [1]})
    assert status == 200, started
    status, runs = request(conn, "GET", f"/api/v1/jobs/{job['id']}/executions")
    assert status == 200 and [r["task_id"] for r in runs] == [started["task_id"]]
    status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
    assert status == 200 and stats["total_jobs"] >= 1
    assert request(conn, "DELETE", f"/api/v1/jobs/{job['id']}") == (204, None)
    assert request(conn, "GET", f"/api/v1/jobs/{job['id']}") == (404, {"detail": "Job not found"})


def test_paths_outside_the_stage_get_api_gateways_403(conn):
    for path in ("/v1/jobs", "/jobs", "/", "/apix/v1/jobs"):
        status, body = request(conn, "GET", path)
        assert status == 403, path
        assert body == {"message": "Forbidden"}
    # The connection is still usable after a 403 that carried a body.
    status, _ = request(conn, "POST", "/nope", {"a": 1})
    assert status == 403
    assert request(conn, "GET", "/api/v1/cron/presets")[0] == 200


def test_the_embedded_aws_listens_on_loopback_only(server, banner):
    # moto's ThreadedMotoServer binds every interface unless told otherwise.
    endpoint = banner.split("embedded AWS at ")[1].rstrip(")")
    assert endpoint.startswith("http://127.0.0.1:")


def test_the_embedded_aws_ends_with_the_server_even_when_the_server_is_killed(tmp_path):
    server = LocalServer(tmp_path)
    endpoint = server.banner.split("embedded AWS at ")[1].rstrip(")")
    host, port = endpoint.removeprefix("http://").split(":")
    socket.create_connection((host, int(port)), timeout=2).close()  # it answers
    server.proc.kill()  # no chance to clean up
    server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
        except OSError:
            return  # gone with its parent
        time.sleep(0.2)
    raise AssertionError(f"the embedded AWS at {endpoint} outlived its killed server")
