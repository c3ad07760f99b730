"""API keys: one item per key, never holding the key's secret (only its hash).

| item    | pk          | sk    | list index                        |
|---------|-------------|-------|-----------------------------------|
| API key | `KEY#<id>`  | `KEY` | `list_pk = KEYS`, `created_at#id` |
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import NexusError
from chalicelib.security.keys import ApiKey
from chalicelib.store.items import (
    LIST_INDEX,
    batch_get,
    dump,
    is_condition_failure,
    load,
    with_backoff,
)
from chalicelib.store.jobs import query_all
from chalicelib.timefmt import sortable

KEYS_PARTITION = "KEYS"
MAX_KEYS_LISTED = 1_000


class KeyNotFound(NexusError, LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")
        self.key_id = key_id


def key_pk(key_id: str) -> str:
    return f"KEY#{key_id}"


def _key(key_id: str) -> dict[str, Any]:
    return {"pk": {"S": key_pk(key_id)}, "sk": {"S": "KEY"}}


def key_item(key: ApiKey) -> dict[str, Any]:
    fields = {
        k: sortable(v) if isinstance(v, datetime) else v
        for k, v in key.model_dump().items()
        if v is not None
    }
    fields.update(
        pk=key_pk(key.id),
        sk="KEY",
        list_pk=KEYS_PARTITION,
        list_sk=f"{sortable(key.created_at)}#{key.id}",
    )
    return dump(fields)


def key_from_item(raw: dict[str, Any]) -> ApiKey:
    return ApiKey.model_validate(load(raw))


class KeyStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def create(self, key: ApiKey, also: Sequence[dict[str, Any]] = ()) -> None:
        put = {
            "TableName": self._table,
            "Item": key_item(key),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        if also:
            items = [{"Put": put}, *also]
            with_backoff(
                lambda: self._db.transact_write_items(TransactItems=items), what="creating the key"
            )
        else:
            with_backoff(lambda: self._db.put_item(**put), what="creating the key")

    def find(self, key_id: str) -> ApiKey | None:
        out = with_backoff(
            lambda: self._db.get_item(TableName=self._table, Key=_key(key_id), ConsistentRead=True),
            what="reading the key",
        )
        return key_from_item(out["Item"]) if "Item" in out else None

    def get(self, key_id: str) -> ApiKey:
        key = self.find(key_id)
        if key is None:
            raise KeyNotFound(key_id)
        return key

    def list(self) -> list[ApiKey]:
        """Newest first."""
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in query_all(
                self._db,
                self._table,
                page_size=MAX_KEYS_LISTED,
                stop_after=MAX_KEYS_LISTED,
                IndexName=LIST_INDEX,
                KeyConditionExpression="list_pk = :p",
                ExpressionAttributeValues={":p": {"S": KEYS_PARTITION}},
                ScanIndexForward=False,
                ProjectionExpression="pk, sk",
            )
        ]
        found = [key_from_item(raw) for raw in batch_get(self._db, self._table, keys).values()]
        return sorted(found, key=lambda k: (k.created_at, k.id), reverse=True)

    def revoke(self, key_id: str, now: datetime, also: Sequence[dict[str, Any]] = ()) -> bool:
        """Revoke the key; False if it was revoked already. KeyNotFound if there is none."""
        update = {
            "TableName": self._table,
            "Key": _key(key_id),
            "UpdateExpression": "SET revoked_at = :now",
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(revoked_at)",
            "ExpressionAttributeValues": {":now": {"S": sortable(now)}},
        }
        try:
            if also:
                items = [{"Update": update}, *also]
                with_backoff(
                    lambda: self._db.transact_write_items(TransactItems=items),
                    what="revoking the key",
                )
            else:
                with_backoff(lambda: self._db.update_item(**update), what="revoking the key")
        except ClientError as exc:
            if is_condition_failure(exc):
                self.get(key_id)  # KeyNotFound when there is no such key
                return False
            raise
        return True

    def touch(self, key_id: str, now: datetime, every: timedelta) -> None:
        """Set last_used_at, at most once per `every` (a condition, so concurrent requests
        write it once)."""
        try:
            self._db.update_item(
                TableName=self._table,
                Key=_key(key_id),
                UpdateExpression="SET last_used_at = :now",
                ConditionExpression=(
                    "attribute_exists(pk) AND "
                    "(attribute_not_exists(last_used_at) OR last_used_at < :before)"
                ),
                ExpressionAttributeValues={
                    ":now": {"S": sortable(now)},
                    ":before": {"S": sortable(now - every)},
                },
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
