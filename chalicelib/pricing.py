"""What runs cost on AWS: list prices, the AWS requests one run makes, and a monthly estimate.

One formula, `cost_per_run`, serves both `make bench` (bench/engine_bench.py prices what it
measured) and the API (`estimate`, shown with a schedule preview). `PER_RUN` holds what
`make bench` measured per run; bench/run_all.py prints a line when a new measurement
drifts from it by more than `DRIFT_TOLERANCE` (see `drift`), so the constants stay true.

Pure, except `stage_prices`, which reads the optional override ``NEXUS_PRICES`` (a JSON
object of some `PRICE` keys, e.g. ``{"lambda_gb_second": 0.0000166667}`` for x86) from
the environment.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from chalicelib.lint import WINDOW, Walkable, count_runs

log = logging.getLogger("nexus.api")

# List prices in USD, us-east-1, as published by AWS in 2025 (unchanged into 2026 as far as
# we know): DynamoDB on-demand after the November 2024 cut, SQS standard, Lambda on arm64
# (Graviton: the functions deploy on arm64, .chalice/config.json), EventBridge Scheduler.
PRICE: dict[str, float] = {
    "dynamodb_write_unit": 0.625e-6,
    "dynamodb_read_unit": 0.125e-6,
    "sqs_request": 0.40e-6,
    "lambda_request": 0.20e-6,
    "lambda_gb_second": 0.0000133334,
    "scheduler_invocation": 1.00e-6,
    # Provisioned capacity, for a steady load (provisioned_cost_per_run): per unit-hour.
    "dynamodb_wcu_hour": 0.00065,
    "dynamodb_rcu_hour": 0.00013,
}
# The share of provisioned capacity a steady load uses: DynamoDB auto scaling's usual target.
PROVISIONED_UTILIZATION = 0.7
PRICES_AS_OF = (
    "AWS list prices, us-east-1, 2025 (DynamoDB on-demand after Nov 2024; Lambda on arm64)"
)

# AWS requests per scheduled run, tick to finished record, as `make bench` measured them on
# 2026-11-28 (bench/RESULTS.md; `python bench/engine_bench.py requests`): 200 runs of a no-op
# task through app.tick and app.worker, each its job's only run in a claim (the dearest case:
# a job that runs every minute or more often shares a claim among the runs sent ahead and
# writes about 2.4 units, bench/frequency_bench.py), sent and received in batches of ten,
# every item under 1 KB. Write units count two per item in a transaction and the `by_due`
# index entry a claim moves; an item read is priced as one read unit. The GB-seconds are the
# worker's at the prod worker's 1,024 MB (its time with AWS in a process of its own, its CPU
# slowed to the share of a vCPU 1,024 MB buys: engine_bench.lambda_seconds), plus the share
# of the stream handler every write wakes (app.table_changes at 512 MB, which counts the runs
# in the stats; invoked once a round of changes), whose invocations are counted with the
# worker's, and the worker's wait for runs that show up before their second (the tick holds
# its sends so that they show up within 50 ms of their runs: engine.queue, Alignment).
PER_RUN: dict[str, float] = {
    "dynamodb_write_units": 5.2,
    "dynamodb_items_read": 2.0,
    "sqs_requests": 0.305,
    "lambda_invocations": 0.315,
    "lambda_gb_seconds": 0.019,
}
DRIFT_TOLERANCE = 0.10

ASSUMPTIONS = (
    f"Per run, as make bench measured it: {PER_RUN['dynamodb_write_units']:g} DynamoDB write "
    f"units, {PER_RUN['dynamodb_items_read']:g} items read, {PER_RUN['sqs_requests']:g} SQS "
    f"requests, {PER_RUN['lambda_invocations']:g} Lambda invocations and "
    f"{PER_RUN['lambda_gb_seconds']:g} GB-seconds of Lambda time (the worker's and the stream "
    "handler's; runs sent in batches of ten, the stream handler invoked once a round of "
    "changes, items under 1 KB, a task that returns at once, worker at 1,024 MB on arm64, "
    "with its wait for runs that show up before their second, about 40 ms an invocation; "
    "a job that runs every minute or more often writes about half the units, as its runs "
    "share the tick's claims). Not included: the "
    "task's own running time (GB-seconds at the worker's memory), retries, the fixed monthly "
    "floor (the tick every minute and SQS long polling, about $0.50 a month), API requests, "
    "CloudWatch, data transfer and the free tier. Runs a month: the runs in the 365 days after "
    "start, divided by 12."
)


def cost_per_run(per_run: Mapping[str, float], prices: Mapping[str, float] = PRICE) -> float:
    """USD for one run making `per_run`'s requests (keys as in `PER_RUN`) at `prices`."""
    return (
        per_run["dynamodb_write_units"] * prices["dynamodb_write_unit"]
        + per_run["dynamodb_items_read"] * prices["dynamodb_read_unit"]
        + per_run["sqs_requests"] * prices["sqs_request"]
        + per_run["lambda_invocations"] * prices["lambda_request"]
        + per_run["lambda_gb_seconds"] * prices["lambda_gb_second"]
    )


