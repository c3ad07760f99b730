"""The dead-man's switch through the API (issue 14, item 4): `expect_success_within` is
stored, shown, changed and cleared, refused with a 422 naming the field when it is not 5 s to
366 days, and the job shows `last_success_at` and `overdue_since`."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.models import MAX_EXPECT_SUCCESS
from tests.app.test_jobs_api import create, minimal


def test_expect_success_within_is_stored_shown_changed_and_cleared(api: Any) -> None:
    job = create(api, expect_success_within=3600)
    assert job["expect_success_within"] == 3600
    assert (job["last_success_at"], job["overdue_since"]) == (None, None)
    for internal in ("expect_since", "overdue_notice", "overdue_notice_since"):
        assert internal not in job
    assert api.get(f"/v1/jobs/{job['id']}").json["expect_success_within"] == 3600

    changed = api.put(f"/v1/jobs/{job['id']}", {"expect_success_within": 60})
    assert changed.status_code == 200, changed.json
    assert changed.json["expect_success_within"] == 60
    cleared = api.put(f"/v1/jobs/{job['id']}", {"expect_success_within": None})
    assert cleared.status_code == 200, cleared.json
    assert api.get(f"/v1/jobs/{job['id']}").json["expect_success_within"] is None


def test_a_job_without_it_expects_nothing(api: Any) -> None:
    assert create(api)["expect_success_within"] is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        (4, "greater than or equal to 5"),
        (0, "greater than or equal to 5"),
        (MAX_EXPECT_SUCCESS + 1, f"less than or equal to {MAX_EXPECT_SUCCESS}"),
        ("3600", "integer"),
        (60.5, "integer"),
        (True, "integer"),
    ],
)
def test_a_bad_value_is_422_naming_the_field_and_creates_nothing(
    api: Any, value: Any, says: str
) -> None:
    response = api.post("/v1/jobs", minimal(expect_success_within=value))
    assert response.status_code == 422, response.json
    detail = response.json["detail"]
    assert [d["loc"] for d in detail] == [["body", "expect_success_within"]], detail
    assert says in detail[0]["msg"], detail
    assert api.get("/v1/jobs").json == []
    assert api.get("/v1/jobs/stats/overview").json["total_jobs"] == 0
