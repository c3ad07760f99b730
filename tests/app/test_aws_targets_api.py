"""AWS targets through the API: a job naming a target outside NEXUS_TARGET_ALLOW is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

ALLOW = ["arn:aws:sqs:us-east-1:123456789012:orders-*"]


def sqs_job(queue_url: str) -> dict[str, Any]:
    return {
        "name": "send orders",
        "job_type": "interval",
        "interval_seconds": 3600,
        "task_name": "aws.sqs.send",
        "task_kwargs": {"queue_url": queue_url, "body": {"batch": "nightly"}},
    }


@pytest.fixture(autouse=True)
def _allow(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # A stage's own list would win: chalice.test's Client applies .chalice/config.json's
    # variables to every request (the stages ship without NEXUS_TARGET_ALLOW).
    monkeypatch.setenv("NEXUS_TARGET_ALLOW", json.dumps(ALLOW))


def test_creating_a_job_that_sends_to_a_queue_outside_the_allowlist_is_422_naming_the_url(api):
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/billing"
    response = api.post("/v1/jobs", sqs_job(url))
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["body", "task_kwargs", "queue_url"]
    assert error["msg"] == (
        "arn:aws:sqs:us-east-1:123456789012:billing is not in NEXUS_TARGET_ALLOW; allowed: "
        f"{ALLOW[0]} (add a pattern to NEXUS_TARGET_ALLOW to allow it)"
    )
    assert api.get("/v1/jobs").json == []


def test_creating_a_job_that_sends_to_an_allowed_queue_succeeds(api):
    url = "https://sqs.us-east-1.amazonaws.com/123456789012/orders-eu"
    response = api.post("/v1/jobs", sqs_job(url))
    assert response.status_code == 201, response.json
    assert response.json["task_kwargs"]["queue_url"] == url
