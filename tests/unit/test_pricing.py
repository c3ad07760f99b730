"""Cost estimates: the price table, the per-run requests make bench measured, the one formula
the bench and the API share, and the stage's price override."""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib import pricing
from chalicelib.models import PreviewRequest
from chalicelib.pricing import (
    PER_RUN,
    PRICE,
    PRICES_AS_OF,
    cost_per_run,
    drift,
    estimate,
    runs_per_month,
    stage_prices,
)
from chalicelib.schedules import compile_schedule

START = datetime(2027, 1, 1, tzinfo=UTC)
BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(autouse=True)
def _no_price_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEXUS_PRICES", raising=False)


def test_the_estimate_for_the_contracts_example_job_equals_a_hand_calculation() -> None:
    # The contract's example job: weekdays at 09:00 New York time. 2027 starts on a Friday
    # and has 365 days, 52 weeks and a Friday: 52 * 5 + 1 = 261 runs, 261 / 12 = 21.75 a month.
    spec = PreviewRequest(job_type="cron", cron_expression="0 9 * * 1-5", timezone="US/Eastern")
    monthly = runs_per_month(compile_schedule(spec, anchor=START), START)
    assert monthly == 21.75

    # By hand, from the literal values of PER_RUN and PRICE (USD):
    #   DynamoDB writes  5.2 units   * 0.625e-6      = 3.25e-6
    #   DynamoDB reads   2.0 items   * 0.125e-6      = 0.25e-6
    #   SQS              0.305 req.  * 0.40e-6       = 0.122e-6
    #   Lambda requests  0.315 inv.  * 0.20e-6       = 0.063e-6
    #   Lambda duration  0.019 GB-s  * 0.0000133334  = 0.2533346e-6 (arm64)
    #   one run                                        3.9383346e-6
    #   a month: 21.75 * 3.9383346e-6                = 85.65877755e-6
    per_run = 3.25e-6 + 0.25e-6 + 0.122e-6 + 0.063e-6 + 0.2533346e-6
    assert per_run == pytest.approx(3.9383346e-6, rel=1e-12)
    got = estimate(monthly)
    assert got["runs_per_month"] == 21.75
    assert got["cost_per_run_usd"] == pytest.approx(3.9383346e-6, rel=1e-12)
    assert got["cost_per_month_usd"] == pytest.approx(85.65877755e-6, rel=1e-10)
    assert got["prices_as_of"] == PRICES_AS_OF
    assert "5.2 DynamoDB write units" in got["assumptions"]
    assert "task's own running time" in got["assumptions"]


def test_the_constants_are_the_figures_make_bench_measured() -> None:
    assert PER_RUN == {
        "dynamodb_write_units": 5.2,
        "dynamodb_items_read": 2.0,
        "sqs_requests": 0.305,
        "lambda_invocations": 0.315,
        "lambda_gb_seconds": 0.019,
    }
    # python bench/engine_bench.py requests: "$3.94" at its median 0.0126 GB-s of work,
    # 0.0039 of early wait and 0.0023 of the stream handler (bench/RESULTS.md's once-a-day
    # row, $3.98, prices the frequency benchmark's reads, SQS and stream share).
    assert round(1e6 * cost_per_run(PER_RUN), 2) == 3.94


def test_each_request_is_priced_at_its_own_price() -> None:
    one_of_each = dict.fromkeys(PER_RUN, 0.0)
    for key, price in [
        ("dynamodb_write_units", "dynamodb_write_unit"),
        ("dynamodb_items_read", "dynamodb_read_unit"),
        ("sqs_requests", "sqs_request"),
        ("lambda_invocations", "lambda_request"),
        ("lambda_gb_seconds", "lambda_gb_second"),
    ]:
        assert cost_per_run({**one_of_each, key: 2.0}) == 2.0 * PRICE[price]


