"""The work queue: one SQS message per run attempt, delayed until the attempt's time."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.models import Execution
from chalicelib.store.items import with_backoff
from chalicelib.timefmt import iso

# SQS refuses DelaySeconds above 15 minutes.
MAX_DELAY_SECONDS = 900
SEND_ATTEMPTS = 4
SEND_BATCH = 10
# SQS delays are whole seconds, so a message shows up as much as a second before its run and
# its worker waits for the run's time, a wait Lambda bills. A message sent when the time left
# to its run is within this of a whole number of seconds shows up at most this far from the
# run: before it (its worker waits that long) or after it (the run starts that much late).
# The tick holds its messages to such instants (Alignment): at most 50 ms of wait an
# invocation instead of half a second on average (bench/NOTES.md, cost).
ALIGN_TOLERANCE = 0.05


class SendFailed(Exception):
    """SQS did not take some messages after several tries; nothing was claimed for them."""


def message_for(execution: Execution, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a worker needs to find or create the attempt's record: the run's identity; and
    `job`, the job as its claim left it, if the run may start without reading it
    (chalicelib.snapshot)."""
    body: dict[str, Any] = {
        "job_id": execution.job_id,
        "scheduled_for": iso(execution.scheduled_for),
        "attempt": execution.attempt,
        "run_key": execution.run_key,
        "trigger": execution.trigger,
        "task_id": execution.task_id,
        "not_before": iso(execution.start_at),
    }
    if execution.schedule_rev is not None:
        body["schedule_rev"] = execution.schedule_rev
    if job is not None:
        body["job"] = job
    return body


def delay_for(execution: Execution, now: datetime) -> int:
    """Whole seconds of SQS delay: the message shows up at most a second before its time,
    and the worker waits out the fraction, so a run starts on its second; or, sent less than
    ALIGN_TOLERANCE before a whole number of seconds, at most that long after its time."""
    left = (execution.start_at - now).total_seconds()
    return max(0, min(MAX_DELAY_SECONDS, math.floor(left + ALIGN_TOLERANCE)))


def hold_for(left: float) -> float:
    """How long to hold a message whose run is `left` seconds away so that, sent then, it
    shows up within ALIGN_TOLERANCE of its run: 0 if it would already, or if its run is that
    close (or past)."""
    if left <= ALIGN_TOLERANCE:
        return 0.0
    fraction = left - math.floor(left)
    if fraction <= ALIGN_TOLERANCE or fraction >= 1 - ALIGN_TOLERANCE:
        return 0.0
    return fraction - ALIGN_TOLERANCE


def aligned(left: float) -> bool:
    """Whether a message sent `left` seconds before its run shows up within ALIGN_TOLERANCE
    of it."""
    bound = ALIGN_TOLERANCE + 1e-6  # a microsecond for the arithmetic of floats
    return -bound <= left <= MAX_DELAY_SECONDS + bound and abs(left - round(left)) <= bound


@dataclass(frozen=True)
class Alignment:
    """The tick's hold on its messages: each ten whose runs are at the same fraction of a
    second are sent when they will show up within ALIGN_TOLERANCE of their runs, if that is
    before `until` (a big tick sends its later messages at once: its capacity comes first);
    `clock` is the tick's, `sleep` what holds."""

    clock: Callable[[], datetime]
    sleep: Callable[[float], None]
    until: datetime

    def hold(self, start_at: datetime) -> datetime:
        """Hold a message for a run at `start_at`, if there is time; the instant to count its
        delay from."""
        now = self.clock()
        wait = hold_for((start_at - now).total_seconds())
        if wait and now + timedelta(seconds=wait) <= self.until:
            self.sleep(wait)
            now = self.clock()
        return now


class WorkQueue:
    def __init__(
        self, client: Any, queue_url: str | None, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self._sqs = client
        self._url = queue_url
        self._sleep = sleep

    @property
    def url(self) -> str | None:
        return self._url

    def send(
        self,
        executions: list[Execution],
        now: datetime,
        jobs: Mapping[str, dict[str, Any]] | None = None,
        alignment: Alignment | None = None,
    ) -> int:
        """Send one message per execution, ten to a call, each delayed until its time.

        Entries SQS reports in `Failed` are sent again (after a pause) up to SEND_ATTEMPTS
        times; then SendFailed. A message sent twice is harmless (the worker's start is
        conditional), a message not sent is not: the caller must not claim what failed.
        `jobs`: by execution id, the job its message carries (chalicelib.snapshot).
        `alignment`: hold each call until its messages show up close to their runs (the
        tick's), their delays counted from then; without it, from `now`. Returns how many
        messages were sent to show up within ALIGN_TOLERANCE of their runs.
        """
        if self._url is None:
            raise RuntimeError("NEXUS_QUEUE_URL is not set: no work queue to send runs to")
        jobs = jobs or {}
        if alignment is not None:
            # Runs due about now first (nothing to hold them for), then the others by their
            # fraction of a second: runs at the same fraction share their calls, and holds.
            soon = now + timedelta(seconds=ALIGN_TOLERANCE)
            executions = sorted(
                executions, key=lambda e: (e.start_at > soon, e.start_at.microsecond)
            )
        close = 0
        for start in range(0, len(executions), SEND_BATCH):
            batch = executions[start : start + SEND_BATCH]
            bodies = [json.dumps(message_for(e, jobs.get(e.id))) for e in batch]
            at = now
            if alignment is not None:
                one_fraction = len({e.start_at.microsecond for e in batch}) == 1
                at = alignment.hold(batch[0].start_at) if one_fraction else alignment.clock()
            close += sum(aligned((e.start_at - at).total_seconds()) for e in batch)
            self._send_batch(
                [(body, delay_for(e, at)) for body, e in zip(bodies, batch, strict=True)]
            )
        return close

    def send_bodies(self, bodies: list[tuple[str, int]]) -> None:
        if self._url is None:
            raise RuntimeError("NEXUS_QUEUE_URL is not set: no work queue to send runs to")
        for start in range(0, len(bodies), SEND_BATCH):
            self._send_batch(bodies[start : start + SEND_BATCH])

    def _send_batch(self, bodies: list[tuple[str, int]]) -> None:
        """One SendMessageBatch of at most ten (body, delay), its failed entries sent again."""
        pending = dict(enumerate(bodies))
        for attempt in range(SEND_ATTEMPTS):
            entries = [
                {"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
                for i, (body, delay) in pending.items()
            ]
            out = with_backoff(
                lambda e=entries: self._sqs.send_message_batch(  # type: ignore[misc]
                    QueueUrl=self._url, Entries=e
                ),
                what="sending runs",
            )
            failed = out.get("Failed") or []
            pending = {int(f["Id"]): pending[int(f["Id"])] for f in failed}
            if not pending:
                break
            if attempt == SEND_ATTEMPTS - 1:
                detail = ", ".join(f"{f['Id']}: {f.get('Message', f['Code'])}" for f in failed)
                raise SendFailed(f"SQS refused {len(failed)} messages: {detail}")
            self._sleep(0.05 * (2**attempt) * (1 + random.random()))

    def requeue(self, body: str, delay_seconds: float) -> None:
        """Send a message again to come back after `delay_seconds` (at most SQS's 900)."""
        delay = max(0, min(MAX_DELAY_SECONDS, math.ceil(delay_seconds)))
        self.send_bodies([(body, delay)])
