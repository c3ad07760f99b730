"""`make run`: the whole system on this machine.

An embedded AWS (moto's ThreadedMotoServer, on 127.0.0.1 only) holds the table and the
queues; the API is served at http://HOST:PORT/api/v1 through Chalice's own local server.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "0")))
    parser.add_argument("--quiet", action="store_true", help="no line per request")
    args = parser.parse_args(argv)

    from moto.server import ThreadedMotoServer

    # moto's server logs every AWS call it answers; the API's own request log is enough.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=args.moto_port, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "NEXUS_AWS_ENDPOINT_URL": endpoint,
            "NEXUS_TABLE": os.environ.get("NEXUS_TABLE", "nexus-local"),
        }
    )
    os.environ.pop("AWS_PROFILE", None)

    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.resources import ensure_queue, ensure_table

    ensure_table(client("dynamodb"), os.environ["NEXUS_TABLE"])
    os.environ["NEXUS_QUEUE_URL"] = ensure_queue(client("sqs"), "nexus-local-work")
    get_settings.cache_clear()  # read again, now that the queue exists

    from app import app
    from local.gateway import make_server

    server = make_server(app, args.host, args.port, quiet=args.quiet)
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    print(
        f"NEXUS API on http://{args.host}:{args.port}/api/v1 (embedded AWS at {endpoint})",
        flush=True,
    )
    server.serve_forever()
    moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
