"""Secret references and redaction (issue 10, item 6; security.secrets), on the whole engine:
the API's service, the tick, the worker's batch handler, moto's DynamoDB and SSM.

The engine runs in the stage `local` (NEXUS_STAGE unset), so `ssm:/nexus/NAME` is the
parameter `/nexus/local/NAME`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws import client
from chalicelib.errors import InvalidInput
from chalicelib.security import secrets
from chalicelib.tasks import registry
from tests.engine.harness import EPOCH, System, check_invariants

SECRET = "s3cr3t-from-ssm-0f9e8d"
LITERAL_AUTH = "Bearer literal-in-the-job-7c6b5a"
LITERAL_PASSWORD = "hunter2-literal-4d3c"

# What the test task was called with, one entry per call.
seen_kwargs: list[dict[str, Any]] = []


@registry.task("test.secrets.sees")
def sees(ctx: Any, fail_first_attempt: bool = False, **kwargs: Any) -> dict[str, Any]:
    """Records the kwargs it got and returns them, as nexus.echo does."""
    seen_kwargs.append(kwargs)
    if fail_first_attempt and ctx.attempt == 1:
        raise RuntimeError(f"refused with {kwargs['headers']['Authorization']}")
    return {"kwargs": kwargs}


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    seen_kwargs.clear()
    secrets.clear_cache()
    yield
    secrets.clear_cache()


@pytest.fixture
def nexus_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the `nexus` loggers (they do not propagate to the root's handler)."""
    nexus = logging.getLogger("nexus")
    nexus.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    nexus_level = nexus.level
    nexus.setLevel(logging.DEBUG)
    yield caplog
    nexus.removeHandler(caplog.handler)
    nexus.setLevel(nexus_level)


def put_secret(name: str, value: str = SECRET) -> None:
    client("ssm").put_parameter(Name=f"/nexus/local/{name}", Value=value, Type="SecureString")


def date_job(system: System, task_kwargs: dict[str, Any], **fields: Any) -> Any:
    return system.create_job(
        job_type="date",
        scheduled_time=(EPOCH + timedelta(minutes=5)).isoformat(),
        task_name="test.secrets.sees",
        task_kwargs=task_kwargs,
        **fields,
    )


def run_until_quiet(system: System) -> None:
    system.clock.now = system.next_tick = EPOCH + timedelta(minutes=4, seconds=30)
    system.run()


def table_items(system: System) -> list[dict[str, Any]]:
    """Every item of the table, as DynamoDB holds it."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"TableName": system.store.table_name}
    while True:
        out = system.db.scan(**params)
        items += out["Items"]
        if "LastEvaluatedKey" not in out:
            return items
        params["ExclusiveStartKey"] = out["LastEvaluatedKey"]


def holding(system: System, value: str) -> list[str]:
    """The keys of the items with `value` anywhere in any attribute."""
    return [
        f"{item['pk']['S']}/{item['sk']['S']}"
        for item in table_items(system)
        if value in json.dumps(item)
    ]


def every_log_line(caplog: pytest.LogCaptureFixture, logger: str = "") -> str:
    """Each record's message and attributes (`extra` fields too), of `logger` and below."""
    return "\n".join(
        f"{r.getMessage()} {r.__dict__!r}"
        for r in caplog.records
        if not logger or r.name == logger or r.name.startswith(f"{logger}.")
    )


# -- a run ------------------------------------------------------------------------------------


def test_a_secret_header_reaches_the_task_resolved_and_no_item_of_the_table_holds_it(
    system, nexus_logs
):
    put_secret("api-token")
    nexus_logs.clear()  # the test's own PutParameter is logged (botocore, at DEBUG)
    job = date_job(
        system,
        {
            "url": "https://example.com/hook",
            "headers": {
                "X-Api-Key": {"$secret": "ssm:/nexus/api-token"},
                "Authorization": LITERAL_AUTH,
                "Accept": "application/json",
            },
            "db": {"password": LITERAL_PASSWORD, "host": "db.internal"},
        },
    )
    run_until_quiet(system)

    assert seen_kwargs == [
        {
            "url": "https://example.com/hook",
            "headers": {
                "X-Api-Key": SECRET,
                "Authorization": LITERAL_AUTH,
                "Accept": "application/json",
            },
            "db": {"password": LITERAL_PASSWORD, "host": "db.internal"},
        }
    ]
    (run,) = system.records()
    assert run.status == "completed"
    shown = {
        "url": "https://example.com/hook",
        "headers": {
            "X-Api-Key": {"$secret": "ssm:/nexus/api-token"},
            "Authorization": "***",
            "Accept": "application/json",
        },
        "db": {"password": "***", "host": "db.internal"},
    }
    assert run.task_kwargs == shown
    # nexus.echo-like: the result held the values it was given; the record holds "***".
    assert run.result == {"kwargs": {**shown, "headers": {**shown["headers"], "X-Api-Key": "***"}}}
    # The resolved secret is in no item; the literals only in the job's own (the worker
    # needs them; a reference is the way to keep them out of the table).
    assert holding(system, SECRET) == []
    assert holding(system, LITERAL_AUTH) == [f"JOB#{job.id}/JOB"]
    assert holding(system, LITERAL_PASSWORD) == [f"JOB#{job.id}/JOB"]
    # Every logger at DEBUG, botocore's too: the resolved value is in no record. (The
    # literals are, in botocore's DEBUG records of the job's own item, and in no NEXUS one.)
    logs = every_log_line(nexus_logs)
    assert "run finished" in logs  # the worker's records were captured
    assert SECRET not in logs
    ours = every_log_line(nexus_logs, "nexus")
    for value in (LITERAL_AUTH, LITERAL_PASSWORD):
        assert value not in ours


