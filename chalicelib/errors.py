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
