"""Backfills through the API (issue 13, item 1): `POST /v1/jobs/{job_id}/backfill` and
`GET /v1/backfills/{backfill_id}`, their answers, refusals and scopes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import app as app_module
from chalicelib.api import openapi
from chalicelib.engine.backfill import CONTROL, COUNT_LIMIT, MAX_OCCURRENCES, RATE_PER_SECOND
from tests.app.test_openapi import check


@pytest.fixture(autouse=True)
def fresh_backfills() -> Iterator[None]:
    """The app's cached Backfills is made over each test's own resources."""
    app_module.backfills.cache_clear()
    yield
    app_module.backfills.cache_clear()


def iso(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def last_minutes(count: int) -> tuple[datetime, datetime]:
    """A window holding the last `count` whole minutes (an every-minute job's occurrences)."""
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    return end - timedelta(minutes=count - 1), end


def every_minute(api: Any, **fields: Any) -> int:
    body = {"name": "minutely", "job_type": "cron", "cron_expression": "* * * * *"}
    made = api.post("/v1/jobs", {"task_name": "nexus.echo", **body, **fields})
    assert made.status_code == 201, made.json
    return int(made.json["id"])


def window(count: int = 10, **fields: Any) -> dict[str, Any]:
    start, end = last_minutes(count)
    return {"start": iso(start), "end": iso(end), **fields}


def backfill_items() -> list[dict[str, Any]]:
    db = app_module.store().jobs._db
    items = db.scan(TableName=app_module.store().table_name)["Items"]
    return [i for i in items if i["sk"]["S"].startswith("BACKFILL#")]


def problems(response: Any) -> dict[tuple[str | int, ...], str]:
    assert response.status_code == 422, response.json
    return {tuple(p["loc"]): p["msg"] for p in response.json["detail"]}


# -- answers ----------------------------------------------------------------------------


def test_a_dry_run_answers_200_with_the_occurrences_and_writes_nothing(api):
    job_id = every_minute(api)
    start, _ = last_minutes(10)
    answer = api.post(f"/v1/jobs/{job_id}/backfill", window(10, dry_run=True))
    assert answer.status_code == 200
    assert answer.json == {
        "occurrences": [iso(start + timedelta(minutes=m)) for m in range(10)],
        "excluded": 0,
    }
    assert backfill_items() == []
    check(
        openapi.build(app_module.app.routes), "POST", "/v1/jobs/{job_id}/backfill", 200, answer.json
    )


def test_a_backfill_answers_202_and_its_progress_is_shown_by_get(api):
    job_id = every_minute(api)
    started = api.post(f"/v1/jobs/{job_id}/backfill", window(10, overlap="buffer_all"))
    assert started.status_code == 202
    doc = openapi.build(app_module.app.routes)
    check(doc, "POST", "/v1/jobs/{job_id}/backfill", 202, started.json)
    backfill_id = started.json["backfill_id"]
    assert backfill_id.startswith(f"{job_id}-")
    assert {k: started.json[k] for k in ("job_id", "status", "occurrences", "overlap")} == {
        "job_id": job_id,
        "status": "running",
        "occurrences": 10,
        "overlap": "buffer_all",
    }
    assert (started.json["sent"], started.json["remaining"]) == (0, 10)
    assert started.json["rate_per_second"] == RATE_PER_SECOND
    shown = api.get(f"/v1/backfills/{backfill_id}")
    assert shown.status_code == 200
    check(doc, "GET", "/v1/backfills/{backfill_id}", 200, shown.json)
    assert shown.json == {**started.json, "runs": {}}
    # One step (what the worker does with the backfill's control message).
    message = {"control": CONTROL, "job_id": job_id, "backfill_id": backfill_id}
    app_module.backfills().handle(message, datetime.now(UTC))
    moved = api.get(f"/v1/backfills/{backfill_id}").json
    assert (moved["sent"], moved["remaining"], moved["runs"]) == (1, 9, {"pending": 1})
    assert moved["cursor"] == started.json["start"]
    check(doc, "GET", "/v1/backfills/{backfill_id}", 200, moved)
    runs = api.get(f"/v1/jobs/{job_id}/executions").json
    assert [(r["trigger"], r["backfill_id"], r["overlap"]) for r in runs] == [
        ("backfill", backfill_id, "buffer_all")
    ]


def test_a_backfill_is_in_the_jobs_audit_trail(api):
    job_id = every_minute(api)
    started = api.post(f"/v1/jobs/{job_id}/backfill", window(3)).json
    trail = api.get(f"/v1/jobs/{job_id}/audit").json
    (entry,) = [e for e in trail if e["action"] == "job.backfill"]
    assert entry["changes"]["backfill_id"] == started["backfill_id"]
    assert entry["changes"]["occurrences"] == 3
    check(openapi.build(app_module.app.routes), "GET", "/v1/jobs/{job_id}/audit", 200, trail)


def test_a_window_in_the_jobs_zone_reads_times_without_offset_there(api):
    job_id = every_minute(api, cron_expression="0 9 * * *", timezone="US/Eastern")
    body = {"start": "2025-01-13T00:00:00", "end": "2025-01-15T23:59:59", "dry_run": True}
    answer = api.post(f"/v1/jobs/{job_id}/backfill", body)
    assert answer.json["occurrences"] == [
        "2025-01-13T14:00:00Z",
        "2025-01-14T14:00:00Z",
        "2025-01-15T14:00:00Z",
    ]


# -- refusals ---------------------------------------------------------------------------


def test_an_end_before_the_start_is_a_422_naming_end(api):
    job_id = every_minute(api)
    start, end = last_minutes(10)
    found = problems(
        api.post(f"/v1/jobs/{job_id}/backfill", {"start": iso(end), "end": iso(start)})
    )
    assert "must be after start" in found[("body", "end")]


def test_an_end_in_the_future_is_a_422_naming_end(api):
    job_id = every_minute(api)
    later = datetime.now(UTC) + timedelta(hours=1)
    body = {"start": iso(later - timedelta(hours=2)), "end": iso(later)}
    found = problems(api.post(f"/v1/jobs/{job_id}/backfill", body))
    assert "must not be after now" in found[("body", "end")]
    assert backfill_items() == []


def test_more_than_1000_occurrences_is_a_422_saying_how_many_and_the_limit(api):
    job_id = every_minute(api)
    found = problems(api.post(f"/v1/jobs/{job_id}/backfill", window(1_440)))
    msg = found[("body", "end")]
    assert "1,440 occurrences" in msg and f"at most {MAX_OCCURRENCES:,}" in msg
    assert backfill_items() == []


def test_a_window_far_too_large_is_refused_without_counting_it_all(api):
    job_id = every_minute(api)
    body = {"start": "2000-01-01T00:00:00Z", "end": iso(last_minutes(1)[1])}
    msg = problems(api.post(f"/v1/jobs/{job_id}/backfill", body))[("body", "end")]
    assert f"at least {COUNT_LIMIT:,} occurrences" in msg


@pytest.mark.parametrize(
    ("change", "loc", "says"),
    [
        ({"overlap": "sometimes"}, ("body", "overlap"), "'allow', 'skip' or 'buffer_all'"),
        ({"speed": 10}, ("body", "speed"), "unknown field; accepted fields:"),
        ({"start": 1700000000}, ("body", "start"), "ISO-8601"),
        ({"end": "yesterday"}, ("body", "end"), ""),
        ({"dry_run": "yes"}, ("body", "dry_run"), ""),
    ],
)
def test_a_bad_field_is_a_422_naming_it(api, change, loc, says):
    job_id = every_minute(api)
    found = problems(api.post(f"/v1/jobs/{job_id}/backfill", {**window(3), **change}))
    assert loc in found and says in found[loc]


def test_a_missing_start_is_a_422_naming_it(api):
    job_id = every_minute(api)
    found = problems(api.post(f"/v1/jobs/{job_id}/backfill", {"end": window(3)["end"]}))
    assert found[("body", "start")] == "field required"


def test_a_job_id_that_is_not_a_number_is_a_422(api):
    found = problems(api.post("/v1/jobs/abc/backfill", window(3)))
    assert ("path", "job_id") in found


def test_an_unknown_or_deleted_job_is_a_404(api):
    assert api.post("/v1/jobs/999/backfill", window(3)).status_code == 404
    job_id = every_minute(api)
    assert api.delete(f"/v1/jobs/{job_id}").status_code == 204
    gone = api.post(f"/v1/jobs/{job_id}/backfill", window(3))
    assert (gone.status_code, gone.json) == (404, {"detail": "Job not found"})


@pytest.mark.parametrize("backfill_id", ["1-0123456789ab", "nothing", "1-XYZ", "0-0123456789ab"])
def test_an_unknown_or_malformed_backfill_is_a_404(api, backfill_id):
    answer = api.get(f"/v1/backfills/{backfill_id}")
    assert (answer.status_code, answer.json) == (404, {"detail": "Backfill not found"})


def test_a_read_only_key_may_follow_a_backfill_but_not_start_one(api):
    job_id = every_minute(api)
    started = api.post(f"/v1/jobs/{job_id}/backfill", window(3)).json
    made = api.post("/v1/keys", {"name": "reader", "scopes": ["jobs:read"]})
    reader = api.as_key(made.json["key"])
    refused = reader.post(f"/v1/jobs/{job_id}/backfill", window(3))
    assert refused.status_code == 403
    assert "jobs:execute" in refused.json["detail"]
    assert reader.get(f"/v1/backfills/{started['backfill_id']}").status_code == 200
    assert len(backfill_items()) == 1
    assert api.as_key(None).get(f"/v1/backfills/{started['backfill_id']}").status_code == 401
