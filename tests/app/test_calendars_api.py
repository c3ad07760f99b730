"""Holiday calendars through the API (issue 13, item 5): `/v1/calendars` made, read, listed,
changed and deleted; refusals that name the field; the jobs' references that keep a calendar
from being deleted; scopes, the audit trail, and no realtime events for calendar items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

import app as app_module
from chalicelib.api import openapi
from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.holidays import HolidayCalendar
from chalicelib.realtime.events import from_record, from_records
from tests.app.test_openapi import check

US = {
    "name": "us-holidays",
    "timezone": "US/Eastern",
    "description": "Days the US office is closed",
    "dates": ["2027-12-25", "2027-07-04", "2027-12-24/2027-12-26", "2027-12-27"],
}
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"
    "BEGIN:VEVENT\r\nUID:xmas\r\nSUMMARY:Christmas\r\n"
    "DTSTART;VALUE=DATE:20271224\r\nDTEND;VALUE=DATE:20271227\r\n"
    "RRULE:FREQ=YEARLY;COUNT=2\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nDTSTART;TZID=Europe/Berlin:20270704T090000\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def create(api: Any, **fields: Any) -> dict[str, Any]:
    made = api.post("/v1/calendars", {**US, **fields})
    assert made.status_code == 201, made.json
    return dict(made.json)


def reference(name: str, job_id: int) -> None:
    """What a job's write does when the job names the calendar (its own transaction)."""
    calendars = app_module.store().calendars
    client("dynamodb").transact_write_items(TransactItems=[calendars.use_item(name, job_id)])


def release(name: str, job_id: int) -> None:
    calendars = app_module.store().calendars
    client("dynamodb").transact_write_items(TransactItems=[calendars.release_item(name, job_id)])


def calendar_items() -> list[dict[str, Any]]:
    items = client("dynamodb").scan(TableName=get_settings().table_name)["Items"]
    return [item for item in items if item["pk"]["S"].startswith("CAL#")]


def problems(answer: Any) -> list[tuple[list[Any], str]]:
    assert answer.status_code == 422, (answer.status_code, answer.json)
    return [(p["loc"], p["msg"]) for p in answer.json["detail"]]


# -- the life of a calendar --------------------------------------------------------------------


def test_a_calendar_is_created_read_listed_changed_and_deleted(api):
    made = create(api)
    assert made == {
        "name": "us-holidays",
        "timezone": "US/Eastern",
        "description": "Days the US office is closed",
        "dates": ["2027-07-04", "2027-12-24/2027-12-27"],
        "used_by": [],
        "created_at": made["created_at"],
        "updated_at": made["created_at"],
    }
    assert api.get("/v1/calendars/us-holidays").json == made
    create(api, name="eu.holidays-2027", timezone="Europe/Berlin", dates=["2027-10-03"])
    listed = api.get("/v1/calendars")
    assert listed.status_code == 200
    assert [c["name"] for c in listed.json] == ["eu.holidays-2027", "us-holidays"]

    changed = api.put("/v1/calendars/us-holidays", {"dates": ["2027-11-25"]})
    assert changed.status_code == 200, changed.json
    assert changed.json["dates"] == ["2027-11-25"]
    assert changed.json["timezone"] == "US/Eastern"  # not sent: kept
    assert changed.json["updated_at"] > made["updated_at"]
    assert api.get("/v1/calendars/us-holidays").json == changed.json

    deleted = api.delete("/v1/calendars/us-holidays")
    assert (deleted.status_code, deleted.body) == (204, b"")
    assert api.get("/v1/calendars/us-holidays").status_code == 404
    assert [c["name"] for c in api.get("/v1/calendars").json] == ["eu.holidays-2027"]


def test_a_calendar_from_an_ics_file_shows_its_days_as_dates(api):
    made = api.post("/v1/calendars", {"name": "from-ics", "timezone": "Europe/Berlin", "ics": ICS})
    assert made.status_code == 201, made.json
    assert made.json["dates"] == ["2027-07-04", "2027-12-24/2027-12-26", "2028-12-24/2028-12-26"]
    assert made.json["description"] is None


