"""The NEXUS API as Python calls: one method per operation, typed answers, iterators over
pages, errors as exceptions (nexus_client.errors), retries where a retry is safe.

Retries: a 429 is retried for every call (the rate limiter refuses a request before any of it
runs), after its `Retry-After`. A 503 and a failed connection are retried only for idempotent
calls (GET, PUT, DELETE, and the read-only POSTs cron/validate, schedules/preview and a
backfill's dry run): a POST that creates, runs or cancels something may have been done before
the connection broke, and sending it again could do it twice.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from chalicelib.notify import ACCEPTED
from nexus_client.errors import (
    ConnectionFailed,
    InvalidInput,
    NexusError,
    RateLimited,
    Unavailable,
    error_for,
    parse_retry_after,
)
from nexus_client.models import (
    ActionResult,
    ApiKey,
    AuditEntry,
    Backfill,
    BackfillPlan,
    Calendar,
    CancelRequest,
    CronPreset,
    CronValidateRequest,
    CronValidation,
    ExecuteRequest,
    ExecuteResult,
    Execution,
    Job,
    JobCreate,
    JobPaused,
    KeyCreate,
    NewKey,
    Page,
    PauseRequest,
    PreviewRequest,
    SchedulePreview,
    Stats,
    WrittenJob,
)

DEFAULT_URL = "http://localhost:8000/api/v1"
DEFAULT_TIMEOUT = 10.0


class Response:
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _local_model[M: BaseModel](model: type[M], data: Any) -> M:
    """`data` checked against the server's own model before it is sent: the same 422 the
    server would answer, without the round trip."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data, context=ACCEPTED)
    except ValidationError as exc:
        errors = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        raise InvalidInput(errors, status=422) from exc


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class NexusClient:
    """A client for one NEXUS API (`base_url` such as http://localhost:8000/api/v1).

    `timeout` bounds every attempt of every call; `max_retries` retries (see the module's
    docstring) wait `backoff` seconds doubled each time with jitter, or the answer's
    `Retry-After`, at most `max_wait` seconds each. `sleep` is how it waits (tests pass
    their own)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 30.0,
        user_agent: str = "nexus-client/0.1",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.user_agent = user_agent
        self._sleep = sleep

    # -- transport ---------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        idempotent: bool | None = None,
    ) -> Response:
        """One call, retried as the module says; a Response for 2xx, else a NexusError."""
        url = self.base_url + path
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        if idempotent is None:
            idempotent = method in ("GET", "PUT", "DELETE", "HEAD")
        data = None if body is None else json.dumps(_jsonable(body)).encode()
        headers = {"Accept": "application/json", "User-Agent": self.user_agent}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        attempt = 0
        while True:
            try:
                response = self._send(method, url, data, headers)
            except ConnectionFailed:
                if not idempotent or attempt >= self.max_retries:
                    raise
                wait = self._backoff(attempt, None)
            else:
                if response.status < 400:
                    return response
                error = self._error(method, url, response)
                retryable = isinstance(error, RateLimited) or (
                    idempotent and isinstance(error, Unavailable)
                )
                if not retryable or attempt >= self.max_retries:
                    raise error
                wait = self._backoff(
                    attempt, parse_retry_after(response.headers.get("retry-after"))
                )
            self._sleep(wait)
            attempt += 1

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        base: float = self.backoff * (2**attempt)
        return min(base + random.uniform(0, base / 2), self.max_wait)

    def _send(self, method: str, url: str, data: bytes | None, headers: dict[str, str]) -> Response:
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:
                return Response(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as answer:
            with answer:
                return Response(answer.code, dict(answer.headers), answer.read())
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionFailed(
                f"no answer from {self.base_url}: {reason}", method=method, url=url
            ) from exc

    @staticmethod
    def _error(method: str, url: str, response: Response) -> NexusError:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and "detail" in payload:
            detail = payload["detail"]
        elif isinstance(payload, dict) and "message" in payload:  # API Gateway's own answers
            detail = payload["message"]
        else:
            detail = response.body.decode(errors="replace")[:500] or f"HTTP {response.status}"
        return error_for(response.status)(
            detail, status=response.status, method=method, url=url, headers=response.headers
        )

    def _page[M: BaseModel](self, path: str, model: type[M], params: Mapping[str, Any]) -> Page[M]:
        response = self.request("GET", path, params=params)
        items = [model.model_validate(item, context=ACCEPTED) for item in response.json() or []]
        return Page(items, response.headers.get("x-next-cursor") or None)

    # -- jobs --------------------------------------------------------------------------------

    def create_job(self, job: JobCreate | Mapping[str, Any]) -> WrittenJob:
        """POST /jobs/: the job is checked with the server's model first (InvalidInput). The
        answer carries the schedule lint's `warnings` (empty from an older server)."""
        body = _local_model(JobCreate, dict(job) if isinstance(job, Mapping) else job)
        answer = self.request("POST", "/jobs/", body=body)
        return WrittenJob.model_validate(answer.json(), context=ACCEPTED)

    def list_jobs(
        self,
        *,
        skip: int | None = None,
        limit: int | None = None,
        is_active: bool | None = None,
        job_type: str | None = None,
        tags: list[str] | str | None = None,
        cursor: str | None = None,
    ) -> Page[Job]:
        """GET /jobs/: newest first; `tags` must all be carried."""
        params = {
            "skip": skip,
            "limit": limit,
            "is_active": is_active,
            "job_type": job_type,
            "tags": ",".join(tags) if isinstance(tags, list) else tags,
            "cursor": cursor,
        }
        return self._page("/jobs/", Job, params)

    def iter_jobs(self, *, page_size: int = 100, **filters: Any) -> Iterator[Job]:
        """Every job matching `filters` (list_jobs' own), page by page along X-Next-Cursor."""
        cursor = None
        while True:
            page = self.list_jobs(limit=page_size, cursor=cursor, **filters)
            yield from page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def get_job(self, job_id: int) -> Job:
        answer = self.request("GET", f"/jobs/{int(job_id)}")
        return Job.model_validate(answer.json(), context=ACCEPTED)

    def update_job(
        self, job_id: int, changes: Mapping[str, Any] | None = None, **fields: Any
    ) -> WrittenJob:
        """PUT /jobs/{id}: only the fields given change (`changes` and/or keyword fields).
        The answer carries the schedule lint's `warnings`, as create_job's does."""
        body = {**(changes or {}), **fields}
        answer = self.request("PUT", f"/jobs/{int(job_id)}", body=body)
        return WrittenJob.model_validate(answer.json(), context=ACCEPTED)

    def delete_job(self, job_id: int) -> None:
        self.request("DELETE", f"/jobs/{int(job_id)}")

    def run_job(
        self,
        job_id: int,
        task_args: list[Any] | None = None,
        task_kwargs: dict[str, Any] | None = None,
    ) -> ExecuteResult:
        """POST /jobs/{id}/execute: a run now, optionally with other arguments."""
        overrides = {"task_args": task_args, "task_kwargs": task_kwargs}
        body = _local_model(ExecuteRequest, {k: v for k, v in overrides.items() if v is not None})
        answer = self.request("POST", f"/jobs/{int(job_id)}/execute", body=body)
        return ExecuteResult.model_validate(answer.json())

    execute_job = run_job

    def pause_job(
        self, job_id: int, *, note: str | None = None, until: datetime | str | None = None
    ) -> JobPaused:
        """POST /jobs/{id}/pause: paused until resumed; with `note`, the job shows why, and
        with `until` it resumes by itself then (an instant without an offset is in the job's
        zone; the runs the pause covered are not replayed)."""
        given = {k: v for k, v in {"note": note, "until": until}.items() if v is not None}
        body = _local_model(PauseRequest, given) if given else None
        answer = self.request("POST", f"/jobs/{int(job_id)}/pause", body=body)
        return JobPaused.model_validate(answer.json())

    def resume_job(self, job_id: int) -> ActionResult:
        answer = self.request("POST", f"/jobs/{int(job_id)}/resume")
        return ActionResult.model_validate(answer.json())

    def cancel_run(self, execution_id: str, reason: str | None = None) -> Execution:
        """POST /executions/{id}/cancel: a pending run never starts; a running one is asked
        to stop and ends `cancelled` (the answer may still say `running`, with
        `cancel_requested`); a scheduled run not started yet gets a `cancelled` record.
        NotFound for an unknown id, Conflict (409) for a run that has already ended."""
        body = _local_model(CancelRequest, {"reason": reason}) if reason is not None else None
        path = f"/executions/{urllib.parse.quote(execution_id, safe='')}/cancel"
        return Execution.model_validate(self.request("POST", path, body=body).json())

    cancel_execution = cancel_run

    def list_runs(
        self,
        job_id: int,
        *,
        skip: int | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Execution]:
        """GET /jobs/{id}/executions: a job's run attempts, newest first."""
        params = {"skip": skip, "limit": limit, "cursor": cursor}
        return self._page(f"/jobs/{int(job_id)}/executions", Execution, params)

    def iter_runs(self, job_id: int, *, page_size: int = 50) -> Iterator[Execution]:
        cursor = None
        while True:
            page = self.list_runs(job_id, limit=page_size, cursor=cursor)
            yield from page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def stats(self) -> Stats:
        return Stats.model_validate(self.request("GET", "/jobs/stats/overview").json())

    # -- backfills ---------------------------------------------------------------------------

    @staticmethod
    def _backfill_body(
        start: datetime | str, end: datetime | str, overlap: str, dry_run: bool
    ) -> BaseModel:
        # The engine's own request model; imported here, so the command's start stays quick.
        from chalicelib.engine.backfill import BackfillRequest

        fields = {"start": start, "end": end, "overlap": overlap, "dry_run": dry_run}
        return _local_model(BackfillRequest, fields)

    def backfill_job(
        self,
        job_id: int,
        start: datetime | str,
        end: datetime | str,
        *,
        overlap: str = "allow",
    ) -> Backfill:
        """POST /jobs/{id}/backfill: run every occurrence of the job's schedule from `start`
        to `end` (both included; without an offset, in the job's zone; `end` not after now),
        each once. `overlap`: allow, skip or buffer_all. Follow it with get_backfill or
        wait_for_backfill."""
        body = self._backfill_body(start, end, overlap, False)
        answer = self.request("POST", f"/jobs/{int(job_id)}/backfill", body=body)
        return Backfill.model_validate(answer.json())

    def backfill_dry_run(
        self,
        job_id: int,
        start: datetime | str,
        end: datetime | str,
        *,
        overlap: str = "allow",
    ) -> BackfillPlan:
        """The occurrences backfill_job would run (`dry_run: true`); runs nothing."""
        body = self._backfill_body(start, end, overlap, True)
        answer = self.request("POST", f"/jobs/{int(job_id)}/backfill", body=body, idempotent=True)
        return BackfillPlan.model_validate(answer.json())

    def get_backfill(self, backfill_id: str) -> Backfill:
        """GET /backfills/{id}: its progress and its runs by status (`runs`)."""
        path = f"/backfills/{urllib.parse.quote(backfill_id, safe='')}"
        return Backfill.model_validate(self.request("GET", path).json())

    def wait_for_backfill(
        self,
        backfill_id: str,
        *,
        interval: float = 1.0,
        timeout: float | None = None,
        until_runs_end: bool = True,
        on_progress: Callable[[Backfill], None] | None = None,
    ) -> Backfill:
        """Poll get_backfill every `interval` seconds until the backfill is done (with
        `until_runs_end`, also until every run it sent has ended) or `timeout` seconds have
        passed; the last state seen either way (check `.done` / `.runs_ended`).
        `on_progress` is called with each state that differs from the one before."""
        started = time.monotonic()
        last: Backfill | None = None
        while True:
            current = self.get_backfill(backfill_id)
            if on_progress is not None and (last is None or _progress(current) != _progress(last)):
                on_progress(current)
            last = current
            if current.runs_ended if until_runs_end else current.done:
                return current
            if timeout is not None and time.monotonic() - started >= timeout:
                return current
            self._sleep(interval)

    # -- holiday calendars -------------------------------------------------------------------

    def create_calendar(
        self,
        name: str,
        timezone: str,
        *,
        dates: list[str] | None = None,
        ics: str | None = None,
        description: str | None = None,
    ) -> Calendar:
        """POST /calendars: its days as `dates` ("YYYY-MM-DD", "YYYY-MM-DD/YYYY-MM-DD") or as
        `ics` (an iCalendar file's text), exactly one; the answer shows them as `dates`."""
        from chalicelib.calendars_api import CalendarCreate

        fields = {
            "name": name,
            "timezone": timezone,
            "description": description,
            "dates": dates,
            "ics": ics,
        }
        body = _local_model(CalendarCreate, {k: v for k, v in fields.items() if v is not None})
        return Calendar.model_validate(self.request("POST", "/calendars", body=body).json())

    def list_calendars(self) -> list[Calendar]:
        return [Calendar.model_validate(c) for c in self.request("GET", "/calendars").json()]

    def get_calendar(self, name: str) -> Calendar:
        return Calendar.model_validate(self.request("GET", _calendar_path(name)).json())

    def update_calendar(
        self, name: str, changes: Mapping[str, Any] | None = None, **fields: Any
    ) -> Calendar:
        """PUT /calendars/{name}: the fields given replace the calendar's (`dates` or `ics`
        replace all its days); the others stay."""
        from chalicelib.calendars_api import CalendarUpdate

        body = _local_model(CalendarUpdate, {**(changes or {}), **fields})
        return Calendar.model_validate(self.request("PUT", _calendar_path(name), body=body).json())

    def delete_calendar(self, name: str) -> None:
        """DELETE /calendars/{name}: Conflict (409, naming them) while jobs name it."""
        self.request("DELETE", _calendar_path(name))

    # -- schedules -----------------------------------------------------------------------------

    def validate_cron(
        self,
        expression: str,
        timezone: str = "UTC",
        *,
        start: datetime | None = None,
        count: int | None = None,
    ) -> CronValidation:
        fields = {"expression": expression, "timezone": timezone, "start": start, "count": count}
        body = _local_model(CronValidateRequest, {k: v for k, v in fields.items() if v is not None})
        answer = self.request("POST", "/cron/validate", body=body, idempotent=True)
        return CronValidation.model_validate(answer.json())

    def cron_presets(self) -> dict[str, CronPreset]:
        answer = self.request("GET", "/cron/presets").json()
        return {name: CronPreset.model_validate(preset) for name, preset in answer.items()}

    def preview(self, schedule: Mapping[str, Any] | None = None, **fields: Any) -> SchedulePreview:
        """POST /schedules/preview: the next runs of any schedule (a job's schedule fields plus
        `timezone`, `start`, `count`)."""
        body = _local_model(PreviewRequest, {**(schedule or {}), **fields})
        answer = self.request("POST", "/schedules/preview", body=body, idempotent=True)
        return SchedulePreview.model_validate(answer.json())

    # -- keys and audit --------------------------------------------------------------------

    def create_key(
        self,
        name: str,
        scopes: list[str],
        *,
        expires_at: datetime | None = None,
        rate_limit: Mapping[str, int] | None = None,
    ) -> NewKey:
        """POST /keys: the answer's `key` is the secret, shown this once."""
        fields: dict[str, Any] = {"name": name, "scopes": scopes}
        if expires_at is not None:
            fields["expires_at"] = expires_at
        if rate_limit is not None:
            fields["rate_limit"] = dict(rate_limit)
        body = _local_model(KeyCreate, fields)
        return NewKey.model_validate(self.request("POST", "/keys", body=body).json())

    def list_keys(self) -> list[ApiKey]:
        return [ApiKey.model_validate(k) for k in self.request("GET", "/keys").json()]

    def revoke_key(self, key_id: str) -> None:
        self.request("DELETE", f"/keys/{urllib.parse.quote(key_id, safe='')}")

    def job_audit(
        self, job_id: int, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[AuditEntry]:
        params = {"limit": limit, "cursor": cursor}
        return self._page(f"/jobs/{int(job_id)}/audit", AuditEntry, params)

    def audit(self, *, limit: int | None = None, cursor: str | None = None) -> Page[AuditEntry]:
        return self._page("/audit", AuditEntry, {"limit": limit, "cursor": cursor})

    def iter_audit(
        self, job_id: int | None = None, *, page_size: int = 100
    ) -> Iterator[AuditEntry]:
        cursor = None
        while True:
            page = (
                self.audit(limit=page_size, cursor=cursor)
                if job_id is None
                else self.job_audit(job_id, limit=page_size, cursor=cursor)
            )
            yield from page
            if not page.next_cursor:
                return
            cursor = page.next_cursor


def _calendar_path(name: str) -> str:
    return f"/calendars/{urllib.parse.quote(name, safe='')}"


def _progress(backfill: Backfill) -> tuple[Any, ...]:
    return (backfill.status, backfill.sent, backfill.existing, backfill.skipped, backfill.runs)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
