"""Bounds on the API: shallow skips and cursors for deeper pages, the 415 in the API's own
error shape, and CORS for the listed origins only (issue 10, item 7)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from tests.app.test_jobs_api import create


def pages(api: Any, path: str) -> tuple[list[Any], int]:
    """Every item of a list, following X-Next-Cursor; and how many pages it took."""
    items: list[Any] = []
    sep = "&" if "?" in path else "?"
    response = api.get(path)
    count = 1
    while True:
        assert response.status_code == 200, response.json
        assert isinstance(response.json, list)
        items.extend(response.json)
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor:
            return items, count
        response = api.get(f"{path}{sep}cursor={quote(cursor)}")
        count += 1


def field_errors(response: Any) -> list[tuple[str, ...]]:
    assert response.status_code == 422, response.json
    return [tuple(e["loc"]) for e in response.json["detail"]]


def test_a_skip_past_ten_thousand_is_refused_and_points_to_the_cursor(api):
    for path in ("/v1/jobs", f"/v1/jobs/{create(api)['id']}/executions"):
        response = api.get(f"{path}?skip=10001")
        assert field_errors(response) == [("query", "skip")]
        assert "cursor" in response.json["detail"][0]["msg"]
        assert api.get(f"{path}?skip=10000").status_code == 200


def test_paging_jobs_by_cursor_gives_each_match_once_newest_first_with_the_filter(api):
    tagged = [create(api, name=f"tagged {i}", tags=["nightly"])["id"] for i in range(7)]
    for i in range(4):
        create(api, name=f"other {i}", tags=["hourly"])
    listed, count = pages(api, "/v1/jobs?limit=3&tags=nightly")
    assert [job["id"] for job in listed] == tagged[::-1]
    assert count == 3  # 3 + 3 + 1: the short last page carries no cursor
    everything, _ = pages(api, "/v1/jobs?limit=3")
    assert len(everything) == len({job["id"] for job in everything}) == 11


def test_a_full_last_page_may_carry_a_cursor_to_an_empty_page(api):
    for i in range(6):
        create(api, name=f"job {i}")
    listed, count = pages(api, "/v1/jobs?limit=3")
    assert len(listed) == 6
    assert count in (2, 3)  # "there may be more" after a full page


def test_paging_executions_by_cursor_gives_each_record_once_newest_first(api):
    job = create(api)
    other = create(api)
    for _ in range(7):
        assert api.post(f"/v1/jobs/{job['id']}/execute").status_code == 200
        api.post(f"/v1/jobs/{other['id']}/execute")
    whole = api.get(f"/v1/jobs/{job['id']}/executions?limit=50").json
    assert len(whole) == 7
    listed, count = pages(api, f"/v1/jobs/{job['id']}/executions?limit=3")
    assert [e["id"] for e in listed] == [e["id"] for e in whole]
    assert count == 3


def test_a_forged_cursor_is_refused_naming_query_cursor(api):
    job = create(api)
    forged = [
        "not-base64!",
        base64.urlsafe_b64encode(b'{"pk": {"N": "1"}}').decode(),
        base64.urlsafe_b64encode(json.dumps({"pk": {"S": "KEY#x"}}).encode()).decode(),
    ]
    for cursor in forged:
        for path in ("/v1/jobs", f"/v1/jobs/{job['id']}/executions"):
            response = api.get(f"{path}?cursor={quote(cursor)}")
            assert field_errors(response) == [("query", "cursor")], (path, cursor)


def test_a_cursor_of_another_jobs_runs_is_refused(api):
    job = create(api)
    other = create(api)
    for _ in range(3):
        api.post(f"/v1/jobs/{other['id']}/execute")
    cursor = api.get(f"/v1/jobs/{other['id']}/executions?limit=1").headers["X-Next-Cursor"]
    response = api.get(f"/v1/jobs/{job['id']}/executions?cursor={quote(cursor)}")
    assert field_errors(response) == [("query", "cursor")]


def test_a_cursor_with_a_skip_is_refused(api):
    for i in range(3):
        create(api, name=f"job {i}")
    cursor = api.get("/v1/jobs?limit=1").headers["X-Next-Cursor"]
    response = api.get(f"/v1/jobs?skip=1&cursor={quote(cursor)}")
    assert field_errors(response) == [("query", "skip")]
    assert api.get(f"/v1/jobs?skip=0&cursor={quote(cursor)}").status_code == 200


def test_an_unsupported_content_type_is_a_415_in_the_apis_error_shape(api):
    response = api.post("/v1/jobs", raw="<job/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415
    assert response.json == {
        "detail": "Content-Type application/xml is not supported; send application/json"
    }
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    job = create(api)
    response = api.put(
        f"/v1/jobs/{job['id']}", raw="{}", headers={"Content-Type": "application/xml"}
    )
    assert response.status_code == 415


def test_json_sent_as_form_or_text_is_still_read_as_json(api):
    for content_type in ("application/x-www-form-urlencoded", "text/plain; charset=utf-8"):
        response = api.post(
            "/v1/cron/validate",
            raw=json.dumps({"expression": "0 * * * *"}),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 200, (content_type, response.json)


def test_cors_allows_only_the_listed_origins(api, monkeypatch):
    listed = {"Origin": "https://dash.example.com"}
    assert "Access-Control-Allow-Origin" not in api.get("/v1/jobs", headers=listed).headers

    monkeypatch.setenv("NEXUS_CORS_ORIGINS", "https://dash.example.com, https://ops.example")
    response = api.get("/v1/jobs", headers=listed)
    assert response.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
    assert "Origin" in response.headers["Vary"]
    assert "X-Next-Cursor" in response.headers["Access-Control-Expose-Headers"]

    refused = api.get("/v1/jobs", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert "Origin" in refused.headers["Vary"]  # a cache must not share it across origins
    # The app's own refusals carry it too (with no Authorization header at all, API
    # Gateway answers before the app, in its own shape and without CORS).
    errors = api.as_key("not-a-key").get("/v1/jobs", headers=listed)
    assert errors.status_code == 401
    assert errors.headers["Access-Control-Allow-Origin"] == "https://dash.example.com"
