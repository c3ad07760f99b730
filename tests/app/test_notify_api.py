"""A job's `notify` through the API (issue 14, item 3): stored, shown, changed by a PUT,
cleared with null, and a 422 naming the field for a bad value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.app.test_jobs_api import create, minimal

HOOK = {"webhook_url": "https://hooks.example.com/nexus"}
TOPIC = {"sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:ops"}


@pytest.fixture(autouse=True)
def topics_allowed(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The stage allows the topics named `ops*` (NEXUS_TARGET_ALLOW; set after `api`, whose
    requests apply the stage's variables)."""
    monkeypatch.setenv("NEXUS_TARGET_ALLOW", '["arn:aws:sns:us-east-1:123456789012:ops*"]')


def test_notify_is_stored_shown_changed_and_cleared(api: Any) -> None:
    policy = {"on_recovery": True, "after_consecutive_failures": 3, "channels": [HOOK, HOOK]}
    job = create(api, notify=policy)
    shown = {
        "on_failure": True,
        "on_recovery": True,
        "after_consecutive_failures": 3,
        "channels": [{"webhook_url": HOOK["webhook_url"], "sns_topic_arn": None, "secret": None}],
    }
    assert job["notify"] == shown  # defaults filled in, the channel given twice kept once
    assert api.get(f"/v1/jobs/{job['id']}").json["notify"] == shown
    for internal in ("failure_streak", "streak_before", "streak_run"):
        assert internal not in job

    response = api.put(f"/v1/jobs/{job['id']}", {"notify": {"channels": [TOPIC]}})
    assert response.status_code == 200, response.json
    assert response.json["notify"]["channels"][0]["sns_topic_arn"] == TOPIC["sns_topic_arn"]
    assert response.json["notify"]["on_recovery"] is False

    response = api.put(f"/v1/jobs/{job['id']}", {"notify": None})
    assert response.status_code == 200, response.json
    assert api.get(f"/v1/jobs/{job['id']}").json["notify"] is None


def test_a_job_without_notify_shows_null(api: Any) -> None:
    assert create(api)["notify"] is None


@pytest.mark.parametrize(
    ("notify", "loc", "says"),
    [
        ({"channels": []}, ["body", "notify", "channels"], "at least 1"),
        ({"channels": [HOOK] + [TOPIC] * 5}, ["body", "notify", "channels"], "at most 5"),
        (
            {"channels": [{"sns_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"}]},
            ["body", "notify", "channels", 0, "sns_topic_arn"],
            "arn:aws:sns:REGION:ACCOUNT:NAME",
        ),
        (
            {"channels": [{"webhook_url": "http://169.254.169.254/latest"}]},
            ["body", "notify", "channels", 0, "webhook_url"],
            "NEXUS_HTTP_ALLOW",
        ),
        (
            {"channels": [{**HOOK, **TOPIC}]},
            ["body", "notify", "channels", 0],
            "not both",
        ),
        (
            {"after_consecutive_failures": 1, "channels": [HOOK]},
            ["body", "notify", "after_consecutive_failures"],
            "2",
        ),
        (
            {"channels": [{"sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:billing"}]},
            ["body", "notify", "channels", 0, "sns_topic_arn"],
            "is not in NEXUS_TARGET_ALLOW",
        ),
        ({"on_failure": "yes", "channels": [HOOK]}, ["body", "notify", "on_failure"], "bool"),
        ({"on_failures": True, "channels": [HOOK]}, ["body", "notify", "on_failures"], ""),
    ],
)
def test_bad_notify_is_422_naming_the_field(
    api: Any, notify: dict[str, Any], loc: list[Any] | None, says: str | None
) -> None:
    response = api.post("/v1/jobs", minimal(notify=notify))
    if loc is None:
        assert response.status_code == 201, response.json
        return
    assert response.status_code == 422, response.json
    detail = response.json["detail"]
    assert [d["loc"] for d in detail] == [loc], detail
    assert says in detail[0]["msg"], detail


def test_a_job_stays_readable_when_the_stage_narrows_what_its_channels_may_reach(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXUS_HTTP_ALLOW", "10.0.0.0/8")
    hook = {"webhook_url": "http://10.1.2.3:9000/hook"}
    job = create(api, notify={"channels": [hook]})
    monkeypatch.delenv("NEXUS_HTTP_ALLOW")

    shown = api.get(f"/v1/jobs/{job['id']}")
    assert shown.status_code == 200, shown.json
    assert shown.json["notify"]["channels"][0]["webhook_url"] == hook["webhook_url"]
    assert api.get("/v1/jobs").status_code == 200
    # A new job may not name it any more: the check is made when a job is written.
    refused = api.post("/v1/jobs", minimal(notify={"channels": [hook]}))
    assert refused.status_code == 422, refused.json
    assert "NEXUS_HTTP_ALLOW" in refused.json["detail"][0]["msg"]
