"""make run keeps every write it acknowledged, however it is told to stop.

A process manager or CI sends SIGTERM, to the main process or to its whole process group
(the embedded AWS's child included); a terminal's Ctrl-C sends SIGINT to the group, and
closing the terminal SIGHUP. Whichever way, every job the API answered 201 for is there
after a restart on the same state folder; and so it is when the main process alone is killed
outright (SIGKILL), by the embedded AWS, which outlives it long enough to save the table,
and the stats count the runs it recorded; and when the whole group is killed outright, by
the embedded AWS's journal of every write it answered.
"""

from __future__ import annotations

import functools
import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.e2e import conftest
from tests.e2e.conftest import LocalServer, request

JOB = {"name": "kept", "job_type": "interval", "interval_seconds": 3600, "task_name": "nexus.echo"}


class GroupServer(LocalServer):
    """LocalServer in a process group of its own, so that a signal can go to the whole of
    it, as a terminal or a process manager sends it, without reaching the tests."""

    def __init__(self, state: Path) -> None:
        popen = functools.partial(subprocess.Popen, start_new_session=True)
        with mock.patch.object(conftest.subprocess, "Popen", popen):
            super().__init__(state)

    def signal(self, signum: int, *, group: bool) -> int:
        """Send signum; wait for the server to end; its exit status."""
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=60)


def create_job(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        status, job = request(conn, "POST", "/api/v1/jobs/", JOB)
    finally:
        conn.close()
    assert status == 201, job
    return dict(job)


def status_after_a_restart(state: Path, job_id: int) -> int:
    """GET the job from a server started again on the state folder `state`."""
    server = LocalServer(state)
    try:
        return job_status(server.port, job_id)
    finally:
        server.stop()


def job_status(port: int, job_id: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        return request(conn, "GET", f"/api/v1/jobs/{job_id}")[0]
    finally:
        conn.close()


@pytest.mark.parametrize("group", [True, False], ids=["to the group", "to the main process"])
@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"]
)
def test_a_job_created_just_before_a_signal_is_there_after_a_restart(tmp_path, signum, group):
    first = GroupServer(tmp_path)
    try:
        job = create_job(first.port)
        assert first.signal(signum, group=group) == 0
    finally:
        first.stop()
    assert status_after_a_restart(tmp_path, job["id"]) == 200


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL, saving nothing"]
)
def test_every_job_acknowledged_while_the_group_is_stopped_is_there_after_a_restart(
    tmp_path, signum
):
    # Writers keep creating jobs while the signal reaches the whole group: each 201 counts,
    # and a request cut short (refused, reset, or answered 503 while stopping) does not.
    # SIGKILL gives no process the time to save: what is kept is the embedded AWS's journal.
    first = GroupServer(tmp_path)
    port = first.port
    acknowledged: list[int] = []
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                status, job = request(conn, "POST", "/api/v1/jobs/", JOB)
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)  # stopping, or stopped: not acknowledged
                continue
            finally:
                conn.close()
            if status == 201:
                acknowledged.append(job["id"])

    writers = [threading.Thread(target=write) for _ in range(4)]
    try:
        for writer in writers:
            writer.start()
        while len(acknowledged) < 20:
            time.sleep(0.01)
        assert first.signal(signum, group=True) == (0 if signum == signal.SIGTERM else -signum)
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
        first.stop()

    second = LocalServer(tmp_path)
    try:
        missing = [i for i in acknowledged if job_status(second.port, i) != 200]
        assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged jobs lost"
    finally:
        second.stop()


def kill_outright(server: LocalServer) -> None:
    """SIGKILL to the main process alone; return once its embedded AWS has stopped listening
    (it saves the table first)."""
    endpoint = server.banner.split("embedded AWS at ")[1].rstrip(")")
    host, moto_port = endpoint.removeprefix("http://").split(":")
    server.proc.kill()
    server.proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(moto_port)), timeout=1).close()
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError("the embedded AWS outlived its parent by 20 s")


def test_a_job_created_just_before_the_main_process_is_killed_outright_is_there_after_a_restart(
    tmp_path,
):
    first = LocalServer(tmp_path)
    try:
        job = create_job(first.port)
        kill_outright(first)
    finally:
        first.stop()
    assert status_after_a_restart(tmp_path, job["id"]) == 200


def test_the_runs_recorded_before_the_main_process_is_killed_outright_are_all_in_the_stats(
    tmp_path,
):
    # The stats count a run from the table's change stream, a poll (50 ms) after its record
    # is final: runs keep finishing until the kill, so the last of them are recorded but not
    # yet counted when it comes. The restart runs no engine, so nothing changes after it.
    first = LocalServer(tmp_path)
    path = ""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", first.port, timeout=10)
        status, job = request(conn, "POST", "/api/v1/jobs/", JOB)
        assert status == 201, job
        path = f"/api/v1/jobs/{job['id']}/executions?limit=500"
        for _ in range(60):
            status, started = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute")
            assert status == 200, started
            time.sleep(0.02)
            if sum(r["status"] == "completed" for r in request(conn, "GET", path)[1]) >= 20:
                break
        conn.close()
        kill_outright(first)
    finally:
        first.stop()

    second = LocalServer(tmp_path, args=("--no-engine",))
    try:
        conn = http.client.HTTPConnection("127.0.0.1", second.port, timeout=10)
        status, history = request(conn, "GET", path)
        final = Counter(r["status"] for r in history if r["status"] not in ("pending", "running"))
        status, stats = request(conn, "GET", "/api/v1/jobs/stats/overview")
        assert final["completed"] >= 20
        assert (stats["total_executions"], stats["successful_executions"]) == (
            final.total(),
            final["completed"],
        ), final
        conn.close()
    finally:
        second.stop()
