"""Instants on the wire: UTC ISO-8601 with a `Z`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# strftime("%Y") writes year 999 as "999" on Linux (issue 11): a short year breaks both the
# sort order and the reading back. isoformat always writes four digits.
_SHORT_YEAR = re.compile(r"^([0-9]{1,3})-")


def iso(instant: datetime | None) -> str | None:
    """`2026-01-20T14:00:00Z`, or with microseconds when the instant has them."""
    if instant is None:
        return None
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def sortable(instant: datetime) -> str:
    """Fixed-width form for DynamoDB sort keys: string order is time order."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_stored(text: str | None) -> datetime | None:
    """Read back what `iso` or `sortable` wrote (also the unpadded years written before
    issue 11, such as `999-01-01T00:00:00.000000Z`)."""
    if not text:
        return None
    text = _SHORT_YEAR.sub(lambda m: m.group(1).zfill(4) + "-", text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