def test_the_bench_prices_its_measurement_with_the_same_table_and_formula(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    engine_bench = importlib.import_module("engine_bench")
    assert engine_bench.PRICE is pricing.PRICE
    assert engine_bench.PRICES_AS_OF is pricing.PRICES_AS_OF
    assert engine_bench.cost_per_run is pricing.cost_per_run


@pytest.mark.parametrize(
    ("spec", "monthly"),
    [
        (PreviewRequest(job_type="interval", interval_seconds=3600, start_time=START), 730.0),
        (PreviewRequest(job_type="date", scheduled_time="2027-06-01T09:00:00Z"), 1 / 12),
        (PreviewRequest(job_type="cron", cron_expression="*/5 * * * *"), 105_120 / 12),
        (PreviewRequest(job_type="calendar", calendar_rule="FREQ=MONTHLY;BYMONTHDAY=1"), 1.0),
    ],
)
def test_runs_a_month_are_a_years_runs_divided_by_twelve(spec: Any, monthly: float) -> None:
    assert runs_per_month(compile_schedule(spec, anchor=START), START) == pytest.approx(monthly)


def test_a_stage_can_override_some_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_PRICES", '{"lambda_gb_second": 0.0000166667}')
    assert stage_prices() == {**PRICE, "lambda_gb_second": 0.0000166667}
    got = estimate(10)
    assert got["prices_as_of"] == f"{PRICES_AS_OF}; overridden: lambda_gb_second"
    expected = cost_per_run(PER_RUN, {**PRICE, "lambda_gb_second": 0.0000166667})
    assert got["cost_per_run_usd"] == expected
    assert got["cost_per_month_usd"] == 10 * expected


def test_prices_given_to_the_estimate_win_over_the_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_PRICES", '{"sqs_request": 1.0}')
    assert estimate(1, prices=PRICE)["cost_per_run_usd"] == cost_per_run(PER_RUN)


@pytest.mark.parametrize(
    ("override", "logged"),
    [
        ("{not json", "NEXUS_PRICES is not valid JSON"),
        ("[1, 2]", "NEXUS_PRICES must be a JSON object"),
        ('{"lambda_gb_secnd": 1}', "unknown key 'lambda_gb_secnd' ignored"),
        ('{"sqs_request": -1}', "sqs_request must be a number >= 0"),
        ('{"sqs_request": "cheap"}', "sqs_request must be a number >= 0"),
        ('{"sqs_request": true}', "sqs_request must be a number >= 0"),
        ('{"sqs_request": NaN}', "sqs_request must be a number >= 0"),
    ],
)
def test_a_bad_override_is_ignored_with_a_warning_never_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, override: str, logged: str
) -> None:
    monkeypatch.setenv("NEXUS_PRICES", override)
    pricing._read_override.cache_clear()
    with caplog.at_level(logging.WARNING, logger="nexus.api"):
        assert stage_prices() == PRICE
        assert estimate(1)["prices_as_of"] == PRICES_AS_OF
    assert logged in caplog.text


def test_a_measurement_more_than_ten_percent_off_is_named() -> None:
    measured = {**PER_RUN, "dynamodb_write_units": 8.0, "sqs_requests": 0.32}
    assert drift(measured) == {"dynamodb_write_units": (8.0, 5.2)}
    assert drift(PER_RUN) == {}
    assert drift({"lambda_invocations": 0.4}) == {"lambda_invocations": (0.4, 0.315)}


def test_make_bench_prints_a_line_naming_what_drifted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    run_all = importlib.import_module("run_all")
    line = run_all.drift_line({**PER_RUN, "lambda_gb_seconds": 0.1})
    assert line is not None
    assert "lambda_gb_seconds measured 0.1, PER_RUN 0.019" in line
    assert "dynamodb" not in line
    assert run_all.drift_line(dict(PER_RUN)) is None


