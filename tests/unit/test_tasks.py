"""The task registry and the built-in tasks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.tasks import RunContext, TaskRegistry, registry
from chalicelib.tasks.builtin import TaskFailed
from chalicelib.tasks.registry import TaskCancelled

CTX = RunContext(
    job_id=1, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC), execution_id="1-x-1", attempt=1
)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        status = 500 if self.path == "/broken" else 201
        payload = json.dumps(
            {"got": json.loads(body or b"null"), "auth": self.headers.get("Authorization")}
        ).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # Loopback is refused by the outbound guard unless the stage allows it.
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_request_succeeds_on_2xx_and_returns_status_and_body(http_server):
    task = registry.get("nexus.http_request")
    result = task.func(
        CTX,
        url=f"{http_server}/hook",
        method="POST",
        headers={"Authorization": "Bearer t"},
        json_body={"a": 1},
    )
    assert result["status"] == 201
    assert json.loads(result["body"]) == {"got": {"a": 1}, "auth": "Bearer t"}
    assert result["truncated"] is False


def test_http_request_fails_on_a_non_2xx_status(http_server):
    with pytest.raises(TaskFailed, match="500"):
        registry.get("nexus.http_request").func(CTX, url=f"{http_server}/broken", method="POST")


def test_http_request_refuses_other_schemes():
    with pytest.raises(ValueError, match="http"):
        registry.get("nexus.http_request").func(CTX, url="file:///etc/passwd")


def test_echo_returns_its_arguments_and_fail_always_raises():
    assert registry.get("nexus.echo").func(CTX, 1, 2, k=3) == {"args": [1, 2], "kwargs": {"k": 3}}
    with pytest.raises(TaskFailed):
        registry.get("nexus.fail").func(CTX)


def test_a_task_is_registered_under_an_explicit_name_with_an_optional_timeout():
    tasks = TaskRegistry()

    @tasks.task("billing.invoice", timeout=120)
    def invoice(ctx: RunContext, customer: str) -> str:
        """Send an invoice."""
        return f"invoiced {customer}"

    entry = tasks.get("billing.invoice")
    assert (entry.timeout_seconds, entry.description) == (120, "Send an invoice.")
    assert entry.func(CTX, "acme") == "invoiced acme"
    with pytest.raises(LookupError, match="not registered"):
        tasks.get("billing.refund")
    with pytest.raises(ValueError, match="already registered"):
        tasks.task("billing.invoice")(invoice)


# -- a cancel stops a waiting task -------------------------------------------------------------


def a_run() -> RunContext:
    return RunContext(
        job_id=1, scheduled_for=datetime(2026, 1, 1, tzinfo=UTC), execution_id="1-x-1", attempt=1
    )


def cancel_after(ctx: RunContext, seconds: float) -> threading.Timer:
    """Set `ctx.cancelled` from another thread, as the worker does when a cancel comes."""
    timer = threading.Timer(seconds, ctx.cancelled.set)
    timer.start()
    return timer


class Silent(BaseHTTPRequestHandler):
    """Reads the request, then answers nothing until the test is over."""

    server: SilentServer

    def do_GET(self) -> None:
        self.server.requests.set()
        self.server.release.wait(30)

    def log_message(self, *args: Any) -> None:
        pass


class SilentServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Silent)
        self.requests = threading.Event()
        self.release = threading.Event()


@pytest.fixture
def silent_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[SilentServer]:
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "127.0.0.1")
    server = SilentServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_sleeping_task_raises_task_cancelled_within_a_second_of_a_cancel_from_elsewhere() -> None:
    ctx = a_run()
    cancel_after(ctx, 0.3)
    started = time.monotonic()
    with pytest.raises(TaskCancelled, match="the run was cancelled while it slept"):
        registry.get("nexus.sleep").func(ctx, seconds=30)
    assert time.monotonic() - started < 0.3 + 1.0


def test_a_request_in_flight_raises_task_cancelled_within_a_second_of_a_cancel(
    silent_server: SilentServer,
) -> None:
    ctx = a_run()
    url = f"http://127.0.0.1:{silent_server.server_address[1]}/never-answers"
    cancel_after(ctx, 0.5)
    started = time.monotonic()
    with pytest.raises(TaskCancelled, match="cancelled while its GET request was in flight"):
        registry.get("nexus.http_request").func(ctx, url=url, timeout=30)
    assert silent_server.requests.is_set(), "the request reached the server before the cancel"
    assert time.monotonic() - started < 0.5 + 1.0


def test_a_request_that_answers_before_any_cancel_returns_its_answer_as_before(
    http_server: str,
) -> None:
    ctx = a_run()
    result = registry.get("nexus.http_request").func(ctx, url=f"{http_server}/hook", method="POST")
    assert result["status"] == 201 and not ctx.cancelled.is_set()