def test_put_changes_only_the_fields_sent_and_null_clears_the_description(api):
    create(api)
    moved = api.put("/v1/calendars/us-holidays", {"timezone": "UTC", "name": "us-holidays"})
    assert moved.status_code == 200, moved.json
    assert (moved.json["timezone"], moved.json["dates"]) == (
        "UTC",
        ["2027-07-04", "2027-12-24/2027-12-27"],
    )
    assert moved.json["description"] == US["description"]
    cleared = api.put("/v1/calendars/us-holidays", {"description": None, "ics": ICS})
    assert cleared.json["description"] is None
    assert cleared.json["dates"][0] == "2027-07-04"
    assert len(cleared.json["dates"]) == 3


def test_the_store_gives_the_engine_calendars_by_name_and_leaves_out_unknown_ones(api):
    create(api)
    create(api, name="eu", timezone="Europe/Berlin", dates=["2027-10-03"])
    found = app_module.store().calendars.get_many(["eu", "us-holidays", "nowhere", "eu"])
    assert set(found) == {"eu", "us-holidays"}
    assert isinstance(found["eu"], HolidayCalendar)
    assert found["eu"].covers(datetime(2027, 10, 2, 22, 30, tzinfo=UTC))  # 00:30 in Berlin
    assert found["us-holidays"].contains(datetime(2027, 12, 26).date())


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "loc", "says"),
    [
        ({"ics": ICS}, ["body", "ics"], "send the days as dates or as ics, not both"),
        ({"dates": None}, ["body", "dates"], "field required: send the days as dates"),
        ({"timezone": "Mars/Olympus"}, ["body", "timezone"], "unknown time zone 'Mars/Olympus'"),
        ({"dates": ["2027-02-30"]}, ["body", "dates", 0], "'2027-02-30' is not a day"),
        ({"dates": ["ok", "2027-01-01"]}, ["body", "dates", 0], "is not a date or a range"),
        (
            {"dates": ["2027-01-01", "2027-12-31/2027-12-01"]},
            ["body", "dates", 1],
            "'2027-12-31/2027-12-01' ends before it starts",
        ),
        (
            {
                "dates": None,
                "ics": "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:2027\nEND:VEVENT\nEND:VCALENDAR",
            },
            ["body", "ics"],
            "line 3: DTSTART '2027' is not YYYYMMDD",
        ),
        ({"name": "no spaces"}, ["body", "name"], "is not a calendar name"),
        ({"name": "-leading"}, ["body", "name"], "starting with a letter or digit"),
        ({"dates": [1]}, ["body", "dates", 0], "Input should be a valid string"),
        ({"colour": "red"}, ["body", "colour"], "unknown field; accepted fields:"),
    ],
)
def test_a_bad_calendar_is_refused_naming_the_field(api, change, loc, says):
    body = {k: v for k, v in {**US, **change}.items() if v is not None}
    found = problems(api.post("/v1/calendars", body))
    assert any(where == loc and says in msg for where, msg in found), found
    assert calendar_items() == []


def test_every_problem_of_a_calendar_is_named_at_once(api):
    found = problems(
        api.post(
            "/v1/calendars",
            {"name": "x", "timezone": "Nowhere/Land", "dates": ["2027-01-01", "2027-99-01"]},
        )
    )
    assert [where for where, _ in found] == [["body", "timezone"], ["body", "dates", 1]]


def test_a_timezone_is_required(api):
    found = problems(api.post("/v1/calendars", {"name": "x", "dates": []}))
    assert found == [(["body", "timezone"], "field required")]


@pytest.mark.parametrize(
    ("change", "loc", "says"),
    [
        ({"dates": ["2027-01-01"], "ics": ICS}, ["body", "ics"], "not both"),
        ({"timezone": None}, ["body", "timezone"], "timezone cannot be null"),
        ({"dates": None}, ["body", "dates"], "dates cannot be null"),
        ({"name": "other"}, ["body", "name"], "a calendar cannot be renamed"),
        ({}, ["body"], "send at least one of timezone, description, dates, ics"),
        ({"used_by": []}, ["body", "used_by"], "unknown field"),
        ({"dates": ["2027-01-01/2029-01-01"]}, ["body", "dates", 0], "is 732 days long"),
    ],
)
def test_a_bad_change_is_refused_naming_the_field_and_changes_nothing(api, change, loc, says):
    made = create(api)
    found = problems(api.put("/v1/calendars/us-holidays", change))
    assert any(where == loc and says in msg for where, msg in found), found
    assert api.get("/v1/calendars/us-holidays").json == made