def test_a_retry_gets_the_jobs_values_back_although_its_record_shows_stars(system):
    put_secret("api-token")
    job = date_job(
        system,
        {
            "fail_first_attempt": True,
            "headers": {
                "Authorization": LITERAL_AUTH,
                "Cookie": {"$secret": "ssm:/nexus/api-token"},
            },
        },
        max_retries=1,
        retry_delay=1,
    )
    run_until_quiet(system)

    expected = {"headers": {"Authorization": LITERAL_AUTH, "Cookie": SECRET}}
    assert seen_kwargs == [expected, expected]
    (attempts,) = check_invariants(system, [job]).values()
    assert [a.status for a in attempts] == ["failed", "completed"]
    # The task's error named the header's value: the record keeps the text without it.
    assert attempts[0].error == {"type": "RuntimeError", "message": "refused with ***"}
    for attempt in attempts:
        assert attempt.task_kwargs["headers"] == {
            "Authorization": "***",
            "Cookie": {"$secret": "ssm:/nexus/api-token"},
        }
    assert holding(system, LITERAL_AUTH) == [f"JOB#{job.id}/JOB"]
    assert holding(system, SECRET) == []


def test_a_run_on_demand_with_a_reference_of_its_own_runs_with_its_value(system):
    put_secret("other-token", "the-other-secret-value")
    job = system.create_job(
        job_type="interval",
        interval_seconds=86400,
        task_name="test.secrets.sees",
        task_kwargs={"token": "job-literal-token-1234"},
    )
    system.api.execute_job(
        job.id, {"task_kwargs": {"token": {"$secret": "ssm:/nexus/other-token"}}}, EPOCH
    )
    system.run(until=timedelta(minutes=3))

    assert seen_kwargs == [{"token": "the-other-secret-value"}]
    (run,) = [r for r in system.records() if r.trigger == "manual"]
    assert run.status == "completed"
    assert run.task_kwargs == {"token": {"$secret": "ssm:/nexus/other-token"}}
    assert holding(system, "the-other-secret-value") == []


def test_a_run_on_demand_cannot_bring_a_credential_in_clear_other_than_the_jobs(system):
    job = system.create_job(
        job_type="interval",
        interval_seconds=86400,
        task_name="test.secrets.sees",
        task_kwargs={"headers": {"Authorization": LITERAL_AUTH}},
    )
    with pytest.raises(InvalidInput) as refused:
        system.api.execute_job(
            job.id, {"task_kwargs": {"headers": {"Authorization": "Bearer other"}}}, EPOCH
        )
    (error,) = refused.value.errors
    assert error.loc == ("body", "task_kwargs", "headers", "Authorization")
    assert "$secret" in error.msg
    # "***" (as the API shows it) or the job's own value: the job's credential.
    for second, same in enumerate(("***", LITERAL_AUTH)):
        system.api.execute_job(
            job.id,
            {"task_kwargs": {"headers": {"Authorization": same}}},
            EPOCH + timedelta(seconds=second),
        )
    system.run(until=timedelta(minutes=3))
    assert seen_kwargs == [{"headers": {"Authorization": LITERAL_AUTH}}] * 2
    assert holding(system, LITERAL_AUTH) == [f"JOB#{job.id}/JOB"]


# -- failures ---------------------------------------------------------------------------------


def test_a_missing_parameter_fails_its_run_with_the_reason_and_other_runs_go_on(system, nexus_logs):
    broken = date_job(system, {"api_key": {"$secret": "ssm:/nexus/x"}})
    fine = date_job(system, {"n": 1})
    run_until_quiet(system)

    runs = check_invariants(system, [broken, fine])
    ((broken_run,),) = [a for (job_id, _), a in runs.items() if job_id == broken.id]
    assert broken_run.status == "failed"
    assert broken_run.error is not None
    assert broken_run.error["type"] == "SecretNotFound"
    assert "secret ssm:/nexus/x not found" in broken_run.error["message"]
    assert "/nexus/local/x" in broken_run.error["message"]
    ((fine_run,),) = [a for (job_id, _), a in runs.items() if job_id == fine.id]
    assert fine_run.status == "completed"
    assert seen_kwargs == [{"n": 1}]  # the broken run's task was never called
    assert system.deaths.total == 0
    assert "could not process a run" not in every_log_line(nexus_logs)


