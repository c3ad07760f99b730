"""make run's API server, once told to stop, finishes the requests under way before the last
snapshot is taken, and handles no new one."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.app import Chalice

from local.gateway import LISTEN_BACKLOG, Gateway, make_server


@pytest.fixture
def served() -> Iterator[tuple[Gateway, int, threading.Event, threading.Event]]:
    app = Chalice(app_name="drain-test")
    entered, release = threading.Event(), threading.Event()

    @app.route("/slow", methods=["POST"])
    def slow() -> dict[str, Any]:
        entered.set()
        release.wait(10)
        return {"done": True}

    @app.route("/quick")
    def quick() -> dict[str, Any]:
        return {"quick": True}

    server = make_server(app, "127.0.0.1", 0, quiet=True)
    port = server.server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, port, entered, release
    finally:
        release.set()
        server.shutdown()
        server.server.server_close()
        thread.join(5)


def test_the_server_listens_with_room_for_a_burst(served):
    server, *_ = served
    assert server.server.request_queue_size == LISTEN_BACKLOG >= 100


def test_drain_waits_for_the_request_under_way_and_refuses_the_next(served):
    server, port, entered, release = served
    kept_alive = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    kept_alive.request("GET", "/api/quick")
    assert kept_alive.getresponse().read() == b'{"quick":true}'

    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    slow.request("POST", "/api/slow", body=b"{}")
    assert entered.wait(5)
    server.shutdown()  # what SIGTERM does: serve_forever returns, the request runs on
    drained = threading.Event()
    left: list[int] = []
    threading.Thread(target=lambda: (left.append(server.drain(10)), drained.set())).start()
    assert not drained.wait(0.3)  # the slow request is still under way

    # A request on a connection kept alive from before is refused, not handled.
    kept_alive.request("GET", "/api/quick")
    refused = kept_alive.getresponse()
    assert (refused.status, refused.getheader("Connection")) == (503, "close")
    refused.read()

    release.set()
    answer = slow.getresponse()
    assert (answer.status, answer.read()) == (200, b'{"done":true}')
    assert drained.wait(5) and left == [0]
    for conn in (kept_alive, slow):
        conn.close()


def test_drain_gives_up_after_its_timeout_and_says_how_many_are_left(served):
    server, port, entered, release = served
    slow = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    slow.request("POST", "/api/slow", body=b"{}")
    assert entered.wait(5)
    assert server.drain(0.2) == 1
    release.set()
    assert slow.getresponse().read() == b'{"done":true}'
    slow.close()
