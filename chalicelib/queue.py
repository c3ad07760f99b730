"""The work queue: one SQS message per run attempt."""

from __future__ import annotations

import json
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
    }


class WorkQueue:
    def __init__(self, client: Any, queue_url: str | None) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, execution: Execution, delay_seconds: int = 0) -> None:
        if self._url is None:
            raise RuntimeError("NEXUS_QUEUE_URL is not set: no work queue to send runs to")
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(message_for(execution)),
            DelaySeconds=max(0, min(MAX_DELAY_SECONDS, delay_seconds)),
        )
