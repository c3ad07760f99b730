"""Holiday calendars (chalicelib.holidays): one item per calendar, listed by name.

| item     | pk           | sk    | list index                     |
|----------|--------------|-------|--------------------------------|
| calendar | `CAL#<name>` | `CAL` | `list_pk = CALENDARS`, `<name>` |

The item holds the calendar's spans as the API writes them (`"2027-12-25"`,
`"2027-12-24/2027-12-31"`), and `used_by`: a number set of the ids of the jobs that name
it. The JOB writes keep `used_by`, in their own transactions (`use_item`, `release_item`):
a reference is added only while the calendar exists, and a calendar is deleted only while
no job references it, both by conditions on this one item, so a job never names a calendar
that is gone. The realtime stream handler (realtime.events) matches `JOB#`, `META` and `KEY#`
keys only: a calendar's changes are no events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import CalendarExists, CalendarInUse, CalendarNotFound, ConcurrentUpdate
from chalicelib.holidays import HolidayCalendar, Span
from chalicelib.store.items import (
    LIST_INDEX,
    batch_get,
    dump,
    is_condition_failure,
    load,
    with_backoff,
)
from chalicelib.store.jobs import query_all
from chalicelib.timefmt import iso, parse_stored, sortable

CALENDARS_PARTITION = "CALENDARS"
CALENDAR_SK = "CAL"
MAX_CALENDARS_LISTED = 1_000
# Attribute names in expressions: several (name, timezone, description) are DynamoDB
# reserved words.
_NAMES = {
    "#tz": "timezone",
    "#desc": "description",
    "#dates": "dates",
    "#up": "updated_at",
    "#used": "used_by",
}


def calendar_pk(name: str) -> str:
    return f"CAL#{name}"


def calendar_key(name: str) -> dict[str, Any]:
    return {"pk": {"S": calendar_pk(name)}, "sk": {"S": CALENDAR_SK}}


@dataclass(frozen=True)
class StoredCalendar:
    """A calendar and what the store keeps about it."""

    calendar: HolidayCalendar
    used_by: tuple[int, ...]  # job ids, ascending
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.calendar.name

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.calendar.name,
            "timezone": self.calendar.timezone,
            "description": self.calendar.description,
            "dates": self.calendar.dates_text(),
            "used_by": list(self.used_by),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def calendar_item(calendar: HolidayCalendar, now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "pk": calendar_pk(calendar.name),
        "sk": CALENDAR_SK,
        "list_pk": CALENDARS_PARTITION,
        "list_sk": calendar.name,
        "name": calendar.name,
        "timezone": calendar.timezone,
        "dates": calendar.dates_text(),
        "created_at": sortable(now),
        "updated_at": sortable(now),
    }
    if calendar.description is not None:
        fields["description"] = calendar.description
    return dump(fields)


def _span(text: str) -> Span:
    start, _, end = text.partition("/")
    first = date.fromisoformat(start)
    return first, date.fromisoformat(end) if end else first


def calendar_from_item(raw: dict[str, Any]) -> StoredCalendar | None:
    """The calendar an item holds; None for an item that is only the remains of a release
    (an update on a missing item makes one with its keys alone)."""
    data = load(raw)
    if "timezone" not in data:
        return None
    created = parse_stored(data["created_at"])
    updated = parse_stored(data["updated_at"])
    assert created is not None and updated is not None
    return StoredCalendar(
        calendar=HolidayCalendar(
            name=data["name"],
            timezone=data["timezone"],
            spans=tuple(_span(text) for text in data.get("dates", [])),
            description=data.get("description"),
        ),
        used_by=tuple(sorted(int(i) for i in data.get("used_by", []))),
        created_at=created,
        updated_at=updated,
    )


class CalendarStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    # -- the JOB writes' transaction items ------------------------------------------------

    def use_item(self, name: str, job_id: int) -> dict[str, Any]:
        """The transaction item that records job `job_id` naming calendar `name`. Its
        condition fails (the whole transaction is cancelled, ConditionalCheckFailed) when
        there is no such calendar."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": calendar_key(name),
                "UpdateExpression": "ADD #used :id",
                "ConditionExpression": "attribute_exists(#tz)",
                "ExpressionAttributeNames": {"#used": "used_by", "#tz": "timezone"},
                "ExpressionAttributeValues": {":id": {"NS": [str(job_id)]}},
            }
        }

    def release_item(self, name: str, job_id: int) -> dict[str, Any]:
        """The transaction item that records job `job_id` no longer naming calendar `name`
        (no condition: releasing what was never used changes nothing)."""
        return {
            "Update": {
                "TableName": self._table,
                "Key": calendar_key(name),
                "UpdateExpression": "DELETE #used :id",
                "ExpressionAttributeNames": {"#used": "used_by"},
                "ExpressionAttributeValues": {":id": {"NS": [str(job_id)]}},
            }
        }

    # -- reads ------------------------------------------------------------------------------

    def find(self, name: str) -> StoredCalendar | None:
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table, Key=calendar_key(name), ConsistentRead=True
            ),
            what="reading the calendar",
        )
        return calendar_from_item(out["Item"]) if "Item" in out else None

    def get(self, name: str) -> StoredCalendar:
        found = self.find(name)
        if found is None:
            raise CalendarNotFound(name)
        return found

    def get_many(self, names: Sequence[str]) -> dict[str, HolidayCalendar]:
        """The calendars of these names that exist, by name (one BatchGetItem per 100)."""
        keys = [calendar_key(name) for name in dict.fromkeys(names)]
        found = (calendar_from_item(raw) for raw in batch_get(self._db, self._table, keys).values())
        return {stored.name: stored.calendar for stored in found if stored is not None}

    def list(self) -> list[StoredCalendar]:
        """Every calendar (at most MAX_CALENDARS_LISTED), by name."""
        keys = [
            {"pk": item["pk"], "sk": item["sk"]}
            for item in query_all(
                self._db,
                self._table,
                page_size=MAX_CALENDARS_LISTED,
                stop_after=MAX_CALENDARS_LISTED,
                IndexName=LIST_INDEX,
                KeyConditionExpression="list_pk = :p",
                ExpressionAttributeValues={":p": {"S": CALENDARS_PARTITION}},
                ProjectionExpression="pk, sk",
            )
        ]
        found = (calendar_from_item(raw) for raw in batch_get(self._db, self._table, keys).values())
        return sorted((c for c in found if c is not None), key=lambda c: c.name)

    # -- writes -----------------------------------------------------------------------------

    def create(
        self, calendar: HolidayCalendar, now: datetime, also: Sequence[dict[str, Any]] = ()
    ) -> StoredCalendar:
        """Store a new calendar (with `also`, the audit entry, in one transaction);
        CalendarExists if one of that name exists."""
        put = {
            "TableName": self._table,
            "Item": calendar_item(calendar, now),
            # The remains of a release (keys only, see calendar_from_item) are no calendar.
            "ConditionExpression": "attribute_not_exists(#tz)",
            "ExpressionAttributeNames": {"#tz": "timezone"},
        }
        try:
            self._write(put, "Put", also, "creating the calendar")
        except ClientError as exc:
            if is_condition_failure(exc):
                raise CalendarExists(calendar.name) from exc
            raise
        return StoredCalendar(calendar, (), now, now)

    def replace(
        self,
        before: StoredCalendar,
        calendar: HolidayCalendar,
        now: datetime,
        also: Sequence[dict[str, Any]] = (),
    ) -> StoredCalendar:
        """Replace a calendar's zone, days and description, if it is still as `before` read it
        (its `used_by` is the jobs' and is left alone). CalendarNotFound if it is gone,
        ConcurrentUpdate if another change came first."""
        assert calendar.name == before.name
        values: dict[str, Any] = {
            ":tz": {"S": calendar.timezone},
            ":dates": {"L": [{"S": text} for text in calendar.dates_text()]},
            ":now": {"S": sortable(now)},
            ":was": {"S": sortable(before.updated_at)},
        }
        update = "SET #tz = :tz, #dates = :dates, #up = :now"
        if calendar.description is None:
            update += " REMOVE #desc"
        else:
            update += ", #desc = :desc"
            values[":desc"] = {"S": calendar.description}
        params = {
            "TableName": self._table,
            "Key": calendar_key(calendar.name),
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(#tz) AND #up = :was",
            "ExpressionAttributeNames": {k: v for k, v in _NAMES.items() if k != "#used"},
            "ExpressionAttributeValues": values,
        }
        try:
            self._write(params, "Update", also, "changing the calendar")
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            self.get(calendar.name)  # CalendarNotFound when it is gone
            raise ConcurrentUpdate(
                f"calendar {calendar.name} changed while this request was being handled; retry it"
            ) from exc
        return StoredCalendar(calendar, before.used_by, before.created_at, now)

    def delete(self, name: str, also: Sequence[dict[str, Any]] = ()) -> None:
        """Delete a calendar no job names. CalendarNotFound if there is none, CalendarInUse
        (naming the jobs) while jobs name it."""
        params = {
            "TableName": self._table,
            "Key": calendar_key(name),
            "ConditionExpression": "attribute_exists(#tz) AND attribute_not_exists(#used)",
            "ExpressionAttributeNames": {"#tz": "timezone", "#used": "used_by"},
        }
        try:
            self._write(params, "Delete", also, "deleting the calendar")
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            found = self.get(name)  # CalendarNotFound when there is none
            if found.used_by:
                raise CalendarInUse(name, list(found.used_by)) from exc
            # The last job let go of it between the two reads: the caller may ask again.
            raise ConcurrentUpdate(
                f"calendar {name} changed while it was being deleted; retry the delete"
            ) from exc

    def _write(
        self, params: dict[str, Any], kind: str, also: Sequence[dict[str, Any]], what: str
    ) -> None:
        if also:
            items = [{kind: params}, *also]
            with_backoff(lambda: self._db.transact_write_items(TransactItems=items), what=what)
            return
        call = {
            "Put": self._db.put_item,
            "Update": self._db.update_item,
            "Delete": self._db.delete_item,
        }[kind]
        with_backoff(lambda: call(**params), what=what)
