"""Issue 13 on make run: overlap policies, a pause with an end, and cancelling a run.

Every outcome is read back through the API from a real local stack (tests/e2e/conftest.py's
LocalServer), started once for this module with NEXUS_HTTP_ALLOW=127.0.0.1 so that
`nexus.http_request` may call a server the test starts on loopback.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.engine.lifecycle import MAX_RUNS_AHEAD
from tests.e2e.conftest import E2E_KEY, LocalServer, request, until

Run = dict[str, Any]

# A running task sees a cancel within the worker's poll (0.5 s) and stops within 0.1 s.
CANCEL_SECONDS = 2.0
BUFFER_ONE_WAITING = "another run was already waiting for the running one"
FORBID_SKIP = "the previous run was still running (concurrency_policy is forbid)"


# This module's stack, for reading what it logged.
STACK: list[LocalServer] = []


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """This module's own stack (the shared one allows no loopback destination)."""
    local = LocalServer(
        tmp_path_factory.mktemp("control-state"),
        extra_env={"NEXUS_HTTP_ALLOW": "127.0.0.1"},
    )
    STACK.append(local)
    yield local.port
    local.stop()


# -- helpers ------------------------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def whole_second(seconds_ahead: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds_ahead)).replace(microsecond=0)


def sleep_until(instant: datetime) -> None:
    time.sleep(max(0.0, (instant - datetime.now(UTC)).total_seconds()))


def run_id(job_id: int, scheduled_for: datetime, attempt: int = 1) -> str:
    return f"{job_id}-{scheduled_for:%Y%m%dT%H%M%S}Z-{attempt}"


def create(conn: http.client.HTTPConnection, **fields: Any) -> dict[str, Any]:
    body = {"name": "control", "job_type": "interval", "task_name": "nexus.echo", **fields}
    status, job = request(conn, "POST", "/api/v1/jobs", body)
    assert status == 201, job
    return job  # type: ignore[no-any-return]


def sleeper(seconds: float, every: int, policy: str, start: datetime, **fields: Any) -> Any:
    return {
        "task_name": "nexus.sleep",
        "task_kwargs": {"seconds": seconds},
        "interval_seconds": every,
        "concurrency_policy": policy,
        "start_time": iso(start),
        **fields,
    }


def get_job(conn: http.client.HTTPConnection, job_id: int) -> dict[str, Any]:
    status, job = request(conn, "GET", f"/api/v1/jobs/{job_id}")
    assert status == 200, job
    return job  # type: ignore[no-any-return]


def runs(conn: http.client.HTTPConnection, job_id: int) -> list[Run]:
    status, found = request(conn, "GET", f"/api/v1/jobs/{job_id}/executions?limit=500")
    assert status == 200, found
    return sorted(found, key=lambda r: (r["scheduled_for"], r["attempt"]))


def run_of(
    conn: http.client.HTTPConnection, job_id: int, scheduled_for: datetime, attempt: int = 1
) -> Run | None:
    wanted = run_id(job_id, scheduled_for, attempt)
    return next((r for r in runs(conn, job_id) if r["id"] == wanted), None)


def by_id(conn: http.client.HTTPConnection, job_id: int, ident: str) -> Run | None:
    return next((r for r in runs(conn, job_id) if r["id"] == ident), None)


def cancel(
    conn: http.client.HTTPConnection, ident: str, body: Any = None, key: str = E2E_KEY
) -> tuple[int, Any]:
    return request(conn, "POST", f"/api/v1/executions/{ident}/cancel", body, key=key)


def settle(
    conn: http.client.HTTPConnection, job_id: int, cancelling: bool = True, timeout: float = 15
) -> list[Run]:
    """Pause the job, cancel what still runs or waits (unless not `cancelling`), and wait
    until every run has ended: the runs as they end up."""
    assert request(conn, "POST", f"/api/v1/jobs/{job_id}/pause")[0] == 200
    for run in runs(conn, job_id) if cancelling else []:
        if run["status"] in ("running", "pending"):
            cancel(conn, run["id"], {"reason": "end of the test"})
    ended: list[Run] = until(
        lambda: (
            (found := runs(conn, job_id))
            and all(r["status"] not in ("running", "pending") for r in found)
            and found
        ),
        timeout,
        "every run of the job ended",
    )
    return ended


