"""`make run`: the whole system on this machine.

An embedded AWS (moto's server, on 127.0.0.1 only, in a child process: local/aws_process.py)
holds the table and the queues; the API is served at http://HOST:PORT/api/v1 through
Chalice's own local server.
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

# Worker invocations at once. On AWS, Lambda adds them as the queue needs (up to the account's
# concurrency); here a fixed number must cover the busiest second: a batch holds its slot
# until its last run is over, and each run of it waits for its own second first.
WORKER_CONCURRENCY = 20
# What stops make run gracefully: a process manager's or CI's SIGTERM, Ctrl-C, a closed
# terminal.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# How long the API's requests under way get to finish once it is told to stop.
DRAIN_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="the API's port (default 8000; 0: any free port, named in the banner)",
    )
    parser.add_argument(
        "--ws-port",
        type=int,
        default=int(os.environ["WS_PORT"]) if os.environ.get("WS_PORT") else None,
        help="the WebSocket endpoint of real-time updates (default: the API's port + 1; 0: "
        "any free port)",
    )
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", "0")))
    parser.add_argument("--quiet", action="store_true", help="no line per request")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("NEXUS_STATE_DIR") or ROOT / ".local" / "state"),
        help="where the table is kept between runs (default .local/state)",
    )
    parser.add_argument(
        "--no-engine", action="store_true", help="serve the API only: no tick, no queue workers"
    )
    parser.add_argument(
        "--chaos",
        default=os.environ.get("NEXUS_CHAOS") or None,
        metavar="SEED[,NAME=VALUE...]",
        help="make chaos only: inject faults (local/chaos.py); never on by default",
    )
    args = parser.parse_args(argv)

    from local.aws_process import EmbeddedAws

    # The tick and the workers log their failures rather than raise them: show them, timed.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    moto = EmbeddedAws("127.0.0.1", args.moto_port).start()
    endpoint = moto.endpoint
    queue_name = "nexus-local-work"
    dlq_name = f"{queue_name}-dlq"
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "NEXUS_AWS_ENDPOINT_URL": endpoint,
            "NEXUS_TABLE": os.environ.get("NEXUS_TABLE", "nexus-local"),
            "NEXUS_QUEUE_NAME": queue_name,
            "NEXUS_DLQ_NAME": dlq_name,
        }
    )
    os.environ.pop("AWS_PROFILE", None)

    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.engine import SqsPoller, TickLoop
    from local.resources import ensure_queue, ensure_table
    from local.state import requeue_unfinished, restore, state_file

    try:
        table = os.environ["NEXUS_TABLE"]
        dynamodb, sqs = client("dynamodb"), client("sqs")
        chaos = None
        if args.chaos:
            from local.chaos import Chaos

            chaos = Chaos.from_spec(args.chaos, args.state_dir).install(dynamodb, sqs)
        ensure_table(dynamodb, table)
        queue_url = ensure_queue(sqs, queue_name)
        dlq_url = sqs.get_queue_url(QueueName=dlq_name)["QueueUrl"]
        os.environ["NEXUS_QUEUE_URL"] = queue_url
        os.environ["NEXUS_DLQ_URL"] = dlq_url
        get_settings.cache_clear()  # read again, now that the queues exist

        restored = restore(dynamodb, table, args.state_dir)
        # From now on the embedded AWS keeps the table's file itself: it journals every write
        # before answering it, and saves the table as it ends, however this process ends.
        moto.save_on_exit(table, state_file(args.state_dir, table))
        # The previous run's messages went with its embedded AWS. Without the engine nothing
        # would take them, so they are sent on the next start that has one.
        requeued = 0 if args.no_engine else requeue_unfinished(dynamodb, sqs, table, queue_url)

        import app as app_module
        from local.gateway import make_server

        missing = [h for h in ("tick", "worker", "dead_letter") if not hasattr(app_module, h)]
        if missing and not args.no_engine:
            print(f"app.py has no {', '.join(missing)} handler: run with --no-engine", flush=True)
            return 2

        from local.keys import bootstrap_admin_key

        try:
            admin_key, key_origin = bootstrap_admin_key(app_module.keys(), args.state_dir)
        except ValueError as exc:
            print(f"NEXUS_ADMIN_KEY cannot be used: {exc}", flush=True)
            return 2
        server = make_server(app_module.app, args.host, args.port, quiet=args.quiet)
        # --port 0: the port the system chose, which the banner then names.
        port = int(server.server.server_address[1])
        # Real-time updates: the WebSocket API and the change stream that feeds it, in a
        # process of their own (local/realtime.py).
        from local.realtime import RealtimeProcess

        public_host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
        ws_port = (port + 1 if args.port else 0) if args.ws_port is None else args.ws_port
        try:
            sockets = RealtimeProcess(args.host, ws_port, public_host).start()
        except RuntimeError as exc:
            print(f"{exc}: is port {ws_port} in use? WS_PORT=... picks another", flush=True)
            return 2
        os.environ["NEXUS_WEBSOCKET_URL"] = sockets.url
        tick: TickLoop | None = None
        pollers: list[SqsPoller] = []
        if not args.no_engine:
            tick = TickLoop(app_module.tick, function_name="nexus-local-tick", chaos=chaos).start()
            pollers = [
                SqsPoller(
                    app_module.worker,
                    queue_url,
                    sqs=sqs,
                    concurrency=WORKER_CONCURRENCY,
                    function_name="nexus-local-worker",
                    chaos=chaos,
                ),
                SqsPoller(
                    app_module.dead_letter,
                    dlq_url,
                    sqs=sqs,
                    concurrency=1,
                    poll_seconds=1.0,
                    function_name="nexus-local-dead_letter",
                    chaos=chaos,
                ),
            ]
            for poller in pollers:
                poller.start()

        def shutdown(*_: object) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        for signum in STOP_SIGNALS:
            # One ignored from the start stays so: `nohup make run` outlives its terminal.
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, shutdown)
        print(
            f"NEXUS API on http://{args.host}:{port}/api/v1 (embedded AWS at {endpoint})",
            flush=True,
        )
        print(
            f"Dashboard on http://{public_host}:{port}/api/ui; real-time updates on {sockets.url}",
            flush=True,
        )
        if key_origin.startswith("from"):
            print(f"Admin API key: {key_origin}", flush=True)
        else:
            print(f"Admin API key: {admin_key} ({key_origin})", flush=True)
        requeue_note = (
            "engine off" if args.no_engine else f"{requeued} unfinished runs queued again"
        )
        print(f"State in {args.state_dir}: {restored} items restored ({requeue_note})", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server.server_close()
            # The requests under way end first (new ones are refused), then the engine, then
            # the embedded AWS, which saves the table as it ends (each write is journaled
            # before it is answered in any case). It ignores the stop signals, even sent to
            # the whole process group, and ends only after the rest (moto.stop below).
            unfinished = server.drain(DRAIN_SECONDS)
            if unfinished:
                logging.warning("%d requests still running after %.0f s", unfinished, DRAIN_SECONDS)
            # Workers and tick first, so the last save comes after their last write. They are
            # all told at once, so their long polls run out together, not one after another.
            engine: list[SqsPoller | TickLoop] = [*pollers, *([tick] if tick else [])]
            for part in engine:
                part.request_stop()
            for part in engine:
                part.stop()
            # Then the events of their last writes, and the clients (each disconnect
            # removes its connection's record before the last save).
            sockets.stop()
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
