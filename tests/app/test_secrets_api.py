"""Secret references and redaction through the API (issue 10, item 6; security.secrets).

chalice's test client gives the app the `dev` stage's environment, so a reference
`ssm:/nexus/NAME` names `/nexus/dev/NAME`; the worker run here is given the same stage.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.security import secrets

SECRET = "ssm-value-9a8b7c6d5e"
LITERAL_AUTH = "Bearer given-in-clear-1f2e3d"
REFERENCE = {"$secret": "ssm:/nexus/api-token"}
BAD = [
    ({"$secret": "ssm:/other/api-token"}, "outside this stage's parameters"),
    ({"$secret": "ssm:/nexus/../prod/api-token"}, "not a parameter name"),
    ({"$secret": "ssm:/nexus/dev/api-token"}, "relative to the stage's path"),
    ({"$secret": "arn:aws:ssm:us-east-1:1:parameter/x"}, "only SSM Parameter Store"),
    ({"$secret": ["ssm:/nexus/a"]}, "must be a string"),
    ({"$secret": "ssm:/nexus/a", "fallback": "x"}, "with no other key"),
]
WHERE = ["body", "task_kwargs", "headers", "Authorization"]


@pytest.fixture(autouse=True)
def dev_stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("NEXUS_STAGE", "dev")  # the worker's, as the API's is
    secrets.clear_cache()
    yield
    secrets.clear_cache()


def job_body(**task_kwargs: Any) -> dict[str, Any]:
    return {
        "name": "call a hook",
        "job_type": "interval",
        "interval_seconds": 3600,
        "task_name": "nexus.echo",
        "task_kwargs": task_kwargs,
    }


def run_what_is_queued() -> None:
    """Be the worker Lambda for the messages on the work queue now."""
    import app as app_module
    from chalicelib.aws import client
    from chalicelib.config import get_settings

    out = client("sqs").receive_message(
        QueueUrl=get_settings().queue_url, MaxNumberOfMessages=10, VisibilityTimeout=300
    )
    worker = app_module.worker_engine()
    for message in out.get("Messages", []):
        worker.process(message["Body"])


def stored_kwargs(job_id: int) -> dict[str, Any]:
    import app as app_module

    return app_module.store().jobs.get_job(job_id).task_kwargs


def test_the_api_shows_a_jobs_credentials_as_stars_and_its_references_as_they_are(api):
    body = job_body(
        url="https://example.com",
        headers={"Authorization": LITERAL_AUTH, "X-Api-Key": REFERENCE, "Accept": "json"},
        options=[{"db_password": "pw-in-clear"}],
    )
    shown = {
        "url": "https://example.com",
        "headers": {"Authorization": "***", "X-Api-Key": REFERENCE, "Accept": "json"},
        "options": [{"db_password": "***"}],
    }
    created = api.post("/v1/jobs", body)
    assert created.status_code == 201, created.json
    job_id = created.json["id"]
    assert created.json["task_kwargs"] == shown
    assert api.get(f"/v1/jobs/{job_id}").json["task_kwargs"] == shown
    assert [j["task_kwargs"] for j in api.get("/v1/jobs").json] == [shown]
    assert stored_kwargs(job_id) == body["task_kwargs"]  # the job keeps what the run needs


def test_a_job_read_from_the_api_and_written_back_keeps_its_credentials(api):
    job = api.post("/v1/jobs", job_body(headers={"Authorization": LITERAL_AUTH})).json
    kwargs = api.get(f"/v1/jobs/{job['id']}").json["task_kwargs"]
    kwargs["headers"]["Accept"] = "json"

    updated = api.put(f"/v1/jobs/{job['id']}", {"task_kwargs": kwargs})
    assert updated.status_code == 200, updated.json
    assert updated.json["task_kwargs"] == {"headers": {"Authorization": "***", "Accept": "json"}}
    assert stored_kwargs(job["id"]) == {
        "headers": {"Authorization": LITERAL_AUTH, "Accept": "json"}
    }
    # A new value replaces it; a reference too.
    api.put(f"/v1/jobs/{job['id']}", {"task_kwargs": {"headers": {"Authorization": "Bearer b"}}})
    assert stored_kwargs(job["id"]) == {"headers": {"Authorization": "Bearer b"}}
    api.put(f"/v1/jobs/{job['id']}", {"task_kwargs": {"headers": {"Authorization": REFERENCE}}})
    assert stored_kwargs(job["id"]) == {"headers": {"Authorization": REFERENCE}}


@pytest.mark.parametrize(("reference", "problem"), BAD)
def test_creating_a_job_with_a_malformed_reference_or_one_outside_the_stage_is_422_naming_it(
    api, reference, problem
):
    response = api.post("/v1/jobs", job_body(headers={"Authorization": reference}))
    assert response.status_code == 422, response.json
    (error,) = response.json["detail"]
    assert error["loc"] == WHERE
    assert problem in error["msg"]
    assert error["type"] == "value_error.secret"
    assert api.get("/v1/jobs").json == []


@pytest.mark.parametrize(("reference", "problem"), BAD)
def test_updating_or_running_a_job_with_a_bad_reference_is_422_naming_it(api, reference, problem):
    job = api.post("/v1/jobs", job_body(headers={"Authorization": REFERENCE})).json
    bad = {"task_kwargs": {"headers": {"Authorization": reference}}}
    for response in (
        api.put(f"/v1/jobs/{job['id']}", bad),
        api.post(f"/v1/jobs/{job['id']}/execute", bad),
    ):
        assert response.status_code == 422, response.json
        (error,) = response.json["detail"]
        assert (error["loc"], error["type"]) == (WHERE, "value_error.secret")
        assert problem in error["msg"]
    assert stored_kwargs(job["id"]) == {"headers": {"Authorization": REFERENCE}}
    assert api.get(f"/v1/jobs/{job['id']}/executions").json == []


def test_a_run_on_demand_with_a_credential_of_its_own_in_clear_is_422(api):
    job = api.post("/v1/jobs", job_body(headers={"Authorization": LITERAL_AUTH})).json
    response = api.post(
        f"/v1/jobs/{job['id']}/execute",
        {"task_kwargs": {"headers": {"Authorization": "Bearer someone-elses"}}},
    )
    assert response.status_code == 422
    (error,) = response.json["detail"]
    assert error["loc"] == WHERE
    assert "$secret" in error["msg"]


def test_the_run_history_shows_stars_and_references_and_never_a_value(api):
    from chalicelib.aws import client

    client("ssm").put_parameter(Name="/nexus/dev/api-token", Value=SECRET, Type="SecureString")
    job = api.post(
        "/v1/jobs",
        job_body(headers={"Authorization": REFERENCE, "Cookie": "session=abc123def456"}),
    ).json
    assert api.post(f"/v1/jobs/{job['id']}/execute").status_code == 200
    run_what_is_queued()

    response = api.get(f"/v1/jobs/{job['id']}/executions")
    (run,) = response.json
    assert run["status"] == "completed", run
    assert run["task_kwargs"] == {"headers": {"Authorization": REFERENCE, "Cookie": "***"}}
    # nexus.echo returned what it was called with: the values, recorded as "***".
    assert run["result"] == {
        "args": [],
        "kwargs": {"headers": {"Authorization": "***", "Cookie": "***"}},
    }
    assert SECRET.encode() not in response.body
    assert b"abc123def456" not in response.body


def test_a_run_whose_parameter_is_missing_fails_with_the_reason_in_its_history(api):
    job = api.post("/v1/jobs", job_body(token={"$secret": "ssm:/nexus/x"})).json
    api.post(f"/v1/jobs/{job['id']}/execute")
    run_what_is_queued()

    (run,) = api.get(f"/v1/jobs/{job['id']}/executions").json
    assert run["status"] == "failed"
    assert run["error"]["type"] == "SecretNotFound"
    assert run["error"]["message"].startswith("secret ssm:/nexus/x not found")
    assert "/nexus/dev/x" in run["error"]["message"]