def started(found: list[Run]) -> list[Run]:
    return sorted((r for r in found if r["started_at"]), key=lambda r: r["started_at"])


def assert_no_two_runs_overlap(found: list[Run]) -> None:
    ran = started(found)
    assert all(r["completed_at"] for r in ran), ran
    for before, after in itertools.pairwise(ran):
        assert at(after["started_at"]) >= at(before["completed_at"]), (before, after)


# -- scheduled occurrences cancelled before they start ---------------------------------------


@pytest.fixture(scope="module", autouse=True)
def occurrences_cancelled_early(server: int) -> Iterator[dict[str, Any]]:
    """A 3 s interval job, made as the module starts, with two of its occurrences cancelled
    by their ids before they start: one already sent to the queue (`start + 3 s`: a job's runs
    are sent up to a minute ahead and MAX_RUNS_AHEAD more), and one past all the create sent
    (the window's 20 runs and 15 more: `start + 111 s`, not sent yet). The test at the end of
    the module, when both times have passed, checks that neither ran and that the runs after
    each did. Made first, so the wait passes while the other tests run."""
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=10)
    start = whole_second(2)
    job = create(connection, interval_seconds=3, start_time=iso(start))
    queued = start + timedelta(seconds=3)
    in_window = 60 // 3  # the runs before the next tick, sent by the create
    unsent = start + timedelta(seconds=3 * (in_window + MAX_RUNS_AHEAD + 2))
    answers = {
        when: cancel(connection, run_id(job["id"], when), {"reason": "not this one"})
        for when in (queued, unsent)
    }
    yield {"job": job, "start": start, "queued": queued, "unsent": unsent, "answers": answers}
    connection.close()


# -- pause until ------------------------------------------------------------------------------


def test_a_job_paused_until_5_s_ahead_runs_nothing_meanwhile_then_resumes_by_itself(
    conn: http.client.HTTPConnection,
) -> None:
    start = whole_second(2)
    job = create(conn, interval_seconds=2, start_time=iso(start))
    # Pause between two runs (they start on start + 2k), so none is starting as it lands.
    sleep_until(start + timedelta(seconds=2.8))
    paused_at = datetime.now(UTC)
    end = whole_second(5)
    status, answer = request(
        conn,
        "POST",
        f"/api/v1/jobs/{job['id']}/pause",
        {"note": "maintenance", "until": iso(end)},
    )
    assert status == 200, answer
    assert answer == {
        "message": "Job paused",
        "paused_note": "maintenance",
        "paused_until": iso(end),
    }
    paused = get_job(conn, job["id"])
    assert (paused["is_active"], paused["paused_note"], at(paused["paused_until"])) == (
        False,
        "maintenance",
        end,
    )

    resumed = until(
        lambda: (j := get_job(conn, job["id"]))["is_active"] and j,
        (end - datetime.now(UTC)).total_seconds() + 8,
        "the job active again after its pause",
    )
    resumed_seen = datetime.now(UTC)
    assert resumed["paused_until"] is None and resumed["paused_note"] is None
    assert resumed_seen <= end + timedelta(seconds=8)
    assert at(resumed["next_run_at"]) >= end

    after = until(
        lambda: [
            r
            for r in runs(conn, job["id"])
            if r["status"] == "completed" and at(r["scheduled_for"]) >= end
        ],
        6,
        "a run after the pause",
    )
    assert all(at(r["started_at"]) >= end for r in after)
    found = runs(conn, job["id"])
    assert [r for r in found if r["started_at"] and paused_at <= at(r["started_at"]) < end] == []
    # No burst of the occurrences the pause covered: none of them ran; any that was sent
    # before the pause is recorded skipped, with the pause's note.
    covered = [r for r in found if paused_at < at(r["scheduled_for"]) < end]
    assert all(r["started_at"] is None for r in covered), covered
    assert all(
        (r["status"], r["reason"])
        == ("skipped", "the job was paused before this run started (maintenance)")
        for r in covered
    ), covered
    assert any(r["status"] == "completed" and at(r["scheduled_for"]) < paused_at for r in found)
    settle(conn, job["id"])