def provisioned_cost_per_run(
    per_run: Mapping[str, float],
    prices: Mapping[str, float] = PRICE,
    utilization: float = PROVISIONED_UTILIZATION,
) -> float:
    """USD for one run as `cost_per_run`, with the table in provisioned mode under a steady
    load that uses `utilization` of its capacity: a write unit per second for an hour is
    3,600 writes, billed whether used or not."""
    seconds = 3600 * utilization
    return (
        per_run["dynamodb_write_units"] * prices["dynamodb_wcu_hour"] / seconds
        + per_run["dynamodb_items_read"] * prices["dynamodb_rcu_hour"] / seconds
        + per_run["sqs_requests"] * prices["sqs_request"]
        + per_run["lambda_invocations"] * prices["lambda_request"]
        + per_run["lambda_gb_seconds"] * prices["lambda_gb_second"]
    )


def scheduler_cost_per_run(lambda_gb_seconds: float, prices: Mapping[str, float] = PRICE) -> float:
    """USD for one run of the same task by EventBridge Scheduler invoking a Lambda function:
    the invocation, the Lambda request and its duration, counted as `cost_per_run` does."""
    return (
        prices["scheduler_invocation"]
        + prices["lambda_request"]
        + lambda_gb_seconds * prices["lambda_gb_second"]
    )


def estimate(runs_per_month: float, prices: Mapping[str, float] | None = None) -> dict[str, Any]:
    """What `runs_per_month` runs cost a month; `prices` (some or all `PRICE` keys) default to
    the stage's (`stage_prices`)."""
    used = {**PRICE, **(stage_prices() if prices is None else prices)}
    changed = sorted(key for key in PRICE if used[key] != PRICE[key])
    as_of = PRICES_AS_OF if not changed else f"{PRICES_AS_OF}; overridden: {', '.join(changed)}"
    per_run = cost_per_run(PER_RUN, used)
    return {
        "runs_per_month": runs_per_month,
        "cost_per_month_usd": runs_per_month * per_run,
        "cost_per_run_usd": per_run,
        "prices_as_of": as_of,
        "assumptions": ASSUMPTIONS,
    }


def stage_prices() -> dict[str, float]:
    """`PRICE`, with the keys that env ``NEXUS_PRICES`` (a JSON object) sets replaced.

    An override that is not a JSON object, or a key or value that is not a `PRICE` key with
    a finite price >= 0, is left out with a logged warning: a bad setting never fails a
    request.
    """
    return dict(_read_override(os.environ.get("NEXUS_PRICES", "")))


@lru_cache(maxsize=8)
def _read_override(raw: str) -> tuple[tuple[str, float], ...]:
    """The prices `raw` gives, applied to `PRICE`; cached, so each warning is logged once."""
    prices = dict(PRICE)
    if not raw.strip():
        return tuple(prices.items())
    try:
        given = json.loads(raw)
    except ValueError as exc:
        log.warning("NEXUS_PRICES is not valid JSON (%s); using the list prices", exc)
        return tuple(prices.items())
    if not isinstance(given, dict):
        log.warning(
            "NEXUS_PRICES must be a JSON object of prices in USD, keys %s; got %s; using the "
            "list prices",
            ", ".join(PRICE),
            type(given).__name__,
        )
        return tuple(prices.items())
    for key, value in given.items():
        if key not in PRICE:
            log.warning("NEXUS_PRICES: unknown key %r ignored; accepted: %s", key, ", ".join(PRICE))
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            log.warning("NEXUS_PRICES: %s must be a number >= 0 (USD); got %r, ignored", key, value)
        else:
            prices[key] = float(value)
    return tuple(prices.items())


def runs_per_month(schedule: Walkable, start: datetime) -> float:
    """The runs of `schedule` in the 365 days from `start`, divided by 12.

    Exact for interval, date and cron jobs (cron is counted day by day, not walked);
    a calendar rule denser than a few thousand runs a year is extrapolated from its first
    ones (`chalicelib.lint.count_runs`).
    """
    return count_runs(schedule, start, start + WINDOW) / 12


def drift(
    measured: Mapping[str, float], tolerance: float = DRIFT_TOLERANCE
) -> dict[str, tuple[float, float]]:
    """The `PER_RUN` figures that `measured` differs from by more than `tolerance` (a
    fraction), as {key: (measured, constant)}; keys `measured` lacks are not compared."""
    out = {}
    for key, constant in PER_RUN.items():
        if key in measured and abs(measured[key] - constant) > tolerance * abs(constant):
            out[key] = (measured[key], constant)
    return out
