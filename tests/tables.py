"""The table the embedded-AWS tests make on moto: keys `pk` and `sk`, on demand."""

from __future__ import annotations

from typing import Any


def create_pk_sk_table(db: Any, name: str, *, stream: bool = False) -> None:
    """Table `name` through the DynamoDB client `db`; with a change stream (new and old
    images) if `stream`."""
    spec: dict[str, Any] = (
        {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}}
        if stream
        else {}
    )
    db.create_table(
        **spec,
        TableName=name,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
