"""The API's OpenAPI 3.1 document, made from the app's route table and the pydantic models.

Chalice's own document is Swagger 2.0 with every model `Empty`, so NEXUS makes its own, at
request time (cached), from what the app really runs:

- the **paths and methods** are `app.routes` (Chalice's route table: path -> method ->
  RouteEntry). A route's path `/v1/jobs/{job_id}` is the document's `/jobs/{job_id}` under
  the server `/api/v1` (API Gateway serves the routes on the stage `api`; `local.gateway` does
  the same), a URL relative to the document's own, so a client that loads
  `.../api/v1/openapi.json` reaches `.../api/v1/jobs`.
- each route's **scope** is the one its `api(scope)` decorator checks (recorded on the view as
  `nexus_scope`): `None` is an open route (`security: []`), any other is the bearer scheme
  with that scope as its role.
- the **schemas** are the request models (`models.JobCreate`, ...) and the answer models
  (`api.responses`), through pydantic's `models_json_schema`, with `$defs` moved to
  `components.schemas`.
- what pydantic cannot know (summaries, which model a route reads, its errors, the contract's
  examples) is `OPERATIONS`, keyed by the route's method and path. A route missing there still
  gets an operation (from its docstring), and tests/app/test_openapi.py fails on it both ways:
  a route without an entry, an entry without a route.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.api import docs, examples
from chalicelib.api import responses as out
from chalicelib.calendars_api import CalendarCreate, CalendarUpdate
from chalicelib.engine.backfill import MAX_OCCURRENCES, RATE_PER_SECOND, BackfillRequest
from chalicelib.models import (
    CALENDAR_NAME,
    NON_NULLABLE,
    CancelRequest,
    CronValidateRequest,
    ExecuteRequest,
    JobCreate,
    ListExecutionsQuery,
    ListJobsQuery,
    PauseRequest,
    PreviewRequest,
)
from chalicelib.security.admin import AuditQuery
from chalicelib.security.keys import SCOPES, KeyCreate

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
ROUTE_PREFIX = "/v1"
# Relative to the document's own URL (.../api/v1/openapi.json), so it holds locally, on the
# stage URL and behind a custom domain that keeps the stage.
SERVER_URL = "/api/v1"
SECURITY_SCHEME = "bearerAuth"
REF = "#/components/schemas/{model}"
# job_id_from (app.py): a positive integer of at most 18 digits.
MAX_JOB_ID = 10**18 - 1

# A reply's schema: a model, a list of one, a map of one, or a JSON schema as it stands.
Shape = type[BaseModel] | tuple[Literal["list", "map"], type[BaseModel]] | dict[str, Any]


@dataclass(frozen=True)
class Operation:
    """What the document says about one route, beyond what the route table and models say."""

    summary: str
    description: str = ""
    body: type[BaseModel] | str | None = None  # a model, or a component's name
    body_required: bool = True
    body_example: Any = None
    query: type[BaseModel] | None = None
    query_example: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    answer: Shape | None = None  # None: no body (204)
    answer_example: Any = None
    answer_media: str = "application/json"
    paged: bool = False  # a list whose next page's cursor is in X-Next-Cursor
    errors: tuple[int, ...] = ()  # beyond those the route's shape implies (see _errors)
    links: dict[str, Any] = field(default_factory=dict)
    no_store: bool = False
    # Other successful answers: status -> (shape, example) (a backfill's dry run answers 200).
    also: dict[int, tuple[Shape, Any]] = field(default_factory=dict)


def _job_links(*operations: str) -> dict[str, Any]:
    return {
        name: {"operationId": name, "parameters": {"job_id": "$response.body#/id"}}
        for name in operations
    }


JOB_LINKS = _job_links(
    "get_job",
    "update_job",
    "delete_job",
    "execute_job",
    "pause_job",
    "resume_job",
    "job_executions",
    "job_audit",
)
# A job write can race the tick or another request: 409, safe to retry.
RACES = (409,)

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/v1/jobs"): Operation(
        "Create a job",
        "Nothing invalid is stored: every check (schedule, zone, task and its arguments) runs "
        "before the first write. A schedule field of another job type is refused.",
        body=JobCreate,
        body_example=examples.JOB_CREATE,
        status=201,
        answer=out.JobWritten,
        answer_example={**examples.JOB, "warnings": []},
        errors=RACES,
        links=JOB_LINKS,
    ),
    ("GET", "/v1/jobs"): Operation(
        "List jobs",
        "Newest first. The body is a JSON array; the next page's cursor is in `X-Next-Cursor`.",
        query=ListJobsQuery,
        query_example={"is_active": True, "job_type": "cron", "limit": 50},
        answer=("list", out.JobOut),
        answer_example=[examples.JOB],
        paged=True,
    ),
    ("GET", "/v1/jobs/stats/overview"): Operation(
        "Scheduler statistics", answer=out.StatsOverview, answer_example=examples.STATS
    ),
    ("GET", "/v1/jobs/{job_id}"): Operation(
        "Get a job", answer=out.JobOut, answer_example=examples.JOB
    ),
    ("PUT", "/v1/jobs/{job_id}"): Operation(
        "Update a job",
        "Changes only the fields sent, and validates the job as it would be after the change. "
        "Changing `job_type` clears the old type's schedule field unless it is sent again. "
        "`null` is refused for fields that always have a value.",
        body="JobUpdate",
        body_example=examples.JOB_UPDATE,
        answer=out.JobWritten,
        answer_example={**examples.JOB, "warnings": []},
        errors=RACES,
    ),
    ("DELETE", "/v1/jobs/{job_id}"): Operation(
        "Delete a job", "Its history is removed afterwards.", status=204, errors=RACES
    ),
    ("POST", "/v1/jobs/{job_id}/execute"): Operation(
        "Run a job now",
        "The body is optional: `task_args` or `task_kwargs` replace the job's own for this run "
        "only. Runs on demand have their own rate limit (the key's `execute_rate`).",
        body=ExecuteRequest,
        body_required=False,
        body_example=examples.EXECUTE,
        answer=out.ExecutionStarted,
        answer_example=examples.EXECUTION_STARTED,
        errors=RACES,
    ),
    ("POST", "/v1/jobs/{job_id}/pause"): Operation(
        "Pause a job",
        'With no body, as the contract says: paused until resumed. With `{"note", "until"}`'
        " the job shows the note and resumes by itself at `until` (its next run counts from "
        "then; the runs the pause covered are not replayed). Pausing a paused job with no body "
        "changes nothing; with a body, it sets the note and end.",
        body=PauseRequest,
        body_required=False,
        body_example={"note": "upstream maintenance", "until": "2025-01-20T18:00:00Z"},
        answer=out.JobPaused,
        answer_example={
            "message": "Job paused",
            "paused_note": "upstream maintenance",
            "paused_until": "2025-01-20T18:00:00Z",
        },
        errors=RACES,
    ),
    ("POST", "/v1/jobs/{job_id}/resume"): Operation(
        "Resume a paused job",
        "The next run is computed from now: runs missed while paused are not replayed.",
        answer=out.JobResumed,
        answer_example={"message": "Job resumed", "next_run_at": "2025-01-20T14:00:00Z"},
        errors=RACES,
    ),
    ("POST", "/v1/executions/{execution_id}/cancel"): Operation(
        "Cancel a run",
        "A pending run never starts. A running one is asked to stop: its task sees "
        "`RunContext.cancelled` within a second (`nexus.sleep` and `nexus.http_request` stop "
        "on it), and the run ends `cancelled`, with no retry. A scheduled run not started yet "
        "(even one further ahead, named by its execution id) gets a `cancelled` record, so it "
        "never starts. An ended run answers 409.",
        body=CancelRequest,
        body_required=False,
        body_example={"reason": "bad input file"},
        answer=out.ExecutionOut,
        answer_example={
            **examples.EXECUTION,
            "status": "running",
            "completed_at": None,
            "duration_seconds": None,
            "result": None,
            "cancel_requested": "cancelled by ops: bad input file",
        },
        errors=(404, 409),
    ),
    ("GET", "/v1/jobs/{job_id}/executions"): Operation(
        "A job's run history",
        "Newest first; the next page's cursor is in `X-Next-Cursor`.",
        query=ListExecutionsQuery,
        query_example={"limit": 10},
        answer=("list", out.ExecutionOut),
        answer_example=[examples.EXECUTION],
        paged=True,
    ),
    ("POST", "/v1/jobs/{job_id}/backfill"): Operation(
        "Run a job's past occurrences",
        "Runs every occurrence of the job's schedule from `start` to `end` (both included, in "
        f"the job's zone; at most {MAX_OCCURRENCES:,}; `end` not after now), at most "
        f"{RATE_PER_SECOND} runs a second by default (the deployment's "
        "NEXUS_BACKFILL_RATE_PER_SECOND; the answer's `rate_per_second`), with "
        "`trigger: backfill` and the occurrence as `scheduled_for`, even while the job is "
        "paused. An occurrence whose run has a record "
        "already (it ran, was missed, or another backfill ran it) is counted `existing` and not "
        "run again, so asking twice runs nothing twice. Answers 202 with the backfill; follow it "
        "with `GET /backfills/{backfill_id}`. With `dry_run: true`, answers 200 with the "
        "occurrences that would run, and runs nothing. Backfills have the rate limit of runs "
        "on demand.",
        body=BackfillRequest,
        body_example=examples.BACKFILL_REQUEST,
        status=202,
        answer=out.BackfillStarted,
        answer_example=examples.BACKFILL_STARTED,
        also={200: (out.BackfillDryRun, examples.BACKFILL_DRY_RUN)},
    ),
    ("GET", "/v1/backfills/{backfill_id}"): Operation(
        "A backfill's progress",
        "How far the backfill got (`sent`, `existing`, `remaining`) and how the runs it sent "
        "stand (`runs`, by status).",
        answer=out.BackfillOut,
        answer_example=examples.BACKFILL,
        errors=(404,),
    ),
    ("GET", "/v1/jobs/{job_id}/audit"): Operation(
        "A job's audit trail",
        "Who changed the job, when, from where; newest first.",
        query=AuditQuery,
        answer=("list", out.AuditEntryOut),
        answer_example=[examples.AUDIT_ENTRY],
        paged=True,
    ),
    ("POST", "/v1/cron/validate"): Operation(
        "Validate a cron expression",
        "An expression that does not parse is answered 200 with `is_valid: false` and the "
        "reason; an unknown time zone is a 422.",
        body=CronValidateRequest,
        body_example=examples.CRON_VALIDATE,
        answer=out.CronValidation,
        answer_example=examples.CRON_VALIDATION,
    ),
    ("GET", "/v1/cron/presets"): Operation(
        "Common cron expressions",
        "Open: no key needed (static data, no job data).",
        answer=("map", out.CronPreset),
        answer_example=examples.CRON_PRESETS,
    ),
    ("POST", "/v1/schedules/preview"): Operation(
        "Preview a schedule's next runs, its warnings and its cost",
        "Any job type, without storing anything. The runs are as a job would have them: its "
        "holiday calendars and blackout windows honoured. `warnings` is the schedule lint "
        "(DST gaps and overlaps, days some months lack, day-of-month OR day-of-week, runs "
        "overlapping a task's timeout, a date in a blackout, calendars that remove every run), "
        "each with the dates it found in the year after `start`; job create and update answer "
        "the same `warnings`. `estimate`: runs a month and the AWS cost a month at the stage's "
        "prices, from the per-run requests `make bench` measures (chalicelib.pricing).",
        body=PreviewRequest,
        body_example=examples.PREVIEW,
        answer=out.SchedulePreview,
        answer_example={
            "next_runs": ["2026-03-07T07:30:00Z", "2026-03-08T06:30:00Z"],
            "warnings": [
                {
                    "code": "dst_gap",
                    "message": "02:30 does not exist on 2026-03-08 in US/Eastern (clocks "
                    "go forward): the run that day is at 03:00",
                    "dates": ["2026-03-08"],
                }
            ],
            "estimate": {
                "runs_per_month": 30.42,
                "cost_per_month_usd": 0.000153,
                "cost_per_run_usd": 5.03e-06,
            },
        },
    ),
    ("POST", "/v1/calendars"): Operation(
        "Create a holiday calendar",
        "Its days come as `dates` (days and ranges) or as `ics` (an iCalendar file's text: the "
        "days of its events, recurring ones expanded up to 10 years), exactly one of them. "
        "Jobs name calendars in `exclude_calendars` (no run on their days) or `only_calendars` "
        "(runs on their days only); a day is a day in the calendar's own zone.",
        body=CalendarCreate,
        body_example=examples.CALENDAR_CREATE,
        status=201,
        answer=out.CalendarOut,
        answer_example={**examples.CALENDAR, "used_by": []},
        errors=(409,),
    ),
    ("GET", "/v1/calendars"): Operation(
        "List holiday calendars",
        "By name.",
        answer=("list", out.CalendarOut),
        answer_example=[examples.CALENDAR],
    ),
    ("GET", "/v1/calendars/{name}"): Operation(
        "Get a holiday calendar",
        answer=out.CalendarOut,
        answer_example=examples.CALENDAR,
        errors=(404,),
    ),
    ("PUT", "/v1/calendars/{name}"): Operation(
        "Change a holiday calendar",
        "The fields sent replace the calendar's (`dates` or `ics` replace all its days; "
        "`description: null` clears it); the others stay. The jobs that name it follow the "
        "change from their next occurrence.",
        body=CalendarUpdate,
        body_example=examples.CALENDAR_UPDATE,
        answer=out.CalendarOut,
        answer_example={**examples.CALENDAR, **examples.CALENDAR_UPDATE},
        errors=(404, 409),
    ),
    ("DELETE", "/v1/calendars/{name}"): Operation(
        "Delete a holiday calendar",
        "Refused (409, naming the jobs) while jobs name it in `exclude_calendars` or "
        "`only_calendars`.",
        status=204,
        errors=(404, 409),
    ),
    ("POST", "/v1/keys"): Operation(
        "Create an API key",
        "The answer carries the whole key, this once only.",
        body=KeyCreate,
        body_example=examples.KEY_CREATE,
        status=201,
        answer=out.ApiKeyCreated,
        answer_example=examples.KEY_CREATED,
        links={
            "revoke_key": {
                "operationId": "revoke_key",
                "parameters": {"key_id": "$response.body#/id"},
            }
        },
        no_store=True,
    ),
    ("GET", "/v1/keys"): Operation(
        "List API keys",
        "Never their secrets.",
        answer=("list", out.ApiKeyOut),
        answer_example=[examples.KEY],
        no_store=True,
    ),
    ("DELETE", "/v1/keys/{key_id}"): Operation(
        "Revoke an API key",
        "It stops working within the authorizer's cache time (60 s).",
        status=204,
        errors=(404,),
        no_store=True,
    ),
    ("GET", "/v1/audit"): Operation(
        "The audit trail",
        "Every change to jobs and keys; newest first.",
        query=AuditQuery,
        answer=("list", out.AuditEntryOut),
        answer_example=[examples.AUDIT_ENTRY],
        paged=True,
    ),
    ("GET", "/v1/realtime"): Operation(
        "Where real-time updates are",
        "The WebSocket URL to connect to with a key having `jobs:read` (`?token=<key>`), "
        'then `{"action": "subscribe", "jobs": "*"}`: the protocol and the events '
        "are in docs/realtime.md.",
        answer=out.Realtime,
        answer_example={"url": "ws://127.0.0.1:8001"},
    ),
    ("GET", "/v1/openapi.json"): Operation(
        "This document",
        "Open: no key needed. It describes the API and exposes no job data.",
        answer={"type": "object", "description": "An OpenAPI 3.1 document."},
    ),
    ("GET", "/v1/docs"): Operation(
        "The API's documentation page (Swagger UI)",
        "Open: no key needed. Its scripts are served by the API itself (`/docs/{asset}`).",
        answer={"type": "string"},
        answer_media="text/html",
    ),
    ("GET", "/v1/docs/{asset}"): Operation(
        "A static file of the documentation page",
        "Open: no key needed. Only the listed files; any other name is a 404.",
        answer={"type": "string"},
        answer_media="*/*",
        errors=(404,),
    ),
}

# -- errors ---------------------------------------------------------------------------------

ERROR_TEXT = {
    400: "The body is not JSON (NaN and Infinity included, or nesting deeper than 32 levels), "
    "or is empty where a body is required.",
    401: "No usable API key: send `Authorization: Bearer <key>`.",
    403: "The key lacks the scope this operation needs.",
    404: "Not found.",
    409: "Two changes to the same object raced; this one was refused and may be sent again.",
    413: "The body is over the size cap (64 KB unless NEXUS_MAX_BODY_BYTES says otherwise).",
    415: "The body's Content-Type is not JSON (application/json, text/plain and "
    "application/x-www-form-urlencoded bodies are all read as JSON).",
    422: "A value is not accepted: one entry per problem, each saying what is accepted.",
    429: "The key's rate limit is reached: retry after `Retry-After` seconds.",
    500: "Internal server error.",
    503: "The scheduler's storage is busy or did not answer: nothing was done; retry shortly.",
}
ERROR_EXAMPLES = {
    400: {"detail": "Invalid request data"},
    401: {"detail": "send an API key: Authorization: Bearer <key>"},
    403: {
        "detail": "API key nxs_3k9d0a1b2c4e lacks the scope 'jobs:write' this request needs "
        "(it has: jobs:read)"
    },
    404: {"detail": "Job not found"},
    409: {"detail": "the job changed while this request was applied; retry"},
    413: {"detail": "request body is 70000 bytes; the limit is 65536 bytes"},
    415: {"detail": "Content-Type application/xml is not supported; send application/json"},
    422: examples.VALIDATION_ERROR,
    429: {"detail": "rate limit reached: 40 requests per window for this key; retry in 2 s"},
    500: {"detail": "Internal server error"},
    503: {"detail": "the scheduler's storage is busy or did not answer; retry shortly"},
}
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {
        "description": "Requests the key may make in the current window.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Remaining": {
        "description": "Requests left in the current window.",
        "schema": {"type": "integer"},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the window resets.",
        "schema": {"type": "integer"},
    },
    "Retry-After": {
        "description": "Seconds to wait before sending the request again.",
        "schema": {"type": "integer", "minimum": 0},
        "required": True,
    },
    "WWW-Authenticate": {
        "description": "How to authenticate: `Bearer`.",
        "schema": {"type": "string"},
        "required": True,
    },
    "X-Next-Cursor": {
        "description": "Where the next page starts (pass it as `cursor`); absent on the last page.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"schema": {"type": "string", "const": "no-store"}, "required": True},
}


def _errors(op: Operation, scope: str | None, path_params: list[str]) -> list[int]:
    """Every error a route can answer, from its shape (see app.api, app.body)."""
    codes = {500, *op.errors}
    if scope is not None:
        codes |= {401, 403, 429, 503}
    if op.body is not None:
        codes |= {400, 413, 415, 422}
    if op.query is not None:
        codes.add(422)
    if "job_id" in path_params:
        codes |= {404, 422}
    return sorted(codes)


# -- the document ---------------------------------------------------------------------------


def _models() -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    inputs: list[type[BaseModel]] = [
        JobCreate,
        ExecuteRequest,
        BackfillRequest,
        CronValidateRequest,
        PreviewRequest,
        PauseRequest,
        CancelRequest,
        KeyCreate,
        CalendarCreate,
        CalendarUpdate,
    ]
    outputs: list[type[BaseModel]] = [
        out.JobOut,
        out.JobWritten,
        out.ExecutionOut,
        out.ExecutionStarted,
        out.JobPaused,
        out.JobResumed,
        out.StatsOverview,
        out.CronValidation,
        out.CronPreset,
        out.SchedulePreview,
        out.ApiKeyOut,
        out.ApiKeyCreated,
        out.Realtime,
        out.CalendarOut,
        out.AuditEntryOut,
        out.BackfillStarted,
        out.BackfillOut,
        out.BackfillDryRun,
        out.Error,
        out.ValidationError,
    ]
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in inputs]
    return modes + [(m, "serialization") for m in outputs]


def _schemas() -> tuple[Any, dict[str, Any]]:
    refs, top = models_json_schema(_models(), ref_template=REF)
    schemas = _json_schema_names(dict(top.get("$defs", {})))
    for schema in schemas.values():
        for prop in schema.get("properties", {}).values():
            # `x: int | SkipJsonSchema[None] = None`: left out when None, never null.
            if "default" in prop and prop["default"] is None and "null" not in str(prop):
                del prop["default"]
    schemas["JobUpdate"] = _partial(schemas[_name(refs[(JobCreate, "validation")])])
    return refs, schemas


# pydantic writes a constraint it could not fold into the core type (one behind a validator,
# as models.QueryInt's) under its own name: JSON Schema's names are these.
_CONSTRAINTS = {
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
}


def _json_schema_names(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            node = {_CONSTRAINTS.get(k, k): v for k, v in node.items()}
        return {k: _json_schema_names(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_schema_names(v) for v in node]
    return node


def _name(ref: Mapping[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def _partial(create: dict[str, Any]) -> dict[str, Any]:
    """PUT's body: JobCreate's fields, none required, no defaults (a field left out keeps its
    value), `null` only where JobCreate takes it."""
    schema = copy.deepcopy(create)
    schema.pop("required", None)
    schema["title"] = "JobUpdate"
    schema["description"] = "Any of a job's fields; those left out keep their value."
    for prop in schema["properties"].values():
        prop.pop("default", None)
    assert all("null" not in str(schema["properties"][k]) for k in NON_NULLABLE)
    return schema


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is text or absent, never `null`: `X | None` reads as X."""
    options = schema.get("anyOf")
    if options:
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**rest, **kept[0]}
    return {k: v for k, v in schema.items() if not (k == "default" and v is None)}


