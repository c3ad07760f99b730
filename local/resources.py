"""Create the tables and queues that infra/ creates on AWS, on any endpoint (moto here)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store import table_definition


def ensure_table(dynamodb: Any, table_name: str, *, stream: bool = True) -> None:
    """The table as deployed, change stream included (the stats count runs from it);
    `stream=False` leaves the stream out, for what reads no stats (moto in the same process
    keeps every stream record)."""
    definition = table_definition(table_name)
    if not stream:
        definition.pop("StreamSpecification")
    try:
        dynamodb.create_table(**definition)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.get_waiter("table_exists").wait(TableName=table_name)
    # Execution records expire after the retention period (NEXUS_HISTORY_DAYS).
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )


def ensure_queue(sqs: Any, queue_name: str, *, visibility_timeout: int = 120) -> str:
    """The work queue and its dead-letter queue; returns the work queue's URL."""
    dlq_url = sqs.create_queue(
        QueueName=f"{queue_name}-dlq", Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url: str = sqs.create_queue(
        QueueName=queue_name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    return url
