"""The embedded AWS (moto's server) in a process of its own, tied to the process that started it.

Run in the same process as the API, the tick and the workers, moto's request handling and
ours share one interpreter lock: measured with py-spy under the start-precision benchmark,
that process spent most of its samples in moto's request dispatch while runs queued up. In
a child process moto gets a core of its own.

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

READY = "listening "


def cache_backend_names() -> None:
    """moto's server lists its own package folder (a listdir and ~200 stats) on every request,
    inside a lock that every request takes: under the precision benchmark, half the server's
    samples waited on that lock. The folder does not change while it runs; list it once."""
    from moto import backends

    names = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(names)


def main(argv: list[str]) -> int:
    host, port = argv[0], int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from moto.server import ThreadedMotoServer

    # moto's server logs every AWS call it answers; the API's own request log is enough.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    cache_backend_names()
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
