"""Per-key request counts for rate limiting: one conditional write per request.

Each key's budget is counted in fixed windows: `limit` requests per window of `seconds`,
one item per key, bucket and window, expiring a minute after its window (TTL):

| item          | pk             | sk                          |
|---------------|----------------|-----------------------------|
| window count  | `RATE#<key>`   | `<bucket>#<window start>`   |

A request adds 1 on condition that the count is below the limit, so concurrent requests
never pass the limit between them. A window of `burst / rate` seconds holding `burst`
requests gives the average `rate` and bursts up to `burst`; the price of one write per
request is that two bursts may meet at a window's edge (at most 2 x burst in a moment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store.items import is_condition_failure


@dataclass(frozen=True)
class Budget:
    bucket: str  # "api" or "execute"
    limit: int  # requests per window
    seconds: float  # the window's length


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the current window ends

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class RateCounter:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    def take(self, key_id: str, budget: Budget, now: datetime) -> Verdict:
        """Count one request against `budget`. Raises ClientError when DynamoDB fails (the
        caller decides whether to let the request through)."""
        at = now.timestamp()
        start = math.floor(at / budget.seconds) * budget.seconds
        end = start + budget.seconds
        reset = max(1, math.ceil(end - at))
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key={
                    "pk": {"S": f"RATE#{key_id}"},
                    "sk": {"S": f"{budget.bucket}#{int(start * 1000)}"},
                },
                UpdateExpression="ADD n :one SET expires_at = if_not_exists(expires_at, :exp)",
                ConditionExpression="attribute_not_exists(n) OR n < :limit",
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":limit": {"N": str(budget.limit)},
                    ":exp": {"N": str(int(end) + 60)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return Verdict(False, budget.limit, 0, reset)
            raise
        used = int(out["Attributes"]["n"]["N"])
        return Verdict(True, budget.limit, max(0, budget.limit - used), reset)
