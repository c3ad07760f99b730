"""What a caller sees when AWS fails under the API: a clear 503 to retry, never a 500, and
nothing half-written."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.aws import client
from tests.faults import FaultInjector

JOB = {"name": "j", "job_type": "interval", "interval_seconds": 3600, "task_name": "nexus.echo"}

PERSISTENT = [
    ("ThrottlingException", {"kind": "error", "code": "ThrottlingException"}),
    (
        "ProvisionedThroughputExceeded",
        {"kind": "error", "code": "ProvisionedThroughputExceededException"},
    ),
    ("RequestLimitExceeded", {"kind": "error", "code": "RequestLimitExceeded"}),
    ("InternalServerError", {"kind": "error", "code": "InternalServerError"}),
    ("a read that times out", {"kind": "timeout"}),
]


def failing(p: float = 1.0, **fault: Any) -> FaultInjector:
    kind = fault.pop("kind")
    return FaultInjector().randomly(p, kind, **fault).attach(client("dynamodb"))


@pytest.mark.parametrize("name, fault", PERSISTENT, ids=[n for n, _ in PERSISTENT])
@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", "/v1/jobs", JOB),
        ("GET", "/v1/jobs", None),
        ("GET", "/v1/jobs/1", None),
        ("PUT", "/v1/jobs/1", {"priority": 3}),
        ("DELETE", "/v1/jobs/1", None),
        ("POST", "/v1/jobs/1/execute", None),
        ("GET", "/v1/jobs/stats/overview", None),
    ],
)
def test_aws_refusing_every_call_gives_a_503_to_retry_and_changes_nothing(
    api, name, fault, method, path, body
):
    assert api.post("/v1/jobs", JOB).status_code == 201
    before = api.get("/v1/jobs/1").json
    with failing(**dict(fault)):
        response = api.call(method.lower(), path, body)
    assert response.status_code == 503, response.json
    assert response.headers["Retry-After"] == "1"
    assert "retry" in response.json["detail"]
    after = api.get("/v1/jobs/1").json
    assert after == before
    assert len(api.get("/v1/jobs").json) == 1


def test_a_transaction_conflict_on_create_is_retried_and_the_job_is_created_once(api):
    conflict = FaultInjector().inject(
        1,
        "error",
        op="TransactWriteItems",
        code="TransactionCanceledException",
        reasons=["None", "TransactionConflict"],
    )
    with conflict.attach(client("dynamodb")):
        response = api.post("/v1/jobs", JOB)
    assert response.status_code == 201
    assert len(conflict.fired) == 1
    assert len(api.get("/v1/jobs").json) == 1
    assert api.get("/v1/jobs/stats/overview").json["total_jobs"] == 1


def test_a_transaction_that_keeps_conflicting_gives_a_503_and_no_job(api):
    with failing(
        kind="error",
        op="TransactWriteItems",
        code="TransactionCanceledException",
        reasons=["None", "TransactionConflict"],
    ):
        response = api.post("/v1/jobs", JOB)
    assert response.status_code == 503
    assert api.get("/v1/jobs").json == []
    assert api.get("/v1/jobs/stats/overview").json["total_jobs"] == 0


def test_unprocessed_keys_every_time_give_a_503_not_a_partial_list(api):
    for _ in range(3):
        api.post("/v1/jobs", JOB)
    with failing(kind="partial", op="BatchGetItem", keep=0):
        response = api.get("/v1/jobs")
    assert response.status_code == 503


def test_unprocessed_keys_now_and_then_are_asked_again(api):
    for _ in range(3):
        api.post("/v1/jobs", JOB)
    with failing(p=0.5, kind="partial", op="BatchGetItem", keep=1):
        response = api.get("/v1/jobs")
    assert response.status_code == 200
    assert len(response.json) == 3


def test_a_manual_run_whose_send_sqs_refuses_is_accepted_and_kept_for_the_tick(api):
    job = api.post("/v1/jobs", JOB).json
    refused = FaultInjector().randomly(1.0, "partial", op="SendMessageBatch")
    with refused.attach(client("sqs")):
        response = api.post(f"/v1/jobs/{job['id']}/execute")
    assert response.status_code == 200
    (run,) = api.get(f"/v1/jobs/{job['id']}/executions").json
    assert (run["id"], run["status"]) == (response.json["execution_id"], "pending")


def test_a_manual_run_whose_send_times_out_is_accepted_and_kept_for_the_tick(api):
    job = api.post("/v1/jobs", JOB).json
    with FaultInjector().randomly(1.0, "timeout", op="SendMessageBatch").attach(client("sqs")):
        response = api.post(f"/v1/jobs/{job['id']}/execute")
    assert response.status_code == 200
    assert api.get(f"/v1/jobs/{job['id']}/executions").json[0]["status"] == "pending"


def test_a_tag_filter_past_the_bound_is_a_422_that_names_the_field(api):
    tags = ",".join(f"t{i}" for i in range(1000))
    response = api.get(f"/v1/jobs?tags={tags}")
    assert response.status_code == 422
    (error,) = response.json["detail"]
    assert error["loc"] == ["query", "tags"]
    assert "at most 20" in error["msg"]
