"""JSON logs and EMF metrics: their shape, their switch, and what the engine emits."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.observability import (
    JsonFormatter,
    JsonLogHandler,
    emit_metrics,
    metrics_enabled,
    setup_logging,
)
from chalicelib.service import JobService
from chalicelib.tasks import registry
from tests.engine.conftest import Engine

METRIC_NAMES = {
    "RunsStarted",
    "RunsSucceeded",
    "RunsFailed",
    "RunsRetried",
    "RunsMissed",
    "StartLatenessSeconds",
}


def record(message: str = "run %s", *args: Any, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("nexus.worker", logging.INFO, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    return rec


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def emf_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if "_aws" in line]


@pytest.fixture
def metrics_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_METRICS", "on")
    monkeypatch.setenv("NEXUS_STAGE", "test")


@pytest.fixture
def nexus_logs() -> Iterator[None]:
    setup_logging("INFO")
    yield
    setup_logging()


@pytest.fixture
def engine(aws: None) -> Iterator[Engine]:
    yield Engine()


# -- logs -----------------------------------------------------------------------------------


def test_a_log_line_is_one_json_object_with_the_standard_fields_and_every_extra():
    line = JsonFormatter().format(
        record("run %s", "finished", job_id=7, execution_id="7-20260101T000000Z-1", status="ok")
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "INFO"
    assert data["logger"] == "nexus.worker"
    assert data["message"] == "run finished"
    assert data["timestamp"].endswith("Z") and "T" in data["timestamp"]
    assert (data["job_id"], data["execution_id"], data["status"]) == (
        7,
        "7-20260101T000000Z-1",
        "ok",
    )


def test_extras_that_are_not_json_are_written_as_text_and_exceptions_are_included():
    try:
        raise ValueError("boom")
    except ValueError:
        rec = record("failed", when=timedelta(seconds=3))
        rec.exc_info = sys.exc_info()
    data = json.loads(JsonFormatter().format(rec))
    assert data["when"] == "0:00:03"
    assert "ValueError: boom" in data["exception"]


def test_setup_logging_installs_one_handler_however_often_it_is_called(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("NEXUS_LOG_LEVEL", "warning")
    logger = setup_logging()
    setup_logging()
    try:
        assert sum(isinstance(h, JsonLogHandler) for h in logger.handlers) == 1
        assert logger.level == logging.WARNING
        assert logger.propagate is False  # Lambda's root handler would print it again
    finally:
        monkeypatch.delenv("NEXUS_LOG_LEVEL")
        setup_logging()
    assert logger.level == logging.INFO


def test_an_unknown_log_level_falls_back_to_info(nexus_logs: None):
    assert setup_logging("LOUD").level == logging.INFO


# -- metrics --------------------------------------------------------------------------------


def test_an_emf_line_names_the_namespace_the_stage_dimension_and_each_metric(
    metrics_on: None, capsys: pytest.CaptureFixture[str]
):
    emit_metrics({"RunsStarted": 1, "StartLatenessSeconds": 2.5}, job_id=3)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    (line,) = emf_lines(out)
    meta = line["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    assert meta["CloudWatchMetrics"] == [
        {
            "Namespace": "NEXUS",
            "Dimensions": [["Stage"]],
            "Metrics": [
                {"Name": "RunsStarted", "Unit": "Count"},
                {"Name": "StartLatenessSeconds", "Unit": "Seconds"},
            ],
        }
    ]
    assert line["Stage"] == "test"
    assert (line["RunsStarted"], line["StartLatenessSeconds"], line["job_id"]) == (1, 2.5, 3)


def test_the_stage_defaults_to_local(metrics_on: None, monkeypatch, capsys):
    monkeypatch.delenv("NEXUS_STAGE")
    emit_metrics({"RunsMissed": 4})
    (line,) = emf_lines(capsys.readouterr().out)
    assert line["Stage"] == "local"


def test_nexus_metrics_off_prints_nothing_even_in_lambda(monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "nexus-worker")
    monkeypatch.setenv("NEXUS_METRICS", "off")
    emit_metrics({"RunsStarted": 1})
    assert capsys.readouterr().out == ""


def test_metrics_are_on_by_default_only_inside_lambda(monkeypatch):
    monkeypatch.delenv("NEXUS_METRICS", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert metrics_enabled() is False
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "nexus-worker")
    assert metrics_enabled() is True


# -- what the engine emits ------------------------------------------------------------------


def test_a_worker_run_emits_started_lateness_and_succeeded_and_logs_its_job_id(
    engine: Engine, metrics_on: None, nexus_logs: None, capsys: pytest.CaptureFixture[str]
):
    (job,) = engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    (body,) = engine.receive()
    engine.clock.now += timedelta(seconds=3)  # the worker starts it 3 s late
    capsys.readouterr()

    assert engine.worker.process(body)

    captured = capsys.readouterr()
    metrics = emf_lines(captured.out)
    assert [sorted(set(m) & METRIC_NAMES) for m in metrics] == [
        ["RunsStarted", "StartLatenessSeconds"],
        ["RunsSucceeded"],
    ]
    started, finished = metrics
    assert started["StartLatenessSeconds"] == 3.0
    assert started["job_id"] == finished["job_id"] == job.id
    (run,) = engine.executions(job.id)
    logs = {line["message"]: line for line in json_lines(captured.err)}
    assert {"run started", "run finished"} <= set(logs)
    for message in ("run started", "run finished"):
        assert (logs[message]["job_id"], logs[message]["execution_id"]) == (job.id, run.id)
    assert logs["run finished"]["status"] == "completed"


def test_a_manual_run_emits_started_without_lateness(engine: Engine, metrics_on: None, capsys):
    jobs = JobService(engine.store, registry, engine.dispatcher, engine.queue)
    job = engine.add_jobs(1, next_run_at=engine.clock.now + timedelta(days=1))[0]
    jobs.execute_job(job.id, {"task_args": [1]}, engine.clock.now)
    (body,) = engine.receive()
    engine.clock.now += timedelta(seconds=3)
    capsys.readouterr()

    assert engine.worker.process(body)

    started, finished = emf_lines(capsys.readouterr().out)
    assert started["RunsStarted"] == 1 and "StartLatenessSeconds" not in started
    assert finished["RunsSucceeded"] == 1


def test_a_failing_run_emits_failed_and_retried(
    engine: Engine, metrics_on: None, nexus_logs: None, capsys: pytest.CaptureFixture[str]
):
    (job,) = engine.add_jobs(1, task_name="nexus.fail", max_retries=1, retry_delay=1)
    engine.dispatcher.tick(engine.clock.now)
    (body,) = engine.receive()
    capsys.readouterr()

    engine.worker.process(body)

    captured = capsys.readouterr()
    names = [sorted(set(m) & METRIC_NAMES) for m in emf_lines(captured.out)]
    assert names == [["RunsStarted", "StartLatenessSeconds"], ["RunsFailed"], ["RunsRetried"]]
    retry_log = next(x for x in json_lines(captured.err) if x["message"] == "retry scheduled")
    assert retry_log["job_id"] == job.id and retry_log["execution_id"].endswith("-2")


def test_a_dead_lettered_run_emits_failed(engine: Engine, metrics_on: None, capsys):
    (job,) = engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    (body,) = engine.receive()
    capsys.readouterr()
    engine.worker.dead_letter(body)
    (line,) = emf_lines(capsys.readouterr().out)
    assert (line["RunsFailed"], line["job_id"]) == (1, job.id)


def test_a_tick_emits_runs_missed_only_when_runs_were_missed(
    engine: Engine, metrics_on: None, nexus_logs: None, capsys: pytest.CaptureFixture[str]
):
    engine.add_jobs(1)
    engine.dispatcher.tick(engine.clock.now)
    assert emf_lines(capsys.readouterr().out) == []

    now = engine.clock.now
    (late,) = engine.add_jobs(
        1,
        job_type="cron",
        interval_seconds=None,
        cron_expression="* * * * *",
        next_run_at=now.replace(second=0) - timedelta(minutes=10),
    )
    report = engine.dispatcher.tick(now)
    captured = capsys.readouterr()
    (line,) = emf_lines(captured.out)
    # Those later than the 300 s grace: five or six, by the second the test runs at.
    assert line["RunsMissed"] == report.runs_missed >= 5
    missed_log = next(x for x in json_lines(captured.err) if x["message"] == "runs missed")
    assert missed_log["job_id"] == late.id and missed_log["execution_id"].startswith(f"{late.id}-")
