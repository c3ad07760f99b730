"""The jobs endpoints of the contract, through chalice.test.Client on moto."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
CONTRACT_FIELDS = {
    "name",
    "description",
    "job_type",
    "cron_expression",
    "interval_seconds",
    "scheduled_time",
    "calendar_rule",
    "task_name",
    "task_args",
    "task_kwargs",
    "timezone",
    "is_active",
    "max_retries",
    "retry_delay",
    "retry_backoff",
    "priority",
    "tags",
    "metadata",
    "created_by",
}
NEXUS_FIELDS = {
    "id",
    "status",
    "next_run_at",
    "last_run_at",
    "created_at",
    "updated_at",
    "running_count",
    "last_run_status",
}


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


def minimal(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "job",
        "job_type": "interval",
        "interval_seconds": 3600,
        "task_name": "nexus.echo",
    }
    body.update(overrides)
    return body


def create(api: Any, **overrides: Any) -> dict[str, Any]:
    """The job as created, without the lint's `warnings` (only writes answer them)."""
    response = api.post("/v1/jobs", minimal(**overrides))
    assert response.status_code == 201, response.json
    return as_stored(response.json)


def as_stored(answer: dict[str, Any]) -> dict[str, Any]:
    """A create's or update's answer as GET shows the job: without its `warnings`."""
    assert isinstance(answer["warnings"], list)
    return {k: v for k, v in answer.items() if k != "warnings"}


# -- create ---------------------------------------------------------------------------------


def test_the_contract_example_job_is_created_as_it_stands(api, contract_job):
    response = api.post("/v1/jobs", contract_job)
    assert response.status_code == 201
    job = response.json
    assert set(job) >= CONTRACT_FIELDS | NEXUS_FIELDS
    for key, value in contract_job.items():
        assert job[key] == value, key
    assert isinstance(job["id"], int)
    assert job["status"] == "pending"
    assert job["running_count"] == 0
    assert job["last_run_at"] is None
    for key in ("next_run_at", "created_at", "updated_at"):
        assert ISO_Z.match(job[key]), (key, job[key])


def test_the_contract_example_next_run_is_9am_new_york_on_a_weekday(api, contract_job):
    job = api.post("/v1/jobs", contract_job).json
    next_run = datetime.fromisoformat(job["next_run_at"].replace("Z", "+00:00"))
    import pytz

    local = next_run.astimezone(pytz.timezone("US/Eastern"))
    assert (local.hour, local.minute, local.second) == (9, 0, 0)
    assert local.weekday() < 5
    assert next_run > datetime.now(UTC)


def test_optional_fields_get_sensible_defaults(api):
    job = create(api)
    assert job["timezone"] == "UTC"
    assert job["is_active"] is True
    assert job["priority"] == 5
    assert job["max_retries"] == 0
    assert job["retry_delay"] == 60
    assert job["retry_backoff"] is True
    assert job["tags"] == []
    assert job["metadata"] == {}
    assert job["task_args"] == []
    assert job["task_kwargs"] == {}
    assert job["description"] is None


def test_job_ids_are_increasing_integers(api):
    first, second = create(api), create(api)
    assert second["id"] == first["id"] + 1


@pytest.mark.parametrize(
    "fields",
    [
        {"job_type": "interval", "interval_seconds": 1},
        {"job_type": "cron", "cron_expression": "*/15 * * * * *"},
        {"job_type": "cron", "cron_expression": "@daily", "timezone": "Europe/London"},
        {"job_type": "calendar", "calendar_rule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"},
    ],
)
def test_every_job_type_can_be_created(api, fields):
    job = create(api, **{"interval_seconds": None, **fields})
    assert job["job_type"] == fields["job_type"]
    assert ISO_Z.match(job["next_run_at"])


def test_a_date_job_runs_at_its_scheduled_time(api):
    when = in_future(hours=2)
    job = create(api, job_type="date", interval_seconds=None, scheduled_time=when)
    assert job["scheduled_time"] == when
    assert job["next_run_at"] == when


