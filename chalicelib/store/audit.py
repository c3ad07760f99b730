"""The audit trail: who changed what, when, from where.

Each entry lives in the partition of what it is about (a job or a key), so a job's trail is
one Query, and is listed across everything through the list index:

| item        | pk                     | sk                      | list index                     |
|-------------|------------------------|-------------------------|--------------------------------|
| audit entry | `JOB#<id>`/`KEY#<id>`  | `AUDIT#<at>#<entry id>` | `list_pk = AUDIT`, `<at>#<id>` |

An entry is written in the same transaction as the change it records (`AuditLog.put` gives
the transaction item), so there is never a change without its entry or an entry without its
change. A job's history purge (engine.sweep) removes `RUN#` items only: the trail of a
deleted job, its deletion included, stays until the entry's own expiry.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from chalicelib.errors import FieldError, InvalidInput
from chalicelib.store.items import (
    LIST_INDEX,
    batch_get,
    dump,
    job_pk,
    load,
    with_backoff,
)
from chalicelib.store.jobs import query_all
from chalicelib.store.keys import key_pk
from chalicelib.timefmt import sortable

AUDIT_PARTITION = "AUDIT"


class AuditEntry(BaseModel):
    id: str
    at: datetime
    action: str  # job.create, job.update, job.pause, job.resume, job.execute, job.delete,
    # key.create, key.revoke
    job_id: int | None = None
    key_id: str | None = None  # the key an entry about a key is about
    actor_key_id: str | None = None
    actor_key_name: str | None = None
    source_ip: str | None = None
    changes: dict[str, Any] | None = None  # job.update: {field: {"from": ..., "to": ...}}
    execution_id: str | None = None
    expires_at: datetime | None = None

    @property
    def pk(self) -> str:
        if self.job_id is not None:
            return job_pk(self.job_id)
        assert self.key_id is not None
        return key_pk(self.key_id)

    def to_api(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"expires_at"}, exclude_none=True)


def _item(entry: AuditEntry) -> dict[str, Any]:
    fields: dict[str, Any] = {
        k: v for k, v in entry.model_dump(exclude={"expires_at", "at"}).items() if v is not None
    }
    if entry.changes is not None:
        fields["changes"] = json.dumps(entry.changes, separators=(",", ":"), default=str)
    stamp = f"{sortable(entry.at)}#{entry.id}"
    fields.update(
        pk=entry.pk,
        sk=f"AUDIT#{stamp}",
        at=sortable(entry.at),
        list_pk=AUDIT_PARTITION,
        list_sk=stamp,
    )
    if entry.expires_at is not None:
        fields["expires_at"] = int(entry.expires_at.timestamp())
    return dump(fields)


def _entry(raw: dict[str, Any]) -> AuditEntry:
    data = load(raw)
    if isinstance(data.get("changes"), str):
        data["changes"] = json.loads(data["changes"])
    data.pop("expires_at", None)
    return AuditEntry.model_validate(data)


def encode_cursor(last: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(last, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, allowed_keys: set[str]) -> dict[str, Any]:
    """The LastEvaluatedKey a cursor stands for; 422 for anything this API did not hand out."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error):
        value = None
    ok = (
        isinstance(value, dict)
        and set(value) <= allowed_keys
        and all(isinstance(v, dict) and set(v) == {"S"} for v in value.values())
    )
    if not ok:
        raise InvalidInput(
            [
                FieldError(
                    ("query", "cursor"),
                    "not a cursor this API returned; use the X-Next-Cursor header of the "
                    "previous page, or leave cursor out for the first page",
                    "value_error.cursor",
                )
            ]
        )
    assert isinstance(value, dict)
    return value


class AuditLog:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def put(self, entry: AuditEntry) -> dict[str, Any]:
        """The transaction item that records `entry` with the change it describes."""
        return {
            "Put": {
                "TableName": self._table,
                "Item": _item(entry),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }

    def write(self, items: list[dict[str, Any]]) -> None:
        """Record entries on their own (`put`'s items), after a change that could not carry
        them in its own transaction (a run's conditional settlement)."""
        for item in items:
            put: dict[str, Any] = item["Put"]
            with_backoff(lambda: self._db.put_item(**put), what="auditing")  # noqa: B023

    def for_job(
        self, job_id: int, *, limit: int, cursor: str | None
    ) -> tuple[list[AuditEntry], str | None]:
        """A job's entries, newest first: a page, and the cursor of the next (None: last)."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :a)",
            "ExpressionAttributeValues": {":pk": {"S": job_pk(job_id)}, ":a": {"S": "AUDIT#"}},
            "ScanIndexForward": False,
            "Limit": limit,
            "ConsistentRead": True,
        }
        if cursor:
            params["ExclusiveStartKey"] = decode_cursor(cursor, {"pk", "sk"})
        out = with_backoff(lambda: self._db.query(**params), what="reading the audit trail")
        last = out.get("LastEvaluatedKey")
        entries = [_entry(raw) for raw in out.get("Items", [])]
        return entries, encode_cursor(last) if last and len(entries) == limit else None

    def all(self, *, limit: int, cursor: str | None) -> tuple[list[AuditEntry], str | None]:
        """Every entry, newest first, through the list index."""
        params: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :p",
            "ExpressionAttributeValues": {":p": {"S": AUDIT_PARTITION}},
            "ScanIndexForward": False,
            "Limit": limit,
            "ProjectionExpression": "pk, sk, list_pk, list_sk",
        }
        if cursor:
            params["ExclusiveStartKey"] = decode_cursor(cursor, {"pk", "sk", "list_pk", "list_sk"})
        out = with_backoff(lambda: self._db.query(**params), what="reading the audit trail")
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in out.get("Items", [])]
        found = batch_get(self._db, self._table, keys, consistent=False)
        entries = [
            _entry(found[(k["pk"]["S"], k["sk"]["S"])])
            for k in keys
            if (k["pk"]["S"], k["sk"]["S"]) in found
        ]
        last = out.get("LastEvaluatedKey")
        return entries, encode_cursor(last) if last and len(keys) == limit else None

    def since(self, start: datetime, *, limit: int) -> list[AuditEntry]:
        """Entries made at or after `start`, oldest first (at most `limit`)."""
        items = list(
            query_all(
                self._db,
                self._table,
                page_size=limit,
                stop_after=limit,
                IndexName=LIST_INDEX,
                KeyConditionExpression="list_pk = :p AND list_sk >= :s",
                ExpressionAttributeValues={
                    ":p": {"S": AUDIT_PARTITION},
                    ":s": {"S": sortable(start)},
                },
                ScanIndexForward=True,
                ProjectionExpression="pk, sk",
            )
        )
        keys = [{"pk": i["pk"], "sk": i["sk"]} for i in items]
        found = batch_get(self._db, self._table, keys, consistent=False)
        return [
            _entry(found[(k["pk"]["S"], k["sk"]["S"])])
            for k in keys
            if (k["pk"]["S"], k["sk"]["S"]) in found
        ]
