"""Many small writes from the runs of one batch, made as one request.

Each long run of a batch asks SQS to hold its message. Made one by one, that is a request
per run; gathered, it is about one per batch. Items wait at most `linger` seconds, and the
worker flushes whatever is left before its invocation ends (Lambda freezes the process after
that).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("nexus.worker")


class Coalescer[T]:
    """Gather items added from many threads; hand them to `send` together.

    `send` gets every item added since its last call, `linger` seconds after the first of
    them, or at flush(). With `linger` 0 every add() is sent at once, in the caller's thread.
    A failed `send` is logged and its items are dropped: what they record is advisory
    (counters, message visibility), never a run's outcome.
    """

    def __init__(self, send: Callable[[list[T]], None], linger: float) -> None:
        self._send = send
        self._linger = linger
        self._items: list[T] = []
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        # One send at a time, in the order the items were taken.
        self._sending = threading.Lock()

    def add(self, item: T) -> None:
        if self._linger <= 0:
            self._deliver([item])
            return
        with self._lock:
            self._items.append(item)
            if self._timer is None:
                self._timer = threading.Timer(self._linger, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._sending:
            with self._lock:
                items, self._items = self._items, []
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
            if items:
                self._deliver(items)

    def _deliver(self, items: list[T]) -> None:
        try:
            self._send(items)
        except Exception:
            log.exception("a coalesced write of %d item(s) failed; they are dropped", len(items))
