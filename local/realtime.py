"""make run's real-time updates: the WebSocket API and the stream that feeds it, locally.

Chalice's local server has no WebSocket support, so this serves what API Gateway serves,
around the very handlers deployed (app.websocket_connect / _message / _disconnect,
app.table_changes), with events shaped as API Gateway and Lambda shape them:

- `WebSocketEndpoint`: a WebSocket server (the `websockets` library) on HOST:WS_PORT. Each
  handshake is a `$connect` event (a status other than 200 refuses it, with that status),
  each text frame a `$default` event, each close a `$disconnect` event.
- the management API (`POST/DELETE/GET /@connections/{id}`, what post_to_connection calls),
  on 127.0.0.1 only: the handlers send through boto3's apigatewaymanagementapi client to it,
  as they do deployed, and an unknown connection is a 410 GoneException.
- `StreamFeed`: reads the embedded table's change stream (moto's DynamoDB Streams) from its
  latest record and hands each batch to the stream handler (which counts the runs in the stats
  and sends the events), as Lambda's event source does: a failed batch again, until taken.

Neither the query string (it carries the key) nor a message is ever logged. make run runs
both in a process of their own (`RealtimeProcess`), as on AWS they are functions of their own.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from local.engine import LambdaContext

log = logging.getLogger("nexus.local.realtime")
# The WebSocket library's own log: warnings only (its request lines would show the key).
QUIET = logging.getLogger("websockets.nexus")
QUIET.setLevel(logging.WARNING)

API_ID = "local"
STAGE = "api"
# How often the feed asks the stream for new records when the last read found none.
POLL_SECONDS = 0.05
RETRY_PAUSE_SECONDS = 1.0
BATCH_SIZE = 100
# The longest pause between tries of a batch the stream handler fails on.
HANDLER_BACKOFF_SECONDS = 5.0


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


def _request_time() -> tuple[str, int]:
    now = datetime.now(UTC)
    return now.strftime("%d/%b/%Y:%H:%M:%S +0000"), int(now.timestamp() * 1000)


class WebSocketEndpoint:
    """The WebSocket API on `host:port`, and its management API on 127.0.0.1."""

    def __init__(
        self,
        app_module: Any,
        host: str,
        port: int,
        *,
        public_host: str | None = None,
    ) -> None:
        self._app = app_module
        self._host = host
        self._port = port
        self._public_host = public_host or host
        self._connections: dict[str, ServerConnection] = {}
        self._ids: dict[int, str] = {}
        self._lock = threading.Lock()
        self._server: Server | None = None
        self._management: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- where ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.socket.getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self._public_host}:{self.port}"

    @property
    def callback_url(self) -> str:
        assert self._management is not None
        return f"http://127.0.0.1:{self._management.server_address[1]}"

    def start(self) -> WebSocketEndpoint:
        self._server = serve(
            self._session,
            self._host,
            self._port,
            process_request=self._handshake,
            logger=QUIET,
            server_header=None,
        )
        self._management = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), _management_handler(self)
        )
        self._management.daemon_threads = True
        for target, name in (
            (self._server.serve_forever, "nexus-local-websocket"),
            (self._management.serve_forever, "nexus-local-connections-api"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._management is not None:
            self._management.shutdown()
            self._management.server_close()
        for thread in self._threads:
            thread.join(5)

    # -- API Gateway's events ------------------------------------------------------------

    def _event(self, route: str, kind: str, connection_id: str, **extra: Any) -> dict[str, Any]:
        request_time, epoch = _request_time()
        return {
            "requestContext": {
                "routeKey": route,
                "eventType": kind,
                "extendedRequestId": base64.b64encode(os.urandom(9)).decode(),
                "requestTime": request_time,
                "messageDirection": "IN",
                "stage": STAGE,
                "connectedAt": epoch,
                "requestTimeEpoch": epoch,
                "requestId": base64.b64encode(os.urandom(9)).decode(),
                "domainName": f"{self._public_host}:{self.port}",
                "connectionId": connection_id,
                "apiId": API_ID,
            },
            "isBase64Encoded": False,
            **extra,
        }

    def _call(self, handler: Callable[..., Any], name: str, event: dict[str, Any]) -> int:
        try:
            out = handler(event, LambdaContext(f"nexus-local-{name}", _region()))
        except Exception:
            # A handler that raises is a Lambda error: API Gateway answers 500 (refuses at
            # connect). Logged without the event, which may carry the key.
            log.exception("%s failed", name)
            return 500
        return int((out or {}).get("statusCode", 200))

    def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        connection_id = base64.b64encode(os.urandom(12)).decode()
        parsed = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
        headers = {k: v for k, v in request.headers.raw_items()}
        event = self._event(
            "$connect",
            "CONNECT",
            connection_id,
            headers=headers,
            multiValueHeaders={k: [v] for k, v in headers.items()},
            queryStringParameters=query or None,
        )
        status = self._call(self._app.websocket_connect, "websocket_connect", event)
        if status != 200:
            reason = {401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}
            body = json.dumps({"message": reason.get(status, "Refused")}).encode()
            return Response(
                status,
                reason.get(status, "Refused"),
                Headers([("Content-Type", "application/json"), ("Content-Length", str(len(body)))]),
                body,
            )
        with self._lock:
            self._connections[connection_id] = connection
            self._ids[id(connection)] = connection_id
        return None

    def _session(self, connection: ServerConnection) -> None:
        with self._lock:
            connection_id = self._ids.get(id(connection))
        if connection_id is None:
            return
        try:
            for message in connection:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                event = self._event("$default", "MESSAGE", connection_id, body=text)
                self._call(self._app.websocket_message, "websocket_message", event)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.pop(connection_id, None)
                self._ids.pop(id(connection), None)
            event = self._event("$disconnect", "DISCONNECT", connection_id)
            self._call(self._app.websocket_disconnect, "websocket_disconnect", event)

    # -- the management API ----------------------------------------------------------------

    def connection(self, connection_id: str) -> ServerConnection | None:
        with self._lock:
            return self._connections.get(connection_id)


def _management_handler(endpoint: WebSocketEndpoint) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the connection ids and bodies stay out of the log

        def _target(self) -> ServerConnection | None:
            """The connection the path names; None once a 404 or a 410 has been answered."""
            path = urllib.parse.urlsplit(self.path).path
            prefix = "/@connections/"
            if not path.startswith(prefix):
                self._answer(404, {"message": "Not Found"})
                return None
            conn = endpoint.connection(urllib.parse.unquote(path[len(prefix) :]))
            if conn is None:
                self._gone()
            return conn

        def _answer(self, status: int, body: dict[str, Any] | None, error: str = "") -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _gone(self) -> None:
            self._answer(410, {"message": "Gone"}, "GoneException")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            conn = self._target()
            if conn is None:
                return
            try:
                conn.send(data.decode("utf-8"))
            except ConnectionClosed:
                return self._gone()
            self._answer(200, None)

        def do_DELETE(self) -> None:
            conn = self._target()
            if conn is None:
                return
            conn.close(code=1008, reason="closed by the server")
            self._answer(204, None)

        def do_GET(self) -> None:
            conn = self._target()
            if conn is None:
                return
            peer = conn.remote_address
            self._answer(
                200,
                {
                    "ConnectedAt": datetime.now(UTC).isoformat(),
                    "Identity": {"SourceIp": peer[0] if peer else "127.0.0.1"},
                    "LastActiveAt": datetime.now(UTC).isoformat(),
                },
            )

    return Handler


class StreamFeed:
    """The table's change stream to the stream handler, as Lambda's event source feeds it."""

    def __init__(
        self, handler: Callable[..., Any], dynamodb: Any, streams: Any, table: str
    ) -> None:
        self._handler = handler
        self._dynamodb = dynamodb
        self._streams = streams
        self._table = table
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexus-local-stream", daemon=True)
        self._arn = ""
        self._shard = ""
        self._iterator: str | None = None
        self._last_sequence: str | None = None

    def start(self) -> StreamFeed:
        """From the stream's latest record: what was written before (a restored table) is
        not news."""
        self._arn = self._dynamodb.describe_table(TableName=self._table)["Table"]["LatestStreamArn"]
        shards = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        self._shard = shards[0]["ShardId"]
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=self._arn, ShardId=self._shard, ShardIteratorType="LATEST"
        )["ShardIterator"]
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Hand what the stream holds to the handler (make run stops the engine first: nothing
        new comes, and the stats count every run recorded), then stop; at most `timeout`."""
        self._draining.set()
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join(1.0)

    def _fresh_iterator(self) -> str:
        if self._last_sequence is None:
            kind: dict[str, str] = {"ShardIteratorType": "LATEST"}
        else:
            kind = {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "SequenceNumber": self._last_sequence,
            }
        out = self._streams.get_shard_iterator(StreamArn=self._arn, ShardId=self._shard, **kind)
        return str(out["ShardIterator"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._iterator is None:
                    self._iterator = self._fresh_iterator()
                out = self._streams.get_records(ShardIterator=self._iterator, Limit=BATCH_SIZE)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("reading the table's change stream failed")
                self._iterator = None
                self._stop.wait(RETRY_PAUSE_SECONDS)
                continue
            self._iterator = out.get("NextShardIterator")
            records = out.get("Records") or []
            if not records:
                if self._draining.is_set():
                    return
                self._stop.wait(POLL_SECONDS)
                continue
            self._last_sequence = records[-1]["dynamodb"]["SequenceNumber"]
            self._invoke([lambda_record(r, self._arn) for r in records])

    def _invoke(self, records: list[dict[str, Any]]) -> None:
        """As Lambda's event source does, a batch the handler fails on is given again, the
        same batch, until the handler takes it (with backoff): nothing after it is handed
        over before, so no run goes uncounted (store.counters)."""
        pause = 0.1
        while True:
            try:
                context = LambdaContext("nexus-local-table_changes", _region())
                self._handler({"Records": records}, context)
                return
            except Exception:
                log.exception("the stream handler failed on a batch of %d", len(records))
                if self._stop.wait(pause):
                    return
                pause = min(pause * 2, HANDLER_BACKOFF_SECONDS)


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    """A GetRecords record as Lambda delivers it: the creation time in epoch seconds (boto3
    parsed it into a datetime), and the source's ARN."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": change, "eventSourceARN": stream_arn}


# -- in a process of its own ----------------------------------------------------------------

READY = "realtime "


def main(argv: list[str]) -> int:
    """`python -m local.realtime HOST WS_PORT PUBLIC_HOST`: the WebSocket endpoint and the
    stream feed, with the app's handlers, until stdin closes (make run closes it, or dies).

    On AWS the stream handler and the WebSocket handlers are Lambda functions of their own;
    here they get a process of their own, so that the fan-out does not wait for the API's and
    the workers' threads (one interpreter lock) and they do not wait for it. The environment
    (the embedded AWS's endpoint, the table, the queues) is make run's."""
    host, port, public_host = argv[0], int(argv[1]), argv[2]
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # make run stops this one after its engine
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import app as app_module
    from chalicelib.aws import client
    from chalicelib.config import get_settings

    sockets = WebSocketEndpoint(app_module, host, port, public_host=public_host).start()
    os.environ["NEXUS_WS_CALLBACK_URL"] = sockets.callback_url
    feed = StreamFeed(
        app_module.table_changes,
        client("dynamodb"),
        client("dynamodbstreams"),
        get_settings().table_name,
    ).start()
    print(f"{READY}{sockets.url}", flush=True)
    try:
        for _ in sys.stdin:
            pass
    finally:
        feed.stop()
        sockets.stop()
    return 0


class RealtimeProcess:
    """The child process of `main`; `url` is its WebSocket URL once start() returns."""

    def __init__(self, host: str, port: int, public_host: str) -> None:
        self._args = [host, str(port), public_host]
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> RealtimeProcess:
        root = Path(__file__).resolve().parent.parent
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "local.realtime", *self._args],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith(READY):
            self.stop()
            raise RuntimeError(f"the real-time endpoint did not start (it printed {line!r})")
        self.url = line[len(READY) :].strip()
        # What it prints from now on (its warnings) goes to make run's output.
        threading.Thread(
            target=lambda: [print(text, end="", flush=True) for text in self._proc.stdout or ()],
            daemon=True,
        ).start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Closes its stdin: it stops its feed, then its clients (each disconnect removes its
        connection's record), and ends."""
        if self._proc is None:
            return
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
