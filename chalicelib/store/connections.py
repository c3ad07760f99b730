"""WebSocket connections: who is listening, and to which jobs (docs/realtime.md).

| item       | pk        | sk                | expires                                   |
|------------|-----------|-------------------|-------------------------------------------|
| connection | `WSCONN`  | `<connection id>` | `expires_at` (TTL): API Gateway's 2 hours |

One partition, so the fan-out reads every listener in one Query. A connection is written at
connect, changed by (un)subscribe, deleted at disconnect, and deleted by the fan-out when API
Gateway says it is gone (GoneException); the TTL removes what a lost disconnect left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store.items import dump, is_condition_failure, load, with_backoff
from chalicelib.store.jobs import query_all
from chalicelib.timefmt import parse_stored, sortable

CONNECTIONS = "WSCONN"
# API Gateway closes a WebSocket connection after 2 hours; a little more for the record.
CONNECTION_TTL = timedelta(hours=2, minutes=10)
ALL = "*"


@dataclass(frozen=True)
class Connection:
    id: str
    endpoint: str  # where post_to_connection is sent for it (the stage's callback URL)
    key_id: str
    connected_at: datetime
    expires_at: datetime
    all_jobs: bool = False
    job_ids: frozenset[int] = frozenset()

    def wants(self, job_id: int | None) -> bool:
        """stats.changed (job_id None) goes to every subscriber."""
        if job_id is None:
            return self.all_jobs or bool(self.job_ids)
        return self.all_jobs or job_id in self.job_ids

    @property
    def subscription(self) -> str | list[int]:
        return ALL if self.all_jobs else sorted(self.job_ids)


def _key(connection_id: str) -> dict[str, Any]:
    return {"pk": {"S": CONNECTIONS}, "sk": {"S": connection_id}}


def connection_from_item(raw: dict[str, Any]) -> Connection:
    data = load(raw)
    connected = parse_stored(data["connected_at"])
    assert connected is not None
    return Connection(
        id=data["sk"],
        endpoint=data["endpoint"],
        key_id=data["key_id"],
        connected_at=connected,
        expires_at=datetime.fromtimestamp(int(data["expires_at"]), connected.tzinfo),
        all_jobs=bool(data.get("all_jobs", False)),
        job_ids=frozenset(int(j) for j in data.get("job_ids", ())),
    )


class ConnectionStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def open(self, connection_id: str, endpoint: str, key_id: str, now: datetime) -> Connection:
        conn = Connection(connection_id, endpoint, key_id, now, now + CONNECTION_TTL)
        item = dump(
            {
                "pk": CONNECTIONS,
                "sk": connection_id,
                "endpoint": endpoint,
                "key_id": key_id,
                "connected_at": sortable(now),
                "expires_at": int(conn.expires_at.timestamp()),
            }
        )
        with_backoff(lambda: self._db.put_item(TableName=self._table, Item=item), what="connecting")
        return conn

    def subscribe(self, connection_id: str, jobs: str | list[int]) -> Connection | None:
        """Add to what the connection hears (`jobs`: ALL or ids); None if it is gone."""
        if isinstance(jobs, str):
            return self._update(connection_id, "SET all_jobs = :t", {":t": {"BOOL": True}})
        values = {":ids": {"NS": [str(j) for j in sorted(set(jobs))]}}
        return self._update(connection_id, "ADD job_ids :ids", values)

    def unsubscribe(self, connection_id: str, jobs: str | list[int]) -> Connection | None:
        if isinstance(jobs, str):
            return self._update(connection_id, "REMOVE all_jobs, job_ids", {})
        values = {":ids": {"NS": [str(j) for j in sorted(set(jobs))]}}
        return self._update(connection_id, "DELETE job_ids :ids", values)

    def _update(
        self, connection_id: str, expression: str, values: dict[str, Any]
    ) -> Connection | None:
        params: dict[str, Any] = {
            "TableName": self._table,
            "Key": _key(connection_id),
            "UpdateExpression": expression,
            "ConditionExpression": "attribute_exists(pk)",
            "ReturnValues": "ALL_NEW",
        }
        if values:
            params["ExpressionAttributeValues"] = values
        try:
            out = with_backoff(lambda: self._db.update_item(**params), what="subscribing")
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return connection_from_item(out["Attributes"])

    def close(self, connection_id: str) -> None:
        with_backoff(
            lambda: self._db.delete_item(TableName=self._table, Key=_key(connection_id)),
            what="disconnecting",
        )

    def get(self, connection_id: str) -> Connection | None:
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table, Key=_key(connection_id), ConsistentRead=True
            ),
            what="reading a connection",
        )
        return connection_from_item(out["Item"]) if "Item" in out else None

    def all(self, now: datetime) -> list[Connection]:
        """Every open connection (not past its expiry: TTL deletes lag by hours)."""
        items = query_all(
            self._db,
            self._table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": CONNECTIONS}},
            ConsistentRead=True,
        )
        found = [connection_from_item(raw) for raw in items]
        return [c for c in found if c.expires_at > now]
