"""The domain's errors. app.py turns each into an HTTP response in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field, in the contract's 422 shape."""

    loc: tuple[str | int, ...]
    msg: str
    type: str = "value_error"

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class NexusError(Exception):
    """Base of every error the API reports to a caller."""


@dataclass
class InvalidInput(NexusError):
    """The request is well-formed JSON but its values are not accepted (HTTP 422)."""

    errors: list[FieldError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.errors)


class BadRequest(NexusError):
    """The request cannot be read at all: malformed JSON, wrong content (HTTP 400)."""


class PayloadTooLarge(NexusError):
    """The request body is over the documented cap (HTTP 413)."""


class JobNotFound(NexusError, LookupError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"Job not found: {job_id}")
        self.job_id = job_id


class ConcurrentUpdate(NexusError):
    """The job changed between our read and our write; the caller may retry (HTTP 409)."""


class Unavailable(NexusError):
    """AWS kept answering "not now" (throttling, a transaction conflict): HTTP 503, retry."""


class ExecutionNotFound(NexusError, LookupError):
    def __init__(self, execution_id: str) -> None:
        super().__init__(f"execution {execution_id} not found")
        self.execution_id = execution_id


class RunAlreadyFinal(NexusError):
    """A change that only applies to a run that has not ended (a cancel) met an ended one."""

    def __init__(self, record: object) -> None:
        status = getattr(record, "status", "final")
        ident = getattr(record, "id", "")
        super().__init__(f"run {ident} has already ended ({status}); nothing to cancel")


class CalendarNotFound(NexusError, LookupError):
    """No holiday calendar has this name (HTTP 404 on the calendar routes)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"calendar {name} not found")
        self.name = name


class CalendarExists(ConcurrentUpdate):
    """A calendar of this name exists already (HTTP 409, through ConcurrentUpdate's answer;
    sending the same request again will not help)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a calendar named {name} exists; choose another name, or change it with "
            f"PUT /v1/calendars/{name}"
        )
        self.name = name


class CalendarInUse(ConcurrentUpdate):
    """A calendar that jobs name cannot be deleted (HTTP 409, through ConcurrentUpdate's
    answer): the jobs must drop it from their exclude_calendars/only_calendars first."""

    def __init__(self, name: str, job_ids: list[int]) -> None:
        shown = ", ".join(str(i) for i in job_ids[:20]) + (" ..." if len(job_ids) > 20 else "")
        super().__init__(
            f"calendar {name} is used by jobs {shown}; remove it from their exclude_calendars "
            "and only_calendars first"
        )
        self.name = name
        self.job_ids = job_ids
