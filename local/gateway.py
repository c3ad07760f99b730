"""Serve the Chalice app the way API Gateway does, at `/api/v1/...`.

`chalice local` serves no stage prefix and has no option for one, so we build the same local
server from Chalice's own classes, with a request handler that strips the stage (`/api`) and
answers everything outside it with API Gateway's 403.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Chalice
from chalice.config import Config
from chalice.local import ChaliceRequestHandler, CustomLocalChalice, LocalChalice, LocalDevServer

STAGE = "api"


class StageRequestHandler(ChaliceRequestHandler):
    # Without TCP_NODELAY a keep-alive client waits ~40 ms for every response (Nagle's
    # algorithm meets delayed ACKs); with it, a request takes a couple of milliseconds.
    disable_nagle_algorithm = True

    def _generic_handle(self) -> None:
        prefix = f"/{STAGE}"
        if (
            self.path == prefix
            or self.path.startswith(prefix + "/")
            or self.path.startswith(prefix + "?")
        ):
            self.path = self.path[len(prefix) :] or "/"
            super()._generic_handle()
            return
        # Drain the body so a keep-alive connection stays usable, then answer as API Gateway.
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"message": "Forbidden"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-ErrorType", "ForbiddenException")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = _generic_handle

    def log_message(self, format: str, *args: Any) -> None:
        if self.server_logging:
            super().log_message(format, *args)

    server_logging = True


def make_server(app: Chalice, host: str, port: int, *, quiet: bool = False) -> LocalDevServer:
    config = Config.create(
        chalice_stage="dev", app_name=app.app_name, lambda_timeout=60, lambda_memory_size=512
    )
    if not isinstance(app, LocalChalice):
        # What chalice.local.create_local_server does: give the app a thread-local
        # current_request, since the local server handles requests on several threads.
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    handler = type("Handler", (StageRequestHandler,), {"server_logging": not quiet})
    return LocalDevServer(app, config, host, port, handler_cls=handler)
