"""`/v1/calendars`: holiday calendars made, read, changed and deleted (chalicelib.holidays).

A calendar's days come as `dates` (a list of days and ranges) or `ics` (an iCalendar file's
text), never both; the answer always shows them as `dates`, sorted and merged. Every change
is written with its audit entry in one transaction. A calendar that jobs name (`used_by`)
cannot be deleted: the job writes keep `used_by` (store.calendars.use_item/release_item).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from chalicelib.errors import (
    CalendarInUse,
    CalendarNotFound,
    ConcurrentUpdate,
    FieldError,
    InvalidInput,
)
from chalicelib.holidays import (
    MAX_ENTRIES,
    MAX_ICS_BYTES,
    HolidayCalendar,
    Span,
    parse_dates,
    parse_ics,
)
from chalicelib.models import CALENDAR_NAME
from chalicelib.schedules import zone_error
from chalicelib.security.admin import audit_entry
from chalicelib.security.keys import Actor
from chalicelib.service import parse_model
from chalicelib.store import Store
from chalicelib.store.calendars import StoredCalendar, calendar_pk

WRITE_ATTEMPTS = 3
MAX_DESCRIPTION = 500
# Of a change's days, the audit entry names at most this many added and removed.
AUDIT_DATES = 100
NAME_TEXT = "1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
_NAME = re.compile(CALENDAR_NAME)

Zone = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
DATES_DOC = (
    f'Days: "YYYY-MM-DD", or ranges "YYYY-MM-DD/YYYY-MM-DD" (both days included, at most 366 '
    f"days), years 1970-8999, at most {MAX_ENTRIES:,} entries. Not with `ics`."
)
ICS_DOC = (
    "The text of an iCalendar file (RFC 5545): the days of its VEVENTs (all-day events end "
    "the day before DTEND; RRULEs are expanded up to 10 years; at most 1,000 occurrences, "
    f"{MAX_ICS_BYTES // 1024} KB). Not with `dates`; the answer shows the days as `dates`."
)


def _one_of_dates_or_ics(schema: dict[str, Any]) -> None:
    """CalendarCreate's document: two whole object shapes, one with `dates` and one with
    `ics` (the other absent or null, as the API reads null as absent).

    "Exactly one of" written as a top-level `oneOf` of `required` lists beside the
    properties is right, but no generator can make data for it (schemathesis: "cannot
    generate test data"); two disjoint shapes say the same and generate.
    """
    properties: dict[str, Any] = schema.pop("properties")
    required: list[str] = schema.pop("required")
    schema.pop("additionalProperties", None)
    schema.pop("type", None)
    shared = {k: v for k, v in properties.items() if k not in ("dates", "ics")}

    def shape(days: str, other: str) -> dict[str, Any]:
        sent = dict(properties[days])
        options = [o for o in sent.pop("anyOf") if o.get("type") != "null"]
        sent.pop("default", None)
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {**shared, days: {**sent, **options[0]}, other: {"type": "null"}},
            "required": [*required, days],
        }

    schema["oneOf"] = [shape("dates", "ics"), shape("ics", "dates")]


class CalendarCreate(BaseModel):
    """A new holiday calendar: its days as `dates` or as `ics`, exactly one of them."""

    model_config = ConfigDict(
        extra="forbid", title="CalendarCreate", json_schema_extra=_one_of_dates_or_ics
    )

    name: str = Field(
        description=f"Unique; {NAME_TEXT}.",
        json_schema_extra={"pattern": CALENDAR_NAME},
    )
    timezone: Zone = Field(description="The IANA zone the days are days of.")
    description: Description | None = None
    dates: list[str] | None = Field(default=None, description=DATES_DOC)
    ics: str | None = Field(default=None, description=ICS_DOC)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name[:70]!r} is not a calendar name; {NAME_TEXT}")
        return name


class CalendarUpdate(BaseModel):
    """A calendar's changes: the fields sent replace theirs, the others stay (`dates` or
    `ics` replace all its days; `description: null` clears it)."""

    model_config = ConfigDict(
        extra="forbid",
        title="CalendarUpdate",
        json_schema_extra={"not": {"required": ["dates", "ics"]}},
    )

    name: str | None = Field(default=None, description="The path's name, if sent (no renames).")
    timezone: Zone | None = None
    description: Description | None = None
    dates: list[str] | None = Field(default=None, description=DATES_DOC)
    ics: str | None = Field(default=None, description=ICS_DOC)


def name_from_path(raw: str) -> str:
    """The calendar a path names: a name no calendar can have is one that does not exist."""
    if not _NAME.fullmatch(raw):
        raise CalendarNotFound(raw[:64])
    return raw


def _days(dates: list[str] | None, ics: str | None) -> tuple[Span, ...]:
    if ics is not None:
        return parse_ics(ics, ("body", "ics"))
    return parse_dates(dates or [], ("body", "dates"))


def _check(
    timezone: str | None, dates: list[str] | None, ics: str | None, *, required: bool
) -> tuple[Span, ...] | None:
    """The days sent (None: none sent), the zone checked with them: every problem at once."""
    errors: list[FieldError] = []
    if timezone is not None:
        problem = zone_error(timezone, ("body", "timezone"))
        if problem is not None:
            errors.append(problem)
    spans: tuple[Span, ...] | None = None
    if dates is not None and ics is not None:
        errors.append(
            FieldError(
                ("body", "ics"),
                "send the days as dates or as ics, not both",
                "value_error.exclusive",
            )
        )
    elif dates is None and ics is None:
        if required:
            errors.append(
                FieldError(
                    ("body", "dates"),
                    'field required: send the days as dates (a list of "YYYY-MM-DD" and '
                    '"YYYY-MM-DD/YYYY-MM-DD") or as ics (the text of an iCalendar file)',
                    "value_error.missing",
                )
            )
    else:
        try:
            spans = _days(dates, ics)
        except InvalidInput as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidInput(errors)
    return spans


class CalendarService:
    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, body: Any, now: datetime, actor: Actor | None) -> StoredCalendar:
        request = parse_model(CalendarCreate, body, ("body",))
        spans = _check(request.timezone, request.dates, request.ics, required=True)
        assert spans is not None
        calendar = HolidayCalendar(request.name, request.timezone, spans, request.description)
        changes = {"timezone": calendar.timezone, "dates": len(calendar.spans)}
        audit = self._audit("calendar.create", now, actor, calendar.name, changes)
        return self._store.calendars.create(calendar, now, audit)

    def get(self, name: str) -> StoredCalendar:
        return self._store.calendars.get(name_from_path(name))

    def list_calendars(self) -> list[StoredCalendar]:
        return self._store.calendars.list()

    def update(self, name: str, body: Any, now: datetime, actor: Actor | None) -> StoredCalendar:
        name = name_from_path(name)
        request = parse_model(CalendarUpdate, body, ("body",))
        sent = request.model_fields_set
        errors = [
            FieldError(("body", field), f"{field} cannot be null", "type_error.none")
            for field in ("name", "timezone", "dates", "ics")
            if field in sent and getattr(request, field) is None
        ]
        if request.name is not None and request.name != name:
            errors.append(
                FieldError(
                    ("body", "name"),
                    f"a calendar cannot be renamed; leave name out or send {name!r}",
                    "value_error.rename",
                )
            )
        if not sent - {"name"}:
            errors.append(
                FieldError(
                    ("body",),
                    "send at least one of timezone, description, dates, ics",
                    "value_error.missing",
                )
            )
        if errors:
            raise InvalidInput(errors)
        spans = _check(request.timezone, request.dates, request.ics, required=False)
        for attempt in range(WRITE_ATTEMPTS):
            before = self._store.calendars.get(name)
            was = before.calendar
            after = HolidayCalendar(
                name,
                request.timezone or was.timezone,
                was.spans if spans is None else spans,
                request.description if "description" in sent else was.description,
            )
            audit = self._audit("calendar.update", now, actor, name, _changes(was, after))
            try:
                return self._store.calendars.replace(before, after, now, audit)
            except ConcurrentUpdate:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def delete(self, name: str, now: datetime, actor: Actor | None) -> None:
        name = name_from_path(name)
        for attempt in range(WRITE_ATTEMPTS):
            audit = self._audit("calendar.delete", now, actor, name, {})
            try:
                self._store.calendars.delete(name, audit)
                return
            except CalendarInUse:
                raise
            except ConcurrentUpdate:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise

    def _audit(
        self, action: str, now: datetime, actor: Actor | None, name: str, changes: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The change's audit entry, as an item of the change's own transaction.

        AuditEntry keys an entry by its job or its key; a calendar's entries live in the
        calendar's partition (`CAL#<name>`, next to it, as a job's do) and name it in
        `changes`, so the entry is made for a placeholder key and re-keyed here."""
        if actor is None:
            return []
        entry = audit_entry(action, now, actor, key_id="-", changes={"calendar": name, **changes})
        put = self._store.audit.put(entry)
        item = put["Put"]["Item"]
        item["pk"] = {"S": calendar_pk(name)}
        del item["key_id"]
        return [put]


def _changes(was: HolidayCalendar, after: HolidayCalendar) -> dict[str, Any]:
    """job.update's shape (`{field: {"from", "to"}}`); the days as those added and removed."""
    changes: dict[str, Any] = {
        field: {"from": getattr(was, field), "to": getattr(after, field)}
        for field in ("timezone", "description")
        if getattr(was, field) != getattr(after, field)
    }
    before, now = was.dates_text(), after.dates_text()
    if before != now:
        kept = set(before) & set(now)
        changes["dates"] = {
            "added": [text for text in now if text not in kept][:AUDIT_DATES],
            "removed": [text for text in before if text not in kept][:AUDIT_DATES],
        }
    return changes
