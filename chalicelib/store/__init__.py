"""The repository: one DynamoDB table, one store per aggregate, each owning its keys.

- `items`: the key layout, item <-> model mapping, and the AWS error handling they share;
- `jobs.JobStore`: job items, the list and due indexes, the job's run slots;
- `runs.RunStore`: run attempts and their final records;
- `counters.Counters`: the statistics shards;
- `keys.KeyStore`: API keys (hashes, never secrets);
- `audit.AuditLog`: who changed what (written in the change's own transaction);
- `ratelimit.RateCounter`: per-key request counts;
- `connections.ConnectionStore`: WebSocket listeners (realtime);
- `backfills.BackfillStore`: backfills of past occurrences (engine.backfill);
- `calendars.CalendarStore`: holiday calendars, and which jobs name them;
- `watches.WatchStore`: the dead-man's switch's checks and transitions (engine.watch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.store.audit import AuditLog
from chalicelib.store.backfills import BackfillStore
from chalicelib.store.calendars import CalendarStore
from chalicelib.store.connections import ConnectionStore
from chalicelib.store.counters import COUNTER_SHARDS, Counters
from chalicelib.store.items import (
    DUE_INDEX,
    LIST_INDEX,
    execution_from_item,
    from_item,
    job_item,
    run_key,
)
from chalicelib.store.jobs import DueEntry, JobStore
from chalicelib.store.keys import KeyStore
from chalicelib.store.ratelimit import RateCounter
from chalicelib.store.runs import FinalWrite, RunStore
from chalicelib.store.watches import WatchStore

__all__ = [
    "COUNTER_SHARDS",
    "AuditLog",
    "BackfillStore",
    "CalendarStore",
    "ConnectionStore",
    "Counters",
    "DueEntry",
    "FinalWrite",
    "JobStore",
    "KeyStore",
    "RateCounter",
    "RunStore",
    "Store",
    "WatchStore",
    "execution_from_item",
    "from_item",
    "job_item",
    "run_key",
    "table_definition",
]


@dataclass(frozen=True)
class Store:
    """The stores over one table and one client."""

    jobs: JobStore
    runs: RunStore
    counters: Counters
    keys: KeyStore
    audit: AuditLog
    rates: RateCounter
    connections: ConnectionStore
    backfills: BackfillStore
    calendars: CalendarStore
    watches: WatchStore
    table_name: str

    @classmethod
    def over(cls, client: Any, table_name: str) -> Store:
        counters = Counters(client, table_name)
        return cls(
            jobs=JobStore(client, table_name, counters),
            runs=RunStore(client, table_name, counters),
            counters=counters,
            keys=KeyStore(client, table_name),
            audit=AuditLog(client, table_name),
            rates=RateCounter(client, table_name),
            connections=ConnectionStore(client, table_name),
            backfills=BackfillStore(client, table_name),
            calendars=CalendarStore(client, table_name),
            watches=WatchStore(client, table_name, counters),
            table_name=table_name,
        )


def table_definition(table_name: str) -> dict[str, Any]:
    """The table as `create_table` takes it: used locally and in tests (infra/ mirrors it)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        # The change stream the real-time events come from (chalicelib.realtime).
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": "S"}
            for name in ("pk", "sk", "list_pk", "list_sk", "due_pk", "due_sk")
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": "list_pk", "KeyType": "HASH"},
                    {"AttributeName": "list_sk", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["is_active", "job_type", "tags"],
                },
            },
            {
                "IndexName": DUE_INDEX,
                "KeySchema": [
                    {"AttributeName": "due_pk", "KeyType": "HASH"},
                    {"AttributeName": "due_sk", "KeyType": "RANGE"},
                ],
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": ["next_run_at", "priority"],
                },
            },
        ],
    }
