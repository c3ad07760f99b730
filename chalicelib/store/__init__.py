"""The repository: one DynamoDB table, one store per aggregate, each owning its keys.

- `items`: the key layout, item <-> model mapping, and the AWS error handling they share;
- `jobs.JobStore`: job items, the list and due indexes, the job's run slots;
- `runs.RunStore`: run attempts and their final records (with what each counts);
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

import threading
from functools import cached_property
from importlib import import_module
from typing import TYPE_CHECKING, Any

# Each table's store is imported on first use (Store's attributes, or a name imported from
# this package): the API's read of the jobs does not load the holiday calendars (dateutil,
# pytz), the backfills, the watches nor the WebSocket listeners (bench/cold_start.py).
if TYPE_CHECKING:
    from chalicelib.store.audit import AuditLog
    from chalicelib.store.backfills import BackfillStore
    from chalicelib.store.calendars import CalendarStore
    from chalicelib.store.connections import ConnectionStore
    from chalicelib.store.counters import COUNTER_SHARDS, Counters
    from chalicelib.store.items import (
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

# The names this package gives, by the module that defines them.
_FROM = {
    "AuditLog": "audit",
    "BackfillStore": "backfills",
    "CalendarStore": "calendars",
    "ConnectionStore": "connections",
    "COUNTER_SHARDS": "counters",
    "Counters": "counters",
    "execution_from_item": "items",
    "from_item": "items",
    "job_item": "items",
    "run_key": "items",
    "DueEntry": "jobs",
    "JobStore": "jobs",
    "KeyStore": "keys",
    "RateCounter": "ratelimit",
    "FinalWrite": "runs",
    "RunStore": "runs",
    "WatchStore": "watches",
}

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


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_FROM[name]}"), name)
    globals()[name] = value
    return value


class Store:
    """The stores over one table and one client, each made on first use."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self.table_name = table_name
        # The tick and the worker's batches use one Store from threads: each store is made
        # once, so that jobs, runs and watches share one Counters as before.
        self._lock = threading.RLock()

    def _made(self, name: str, module: str, cls: str, *, counted: bool = False) -> Any:
        """The store `name`: chalicelib.store.<module>.<cls> over the table (and the shared
        Counters if `counted`), imported and made once, on first use."""
        with self._lock:
            if name not in self.__dict__:  # else made by another thread while this one waited
                made = getattr(import_module(f"chalicelib.store.{module}"), cls)
                extra = (self.counters,) if counted else ()
                self.__dict__[name] = made(self._client, self.table_name, *extra)
            return self.__dict__[name]

    @classmethod
    def over(cls, client: Any, table_name: str) -> Store:
        return cls(client, table_name)

    @cached_property
    def counters(self) -> Counters:
        return self._made("counters", "counters", "Counters")  # type: ignore[no-any-return]

    @cached_property
    def jobs(self) -> JobStore:
        return self._made("jobs", "jobs", "JobStore", counted=True)  # type: ignore[no-any-return]

    @cached_property
    def runs(self) -> RunStore:
        return self._made("runs", "runs", "RunStore")  # type: ignore[no-any-return]

    @cached_property
    def keys(self) -> KeyStore:
        return self._made("keys", "keys", "KeyStore")  # type: ignore[no-any-return]

    @cached_property
    def audit(self) -> AuditLog:
        return self._made("audit", "audit", "AuditLog")  # type: ignore[no-any-return]

    @cached_property
    def rates(self) -> RateCounter:
        return self._made("rates", "ratelimit", "RateCounter")  # type: ignore[no-any-return]

    @cached_property
    def connections(self) -> ConnectionStore:
        return self._made("connections", "connections", "ConnectionStore")  # type: ignore[no-any-return]

    @cached_property
    def backfills(self) -> BackfillStore:
        return self._made("backfills", "backfills", "BackfillStore")  # type: ignore[no-any-return]

    @cached_property
    def calendars(self) -> CalendarStore:
        return self._made("calendars", "calendars", "CalendarStore")  # type: ignore[no-any-return]

    @cached_property
    def watches(self) -> WatchStore:
        return self._made("watches", "watches", "WatchStore", counted=True)  # type: ignore[no-any-return]


def table_definition(table_name: str) -> dict[str, Any]:
    """The table as `create_table` takes it: used locally and in tests (infra/ mirrors it)."""
    from chalicelib.store.items import DUE_INDEX, LIST_INDEX

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
