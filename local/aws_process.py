"""The embedded AWS (moto's server) in a process of its own, tied to the process that started it.

Run in the same process as the API, the tick and the workers, moto's request handling and
ours share one interpreter lock: measured with py-spy under the start-precision benchmark,
that process spent most of its samples in moto's request dispatch while runs queued up. In
a child process moto gets a core of its own.

Three of moto's costs grow with what it holds and are cut here, each measured under that
benchmark and each leaving moto's answers as they were (tests/unit/test_embedded_aws.py):
see cache_backend_names, cheap_retention_check and one_clock_read_per_scan.

The child prints `listening HOST:PORT` on its stdout once it answers, and ends when its stdin
closes: when the parent closes it, or when the parent dies for any reason, so no orphaned
server is left behind. It ignores Ctrl-C (the terminal sends it to both processes), so the
parent can still take its last snapshot of the table while shutting down.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

READY = "listening "


def cache_backend_names() -> None:
    """moto's server lists its own package folder (a listdir and ~200 stats) on every request,
    inside a lock that every request takes: under the precision benchmark, half the server's
    samples waited on that lock. The folder does not change while it runs; list it once."""
    from moto import backends

    names = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(names)


def cheap_retention_check() -> None:
    """For each message it returns, moto's ReceiveMessage checks the queue's retention period
    by computing every attribute of the queue, counts of its messages included: work in
    proportion to the queue's depth, per message. With a minute of runs waiting in the queue
    as delayed messages (600 here), a receive of 10 took 630 ms. The period is read from the
    queue itself instead; moto's own check stays for a queue that lacks the field."""
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend

    original = SQSBackend.is_message_valid_based_on_retention_period

    def is_valid(self: Any, queue_name: str, message: Any) -> bool:
        period = getattr(self.get_queue(queue_name), "message_retention_period", None)
        if period is None:
            return bool(original(self, queue_name, message))
        return int(period) + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = is_valid  # type: ignore[method-assign]


def one_clock_read_per_scan() -> None:
    """moto finds a queue's visible messages by asking each message whether it is visible and
    not delayed, and each answer reads the clock through datetime: with 600 delayed messages
    an empty receive took 20 ms, and the local event source asks ten times a second. The
    same test, with the clock read once per scan."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Message, Queue

    probe = Message("probe", "")
    if not (hasattr(probe, "visible_at") and hasattr(probe, "delayed_until")):
        return  # a moto that keeps these differently: leave it as it is

    def messages(self: Any) -> list[Any]:
        now = unix_time_millis()
        return [m for m in self._messages if m.visible_at < now and not now < m.delayed_until]

    Queue.messages = property(messages)  # type: ignore[method-assign,assignment]


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from moto.server import ThreadedMotoServer

    # moto's server logs every AWS call it answers; the API's own request log is enough.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    cache_backend_names()
    cheap_retention_check()
    one_clock_read_per_scan()
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    print(f"{READY}{bound_host}:{bound_port}", flush=True)
    # Whatever moto prints from now on goes to the parent's stderr, not into a pipe that
    # nobody reads.
    os.dup2(2, 1)
    try:
        sys.stdin.read()
    finally:
        server.stop()
    return 0


class EmbeddedAws:
    """Start the child; `endpoint` is its URL once start() returns."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._proc: subprocess.Popen[str] | None = None
        self.endpoint = ""

    def start(self) -> EmbeddedAws:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), self._host, str(self._port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith(READY):
            self.stop()
            raise RuntimeError(f"the embedded AWS did not start (it printed {line!r})")
        self.endpoint = f"http://{line[len(READY) :].strip()}"
        return self

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
