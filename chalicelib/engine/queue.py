"""The work queue: one SQS message per run attempt, delayed until the attempt's time."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from chalicelib.models import Execution
from chalicelib.store.items import with_backoff
from chalicelib.timefmt import iso

# SQS refuses DelaySeconds above 15 minutes.
MAX_DELAY_SECONDS = 900
SEND_ATTEMPTS = 4


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
    and the worker waits out the fraction, so a run starts on its second."""
    return max(0, min(MAX_DELAY_SECONDS, math.floor((execution.start_at - now).total_seconds())))


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
    ) -> None:
        """Send one message per execution, ten to a call, each delayed until its time.

        Entries SQS reports in `Failed` are sent again (after a pause) up to SEND_ATTEMPTS
        times; then SendFailed. A message sent twice is harmless (the worker's start is
        conditional), a message not sent is not: the caller must not claim what failed.
        `jobs`: by execution id, the job its message carries (chalicelib.snapshot).
        """
        jobs = jobs or {}
        bodies = [
            (json.dumps(message_for(e, jobs.get(e.id))), delay_for(e, now)) for e in executions
        ]
        self.send_bodies(bodies)

    def send_bodies(self, bodies: list[tuple[str, int]]) -> None:
        if self._url is None:
            raise RuntimeError("NEXUS_QUEUE_URL is not set: no work queue to send runs to")
        for start in range(0, len(bodies), 10):
            pending = dict(enumerate(bodies[start : start + 10]))
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