def test_a_second_calendar_of_the_same_name_is_a_409_and_the_first_stays(api):
    made = create(api)
    again = api.post("/v1/calendars", {**US, "dates": ["2030-01-01"]})
    assert again.status_code == 409
    assert again.json == {
        "detail": "a calendar named us-holidays exists; choose another name, or change it "
        "with PUT /v1/calendars/us-holidays"
    }
    assert api.get("/v1/calendars/us-holidays").json == made


@pytest.mark.parametrize("name", ["nowhere", "not%20a%20name", "-x", "a" * 65])
def test_an_unknown_calendar_is_a_404_on_every_route(api, name):
    for answer in (
        api.get(f"/v1/calendars/{name}"),
        api.put(f"/v1/calendars/{name}", {"dates": []}),
        api.delete(f"/v1/calendars/{name}"),
    ):
        assert (answer.status_code, answer.json) == (404, {"detail": "Calendar not found"})
    assert calendar_items() == []


# -- jobs that name a calendar -----------------------------------------------------------------


def test_a_calendar_jobs_name_cannot_be_deleted_until_they_let_go(api):
    create(api)
    reference("us-holidays", 7)
    reference("us-holidays", 12)
    reference("us-holidays", 7)  # the same job again: still one reference
    assert api.get("/v1/calendars/us-holidays").json["used_by"] == [7, 12]
    refused = api.delete("/v1/calendars/us-holidays")
    assert refused.status_code == 409
    assert refused.json["detail"] == (
        "calendar us-holidays is used by jobs 7, 12; remove it from their exclude_calendars "
        "and only_calendars first"
    )
    # A change to the calendar leaves the jobs' references alone.
    changed = api.put("/v1/calendars/us-holidays", {"dates": ["2027-01-01"]})
    assert changed.json["used_by"] == [7, 12]
    release("us-holidays", 7)
    assert api.delete("/v1/calendars/us-holidays").status_code == 409
    release("us-holidays", 12)
    assert api.get("/v1/calendars/us-holidays").json["used_by"] == []
    assert api.delete("/v1/calendars/us-holidays").status_code == 204


def test_a_job_cannot_name_a_calendar_that_does_not_exist_or_was_deleted(api):
    with pytest.raises(ClientError) as caught:
        reference("nowhere", 7)
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    create(api)
    assert api.delete("/v1/calendars/us-holidays").status_code == 204
    with pytest.raises(ClientError):
        reference("us-holidays", 7)
    assert [i["sk"]["S"] for i in calendar_items() if i["sk"]["S"] == "CAL"] == []


def test_a_release_for_a_calendar_that_is_gone_leaves_nothing_that_reads_as_one(api):
    release("ghost", 7)  # an update on a missing item may leave its keys behind
    assert api.get("/v1/calendars/ghost").status_code == 404
    assert api.get("/v1/calendars").json == []
    assert app_module.store().calendars.get_many(["ghost"]) == {}
    with pytest.raises(ClientError):
        reference("ghost", 7)
    assert create(api, name="ghost")["used_by"] == []


# -- scopes, the audit trail, the document, realtime ---------------------------------------------


def test_a_read_key_reads_calendars_but_cannot_write_them(api):
    create(api)
    made = api.post("/v1/keys", {"name": "reader", "scopes": ["jobs:read"]})
    reader = api.as_key(made.json["key"])
    assert reader.get("/v1/calendars").status_code == 200
    assert reader.get("/v1/calendars/us-holidays").status_code == 200
    for answer in (
        reader.post("/v1/calendars", {**US, "name": "other"}),
        reader.put("/v1/calendars/us-holidays", {"dates": []}),
        reader.delete("/v1/calendars/us-holidays"),
    ):
        assert answer.status_code == 403
        assert "'jobs:write'" in answer.json["detail"]
    assert [c["name"] for c in api.get("/v1/calendars").json] == ["us-holidays"]
    assert api.as_key(None).get("/v1/calendars").status_code == 401


