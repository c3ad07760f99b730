"""Bad input gets a clear 4xx that names the field, and changes nothing. Never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.app.test_jobs_api import in_future, minimal


def assert_nothing_stored(api: Any) -> None:
    assert api.get("/v1/jobs").json == []
    assert api.get("/v1/jobs/stats/overview").json["total_jobs"] == 0


def test_the_contract_422_shape_for_a_missing_cron_expression(api):
    response = api.post("/v1/jobs", minimal(job_type="cron", interval_seconds=None))
    assert response.status_code == 422
    assert response.json == {
        "detail": [
            {
                "loc": ["body", "cron_expression"],
                "msg": "field required: a 'cron' job needs cron_expression "
                "(a cron expression such as '0 9 * * 1-5')",
                "type": "value_error.missing",
            }
        ]
    }
    assert_nothing_stored(api)


@pytest.mark.parametrize(
    "overrides, field, says",
    [
        ({"job_type": "interval", "interval_seconds": None}, "interval_seconds", "needs"),
        ({"interval_seconds": 0}, "interval_seconds", "greater than or equal to 1"),
        ({"interval_seconds": -5}, "interval_seconds", "greater than or equal to 1"),
        ({"interval_seconds": 1.5}, "interval_seconds", "integer"),
        ({"job_type": "date", "interval_seconds": None}, "scheduled_time", "needs"),
        (
            {
                "job_type": "date",
                "interval_seconds": None,
                "scheduled_time": "2020-01-01T00:00:00Z",
            },
            "scheduled_time",
            "future",
        ),
        (
            {"job_type": "date", "interval_seconds": None, "scheduled_time": "tomorrow"},
            "scheduled_time",
            "datetime",
        ),
        ({"job_type": "calendar", "interval_seconds": None}, "calendar_rule", "needs"),
        (
            {"job_type": "calendar", "interval_seconds": None, "calendar_rule": "FREQ=FORTNIGHTLY"},
            "calendar_rule",
            "FREQ",
        ),
        (
            {"job_type": "cron", "interval_seconds": None, "cron_expression": "0 0 30 2 *"},
            "cron_expression",
            "never",
        ),
        (
            {"job_type": "cron", "interval_seconds": None, "cron_expression": "61 * * * *"},
            "cron_expression",
            "minute",
        ),
        (
            {"job_type": "cron", "interval_seconds": None, "cron_expression": "* * * *"},
            "cron_expression",
            "5 or 6",
        ),
        (
            {"job_type": "cron", "interval_seconds": None, "cron_expression": "5-1 * * * *"},
            "cron_expression",
            "revers",
        ),
        (
            {"job_type": "cron", "cron_expression": "* * * * *"},
            "interval_seconds",
            "does not apply",
        ),
        ({"job_type": "hourly"}, "job_type", "'cron', 'interval', 'date' or 'calendar'"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"timezone": ""}, "timezone", "at least 1"),
        ({"task_name": "os.system"}, "task_name", "not registered"),
        ({"task_name": ""}, "task_name", "at least 1"),
        ({"priority": 11}, "priority", "less than or equal to 10"),
        ({"priority": -1}, "priority", "greater than or equal to 0"),
        ({"max_retries": -1}, "max_retries", "greater than or equal to 0"),
        ({"max_retries": 11}, "max_retries", "less than or equal to 10"),
        ({"retry_delay": -1}, "retry_delay", "greater than or equal to 0"),
        ({"retry_delay": 86401}, "retry_delay", "less than or equal to 86400"),
        ({"name": ""}, "name", "at least 1"),
        ({"name": "   "}, "name", "at least 1"),
        ({"name": "x" * 201}, "name", "at most 200"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags", "at most 20"),
        ({"tags": "report"}, "tags", "list"),
        ({"task_args": {"a": 1}}, "task_args", "list"),
        ({"task_kwargs": [1]}, "task_kwargs", "dictionary"),
        ({"is_active": "sometimes"}, "is_active", "boolean"),
        ({"end_time": "2001-01-01T00:00:00Z"}, "end_time", "no run after now"),
        ({"cron_expresion": "* * * * *"}, "cron_expresion", "unknown field"),
    ],
)
def test_bad_job_fields_are_422_naming_the_field_and_what_is_accepted(api, overrides, field, says):
    response = api.post("/v1/jobs", minimal(**overrides))
    assert response.status_code == 422, response.json
    errors = response.json["detail"]
    matching = [e for e in errors if e["loc"][:2] == ["body", field]]
    assert matching, errors
    assert any(says in e["msg"] for e in matching), matching
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
    assert_nothing_stored(api)


def test_a_tag_longer_than_50_characters_is_422(api):
    response = api.post("/v1/jobs", minimal(tags=["x" * 51]))
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", "tags", 0]


@pytest.mark.parametrize("field", ["name", "job_type", "task_name"])
def test_each_required_field_is_named_when_missing(api, field):
    body = minimal()
    del body[field]
    response = api.post("/v1/jobs", body)
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", field]
    assert response.json["detail"][0]["type"] == "value_error.missing"


@pytest.mark.parametrize(
    "raw",
    ['{"name": "x",', "not json", '{"priority": NaN}', '{"n": Infinity}', "[" * 5000 + "]" * 5000],
)
def test_malformed_json_is_400_with_a_detail(api, raw):
    response = api.post("/v1/jobs", raw=raw)
    assert response.status_code == 400
    assert isinstance(response.json["detail"], str)
    assert_nothing_stored(api)


def test_an_empty_body_is_400(api):
    response = api.post("/v1/jobs", raw="")
    assert response.status_code == 400


@pytest.mark.parametrize("raw", [" ", "\n\t ", "\r\n"])
def test_a_body_of_whitespace_is_400_even_where_no_body_is_allowed_and_changes_nothing(api, raw):
    job = api.post("/v1/jobs", minimal()).json
    for path in (f"/v1/jobs/{job['id']}/pause", f"/v1/jobs/{job['id']}/execute"):
        response = api.post(path, raw=raw)
        assert response.status_code == 400, (path, response.json)
        assert "only whitespace" in response.json["detail"]
    assert api.get(f"/v1/jobs/{job['id']}").json["is_active"] is True
    assert api.get(f"/v1/jobs/{job['id']}/executions").json == []
    # No body at all is still the request's defaults.
    assert api.post(f"/v1/jobs/{job['id']}/pause").status_code == 200


@pytest.mark.parametrize("raw", ["[]", '"a string"', "42", "null"])
def test_a_body_that_is_not_an_object_is_422(api, raw):
    response = api.post("/v1/jobs", raw=raw)
    assert response.status_code in (400, 422)
    assert "detail" in response.json


def test_a_body_over_64_kb_is_413(api):
    body = minimal(metadata={"blob": "x" * (64 * 1024)})
    response = api.post("/v1/jobs", body)
    assert response.status_code == 413
    assert "limit" in response.json["detail"]
    assert_nothing_stored(api)


def test_a_body_just_under_the_cap_is_accepted(api):
    body = minimal(metadata={"blob": "x" * (60 * 1024)})
    assert api.post("/v1/jobs", body).status_code == 201


def test_form_encoded_json_from_curl_is_read_as_json(api):
    response = api.post(
        "/v1/jobs",
        raw=json.dumps(minimal()),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201


WRONG_VALUES: list[Any] = [
    None,
    0,
    -1,
    1.5,
    10**30,
    "",
    "x",
    "9" * 300,
    [],
    [1, [2]],
    {},
    {"a": {"b": None}},
    True,
    "2026-13-45T99:99:99Z",
    "\u0000",
]
FIELDS = [
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
    "start_time",
    "end_time",
]


@pytest.mark.parametrize("field", FIELDS)
def test_no_value_of_any_field_yields_a_500(api, field):
    for value in WRONG_VALUES:
        body = minimal(**{field: value})
        response = api.post("/v1/jobs", body)
        assert response.status_code in (201, 422), (field, value, response.json)
        if response.status_code == 201:
            job = {k: v for k, v in response.json.items() if k != "warnings"}
            assert api.get(f"/v1/jobs/{job['id']}").json == job
            put = api.put(f"/v1/jobs/{job['id']}", {field: value})
            assert put.status_code in (200, 422), (field, value, put.json)


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=31",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=SECONDLY",
        "RRULE:",
        "DTSTART:xyz\nRRULE:FREQ=DAILY",
    ],
)
def test_calendar_rules_that_never_fire_or_do_not_parse_are_422(api, rule):
    response = api.post(
        "/v1/jobs", minimal(job_type="calendar", interval_seconds=None, calendar_rule=rule)
    )
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", "calendar_rule"]


def test_a_cron_job_with_a_future_date_rule_is_still_a_cron_job(api):
    # scheduled_time belongs to date jobs: sending it with a cron job is an error, not ignored.
    response = api.post(
        "/v1/jobs",
        minimal(
            job_type="cron",
            interval_seconds=None,
            cron_expression="* * * * *",
            scheduled_time=in_future(hours=1),
        ),
    )
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", "scheduled_time"]


def test_unknown_paths_answer_like_api_gateway_and_not_500(api):
    response = api.get("/v1/nothing-here")
    assert response.status_code in (403, 404)