def test_a_bare_pause_still_answers_exactly_job_paused(conn: http.client.HTTPConnection) -> None:
    job = create(conn, interval_seconds=3600)
    assert request(conn, "POST", f"/api/v1/jobs/{job['id']}/pause") == (
        200,
        {"message": "Job paused"},
    )
    paused = get_job(conn, job["id"])
    assert (paused["is_active"], paused["paused_note"], paused["paused_until"]) == (
        False,
        None,
        None,
    )


# -- overlap policies -------------------------------------------------------------------------


def test_replace_cancels_the_running_run_and_starts_the_new_one_after_it_stopped(
    conn: http.client.HTTPConnection,
) -> None:
    start = whole_second(2)
    job = create(conn, **sleeper(20, 3, "replace", start, max_retries=2, retry_delay=1))
    second_time = start + timedelta(seconds=3)
    second_id = run_id(job["id"], second_time)

    first = until(
        lambda: (r := run_of(conn, job["id"], start)) and r["status"] == "cancelled" and r,
        (second_time - datetime.now(UTC)).total_seconds() + 5,
        "the first run cancelled by the second",
    )
    second = until(
        lambda: (r := by_id(conn, job["id"], second_id)) and r["started_at"] and r,
        5,
        "the second run started",
    )
    assert first["started_at"] is not None
    assert first["reason"] == f"replaced by run {second_id} (concurrency_policy is replace)"
    stopped = at(first["completed_at"])
    assert second_time <= stopped <= second_time + timedelta(seconds=3), first
    assert at(second["started_at"]) >= stopped, (first, second)
    # A cancelled run is not retried, though the job allows two retries 1 s apart.
    time.sleep(2.5)
    assert [r["attempt"] for r in runs(conn, job["id"]) if at(r["scheduled_for"]) == start] == [1]
    assert_no_two_runs_overlap(settle(conn, job["id"]))


def test_buffer_one_runs_exactly_one_waiting_run_after_the_running_one_and_skips_the_rest(
    conn: http.client.HTTPConnection,
) -> None:
    start = whole_second(2)
    job = create(conn, **sleeper(7, 2, "buffer_one", start))
    times = [start + timedelta(seconds=s) for s in (0, 2, 4, 6)]
    first_id, buffered_id, *later_ids = (run_id(job["id"], t) for t in times)

    # While the first runs, the next occurrence waits for it, recorded pending.
    waiting = until(
        lambda: (r := by_id(conn, job["id"], buffered_id)) and r,
        (times[1] - datetime.now(UTC)).total_seconds() + 2,
        "the second occurrence recorded",
    )
    assert waiting["status"] == "pending" and waiting["started_at"] is None, waiting
    assert by_id(conn, job["id"], first_id)["status"] == "running"  # type: ignore[index]
    # The ones after it find a run waiting already: skipped.
    until(
        lambda: all(
            (r := by_id(conn, job["id"], ident)) and r["status"] == "skipped" for ident in later_ids
        ),
        (times[3] - datetime.now(UTC)).total_seconds() + 2,
        "the occurrences at +4 s and +6 s skipped",
    )
    # Once the first has completed, the waiting one runs (a paused job would skip it: pause
    # only after it started, so that no later occurrence waits behind it).
    until(
        lambda: (r := by_id(conn, job["id"], buffered_id)) and r["status"] == "running",
        (start - datetime.now(UTC)).total_seconds() + 7 + 3,
        "the buffered run running after the first",
    )
    assert request(conn, "POST", f"/api/v1/jobs/{job['id']}/pause")[0] == 200
    buffered = until(
        lambda: (r := by_id(conn, job["id"], buffered_id)) and r["status"] == "completed" and r,
        (start - datetime.now(UTC)).total_seconds() + 7 + 7 + 4,
        "the buffered run completed",
    )
    time.sleep(1)
    found = runs(conn, job["id"])
    first = next(r for r in found if r["id"] == first_id)
    assert first["status"] == "completed"
    assert at(buffered["started_at"]) >= at(first["completed_at"]), (first, buffered)
    for ident in later_ids:
        skipped = next(r for r in found if r["id"] == ident)
        assert skipped["started_at"] is None
        assert skipped["reason"].startswith(BUFFER_ONE_WAITING), skipped
    assert all(r["status"] not in ("running", "pending") for r in found), found
    assert_no_two_runs_overlap(found)
    window = (at(first["started_at"]), at(buffered["completed_at"]))
    in_window = [r["id"] for r in started(found) if window[0] <= at(r["started_at"]) <= window[1]]
    assert in_window == [first_id, buffered_id]