def test_a_string_parameter_is_refused_at_run_time_as_stored_in_clear(system):
    client("ssm").put_parameter(Name="/nexus/local/plain", Value="p-value", Type="String")
    job = date_job(system, {"password": {"$secret": "ssm:/nexus/plain"}})
    run_until_quiet(system)
    ((run,),) = check_invariants(system, [job]).values()
    assert run.status == "failed"
    assert run.error is not None
    assert "store it as a SecureString" in run.error["message"]
    assert seen_kwargs == []


class ThrottledSsm:
    """SSM answering ThrottlingException `times` times, then moto's answers."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.calls = 0

    def get_parameters(self, **params: Any) -> Any:
        self.calls += 1
        if self.left > 0:
            self.left -= 1
            raise ClientError(
                {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}},
                "GetParameters",
            )
        return client("ssm").get_parameters(**params)


def test_ssm_throttling_does_not_fail_the_run_it_is_taken_over_once_ssm_answers(
    system, monkeypatch
):
    put_secret("api-token")
    ssm = ThrottledSsm(times=4)  # every try of the first delivery's backoff
    monkeypatch.setattr(secrets, "_resolver", secrets.Resolver(lambda: ssm))
    job = date_job(system, {"token": {"$secret": "ssm:/nexus/api-token"}})
    run_until_quiet(system)

    ((run,),) = check_invariants(system, [job]).values()
    assert run.status == "completed"
    assert run.attempt == 1  # the same attempt, taken over: not a failure and a retry
    assert seen_kwargs == [{"token": SECRET}]
    assert ssm.calls == 5
    assert system.deaths.total == 0


# -- the cache and the batches ----------------------------------------------------------------


class CountingSsm:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def get_parameters(self, Names: list[str], WithDecryption: bool) -> Any:
        assert WithDecryption is True
        self.batches.append(Names)
        return {
            "Parameters": [{"Name": n, "Type": "SecureString", "Value": f"v{n}"} for n in Names],
            "InvalidParameters": [],
        }


def test_parameters_are_read_ten_to_a_call_and_reused_for_sixty_seconds():
    ssm, now = CountingSsm(), [0.0]
    resolver = secrets.Resolver(lambda: ssm, stage=lambda: "prod", clock=lambda: now[0])
    references = [f"ssm:/nexus/p{i:02d}" for i in range(12)]

    first = resolver.values(references)
    assert [len(b) for b in ssm.batches] == [10, 2]
    assert first["ssm:/nexus/p03"] == "v/nexus/prod/p03"
    now[0] = 59.0
    assert resolver.values(references) == first
    assert len(ssm.batches) == 2  # all from the cache
    now[0] = 60.0
    resolver.values(references[:1])
    assert ssm.batches[-1] == ["/nexus/prod/p00"]


# -- the rules --------------------------------------------------------------------------------


def test_history_shows_credentials_as_stars_at_any_depth_and_references_as_they_are():
    reference = {"$secret": "ssm:/nexus/a"}
    kwargs = {
        "headers": {"authorization": "x", "COOKIE": "c", "Proxy-Authorization": "p", "Ok": "v"},
        "nested": [{"X-API-KEY": "k", "refresh_token": 5, "Secret_Sauce": ["a", reference]}],
        "user_password": None,
        "password": reference,
        "plain": "visible",
    }
    assert secrets.redacted(kwargs) == {
        "headers": {
            "authorization": "***",
            "COOKIE": "***",
            "Proxy-Authorization": "***",
            "Ok": "v",
        },
        "nested": [
            {"X-API-KEY": "***", "refresh_token": "***", "Secret_Sauce": ["***", reference]}
        ],
        "user_password": None,
        "password": reference,
        "plain": "visible",
    }
    assert secrets.redacted(secrets.redacted(kwargs)) == secrets.redacted(kwargs)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"$secret": "ssm:/other/x"}, "outside this stage's parameters"),
        ({"$secret": "ssm:/nexus/../prod/x"}, "not a parameter name"),
        ({"$secret": "ssm:/nexus/local/x"}, "write it relative to the stage's path"),
        ({"$secret": "vault:/nexus/x"}, "only SSM Parameter Store references"),
        ({"$secret": 7}, "must be a string"),
        ({"$secret": "ssm:/nexus/x", "default": "y"}, "with no other key"),
    ],
)
def test_a_malformed_reference_or_one_outside_the_stage_is_refused_naming_its_field(
    system, value, problem
):
    with pytest.raises(InvalidInput) as refused:
        date_job(system, {"headers": {"Authorization": value}})
    (error,) = refused.value.errors
    assert error.loc == ("body", "task_kwargs", "headers", "Authorization")
    assert problem in error.msg