def test_a_date_without_offset_is_read_in_the_jobs_time_zone(api):
    job = create(
        api,
        job_type="date",
        interval_seconds=None,
        timezone="US/Eastern",
        scheduled_time="2099-07-04T09:30:00",
    )
    assert job["scheduled_time"] == "2099-07-04T13:30:00Z"


def test_an_inactive_job_is_created_paused_with_no_next_run(api):
    job = create(api, is_active=False)
    assert job["status"] == "paused"
    assert job["next_run_at"] is None


def test_an_interval_job_first_runs_one_interval_after_creation(api):
    job = create(api, interval_seconds=3600)
    created = datetime.fromisoformat(job["created_at"].replace("Z", "+00:00"))
    next_run = datetime.fromisoformat(job["next_run_at"].replace("Z", "+00:00"))
    assert next_run == created.replace(microsecond=0) + timedelta(hours=1)


def test_an_interval_job_with_a_start_time_runs_from_it(api):
    start = in_future(days=1)
    job = create(api, interval_seconds=600, start_time=start)
    assert job["next_run_at"] == start


# -- get ------------------------------------------------------------------------------------


def test_a_job_is_read_back_as_created(api):
    job = create(api, tags=["a", "b"], metadata={"team": "data"})
    response = api.get(f"/v1/jobs/{job['id']}")
    assert response.status_code == 200
    assert response.json == job


def test_an_unknown_job_is_404_with_the_contract_detail(api):
    for method, path in [
        ("get", "/v1/jobs/999"),
        ("put", "/v1/jobs/999"),
        ("delete", "/v1/jobs/999"),
        ("post", "/v1/jobs/999/execute"),
        ("post", "/v1/jobs/999/pause"),
        ("post", "/v1/jobs/999/resume"),
        ("get", "/v1/jobs/999/executions"),
    ]:
        body = {"name": "x"} if method == "put" else None
        response = api.call(method, path, body)
        assert response.status_code == 404, (method, path)
        assert response.json == {"detail": "Job not found"}


@pytest.mark.parametrize("raw_id", ["abc", "0", "-1", "1.5"])  # too large: 404 (issue 11)
def test_a_job_id_that_is_not_a_positive_integer_is_422(api, raw_id):
    response = api.get(f"/v1/jobs/{raw_id}")
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["path", "job_id"]


# -- list -----------------------------------------------------------------------------------


def test_jobs_are_listed_newest_first(api):
    ids = [create(api, name=f"job {i}")["id"] for i in range(3)]
    listed = api.get("/v1/jobs").json
    assert [j["id"] for j in listed] == ids[::-1]


def test_the_list_works_with_and_without_a_trailing_slash(api):
    create(api)
    assert api.get("/v1/jobs/").json == api.get("/v1/jobs").json
    assert len(api.get("/v1/jobs/").json) == 1


def test_skip_and_limit_page_through_the_jobs(api):
    ids = [create(api, name=f"job {i}")["id"] for i in range(7)][::-1]
    assert [j["id"] for j in api.get("/v1/jobs?limit=3").json] == ids[:3]
    assert [j["id"] for j in api.get("/v1/jobs?skip=3&limit=3").json] == ids[3:6]
    assert [j["id"] for j in api.get("/v1/jobs?skip=6&limit=3").json] == ids[6:]
    assert api.get("/v1/jobs?skip=20").json == []


def test_jobs_are_filtered_by_active_state_type_and_tags(api):
    a = create(api, tags=["report", "analytics"])
    b = create(api, tags=["report"], is_active=False)
    c = create(
        api, job_type="cron", interval_seconds=None, cron_expression="* * * * *", tags=["analytics"]
    )

    def ids(query: str) -> set[int]:
        response = api.get(f"/v1/jobs?{query}")
        assert response.status_code == 200, response.json
        return {j["id"] for j in response.json}

    assert ids("is_active=true") == {a["id"], c["id"]}
    assert ids("is_active=false") == {b["id"]}
    assert ids("job_type=cron") == {c["id"]}
    assert ids("tags=report") == {a["id"], b["id"]}
    assert ids("tags=report,analytics") == {a["id"]}
    assert ids("is_active=true&job_type=interval&tags=report") == {a["id"]}


