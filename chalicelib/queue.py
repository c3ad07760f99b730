"""The work queue: one SQS message per run attempt."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from chalicelib.models import Execution
from chalicelib.store import run_sort_key
from chalicelib.timefmt import iso

# SQS refuses DelaySeconds above 15 minutes.
MAX_DELAY_SECONDS = 900


def message_for(execution: Execution) -> dict[str, Any]:
    """What a worker needs to find the execution record: the run's identity and attempt."""
    return {
        "job_id": execution.job_id,
        "scheduled_for": iso(execution.scheduled_for),
        "attempt": execution.attempt,
        "run_key": run_sort_key(execution.scheduled_for, execution.attempt),
        "task_id": execution.task_id,
        "not_before": iso(execution.start_at),
    }


def delay_for(execution: Execution, now: datetime) -> int:
    """Whole seconds of SQS delay: the message shows up at most a second before its time,
    and the worker waits out the fraction, so a run starts on its second."""
    return max(0, min(MAX_DELAY_SECONDS, math.floor((execution.start_at - now).total_seconds())))


class WorkQueue:
    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, executions: list[Execution], now: datetime) -> None:
        """Send one message per execution, ten to a call, each delayed until its time."""
        if self._url is None:
            raise RuntimeError("NEXUS_QUEUE_URL is not set: no work queue to send runs to")
        for start in range(0, len(executions), 10):
            batch = executions[start : start + 10]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(message_for(e)),
                    "DelaySeconds": delay_for(e, now),
                }
                for i, e in enumerate(batch)
            ]
            out = self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            if out.get("Failed"):
                failed = ", ".join(
                    f"{f['Id']}: {f.get('Message', f['Code'])}" for f in out["Failed"]
                )
                raise RuntimeError(f"SQS refused {len(out['Failed'])} messages: {failed}")