def _run_all(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("run_all")


FREQUENCY = {
    "once a minute": {
        "jobs": 20,
        "runs": 1200,
        "per_run": {
            "dynamodb_write_units": 4.0,
            "dynamodb_items_read": 3.0,
            "sqs_requests": 0.3,
            "lambda_invocations": 0.15,
        },
    }
}

# The stream handler's share of a run, as engine_bench measures it.
STREAM = {
    "dynamodb_items_read": 0.5,
    "sqs_requests": 0.1,
    "lambda_invocations": 0.05,
    "lambda_gb_seconds": 0.002,
}


def test_the_cost_table_prices_a_run_on_demand_provisioned_and_against_eventbridge_scheduler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_all = _run_all(monkeypatch)
    costs = run_all.frequency_costs(FREQUENCY, 0.01, STREAM)
    minute = costs["once a minute"]
    # NEXUS: the run's requests, the worker's time and the stream handler's share.
    per_run = {
        "dynamodb_write_units": 4.0,
        "dynamodb_items_read": 3.5,
        "sqs_requests": 0.4,
        "lambda_invocations": 0.2,
        "lambda_gb_seconds": 0.012,
    }
    assert minute["on_demand"] == pytest.approx(1e6 * cost_per_run(per_run))
    # Provisioned, 70 % used: a unit-hour serves 3,600 x 0.7 requests.
    hour = 3600 * 0.7
    assert minute["provisioned"] == pytest.approx(
        1e6
        * (
            4.0 * PRICE["dynamodb_wcu_hour"] / hour
            + 3.5 * PRICE["dynamodb_rcu_hour"] / hour
            + 0.4 * PRICE["sqs_request"]
            + 0.2 * PRICE["lambda_request"]
            + 0.012 * PRICE["lambda_gb_second"]
        )
    )
    assert minute["provisioned"] < minute["on_demand"]
    # EventBridge Scheduler invokes the task's Lambda: the worker's time, no stream handler.
    assert minute["scheduler"] == pytest.approx(
        1e6 * (PRICE["scheduler_invocation"] + PRICE["lambda_request"])
        + 1e6 * 0.01 * PRICE["lambda_gb_second"]
    )
    table = run_all.cost_table(costs)
    assert table[2].startswith("| once a minute | 4.00 | 3.50 | 0.400 | 0.200 | $")
    assert "0.0100 GB-seconds a run on both sides" in table[-1]
    assert "stream handler's 0.0020 GB-seconds and 0.050 invocations a run" in table[-1]


def test_nexus_pays_the_workers_early_wait_and_eventbridge_scheduler_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A run sent ahead shows up before its second, and its worker waits (engine_bench.py,
    # ShowsUp); a task EventBridge Scheduler invokes at its time does not.
    run_all = _run_all(monkeypatch)
    plain = run_all.frequency_costs(FREQUENCY, 0.01, STREAM)["once a minute"]
    waiting = run_all.frequency_costs(FREQUENCY, 0.01, STREAM, 0.05)["once a minute"]
    assert waiting["lambda_gb_seconds"] == pytest.approx(plain["lambda_gb_seconds"] + 0.05)
    assert waiting["on_demand"] - plain["on_demand"] == pytest.approx(
        1e6 * 0.05 * PRICE["lambda_gb_second"]
    )
    assert waiting["scheduler"] == plain["scheduler"]
    table = run_all.cost_table({"once a minute": waiting})
    assert "0.0100 GB-seconds a run on both sides" in table[-1]
    assert "(0.0500 GB-seconds a run: SQS delays" in table[-1]


def test_the_stream_handlers_share_follows_its_invocations_at_each_frequency(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Measured: 0.05 invocations a run; at this frequency it is invoked 0.1 times a run
    # (its count's own change wakes it again on a quiet table), so it costs twice as much.
    run_all = _run_all(monkeypatch)
    minute = FREQUENCY["once a minute"]
    frequency = {
        "once a minute": {**minute, "per_run": {**minute["per_run"], "stream_invocations": 0.1}}
    }
    costs = run_all.frequency_costs(frequency, 0.01, STREAM)["once a minute"]
    assert costs["lambda_invocations"] == pytest.approx(0.15 + 0.1)
    assert costs["lambda_gb_seconds"] == pytest.approx(0.01 + 0.004)
    assert costs["dynamodb_items_read"] == pytest.approx(3.0 + 1.0)
    assert costs["sqs_requests"] == pytest.approx(0.3 + 0.2)
    assert costs["stream_invocations"] == pytest.approx(0.1)


def test_on_a_lambda_cpu_runs_slower_by_the_share_of_a_vcpu_its_memory_buys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    engine_bench = importlib.import_module("engine_bench")
    # 1,769 MB is one vCPU: the time is what was measured.
    assert engine_bench.lambda_seconds(0.010, 0.004, 1769 / 1024) == pytest.approx(0.010)
    # At 1,024 MB the 4 ms of CPU take 1769/1024 as long; the 6 ms of waiting stay 6 ms.
    assert engine_bench.lambda_seconds(0.010, 0.004, 1.0) == pytest.approx(
        0.006 + 0.004 * 1769 / 1024
    )
    # Above one vCPU a single-threaded run is no faster.
    assert engine_bench.lambda_seconds(0.010, 0.004, 4.0) == pytest.approx(0.010)


def test_make_bench_writes_the_readme_cost_table_between_its_markers_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run_all = _run_all(monkeypatch)
    readme = tmp_path / "README.md"
    readme.write_text(
        f"# before\n{run_all.COST_TABLE_START}\nold\n{run_all.COST_TABLE_END}\n# after\n"
    )
    monkeypatch.setattr(run_all, "ROOT", tmp_path)
    run_all.write_readme_cost_table(["| new |"])
    run_all.write_readme_cost_table(["| newer |"])
    assert readme.read_text() == (
        f"# before\n{run_all.COST_TABLE_START}\n| newer |\n{run_all.COST_TABLE_END}\n# after\n"
    )


def test_the_readme_cost_table_is_the_one_in_bench_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not typed: the README's table is what make bench wrote into bench/RESULTS.md too."""
    run_all = _run_all(monkeypatch)
    readme = (BENCH.parent / "README.md").read_text()
    start = readme.index(run_all.COST_TABLE_START) + len(run_all.COST_TABLE_START)
    table = readme[start : readme.index(run_all.COST_TABLE_END)].strip()
    assert table.startswith("| a run of a job that runs |")
    assert table in (BENCH / "RESULTS.md").read_text()
