"""An SQS batch, as Lambda hands it to the worker: run its messages at once, then settle
each message with the queue.

Chalice cannot ask Lambda for partial batch responses, so the handler settles messages
itself: a message whose run is done is deleted; one that must come back later (its run is
not due yet, or a live worker holds it) is sent again with a delay, and counts as done; only
a message whose handling failed is left for SQS to deliver again, and then the invocation
fails (after deleting the rest), which is what the worker-errors alarm counts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chalicelib.coalesce import Coalescer
from chalicelib.engine.queue import WorkQueue
from chalicelib.engine.worker import Later, Worker, run_fields

log = logging.getLogger("nexus.worker")

# SQS's longest visibility timeout: 12 hours.
MAX_VISIBILITY = 43_200
# How long message holds of a batch are gathered into one request.
COALESCE_SECONDS = 1.0


class BatchIncomplete(Exception):
    """Some messages of the batch failed and must come back; the others were settled."""


@dataclass(frozen=True)
class Record:
    body: str
    receipt_handle: str


def handle_batch(
    records: Sequence[Record],
    worker: Worker,
    queue: WorkQueue,
    sqs: Any,
    queue_url: str | None,
    remaining: Callable[[], float] | None = None,
) -> None:
    """Process a batch; return if every message is settled, raise BatchIncomplete if not."""
    if not records:
        return
    finished: set[str] = set()

    def send_holds(holds: list[tuple[Record, float]]) -> None:
        # One request for the batch; the latest hold of a message wins. The wait is counted
        # from now, so a hold that waited here for its neighbours loses nothing.
        latest = {
            record.receipt_handle: until
            for record, until in holds
            if record.receipt_handle not in finished
        }
        if not latest:
            return
        entries = [
            {
                "Id": str(i),
                "ReceiptHandle": handle,
                "VisibilityTimeout": max(
                    1, min(MAX_VISIBILITY, math.ceil(until - time.monotonic()))
                ),
            }
            for i, (handle, until) in enumerate(latest.items())
        ]
        out = sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
        for failure in out.get("Failed") or []:
            # The queue's own visibility timeout still brings the message back.
            log.warning("could not hold a message: %s", failure)

    holds: Coalescer[tuple[Record, float]] = Coalescer(send_holds, COALESCE_SECONDS)

    def handle(record: Record) -> None:
        def hold(seconds: float) -> None:
            holds.add((record, time.monotonic() + seconds))

        try:
            verdict = worker.process(record.body, hold, remaining)
            if isinstance(verdict, Later):
                queue.requeue(record.body, verdict.seconds)
        except Exception:
            log.exception(
                "could not process a run; it will be delivered again", extra=run_fields(record.body)
            )
            return
        finished.add(record.receipt_handle)

    try:
        with ThreadPoolExecutor(max_workers=len(records)) as pool:
            list(pool.map(handle, records))
    finally:
        holds.flush()
    handled = [r for r in records if r.receipt_handle in finished]
    if len(handled) == len(records):
        return  # Lambda deletes the whole batch
    if handled:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": r.receipt_handle} for i, r in enumerate(handled)
            ],
        )
    raise BatchIncomplete(f"{len(records) - len(handled)} of {len(records)} runs failed")
