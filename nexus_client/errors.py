"""What a call to NEXUS can fail with: one exception per kind of answer, each carrying the
contract's `detail` (a message, or for a 422 the list of field errors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NexusError(Exception):
    """Any failure of a call. `status` is the HTTP status (None: no answer at all)."""

    status: int | None = None

    def __init__(
        self,
        detail: Any,
        *,
        status: int | None = None,
        method: str = "",
        url: str = "",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.detail = detail
        if status is not None:
            self.status = status
        self.method = method
        self.url = url
        self.headers = dict(headers or {})
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.method} {self.url}: " if self.method else ""
        code = f"{self.status} " if self.status is not None else ""
        return f"{where}{code}{_text(self.detail)}"


def _text(detail: Any) -> str:
    if isinstance(detail, list):
        return "; ".join(_field_error(e) for e in detail)
    return str(detail)


def _field_error(error: Any) -> str:
    if isinstance(error, dict):
        loc = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        return f"{loc}: {error.get('msg', '')}" if loc else str(error.get("msg", ""))
    return str(error)


class ConnectionFailed(NexusError):
    """No answer: the server could not be reached, or did not answer within the timeout."""


class BadRequest(NexusError, ValueError):
    """400 (not JSON), 413 (too large), 415 (wrong media type): the request itself is wrong."""

    status = 400


class InvalidInput(BadRequest):
    """422: the request was read and refused, one entry per problem in `errors`
    (`{"loc": ["body", field], "msg": ..., "type": ...}`)."""

    status = 422

    @property
    def errors(self) -> list[dict[str, Any]]:
        if isinstance(self.detail, list):
            return [e for e in self.detail if isinstance(e, dict)]
        return [{"loc": [], "msg": str(self.detail), "type": "value_error"}]


class Unauthorized(NexusError):
    """401: no key, or a malformed, unknown, revoked or expired one."""

    status = 401


class Forbidden(NexusError):
    """403: the key lacks the route's scope."""

    status = 403


class NotFound(NexusError, LookupError):
    """404: no such job (or key)."""

    status = 404


class Conflict(NexusError):
    """409: two changes to the same job raced; the later one may be sent again."""

    status = 409


class RateLimited(NexusError):
    """429: the key's rate is spent; `retry_after` is how many seconds to wait."""

    status = 429

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ServerError(NexusError):
    """5xx: the server failed (500) or could not serve the request now (503)."""

    status = 500


class Unavailable(ServerError):
    """503: nothing was done; the same request may be sent again after `Retry-After`."""

    status = 503


_BY_STATUS: dict[int, type[NexusError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: InvalidInput,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int) -> type[NexusError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else NexusError


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds, or an HTTP date (seconds from now)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