def test_forbid_never_runs_two_at_once_and_skips_what_comes_while_one_runs(
    conn: http.client.HTTPConnection,
) -> None:
    start = whole_second(2)
    job = create(conn, **sleeper(3, 2, "forbid", start))
    sleep_until(start + timedelta(seconds=7.5))
    found = settle(conn, job["id"], cancelling=False)
    assert_no_two_runs_overlap(found)
    assert sum(r["status"] == "completed" for r in found) >= 2, found
    skipped = [r for r in found if r["status"] == "skipped" and r["reason"] == FORBID_SKIP]
    assert len(skipped) >= 1, found
    assert all(r["started_at"] is None for r in skipped)


# -- cancel -------------------------------------------------------------------------------


def test_a_running_manual_run_cancelled_through_the_api_ends_cancelled_at_once_without_retry(
    conn: http.client.HTTPConnection,
) -> None:
    job = create(
        conn,
        interval_seconds=86400,
        task_name="nexus.sleep",
        task_kwargs={"seconds": 30},
        max_retries=2,
        retry_delay=1,
    )
    status, execute = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute")
    assert status == 200, execute
    ident = execute["execution_id"]
    until(
        lambda: (r := by_id(conn, job["id"], ident)) and r["status"] == "running",
        10,
        "the manual run running",
    )
    asked = datetime.now(UTC)
    status, answer = cancel(conn, ident, {"reason": "wrong parameters"})
    assert status == 200, answer
    assert answer["id"] == ident
    ended = until(
        lambda: (r := by_id(conn, job["id"], ident)) and r["status"] == "cancelled" and r,
        CANCEL_SECONDS + 3,
        "the run cancelled",
    )
    assert (at(ended["completed_at"]) - asked).total_seconds() <= CANCEL_SECONDS, ended
    assert "wrong parameters" in ended["reason"], ended
    time.sleep(2.5)  # a retry would be recorded 1 s after the end
    attempts = [r for r in runs(conn, job["id"]) if r["task_id"] == execute["task_id"]]
    assert [(r["attempt"], r["status"]) for r in attempts] == [(1, "cancelled")]
    # An ended run has nothing to cancel.
    status, again = cancel(conn, ident)
    assert status == 409, again


def test_cancel_answers_404_for_unknown_or_malformed_ids_and_403_to_a_read_only_key(
    conn: http.client.HTTPConnection,
) -> None:
    job = create(conn, interval_seconds=3600, start_time="2030-01-01T00:00:00Z")
    off_schedule = run_id(job["id"], datetime(2030, 1, 1, 0, 0, 1, tzinfo=UTC))
    for ident in (off_schedule, "999999999-20300101T000000Z-1", "not-a-run", "1-2-3"):
        status, body = cancel(conn, ident)
        assert status == 404, (ident, body)
        assert "detail" in body
    status, key = request(conn, "POST", "/api/v1/keys", {"name": "reader", "scopes": ["jobs:read"]})
    assert status == 201, key
    on_schedule = run_id(job["id"], datetime(2030, 1, 1, tzinfo=UTC))
    status, body = cancel(conn, on_schedule, key=key["key"])
    assert status == 403, body
    assert run_of(conn, job["id"], datetime(2030, 1, 1, tzinfo=UTC)) is None


