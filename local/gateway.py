"""Serve the Chalice app the way API Gateway does, at `/api/v1/...`.

`chalice local` serves no stage prefix and has no option for one, so we build the same local
server from Chalice's own classes, with a request handler that strips the stage (`/api`) and
answers everything outside it with API Gateway's 403.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from chalice.app import Chalice
from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    LocalGatewayException,
    NotAuthorizedError,
    ThreadedHTTPServer,
)

from infra.gateway import GATEWAY_RESPONSES

STAGE = "api"
# Connections the kernel holds for the server before it accepts them. socketserver's 5 let a
# burst of 50 clients find the queue full: their handshakes were dropped and they waited
# out the kernel's retries or were reset. Linux caps it at net.core.somaxconn (4096 by default).
LISTEN_BACKLOG = 1024


class GatewayServer(ThreadedHTTPServer):
    """Chalice's threaded server, with room for bursts and a count of the requests under way.

    Its request threads are daemon threads that nothing waits for: once serve_forever has
    returned, a request could still be writing to the table, find the embedded AWS stopped
    (a 500), or be answered as the process ends. drain() waits for those, and from then on
    a request that arrives on a kept-alive connection is refused, not handled."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests = threading.Condition()
        self._under_way = 0
        self._closing = False

    def admit(self) -> bool:
        with self._requests:
            if self._closing:
                return False
            self._under_way += 1
            return True

    def done(self) -> None:
        with self._requests:
            self._under_way -= 1
            self._requests.notify_all()

    def drain(self, timeout: float) -> int:
        """Admit no more requests; wait for those under way; how many are still running."""
        with self._requests:
            self._closing = True
            self._requests.wait_for(lambda: self._under_way == 0, timeout)
            return self._under_way


class Gateway(LocalDevServer):
    server: GatewayServer

    def drain(self, timeout: float = 30.0) -> int:
        return self.server.drain(timeout)


class StageRequestHandler(ChaliceRequestHandler):
    # Without TCP_NODELAY a keep-alive client waits ~40 ms for every response (Nagle's
    # algorithm meets delayed ACKs); with it, a request takes a couple of milliseconds.
    disable_nagle_algorithm = True
    server: GatewayServer
    path: str

    def _generic_handle(self) -> None:
        if not self.server.admit():
            # Stopping: the request is not handled, so the client knows it was not applied.
            self._answer(503, {"message": "Service Unavailable"}, close=True)
            return
        try:
            self._handle_in_stage()
        finally:
            self.server.done()

    def _handle_in_stage(self) -> None:
        prefix = f"/{STAGE}"
        if (
            self.path == prefix
            or self.path.startswith(prefix + "/")
            or self.path.startswith(prefix + "?")
        ):
            self.path = self.path[len(prefix) :] or "/"
            super()._generic_handle()
            return
        # Answer as API Gateway.
        self._answer(403, {"message": "Forbidden"}, error_type="ForbiddenException")

    def _answer(
        self,
        status: int,
        payload: dict[str, Any],
        *,
        error_type: str | None = None,
        close: bool = False,
    ) -> None:
        # Drain the body so a keep-alive connection stays usable.
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _send_error_response(self, error: LocalGatewayException) -> None:
        # A request without an Authorization header, answered as the deployed API Gateway's
        # gateway response answers it (infra/gateway.py).
        if isinstance(error, NotAuthorizedError):
            status, payload, headers = GATEWAY_RESPONSES["UNAUTHORIZED"]
            body = json.dumps(payload).encode()
            self._send_http_response(status, {"Content-Type": "application/json", **headers}, body)
            return
        super()._send_error_response(error)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (TRACE, QUERY, ...): http.server would answer 501 with an HTML page.
        # A REST API answers a method no resource has with its MISSING_AUTHENTICATION_TOKEN
        # gateway response: 403 {"message": "Missing Authentication Token"}.
        if name.startswith("do_"):
            return self._unknown_method
        raise AttributeError(name)

    def _unknown_method(self) -> None:
        self._answer(
            403,
            {"message": "Missing Authentication Token"},
            error_type="MissingAuthenticationTokenException",
        )

    def log_message(self, format: str, *args: Any) -> None:
        if self.server_logging:
            super().log_message(format, *args)

    server_logging = True


def make_server(app: Chalice, host: str, port: int, *, quiet: bool = False) -> Gateway:
    config = Config.create(
        chalice_stage="dev", app_name=app.app_name, lambda_timeout=60, lambda_memory_size=512
    )
    if not isinstance(app, LocalChalice):
        # What chalice.local.create_local_server does: give the app a thread-local
        # current_request, since the local server handles requests on several threads.
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    handler = type("Handler", (StageRequestHandler,), {"server_logging": not quiet})
    return Gateway(app, config, host, port, handler_cls=handler, server_cls=GatewayServer)
