"""Instants on the wire: UTC ISO-8601 with a `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(instant: datetime | None) -> str | None:
    """`2026-01-20T14:00:00Z`, or with microseconds when the instant has them."""
    if instant is None:
        return None
    text = instant.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"


def sortable(instant: datetime) -> str:
    """Fixed-width form for DynamoDB sort keys: string order is time order."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_stored(text: str | None) -> datetime | None:
    """Read back what `iso` or `sortable` wrote."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
