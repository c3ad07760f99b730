"""A table's change stream handed to a handler when a test asks, as Lambda's event source
hands it to the stream handler: in order, in batches of up to 100, and a batch the handler
fails on given again, the same batch, before anything after it.

moto's in-process mock does not route DynamoDB Streams calls (its server does: make run reads
the stream through them, local/realtime.py), so the records are read from moto's shard, in
the form Lambda delivers them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

BATCH_SIZE = 100


class StreamSource:
    def __init__(self, table_name: str, region: str = "us-east-1") -> None:
        table = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].tables[table_name]
        assert table.stream_shard is not None, f"{table_name} has no change stream"
        self._shard = table.stream_shard
        self._next = self._shard.starting_sequence_number  # the first record not handed over
        self._failed: list[dict[str, Any]] | None = None  # a batch to give again first

    def drain(self, handler: Callable[[list[dict[str, Any]]], Any]) -> int:
        """Hand every record not yet handled to `handler`; how many. If it raises, the batch
        it failed on is given again at the next call (and the exception goes to the caller)."""
        handled = 0
        while True:
            batch = self._failed if self._failed is not None else self._next_batch()
            if not batch:
                return handled
            self._failed = batch
            handler(batch)
            self._failed = None
            self._next = int(batch[-1]["dynamodb"]["SequenceNumber"]) + 1
            handled += len(batch)

    def _next_batch(self) -> list[dict[str, Any]]:
        start = max(self._next - self._shard.starting_sequence_number, 0)
        records = self._shard.items[start : start + BATCH_SIZE]
        return [json.loads(json.dumps(r.record, default=str)) for r in records]