# -- nexus.http_request honours a cancel ------------------------------------------------------


class Silent(BaseHTTPRequestHandler):
    """Reads the request, then answers nothing until the test is over."""

    server: SilentServer

    def do_GET(self) -> None:
        self.server.requests.set()
        self.server.release.wait(60)

    def log_message(self, *args: Any) -> None:
        pass


class SilentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Silent)
        self.requests = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def test_an_http_request_run_cancelled_mid_request_ends_cancelled_within_2_s(
    conn: http.client.HTTPConnection, silent_server: SilentServer
) -> None:
    url = f"http://127.0.0.1:{silent_server.server_address[1]}/never-answers"
    job = create(
        conn,
        interval_seconds=86400,
        task_name="nexus.http_request",
        task_kwargs={"url": url, "timeout": 30},
        max_retries=2,
        retry_delay=1,
    )
    status, execute = request(conn, "POST", f"/api/v1/jobs/{job['id']}/execute")
    assert status == 200, execute
    ident = execute["execution_id"]
    until(
        lambda: (r := by_id(conn, job["id"], ident)) and r["status"] == "running",
        10,
        "the request's run running",
    )
    assert silent_server.requests.wait(5), "the request reached the server"
    time.sleep(1)  # well into the request, which the server never answers
    asked = datetime.now(UTC)
    status, answer = cancel(conn, ident)
    assert status == 200, answer
    ended = until(
        lambda: (r := by_id(conn, job["id"], ident)) and r["status"] == "cancelled" and r,
        CANCEL_SECONDS + 3,
        "the request's run cancelled",
    )
    assert (at(ended["completed_at"]) - asked).total_seconds() <= CANCEL_SECONDS, ended
    assert ended["reason"].startswith("cancelled by"), ended
    time.sleep(2)
    assert [r["attempt"] for r in runs(conn, job["id"])] == [1]


def test_scheduled_occurrences_cancelled_by_their_ids_never_run_and_the_next_ones_do(
    conn: http.client.HTTPConnection, occurrences_cancelled_early: dict[str, Any]
) -> None:
    early = occurrences_cancelled_early
    job, queued, unsent = early["job"], early["queued"], early["unsent"]
    assert unsent > queued + timedelta(seconds=30), "next_run_at is past what was sent ahead"
    for when in (queued, unsent):
        status, answer = early["answers"][when]
        assert status == 200, answer
        assert (answer["id"], answer["status"]) == (run_id(job["id"], when), "cancelled")
    following = unsent + timedelta(seconds=3)
    until(
        lambda: (r := run_of(conn, job["id"], following)) and r["status"] == "completed",
        (following - datetime.now(UTC)).total_seconds() + 4,
        "the run after the unsent cancelled occurrence completed",
    )
    found = runs(conn, job["id"])
    for when in (queued, unsent):
        records = [r for r in found if at(r["scheduled_for"]) == when]
        assert len(records) == 1, records
        (cancelled,) = records
        assert (cancelled["status"], cancelled["started_at"]) == ("cancelled", None), cancelled
        assert cancelled["reason"].endswith(": not this one"), cancelled
    completed = {at(r["scheduled_for"]) for r in found if r["status"] == "completed"}
    assert {early["start"], queued + timedelta(seconds=3), following} <= completed
    settle(conn, job["id"])


def test_the_stack_logged_no_error_while_runs_were_paused_replaced_and_cancelled() -> None:
    logged = [line for line in "".join(STACK[-1].output).splitlines() if line.startswith("{")]
    errors = [entry for entry in map(json.loads, logged) if entry.get("level") == "ERROR"]
    # Each as its logger, message and the exception's last line.
    assert [
        (e["logger"], e["message"], str(e.get("exception", "")).splitlines()[-1:]) for e in errors
    ] == []
