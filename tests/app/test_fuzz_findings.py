"""Issue 11: what a fuzzer (schemathesis, ~25,000 requests against make run) found.

Each test is named after the finding it pins down, and failed before the fix.
"""

from __future__ import annotations

import http.client
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.timefmt import iso, parse_stored, sortable


def _job(**overrides: Any) -> dict[str, Any]:
    job = {
        "name": "fuzz",
        "job_type": "interval",
        "interval_seconds": 3600,
        "task_name": "tasks.generate_report",
    }
    job.update(overrides)
    return job


def _locs(response: Any) -> list[list[Any]]:
    return [e["loc"] for e in response.json["detail"]]


# -- 1. instants before year 1000 ------------------------------------------------------------


def test_instants_before_year_1000_are_written_with_four_digits_and_read_back():
    instant = datetime(999, 1, 1, 3, 4, 5, tzinfo=UTC)
    assert sortable(instant) == "0999-01-01T03:04:05.000000Z"
    assert iso(instant) == "0999-01-01T03:04:05Z"
    assert parse_stored(sortable(instant)) == instant
    # What was written before the fix reads back too (the job stays readable).
    assert parse_stored("999-01-01T03:04:05.000000Z") == instant
    # The fixed width keeps string order as time order.
    assert sortable(instant) < sortable(datetime(1970, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize("value", ["0999-01-01T00:00:00Z", "0600-01-14T03:08:19+19:29"])
def test_a_start_time_before_year_1000_is_refused_not_stored_unreadable(api, value):
    response = api.post("/v1/jobs", _job(start_time=value))
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["body", "start_time"]
    assert "1970" in error["msg"] and "8999" in error["msg"]
    assert api.get("/v1/jobs").status_code == 200


# -- 2. instants at the calendar's edges -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/v1/cron/validate",
            {"expression": "* * * * *", "start": "0001-01-01T00:00:00Z"},
            "start",
        ),
        (
            "/v1/schedules/preview",
            {"job_type": "interval", "interval_seconds": 60, "start": "9999-12-31T23:59:58Z"},
            "start",
        ),
        (
            "/v1/jobs",
            _job(
                job_type="date", interval_seconds=None, scheduled_time="9999-12-31T23:59:59-01:00"
            ),
            "scheduled_time",
        ),
        ("/v1/jobs", _job(end_time="9999-12-31T23:59:59-01:00"), "end_time"),
        ("/v1/jobs", _job(end_time="1969-12-31T23:59:59Z"), "end_time"),
    ],
)
def test_instants_at_the_calendars_edges_are_a_422_naming_the_field_and_the_range(
    api, path, body, field
):
    response = api.post(path, body)
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["body", field]
    assert "1970-01-01T00:00:00 to 8999-12-31T23:59:59" in error["msg"]


def test_the_last_accepted_instant_previews_without_overflow(api):
    response = api.post(
        "/v1/schedules/preview",
        {
            "job_type": "interval",
            "interval_seconds": 3600,
            "start": "8999-12-31T23:59:59-23:00",
            "count": 3,
        },
    )
    assert response.status_code == 200, response.json
    assert len(response.json["next_runs"]) == 3


# -- 3. calendar rules bounded in time and work -------------------------------------------------


def test_a_minutely_leap_day_rule_from_1900_is_refused_quickly_instead_of_taking_35_seconds(api):
    rule = (
        "DTSTART:19000101T000000\nRRULE:FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59"
    )
    began = time.monotonic()
    response = api.post(
        "/v1/schedules/preview",
        {
            "job_type": "calendar",
            "calendar_rule": rule,
            "start": "1970-01-01T00:00:00Z",
            "count": 100,
        },
    )
    assert time.monotonic() - began < 15
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["body", "calendar_rule"]
    assert "more work than one evaluation may use" in error["msg"]


def test_the_same_leap_day_rule_written_yearly_previews_100_runs(api):
    response = api.post(
        "/v1/schedules/preview",
        {
            "job_type": "calendar",
            "calendar_rule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59",
            "count": 100,
        },
    )
    assert response.status_code == 200, response.json
    assert len(response.json["next_runs"]) == 100


@pytest.mark.parametrize("path", ["/v1/schedules/preview", "/v1/jobs"])
def test_a_bysecond_list_that_fires_every_second_is_refused_like_secondly(api, path):
    rule = "FREQ=MINUTELY;BYSECOND=" + ",".join(str(s) for s in range(60))
    body = {"job_type": "calendar", "calendar_rule": rule}
    if path == "/v1/jobs":
        body = _job(interval_seconds=None, **body)
    began = time.monotonic()
    response = api.post(path, body)
    assert time.monotonic() - began < 5
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["body", "calendar_rule"]
    assert "at most once a minute" in error["msg"]