@pytest.mark.parametrize(
    "query, field",
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("skip=-1", "skip"),
        ("is_active=maybe", "is_active"),
        ("job_type=weekly", "job_type"),
    ],
)
def test_bad_list_parameters_are_422_naming_the_parameter(api, query, field):
    response = api.get(f"/v1/jobs?{query}")
    assert response.status_code == 422
    (error,) = response.json["detail"]
    assert error["loc"] == ["query", field]
    assert error["msg"]


def test_the_list_limit_goes_up_to_1000(api):
    assert api.get("/v1/jobs?limit=1000").status_code == 200


# -- update ---------------------------------------------------------------------------------


def test_a_put_changes_only_the_fields_it_sends(api):
    job = create(api, priority=3, tags=["x"])
    response = api.put(f"/v1/jobs/{job['id']}", {"name": "Updated Job Name", "priority": 7})
    assert response.status_code == 200
    updated = as_stored(response.json)
    assert updated["name"] == "Updated Job Name"
    assert updated["priority"] == 7
    assert updated["tags"] == ["x"]
    assert updated["created_at"] == job["created_at"]
    assert updated["updated_at"] >= job["updated_at"]
    assert api.get(f"/v1/jobs/{job['id']}").json == updated


def test_the_contract_update_example_pauses_the_job(api):
    job = create(api)
    updated = api.put(
        f"/v1/jobs/{job['id']}", {"name": "Updated Job Name", "is_active": False, "priority": 7}
    ).json
    assert updated["is_active"] is False
    assert updated["status"] == "paused"
    assert updated["next_run_at"] is None
    stats = api.get("/v1/jobs/stats/overview").json
    assert (stats["active_jobs"], stats["paused_jobs"]) == (0, 1)


def test_a_put_validates_the_job_as_it_would_be_after_the_change(api):
    job = create(api)
    response = api.put(f"/v1/jobs/{job['id']}", {"job_type": "cron"})
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", "cron_expression"]
    assert api.get(f"/v1/jobs/{job['id']}").json == job