def test_every_change_is_in_the_audit_trail_naming_the_calendar(api):
    create(api)
    api.put("/v1/calendars/us-holidays", {"timezone": "UTC", "dates": ["2027-07-04", "2028-01-01"]})
    api.delete("/v1/calendars/us-holidays")
    trail = api.get("/v1/audit").json
    entries = [e for e in trail if e["action"].startswith("calendar.")]
    assert [e["action"] for e in entries] == [
        "calendar.delete",
        "calendar.update",
        "calendar.create",
    ]
    assert all(e["changes"]["calendar"] == "us-holidays" for e in entries)
    assert all(e["actor_key_name"] == "test admin" for e in entries)
    assert all("job_id" not in e and "key_id" not in e for e in entries)
    assert entries[1]["changes"]["timezone"] == {"from": "US/Eastern", "to": "UTC"}
    assert entries[1]["changes"]["dates"] == {
        "added": ["2028-01-01"],
        "removed": ["2027-12-24/2027-12-27"],
    }
    assert entries[2]["changes"] == {
        "calendar": "us-holidays",
        "timezone": "US/Eastern",
        "dates": 2,
    }
    check(openapi.build(app_module.app.routes), "GET", "/v1/audit", 200, trail)


def test_real_answers_match_the_documents_schemas(api):
    doc = openapi.build(app_module.app.routes)
    made = api.post("/v1/calendars", US)
    check(doc, "POST", "/v1/calendars", 201, made.json)
    reference("us-holidays", 3)
    check(doc, "GET", "/v1/calendars", 200, api.get("/v1/calendars").json)
    check(doc, "GET", "/v1/calendars/{name}", 200, api.get("/v1/calendars/us-holidays").json)
    changed = api.put("/v1/calendars/us-holidays", {"description": None})
    check(doc, "PUT", "/v1/calendars/{name}", 200, changed.json)
    check(doc, "DELETE", "/v1/calendars/{name}", 409, api.delete("/v1/calendars/us-holidays").json)
    check(doc, "GET", "/v1/calendars/{name}", 404, api.get("/v1/calendars/nowhere").json)
    check(doc, "POST", "/v1/calendars", 422, api.post("/v1/calendars", {"name": "x"}).json)


def test_calendar_items_and_their_audit_entries_make_no_realtime_events(api):
    create(api)
    reference("us-holidays", 3)
    api.put("/v1/calendars/us-holidays", {"dates": ["2027-01-01"]})
    items = calendar_items()
    assert {i["sk"]["S"][:5] for i in items} == {"CAL", "AUDIT"}
    now = datetime(2027, 1, 1, tzinfo=UTC)
    records = []
    for n, item in enumerate(items):
        keys = {"pk": item["pk"], "sk": item["sk"]}
        for kind, images in (
            ("INSERT", {"NewImage": item}),
            ("MODIFY", {"NewImage": item, "OldImage": item}),
            ("REMOVE", {"OldImage": item}),
        ):
            change = {"Keys": keys, "SequenceNumber": str(n), **images}
            records.append({"eventName": kind, "dynamodb": change})
            assert from_record(records[-1], now) == [], (kind, item["sk"]["S"])
    assert from_records(records, now) == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": None, "timezone": "UTC", "dates": []},
        {"name": "x", "timezone": "", "dates": []},
        {"name": "x", "timezone": 5, "ics": 5},
        {"name": "x", "timezone": "UTC", "dates": "2027-01-01"},
        {"name": "x", "timezone": "UTC", "dates": [None, {"a": 1}]},
        {"name": "x", "timezone": "UTC", "description": 7, "dates": []},
        {"name": "x", "timezone": "UTC", "description": "d" * 501, "dates": []},
        {"name": "x", "timezone": "UTC", "ics": ""},
        {"name": "x", "timezone": "UTC", "ics": "\ud800"},
        [],
        "text",
    ],
)
def test_odd_bodies_are_422s_never_500s(api, body):
    for answer in (
        api.post("/v1/calendars", body),
        api.put("/v1/calendars/us-holidays", body),
    ):
        assert answer.status_code in (404, 422), (answer.status_code, answer.json)
    create(api)
    answer = api.put("/v1/calendars/us-holidays", body)
    assert answer.status_code == 422, answer.json
