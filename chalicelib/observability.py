"""Structured logs and CloudWatch metrics, on the standard library alone.

Nothing here is imported that Lambda's cold start would notice (no aws-lambda-powertools).

- Logs: `setup_logging()` gives the `nexus` logger hierarchy one handler that writes one JSON
  object per line to stderr: `timestamp` (ISO-8601, UTC, `Z`), `level`, `logger`, `message`,
  then every `extra` field of the call (`job_id`, `execution_id`, `status`, ...), and
  `exception` when there is one. The level comes from `NEXUS_LOG_LEVEL` (default `INFO`).
  `nexus` does not propagate, so Lambda's own root handler does not print each line again.
- Metrics: `emit_metrics()` prints one CloudWatch Embedded Metric Format (EMF) line to stdout
  per event, in the namespace `NEXUS` with the dimension `Stage` (`NEXUS_STAGE`, default
  `local`). CloudWatch Logs turns those lines into metrics; no API call is made. They are on
  when running in Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) and off elsewhere, so `make run`
  and the tests stay quiet; `NEXUS_METRICS=on` or `off` decides either way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal

ROOT_LOGGER: Final = "nexus"
NAMESPACE: Final = "NEXUS"

Metric = Literal[
    "RunsStarted",
    "RunsSucceeded",
    "RunsFailed",
    "RunsRetried",
    "RunsMissed",
    "StartLatenessSeconds",
    "TickJobErrors",
    "JobsDeferred",
    "SweepRepairs",
    "TasksStuck",
    "RequestsThrottled",
    "RateLimitUnavailable",
    "RealtimeEvents",
    "RealtimeSent",
    "RealtimeSendFailures",
    "RunsCancelled",
]
UNITS: Final[dict[Metric, str]] = {
    "RunsStarted": "Count",
    "RunsSucceeded": "Count",
    "RunsFailed": "Count",
    "RunsRetried": "Count",
    "RunsMissed": "Count",
    "StartLatenessSeconds": "Seconds",
    "TickJobErrors": "Count",
    "JobsDeferred": "Count",
    "SweepRepairs": "Count",
    "TasksStuck": "Count",
    "RequestsThrottled": "Count",
    "RateLimitUnavailable": "Count",
    "RealtimeEvents": "Count",
    "RealtimeSent": "Count",
    "RealtimeSendFailures": "Count",
    "RunsCancelled": "Count",
}

# The attributes every LogRecord has; whatever else a record carries came from `extra`.
_STANDARD_ATTRIBUTES: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


def _iso_z(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.removesuffix("+00:00") + "Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: the standard fields, then the call's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": _iso_z(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                out.setdefault(key, value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, separators=(",", ":"))


class JsonLogHandler(logging.Handler):
    """Writes each record as one line to whatever `sys.stderr` is at the time (so a test's
    capture, or a stream replaced after setup, still gets it)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            stream = sys.stderr
            stream.write(line)
            stream.flush()
        except Exception:
            self.handleError(record)


def setup_logging(level: str | None = None) -> logging.Logger:
    """Install the JSON handler on the `nexus` logger once; calling again only sets the level."""
    logger = logging.getLogger(ROOT_LOGGER)
    name = (level or os.environ.get("NEXUS_LOG_LEVEL") or "INFO").strip().upper()
    known = logging.getLevelNamesMapping()
    logger.setLevel(known.get(name, logging.INFO))
    logger.propagate = False
    if not any(isinstance(h, JsonLogHandler) for h in logger.handlers):
        logger.addHandler(JsonLogHandler())
    if name not in known:
        logger.warning("NEXUS_LOG_LEVEL %r is not a log level; using INFO", name)
    return logger


def metrics_enabled() -> bool:
    """`NEXUS_METRICS` on/off if set; otherwise on only inside Lambda."""
    setting = os.environ.get("NEXUS_METRICS", "").strip().lower()
    if setting in ("on", "true", "1", "yes"):
        return True
    if setting in ("off", "false", "0", "no"):
        return False
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def emf_document(
    values: Mapping[Metric, float], properties: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The EMF object for `values`; `properties` ride along (searchable, not dimensions)."""
    document: dict[str, Any] = {
        **(properties or {}),
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Stage"]],
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
                }
            ],
        },
        "Stage": os.environ.get("NEXUS_STAGE") or "local",
    }
    for name, value in values.items():
        document[name] = value
    return document


def emit_metrics(values: Mapping[Metric, float], **properties: Any) -> None:
    """Print one EMF line for one event (a single write, so threads do not interleave)."""
    if not values or not metrics_enabled():
        return
    line = json.dumps(emf_document(values, properties), default=str, separators=(",", ":"))
    stream = sys.stdout
    stream.write(line + "\n")
    stream.flush()