def test_a_put_can_change_the_job_type_with_its_schedule(api):
    job = create(api)
    updated = api.put(
        f"/v1/jobs/{job['id']}", {"job_type": "cron", "cron_expression": "0 12 * * *"}
    ).json
    assert updated["job_type"] == "cron"
    assert updated["interval_seconds"] is None
    assert updated["next_run_at"].endswith("T12:00:00Z")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"priority": 11}, "priority"),
        ({"id": 5}, "id"),
        ({"status": "completed"}, "status"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
def test_a_bad_put_is_422_and_changes_nothing(api, body, field):
    job = create(api)
    response = api.put(f"/v1/jobs/{job['id']}", body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json["detail"]] == [["body", field]]
    assert api.get(f"/v1/jobs/{job['id']}").json == job


def test_a_put_of_a_date_job_keeps_its_past_time_unless_the_schedule_changes(api):
    job = create(api, job_type="date", interval_seconds=None, scheduled_time=in_future(hours=1))
    assert api.put(f"/v1/jobs/{job['id']}", {"description": "still fine"}).status_code == 200
    past = api.put(f"/v1/jobs/{job['id']}", {"scheduled_time": "2001-01-01T00:00:00Z"})
    assert past.status_code == 422
    assert past.json["detail"][0]["loc"] == ["body", "scheduled_time"]
    assert "future" in past.json["detail"][0]["msg"]


# -- delete ---------------------------------------------------------------------------------


def test_a_deleted_job_is_gone_with_its_history(api):
    job = create(api)
    api.post(f"/v1/jobs/{job['id']}/execute")
    response = api.delete(f"/v1/jobs/{job['id']}")
    assert response.status_code == 204
    assert response.body in (b"", "", None)
    assert api.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert api.get(f"/v1/jobs/{job['id']}/executions").status_code == 404
    assert api.get("/v1/jobs").json == []
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 404


# -- execute, pause, resume ----------------------------------------------------------------


def test_execute_starts_a_run_and_returns_its_task_id(api):
    job = create(api)
    response = api.post(f"/v1/jobs/{job['id']}/execute")
    assert response.status_code == 200
    assert response.json["message"] == "Job execution started"
    task_id = response.json["task_id"]
    (execution,) = api.get(f"/v1/jobs/{job['id']}/executions").json
    assert execution["task_id"] == task_id
    assert execution["trigger"] == "manual"
    assert execution["job_id"] == job["id"]
    assert execution["status"] == "pending"


def test_execute_takes_the_contract_overrides(api):
    job = create(api, task_args=["a"], task_kwargs={"k": 1})
    response = api.post(
        f"/v1/jobs/{job['id']}/execute", {"task_args": [1, 2], "task_kwargs": {"override": True}}
    )
    assert response.status_code == 200
    (execution,) = api.get(f"/v1/jobs/{job['id']}/executions").json
    assert execution["task_args"] == [1, 2]
    assert execution["task_kwargs"] == {"override": True}


def test_execute_with_bad_overrides_is_422_and_records_nothing(api):
    job = create(api)
    response = api.post(f"/v1/jobs/{job['id']}/execute", {"task_args": "not a list"})
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", "task_args"]
    assert api.get(f"/v1/jobs/{job['id']}/executions").json == []


def test_pause_and_resume_answer_as_the_contract_says(api):
    job = create(api, interval_seconds=300)
    paused = api.post(f"/v1/jobs/{job['id']}/pause")
    assert (paused.status_code, paused.json) == (200, {"message": "Job paused"})
    stored = api.get(f"/v1/jobs/{job['id']}").json
    assert (stored["status"], stored["is_active"], stored["next_run_at"]) == ("paused", False, None)

    resumed = api.post(f"/v1/jobs/{job['id']}/resume")
    assert resumed.status_code == 200
    assert resumed.json["message"] == "Job resumed"
    stored = api.get(f"/v1/jobs/{job['id']}").json
    assert (stored["status"], stored["is_active"]) == ("pending", True)
    assert datetime.fromisoformat(stored["next_run_at"].replace("Z", "+00:00")) > datetime.now(UTC)


def test_pausing_twice_is_harmless_and_counted_once(api):
    job = create(api)
    assert api.post(f"/v1/jobs/{job['id']}/pause").status_code == 200
    assert api.post(f"/v1/jobs/{job['id']}/pause").status_code == 200
    stats = api.get("/v1/jobs/stats/overview").json
    assert (stats["total_jobs"], stats["active_jobs"], stats["paused_jobs"]) == (1, 0, 1)


# -- executions -----------------------------------------------------------------------------


def test_executions_are_listed_newest_first_and_paged(api):
    job = create(api)
    task_ids = [api.post(f"/v1/jobs/{job['id']}/execute").json["task_id"] for _ in range(4)]
    listed = api.get(f"/v1/jobs/{job['id']}/executions").json
    assert [e["task_id"] for e in listed] == task_ids[::-1]
    page = api.get(f"/v1/jobs/{job['id']}/executions?skip=1&limit=2").json
    assert [e["task_id"] for e in page] == task_ids[::-1][1:3]


@pytest.mark.parametrize(
    "query, field",
    [("limit=0", "limit"), ("limit=501", "limit"), ("skip=-5", "skip"), ("limit=x", "limit")],
)
def test_bad_execution_list_parameters_are_422(api, query, field):
    job = create(api)
    response = api.get(f"/v1/jobs/{job['id']}/executions?{query}")
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["query", field]


def test_the_execution_limit_goes_up_to_500(api):
    job = create(api)
    assert api.get(f"/v1/jobs/{job['id']}/executions?limit=500").status_code == 200


def test_a_change_that_raced_another_is_409_and_changes_nothing(api):
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from chalicelib.errors import ConcurrentUpdate
    from chalicelib.store import Store

    job = create(api)
    store = Store.over(client("dynamodb"), get_settings().table_name).jobs
    seen = store.get_job(job["id"])
    assert api.put(f"/v1/jobs/{job['id']}", {"priority": 9}).status_code == 200
    stale = seen.model_copy(update={"name": "lost update", "version": seen.version + 1})
    with pytest.raises(ConcurrentUpdate, match="retry"):
        store.replace_job(seen, stale, reschedule=False)
    stored = api.get(f"/v1/jobs/{job['id']}").json
    assert (stored["name"], stored["priority"]) == ("job", 9)
