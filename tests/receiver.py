"""A webhook receiver on loopback for the tests: an http.server thread that answers every POST
with 204 and keeps what came (when, the headers, the raw body), in arrival order."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple


class Post(NamedTuple):
    arrived: datetime
    headers: dict[str, str]
    data: bytes


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.posts: list[Post] = []
        # Called once, on the next POST, before it is answered: what happens meanwhile.
        self.while_posting: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/nexus"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(post.data) for post in self.posts]

    def events(self) -> list[str]:
        return [body["event"] for body in self.bodies()]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append(Post(datetime.now(UTC), dict(self.headers), data))
        meanwhile, self.server.while_posting = self.server.while_posting, None
        if meanwhile is not None:
            meanwhile()
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver serving until the block ends."""
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