def _query_parameters(model: type[BaseModel], example: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _json_schema_names(model.model_json_schema(ref_template=REF))
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema["properties"].items():
        prop = _strip_null(prop)
        prop.pop("title", None)
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if "description" in prop:
            param["description"] = prop.pop("description")
        if name == "cursor":
            param["description"] = "The `X-Next-Cursor` of the previous page; not with `skip`."
        if name in example:
            param["example"] = example[name]
        params.append(param)
    return params


def _path_parameter(name: str) -> dict[str, Any]:
    schemas: dict[str, dict[str, Any]] = {
        "job_id": {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
        "key_id": {"type": "string", "pattern": "^[A-Za-z0-9]{1,40}$"},
        "name": {"type": "string", "pattern": CALENDAR_NAME},
        "asset": {"type": "string", "enum": sorted(docs.ASSETS)},
        "backfill_id": {"type": "string", "pattern": "^[1-9][0-9]{0,17}-[0-9a-f]{12}$"},
        "execution_id": {
            "type": "string",
            "pattern": r"^[0-9]{1,18}-[0-9]{8}T[0-9]{6}(\.[0-9]{6})?Z-[0-9]{1,4}$",
        },
    }
    param: dict[str, Any] = {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schemas.get(name, {"type": "string"}),
    }
    if name == "job_id":
        param["example"] = 1
    return param


def _shape(shape: Shape, refs: Mapping[tuple[type[BaseModel], str], Any]) -> dict[str, Any]:
    if isinstance(shape, dict):
        return shape
    if isinstance(shape, tuple):
        kind, model = shape
        item = refs[(model, "serialization")]
        if kind == "list":
            return {"type": "array", "items": item}
        return {"type": "object", "additionalProperties": item}
    return dict(refs[(shape, "serialization")])


def _operation(
    method: str,
    path: str,
    route: Any,
    refs: Mapping[tuple[type[BaseModel], str], Any],
) -> dict[str, Any]:
    view = route.view_function
    scope = getattr(view, "nexus_scope", None)
    op = OPERATIONS.get((method, path))
    if op is None:  # tests/app/test_openapi.py fails on this; the route is still listed
        summary = (view.__doc__ or route.view_name).strip().splitlines()[0]
        op = Operation(summary)
    doc: dict[str, Any] = {
        "operationId": route.view_name,
        "summary": op.summary,
        "tags": [path.removeprefix(ROUTE_PREFIX).strip("/").split("/")[0]],
    }
    description = op.description
    if scope is None:
        doc["security"] = []
    else:
        doc["security"] = [{SECURITY_SCHEME: [scope]}]
        description = f"{description}\n\nScope: `{scope}` (an admin key has every scope).".strip()
    if description:
        doc["description"] = description
    params = [_path_parameter(name) for name in route.view_args]
    if op.query is not None:
        params += _query_parameters(op.query, op.query_example)
    if params:
        doc["parameters"] = params
    if op.body is not None:
        ref = (
            {"$ref": REF.format(model=op.body)}
            if isinstance(op.body, str)
            else refs[(op.body, "validation")]
        )
        media: dict[str, Any] = {"schema": ref}
        if op.body_example is not None:
            media["example"] = op.body_example
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": media},
        }
    doc["responses"] = _responses(op, scope, route.view_args, refs)
    return doc


def _responses(
    op: Operation,
    scope: str | None,
    path_params: list[str],
    refs: Mapping[tuple[type[BaseModel], str], Any],
) -> dict[str, Any]:
    rate = {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_HEADERS}
    ok: dict[str, Any] = {"description": "OK" if op.status == 200 else _status_text(op.status)}
    headers: dict[str, Any] = dict(rate) if scope is not None else {}
    if op.paged:
        headers["X-Next-Cursor"] = {"$ref": "#/components/headers/X-Next-Cursor"}
    if op.no_store:
        headers["Cache-Control"] = {"$ref": "#/components/headers/Cache-Control"}
    if headers:
        ok["headers"] = headers
    if op.answer is not None:
        media: dict[str, Any] = {"schema": _shape(op.answer, refs)}
        if op.answer_example is not None:
            media["example"] = op.answer_example
        ok["content"] = {op.answer_media: media}
    responses: dict[str, Any] = {str(op.status): ok}
    for status, (shape, example) in op.also.items():
        other = {**ok, "description": "OK" if status == 200 else _status_text(status)}
        other["content"] = {op.answer_media: {"schema": _shape(shape, refs), "example": example}}
        responses[str(status)] = other
    for code in _errors(op, scope, path_params):
        responses[str(code)] = {"$ref": f"#/components/responses/{code}"}
    return responses


def _status_text(status: int) -> str:
    return {201: "Created", 202: "Accepted", 204: "No Content"}.get(status, str(status))


def _error_responses() -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for code, text in ERROR_TEXT.items():
        model = "ValidationError" if code == 422 else "Error"
        answer: dict[str, Any] = {
            "description": text,
            "content": {
                "application/json": {
                    "schema": {"$ref": REF.format(model=model)},
                    "example": ERROR_EXAMPLES[code],
                }
            },
        }
        named = {401: ["WWW-Authenticate"], 429: ["Retry-After"], 503: ["Retry-After"]}
        if code in named:
            answer["headers"] = {h: {"$ref": f"#/components/headers/{h}"} for h in named[code]}
        if code == 429:
            answer["headers"].update(
                {h: {"$ref": f"#/components/headers/{h}"} for h in RATE_HEADERS}
            )
        answers[str(code)] = answer
    return answers


def build(routes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The document for a Chalice route table (`app.routes`)."""
    refs, schemas = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(routes.items()):
        if not path.startswith(ROUTE_PREFIX + "/"):
            continue  # the dashboard (/ui): pages, not part of the API at /api/v1
        public = path.removeprefix(ROUTE_PREFIX) or "/"
        for method, route in sorted(methods.items()):
            paths.setdefault(public, {})[method.lower()] = _operation(method, path, route, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "NEXUS Scheduler API",
            "version": API_VERSION,
            "description": (
                "Jobs on cron, interval, date and calendar (RFC 5545) schedules, each in its "
                "own time zone. Every operation needs an API key (`Authorization: Bearer "
                "<key>`) with the scope it names, except the open ones (`security: []`): the "
                "cron presets, this document and its documentation page, which expose no job "
                "data. Every instant is UTC ISO-8601 with a `Z`. Lists are JSON arrays; the "
                "next page's cursor is in the `X-Next-Cursor` header."
            ),
        },
        "servers": [{"url": SERVER_URL, "description": "This API (the stage `api`)."}],
        "security": [{SECURITY_SCHEME: []}],
        "tags": [
            {"name": "jobs", "description": "Scheduled jobs and their runs."},
            {"name": "backfills", "description": "Runs of a job's past occurrences."},
            {"name": "cron", "description": "Cron expressions."},
            {"name": "schedules", "description": "Schedule previews."},
            {"name": "calendars", "description": "Holiday calendars jobs leave out or keep to."},
            {"name": "keys", "description": "API keys (scope `keys:admin`)."},
            {"name": "audit", "description": "Who changed what (scope `keys:admin`)."},
            {"name": "openapi.json", "description": "This document."},
            {"name": "docs", "description": "The documentation page."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": _error_responses(),
            "headers": HEADERS,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: `nxs_<id>_<secret>` (or make run's admin "
                    "key). Scopes: " + ", ".join(f"`{s}`" for s in SCOPES) + ".",
                }
            },
        },
    }
