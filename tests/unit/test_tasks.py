"""The task registry and the built-in tasks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from chalicelib.tasks import RunContext, TaskRegistry, registry
from chalicelib.tasks.builtin import TaskFailed

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
