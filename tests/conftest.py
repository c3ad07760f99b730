"""Shared fixtures: a moto-backed AWS, and the Chalice app on top of it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from moto import mock_aws

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "NEXUS_TABLE": "nexus-test",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("NEXUS_AWS_ENDPOINT_URL", None)


# Figures tests report for the end of the run ("crash point: <row>" -> calls covered,
# "schemathesis requests"): kept per process, sent by each pytest-xdist worker to the
# controller, printed once in the terminal summary.
FIGURES: dict[str, int] = {}


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        workeroutput["nexus_figures"] = json.dumps(FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    raw = getattr(node, "workeroutput", {}).get("nexus_figures")
    if raw:
        FIGURES.update(json.loads(raw))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    rows = {k.split(": ", 1)[1]: v for k, v in FIGURES.items() if k.startswith("crash point: ")}
    if rows:
        terminalreporter.write_line(
            f"crash points covered: {sum(rows.values())} ({len(rows)} life cycle x kind rows)"
        )
        for row, count in sorted(rows.items()):
            terminalreporter.write_line(f"  {row}: {count} calls")
    if "schemathesis requests" in FIGURES:
        terminalreporter.write_line(
            f"schemathesis: {FIGURES['schemathesis requests']} generated requests, "
            f"{FIGURES.get('schemathesis failures', 0)} failures"
        )


def _reset_caches() -> None:
    import app as app_module
    from chalicelib import aws, config

    config.get_settings.cache_clear()
    aws.client.cache_clear()
    aws.target_client.cache_clear()
    for getter in (
        app_module.store,
        app_module.work_queue,
        app_module.dispatcher,
        app_module.jobs,
        app_module.worker_engine,
        app_module.controls,
        app_module.backfills,
        app_module.gate,
        app_module.keys,
    ):
        getter.cache_clear()


def _create_resources() -> None:
    """Create the table and queues, and settle the settings on them.

    chalice.test.Client patches os.environ with the stage's variables during each call; the
    settings are read once and cached here first, so the app uses the test's resources.
    """
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.resources import ensure_queue, ensure_table

    _reset_caches()
    ensure_table(client("dynamodb"), get_settings().table_name)
    os.environ["NEXUS_QUEUE_URL"] = ensure_queue(client("sqs"), "nexus-test-work")
    _reset_caches()
    get_settings()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Moto, answering one DynamoDB request at a time as DynamoDB applies each atomically:
    the tick and the worker's batches make their calls from several threads, and in-process
    moto is not safe for that (local.aws_process.serialise_dynamodb). Undone after the test."""
    from moto.dynamodb import models as dynamodb_models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    from local.aws_process import (
        query_reads_its_partition,
        serialise_dynamodb,
        transaction_tokens,
        transactions_copy_only_their_items,
    )

    monkeypatch.setattr(DynamoHandler, "call_action", DynamoHandler.__dict__["call_action"])
    serialise_dynamodb()
    # And, as the embedded AWS does (each shown to answer as moto does, in
    # tests/unit/test_local_transactions.py and test_embedded_aws.py): a transaction copies
    # and puts back its own items, not every table it names (moto's deep copy of the table
    # took most of an engine test's time), and a Query reads its partition, not the whole table.
    monkeypatch.setattr(dynamodb_models, "copy", dynamodb_models.copy)
    monkeypatch.setattr(
        DynamoDBBackend, "transact_write_items", DynamoDBBackend.__dict__["transact_write_items"]
    )
    monkeypatch.setattr(Table, "query", Table.__dict__["query"])
    # And a transaction repeated with its ClientRequestToken is a no-op, as on DynamoDB.
    monkeypatch.setattr(
        DynamoHandler, "transact_write_items", DynamoHandler.__dict__["transact_write_items"]
    )
    transactions_copy_only_their_items()
    query_reads_its_partition()
    transaction_tokens()
    with mock_aws():
        _create_resources()
        yield
        _reset_caches()


# The admin key the `api` fixture's requests carry unless a test says otherwise.
TEST_ADMIN_KEY = "test-admin-key-0123456789abcdef"


def store_admin_key(token: str = TEST_ADMIN_KEY) -> None:
    from app import keys

    keys().ensure_key(token, "test admin", datetime.now(UTC))


class Api:
    """chalice.test.Client with JSON in and out, at the app's route paths (/v1/...), with
    an admin key (`key=None` sends no Authorization header; `key="..."` another key)."""

    def __init__(self, http: Any, key: str | None = TEST_ADMIN_KEY) -> None:
        self.http = http
        self.key = key

    def as_key(self, key: str | None) -> Api:
        return Api(self.http, key)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        hdrs = {"Content-Type": "application/json"}
        if self.key is not None:
            hdrs["Authorization"] = f"Bearer {self.key}"
        hdrs.update(headers or {})
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        response = getattr(self.http, method)(path, headers=hdrs, body=payload)
        response.json = json.loads(response.body) if response.body else None
        return response

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("get", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("post", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> Any:
        return self.call("put", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("delete", path, **kw)


@pytest.fixture
def api() -> Iterator[Api]:
    from chalice.test import Client

    from app import app

    # The Client sets the stage's environment variables from .chalice/config.json.
    with mock_aws(), Client(app) as client:
        _create_resources()
        store_admin_key()
        yield Api(client.http)
        _reset_caches()


@pytest.fixture
def contract_job() -> dict[str, Any]:
    """The job of the contract's 'Create Job' example, as it stands."""
    return {
        "name": "Daily Report",
        "description": "Generate daily analytics report",
        "job_type": "cron",
        "cron_expression": "0 9 * * 1-5",
        "interval_seconds": None,
        "scheduled_time": None,
        "calendar_rule": None,
        "task_name": "tasks.generate_report",
        "task_args": [],
        "task_kwargs": {"format": "pdf"},
        "timezone": "US/Eastern",
        "is_active": True,
        "max_retries": 3,
        "retry_delay": 60,
        "retry_backoff": True,
        "priority": 5,
        "tags": ["report", "analytics"],
        "metadata": {},
        "created_by": "admin",
    }


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
