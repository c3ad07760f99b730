"""Cron validation, presets and schedule previews."""

from __future__ import annotations

import pytest


def test_the_contract_cron_example_validates(api):
    response = api.post(
        "/v1/cron/validate",
        {"expression": "*/5 * * * *", "timezone": "UTC", "start": "2025-01-20T14:02:00Z"},
    )
    assert response.status_code == 200
    assert response.json == {
        "is_valid": True,
        "description": "Every 5 minutes",
        "next_runs": [
            "2025-01-20T14:05:00Z",
            "2025-01-20T14:10:00Z",
            "2025-01-20T14:15:00Z",
            "2025-01-20T14:20:00Z",
            "2025-01-20T14:25:00Z",
        ],
        "error": None,
    }


def test_validate_defaults_to_five_runs_from_now_in_utc(api):
    response = api.post("/v1/cron/validate", {"expression": "* * * * *"})
    assert response.status_code == 200
    assert len(response.json["next_runs"]) == 5


def test_validate_takes_a_count_and_a_time_zone(api):
    response = api.post(
        "/v1/cron/validate",
        {
            "expression": "0 9 * * *",
            "timezone": "US/Eastern",
            "start": "2026-03-07T00:00:00Z",
            "count": 3,
        },
    )
    assert response.json["next_runs"] == [
        "2026-03-07T14:00:00Z",
        "2026-03-08T13:00:00Z",  # daylight saving time began that night
        "2026-03-09T13:00:00Z",
    ]


@pytest.mark.parametrize(
    "expression, description",
    [
        ("@daily", "At 00:00"),
        ("@hourly", "Every hour"),
        ("0 9 * * 1-5", "At 09:00, Monday through Friday"),
        ("0 0 L * *", "At 00:00, on the last day of the month"),
    ],
)
def test_descriptions_are_english_sentences_macros_included(api, expression, description):
    response = api.post("/v1/cron/validate", {"expression": expression})
    assert response.json["description"] == description


@pytest.mark.parametrize("expression", ["", "61 * * * *", "0 0 30 2 *", "* * * * * * *", "@reboot"])
def test_an_invalid_expression_is_reported_not_refused(api, expression):
    response = api.post("/v1/cron/validate", {"expression": expression})
    assert response.status_code == 200
    assert response.json["is_valid"] is False
    assert response.json["next_runs"] == []
    assert response.json["error"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "expression"),
        ({"expression": "* * * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({"expression": "* * * * *", "count": 0}, "count"),
        ({"expression": "* * * * *", "count": 101}, "count"),
        ({"expression": "* * * * *", "start": "yesterday"}, "start"),
    ],
)
def test_validate_rejects_bad_parameters_with_422(api, body, field):
    response = api.post("/v1/cron/validate", body)
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", field]


def test_the_presets_include_the_contracts_examples(api):
    response = api.get("/v1/cron/presets")
    assert response.status_code == 200
    presets = response.json
    assert presets["every_minute"] == {"expression": "* * * * *", "description": "Every minute"}
    assert presets["hourly"] == {"expression": "0 * * * *", "description": "Every hour"}
    assert presets["daily_midnight"] == {"expression": "0 0 * * *", "description": "At 00:00"}
    for preset in presets.values():
        check = api.post("/v1/cron/validate", {"expression": preset["expression"]}).json
        assert check["is_valid"] is True


@pytest.mark.parametrize(
    "body, runs",
    [
        (
            {
                "job_type": "interval",
                "interval_seconds": 90,
                "start_time": "2026-01-01T00:00:00Z",
                "start": "2026-01-01T00:00:00Z",
                "count": 3,
            },
            ["2026-01-01T00:00:00Z", "2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"],
        ),
        (
            {
                "job_type": "cron",
                "cron_expression": "30 2 * * *",
                "timezone": "US/Eastern",
                "start": "2026-03-07T12:00:00Z",
                "count": 2,
            },
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        (
            {
                "job_type": "date",
                "scheduled_time": "2026-06-01T12:00:00",
                "timezone": "Europe/London",
                "start": "2026-01-01T00:00:00Z",
            },
            ["2026-06-01T11:00:00Z"],
        ),
        (
            {
                "job_type": "calendar",
                "calendar_rule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
                "start": "2026-01-10T00:00:00Z",
                "count": 3,
            },
            ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-31T00:00:00Z"],
        ),
    ],
)
def test_a_preview_shows_the_next_runs_of_any_job_type(api, body, runs):
    response = api.post("/v1/schedules/preview", body)
    assert response.status_code == 200, response.json
    assert response.json["next_runs"] == runs


@pytest.mark.parametrize(
    "body, field",
    [
        ({"job_type": "cron"}, "cron_expression"),
        ({"job_type": "cron", "cron_expression": "0 0 31 2 *"}, "cron_expression"),
        ({"job_type": "interval", "interval_seconds": 0}, "interval_seconds"),
        ({"job_type": "calendar", "calendar_rule": "nonsense"}, "calendar_rule"),
        (
            {"job_type": "date", "scheduled_time": "2026-01-01T00:00:00", "timezone": "X"},
            "timezone",
        ),
        ({"job_type": "interval", "interval_seconds": 5, "count": 1000}, "count"),
        ({"job_type": "nope"}, "job_type"),
    ],
)
def test_a_preview_of_an_invalid_schedule_is_422(api, body, field):
    response = api.post("/v1/schedules/preview", body)
    assert response.status_code == 422
    assert response.json["detail"][0]["loc"] == ["body", field]