def test_a_stored_rule_over_the_budget_is_bounded_for_the_tick():
    from chalicelib.calendar_rule import BudgetExceeded, CalendarRule, WorkBudget, work_budget
    from chalicelib.tzmath import get_zone

    rule = CalendarRule.parse(
        "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=23;BYMINUTE=59",
        get_zone("UTC"),
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(BudgetExceeded), work_budget(WorkBudget(steps=1_000)):
        rule.next_after(datetime(2026, 1, 1, tzinfo=UTC))
    # Without a shared budget each search gets its own, enough for one run.
    assert rule.next_after(datetime(2026, 1, 1, tzinfo=UTC)) == datetime(
        2028, 2, 29, 23, 59, tzinfo=UTC
    )


# -- 4. a filter of 1,000 tags ----------------------------------------------------------------


def test_a_filter_of_a_thousand_tags_is_a_422_not_a_500(api):
    tags = ",".join(f"t{i}" for i in range(1000))
    response = api.get(f"/v1/jobs?tags={tags}")
    assert response.status_code == 422, response.json
    assert _locs(response) == [["query", "tags"]]


# -- 5. loose types ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/jobs", _job(interval_seconds=True), "interval_seconds"),
        ("/v1/jobs", _job(interval_seconds=60.0), "interval_seconds"),
        ("/v1/jobs", _job(is_active=1), "is_active"),
        ("/v1/jobs", _job(priority="5"), "priority"),
        (
            "/v1/jobs",
            _job(job_type="date", interval_seconds=None, scheduled_time=1924992000),
            "scheduled_time",
        ),
        (
            "/v1/jobs",
            _job(job_type="date", interval_seconds=None, scheduled_time="1924992000"),
            "scheduled_time",
        ),
        ("/v1/cron/validate", {"expression": "* * * * *", "start": 0}, "start"),
        ("/v1/cron/validate", {"expression": "* * * * *", "count": True}, "count"),
    ],
)
def test_loose_types_in_a_body_are_a_422_naming_the_field(api, path, body, field):
    response = api.post(path, body)
    assert response.status_code == 422, response.json
    assert ["body", field] in _locs(response)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("skip=0.0", "skip"),
        ("skip=1.5", "skip"),
        ("is_active=yes", "is_active"),
        ("limit=+5", "limit"),
        ("is_active=1", "is_active"),
    ],
)
def test_loose_types_in_a_query_are_a_422_naming_the_parameter(api, query, field):
    response = api.get(f"/v1/jobs?{query}")
    assert response.status_code == 422, response.json
    assert _locs(response) == [["query", field]]


def test_query_integers_and_booleans_in_their_plain_form_are_accepted(api):
    assert api.get("/v1/jobs?skip=0&limit=5&is_active=false").status_code == 200


# -- 6. jobs that can never run ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            _job(
                job_type="date",
                interval_seconds=None,
                scheduled_time="2001-01-01T00:00:00Z",
                is_active=False,
            ),
            "scheduled_time",
        ),
        (_job(end_time="2001-01-01T00:00:00Z", is_active=False), "end_time"),
    ],
)
def test_a_job_that_can_never_run_is_refused_even_when_created_inactive(api, body, field):
    response = api.post("/v1/jobs", body)
    assert response.status_code == 422, response.json
    assert _locs(response) == [["body", field]]


def test_resuming_an_expired_job_over_http_is_a_422(api, monkeypatch):
    import app as app_module

    created = api.post("/v1/jobs", _job(is_active=False, end_time="2099-01-01T00:00:00Z")).json
    monkeypatch.setattr(app_module, "now", lambda: datetime(2100, 1, 1, tzinfo=UTC))
    response = api.post(f"/v1/jobs/{created['id']}/resume")
    assert response.status_code == 422, response.json
    [error] = response.json["detail"]
    assert error["loc"] == ["path", "job_id"]
    assert "end_time" in error["msg"]


# -- 7. content types and unknown methods -----------------------------------------------------


def test_a_body_with_no_content_type_is_read_as_json(api):
    from tests.conftest import TEST_ADMIN_KEY

    response = api.http.post(
        "/v1/cron/validate",
        headers={"Authorization": f"Bearer {TEST_ADMIN_KEY}"},
        body='{"expression": "*/5 * * * *"}',
    )
    assert response.status_code == 200, response.body
    assert b'"is_valid":true' in response.body


@pytest.fixture
def local_gateway() -> Any:
    from chalice.app import Chalice

    from local.gateway import make_server

    app = Chalice(app_name="methods-test")

    @app.route("/things", methods=["GET"])
    def things() -> dict[str, Any]:
        return {"ok": True}

    server = make_server(app, "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server.server_address[1]
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "BREW"])
def test_an_unknown_method_is_answered_as_api_gateway_does_not_with_a_501_page(
    local_gateway, method
):
    connection = http.client.HTTPConnection("127.0.0.1", local_gateway, timeout=10)
    connection.request(method, "/api/things", body=b"{}")
    response = connection.getresponse()
    assert response.status == 403
    assert response.getheader("Content-Type") == "application/json"
    assert response.read() == b'{"message": "Missing Authentication Token"}'
    # The connection stays usable.
    connection.request("GET", "/api/things")
    assert connection.getresponse().read() == b'{"ok":true}'
    connection.close()


# -- 8. undocumented limits and shapes --------------------------------------------------------


@pytest.mark.parametrize("job_id", ["1234567890123456789", "9" * 5000])
def test_a_job_id_too_large_to_exist_is_a_404(api, job_id):
    for method, path in [("get", ""), ("delete", ""), ("post", "/pause"), ("get", "/executions")]:
        response = getattr(api, method)(f"/v1/jobs/{job_id}{path}")
        assert response.status_code == 404, (method, path, response.json)
        assert response.json == {"detail": "Job not found"}


@pytest.mark.parametrize("job_id", ["abc", "0", "-1", "1.5", "١٢"])
def test_a_job_id_that_is_not_a_positive_integer_stays_a_422(api, job_id):
    response = api.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 422, response.json
    assert _locs(response) == [["path", "job_id"]]


def test_a_cron_expression_over_200_characters_is_answered_not_valid(api):
    response = api.post("/v1/cron/validate", {"expression": "*" * 201})
    assert response.status_code == 200, response.json
    assert response.json["is_valid"] is False
    assert "at most 200" in response.json["error"]


def test_a_preview_refuses_another_types_schedule_field_as_job_creation_does(api):
    response = api.post(
        "/v1/schedules/preview",
        {"job_type": "interval", "interval_seconds": 60, "cron_expression": "* * * * *"},
    )
    assert response.status_code == 422, response.json
    assert _locs(response) == [["body", "cron_expression"]]
