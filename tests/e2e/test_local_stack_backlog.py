"""make run's server takes a burst of connections, as a load test or a page of parallel
fetches opens them, without dropping any."""

from __future__ import annotations

import selectors
import socket
import time

BURST = 100
# Answered at once when the server takes them all; a connection the kernel had no room for
# waits for a retry of its handshake (1 s, then 3 s, then 7 s...), or is reset.
DEADLINE_SECONDS = 10.0
REQUEST = b"GET /api/v1/cron/presets HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def test_a_hundred_connections_opened_at_once_are_all_answered(server):
    # Non-blocking connects, all started before any is served: the burst reaches the server's
    # listen queue within a millisecond or two.
    selector = selectors.DefaultSelector()
    received: dict[int, bytes] = {}
    answered: dict[int, bytes] = {}
    errors: dict[int, str] = {}
    for i in range(BURST):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", server))
        selector.register(sock, selectors.EVENT_WRITE, i)
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        while len(answered) + len(errors) < BURST and time.monotonic() < deadline:
            for key, events in selector.select(timeout=0.5):
                sock, i = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                try:
                    if events & selectors.EVENT_WRITE:
                        sock.sendall(REQUEST)
                        received[i] = b""
                        selector.modify(sock, selectors.EVENT_READ, i)
                        continue
                    chunk = sock.recv(65536)
                except OSError as exc:  # a reset, a refusal
                    errors[i] = repr(exc)
                    selector.unregister(sock)
                    sock.close()
                    continue
                if chunk:
                    received[i] += chunk
                    continue
                # The server closed the connection: the answer is whole.
                answered[i] = received.pop(i)
                selector.unregister(sock)
                sock.close()
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()
    assert errors == {}
    assert len(answered) == BURST, f"{BURST - len(answered)} connections got no answer in time"
    assert {answer.split(b" ", 2)[1] for answer in answered.values()} == {b"200"}
