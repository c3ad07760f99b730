"""NEXUS Scheduler: the Chalice wiring. Routes only; the work is in chalicelib.

Routes are defined under `/v1` and API Gateway serves them on the stage `api`, so the public
base URL is `.../api/v1`. Locally, `local/server.py` serves this same app at the same path.
"""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from chalice.app import (
    AuthRequest,
    AuthResponse,
    Chalice,
    DynamoDBEvent,
    Rate,
    Request,
    Response,
    SQSEvent,
    WebsocketEvent,
)

from chalicelib.aws import client, connections_client
from chalicelib.config import dlq_name, get_settings, queue_name, stream_arn
from chalicelib.errors import (
    BadRequest,
    CalendarNotFound,
    ConcurrentUpdate,
    ExecutionNotFound,
    FieldError,
    InvalidInput,
    JobNotFound,
    NexusError,
    PayloadTooLarge,
    RunAlreadyFinal,
    Unavailable,
)
from chalicelib.observability import setup_logging
from chalicelib.security import AUTHORIZER_TTL

# Every Lambda function of the app (the API, the tick, the workers, the stream and WebSocket
# handlers) imports this module, so it imports only what its routes and handlers need to be
# declared: chalice, boto3, the settings and the errors. The rest is imported by the getters
# and handlers below on first use, so that each function loads only what it runs (the tick
# and the workers never load the API's modules: tests/unit/test_import_path.py).
if TYPE_CHECKING:
    from chalicelib.calendars_api import CalendarService
    from chalicelib.engine.backfill import Backfills
    from chalicelib.engine.control import Controls
    from chalicelib.engine.queue import WorkQueue
    from chalicelib.engine.tick import Dispatcher
    from chalicelib.engine.watch import Watch
    from chalicelib.engine.worker import Worker
    from chalicelib.realtime.fanout import Fanout
    from chalicelib.realtime.socket import Sockets
    from chalicelib.security.admin import KeyService
    from chalicelib.security.gate import Gate
    from chalicelib.security.keys import Actor, Principal, Scope
    from chalicelib.service import JobService
    from chalicelib.store import Store
    from chalicelib.tasks import TaskRegistry

app = Chalice(app_name="nexus-scheduler")
# The WebSocket API of real-time updates (docs/realtime.md): `chalice deploy` and
# `chalice package` make it only with this flag.
app.experimental_feature_flags.update(["WEBSOCKETS"])
setup_logging()  # JSON lines on the "nexus" loggers; NEXUS_LOG_LEVEL, default INFO
log = logging.getLogger("nexus.api")

# Callers may send JSON without a JSON content type (curl -d does): the body is read as
# JSON whatever the header says, for these types. `body()` refuses any other with a 415 in
# the API's error shape; the routes accept every type (ANY_TYPE) so that Chalice does not
# answer the 415 first in its own shape ({"Code": "UnsupportedMediaType", ...}).
CONTENT_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded")
ANY_TYPE = ["*/*"]
MAX_JSON_DEPTH = 32


def now() -> datetime:
    return datetime.now(UTC)


@functools.lru_cache(maxsize=1)
def store() -> Store:
    from chalicelib.store import Store

    return Store.over(client("dynamodb"), get_settings().table_name)


@functools.lru_cache(maxsize=1)
def work_queue() -> WorkQueue:
    from chalicelib.engine.queue import WorkQueue

    return WorkQueue(client("sqs"), get_settings().queue_url)


@functools.lru_cache(maxsize=1)
def dispatcher() -> Dispatcher:
    from chalicelib.engine import backfill
    from chalicelib.engine.tick import ALIGN_FOR, Dispatcher

    retention = timedelta(days=get_settings().history_days)
    return Dispatcher(
        store(),
        work_queue(),
        retention=retention,
        align_for=ALIGN_FOR,
        on_due={backfill.DUE_PREFIX: backfills().on_due},
    )


class OnFirstUse:
    """What `make()` returns, made on the first attribute lookup (or `in`) and then the same:
    the jobs service holds the dispatcher and the task registry this way, so that a request
    that neither dispatches nor names a task (a read of the jobs) does not import the tick,
    the schedule modules and every task."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make

    def __getattr__(self, name: str) -> Any:
        return getattr(self._make(), name)

    def __contains__(self, item: object) -> bool:
        return item in self._make()


def task_registry() -> TaskRegistry:
    from chalicelib.tasks import registry

    return registry


@functools.lru_cache(maxsize=1)
def jobs() -> JobService:
    from chalicelib import service

    return service.JobService(
        store(),
        cast("TaskRegistry", OnFirstUse(task_registry)),
        cast("Dispatcher", OnFirstUse(dispatcher)),
        work_queue(),
        client("sqs"),
    )


@functools.lru_cache(maxsize=1)
def gate() -> Gate:
    from chalicelib.security.gate import Gate

    return Gate(store())


@functools.lru_cache(maxsize=1)
def keys() -> KeyService:
    from chalicelib.security.admin import KeyService

    return KeyService(store())


@functools.lru_cache(maxsize=1)
def fanout() -> Fanout:
    from chalicelib.realtime.fanout import Fanout, Sender

    return Fanout(store().connections, Sender(connections_client), jobs().overview)


@functools.lru_cache(maxsize=1)
def sockets() -> Sockets:
    from chalicelib.realtime.fanout import Sender
    from chalicelib.realtime.socket import Sockets

    return Sockets(store(), gate(), Sender(connections_client))


@functools.lru_cache(maxsize=1)
def backfills() -> Backfills:
    """Backfills: the API's requests, the `backfill` control handler and the tick's hook."""
    from chalicelib.engine.backfill import Backfills

    settings = get_settings()
    retention = timedelta(days=settings.history_days)
    return Backfills(store(), work_queue(), retention=retention, rate=settings.backfill_rate)


@functools.lru_cache(maxsize=1)
def watcher() -> Watch:
    """The dead-man's switch: the `watch` control handler and the tick's hook."""
    from chalicelib.engine.watch import Watch

    return Watch(store(), work_queue())


@functools.lru_cache(maxsize=1)
def controls() -> Controls:
    """The handlers of the work queue's control messages (engine.control)."""
    from chalicelib.engine import backfill, watch
    from chalicelib.engine.control import Controls
    from chalicelib.engine.pauses import RESUME, PauseEnds

    handlers = Controls()
    handlers.register(RESUME, PauseEnds(store(), dispatcher().dispatch_job).handle)
    handlers.register(backfill.CONTROL, backfills().handle)
    handlers.register(watch.CONTROL, watcher().handle)
    return handlers


@functools.lru_cache(maxsize=1)
def worker_engine() -> Worker:
    from chalicelib.engine.worker import Worker
    from chalicelib.tasks import registry

    retention = timedelta(days=get_settings().history_days)
    return Worker(
        store(),
        work_queue(),
        registry,
        retention=retention,
        controls=controls(),
    )


# -- one place where domain errors become HTTP --------------------------------------------


def _json(status: int, body: Any) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


class UnsupportedMediaType(NexusError):
    def __init__(self, content_type: str) -> None:
        super().__init__(f"Content-Type {content_type} is not supported; send application/json")


def _error_response(exc: Exception) -> Response:
    from botocore.exceptions import BotoCoreError

    from chalicelib.security.gate import AuthUnavailable, RateLimited
    from chalicelib.security.keys import Forbidden, NotAuthenticated
    from chalicelib.store.items import is_retryable
    from chalicelib.store.keys import KeyNotFound

    if isinstance(exc, UnsupportedMediaType):
        return _json(415, {"detail": str(exc)})
    if isinstance(exc, NotAuthenticated):
        response = _json(401, {"detail": str(exc)})
        response.headers["WWW-Authenticate"] = 'Bearer realm="nexus", error="invalid_token"'
        return response
    if isinstance(exc, Forbidden):
        return _json(403, {"detail": str(exc)})
    if isinstance(exc, RateLimited):
        response = _json(429, {"detail": str(exc)})
        response.headers.update(exc.verdict.headers())
        response.headers["Retry-After"] = str(exc.verdict.reset_seconds)
        return response
    if isinstance(exc, KeyNotFound):
        return _json(404, {"detail": str(exc)})
    if isinstance(exc, InvalidInput):
        return _json(422, {"detail": [e.as_dict() for e in exc.errors]})
    if isinstance(exc, JobNotFound):
        return _json(404, {"detail": "Job not found"})
    if isinstance(exc, ExecutionNotFound):
        return _json(404, {"detail": "Execution not found"})
    if isinstance(exc, RunAlreadyFinal):
        return _json(409, {"detail": str(exc)})
    if isinstance(exc, BadRequest):
        return _json(400, {"detail": str(exc)})
    if isinstance(exc, PayloadTooLarge):
        return _json(413, {"detail": str(exc)})
    if isinstance(exc, ConcurrentUpdate):
        return _json(409, {"detail": str(exc)})
    if (
        isinstance(exc, (Unavailable, AuthUnavailable))
        or is_retryable(exc)
        or isinstance(exc, BotoCoreError)
    ):
        # AWS said "not now" (throttling, a conflict) or did not answer in time: nothing was
        # acknowledged, and the same request may simply be sent again.
        detail = (
            str(exc)
            if isinstance(exc, Unavailable)
            else (
                f"the scheduler's storage is busy or did not answer ({type(exc).__name__}); "
                "retry shortly"
            )
        )
        response = _json(503, {"detail": detail})
        response.headers["Retry-After"] = "1"
        return response
    log.exception("unhandled error", exc_info=exc)
    return _json(500, {"detail": "Internal server error"})


@app.authorizer(ttl_seconds=AUTHORIZER_TTL)
def api_key(auth_request: AuthRequest) -> AuthResponse:
    """Who the bearer token is: never a refusal here (security.gate), so that every refusal
    is the app's own 401 in the API's error shape."""
    context = gate().authorize(auth_request.token, now())
    return AuthResponse(
        routes=["*"], principal_id=context.get("key_id", "anonymous"), context=context
    )


def api(
    scope: Scope | None, bucket: str = "api"
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """A route's view: the key's scope and rate limit checked first (`scope` None: an open
    route), then the view, its domain errors made HTTP, the rate headers on the answer."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            headers: dict[str, str] = {}
            try:
                if scope is not None:
                    context = dict(request().context.get("authorizer") or {})
                    who, counted = gate().admit(context, scope, now(), bucket)
                    _principal.set(who)
                    if counted is not None:
                        headers = counted.headers()
                result = view(*args, **kwargs)
            except Exception as exc:
                result = _error_response(exc)
            finally:
                _principal.set(None)
            response = result if isinstance(result, Response) else _json(200, result)
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            _allow_origin(response)
            return response

        # The scope this route checks, for the OpenAPI document (chalicelib.api.openapi).
        wrapper.nexus_scope = scope  # type: ignore[attr-defined]
        return wrapper

    return decorate


# Headers a browser script may read on a cross-origin answer (CORS hides all but a few).
EXPOSED_HEADERS = (
    "X-Next-Cursor, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset"
)


def cors_origins() -> set[str]:
    """NEXUS_CORS_ORIGINS, read on every request: comma-separated origins, default none."""
    raw = os.environ.get("NEXUS_CORS_ORIGINS", "")
    return {origin.strip() for origin in raw.split(",") if origin.strip()}


def _allow_origin(response: Response) -> None:
    """CORS for the listed origins only, never `*`: the API is called with a key, and a page
    on any other origin must not read its answers."""
    allowed = cors_origins()
    if not allowed:
        return
    # The answer depends on Origin whenever a list is set, so a cache must key on it even
    # when this origin gets no CORS header.
    vary = response.headers.get("Vary")
    response.headers["Vary"] = f"{vary}, Origin" if isinstance(vary, str) and vary else "Origin"
    origin = request().headers.get("origin")
    if origin in allowed:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS


_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def actor() -> Actor:
    """The key making this request, for the audit trail."""
    from chalicelib.security.keys import Actor

    who = _principal.get()
    assert who is not None, "only called inside a route that checked a key"
    identity = request().context.get("identity") or {}
    return Actor(who.key_id, who.key_name, identity.get("sourceIp"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def request() -> Request:
    current = app.current_request
    assert current is not None, "only called while a request is handled"
    return current


def body(optional: bool = False) -> Any:
    """The request's JSON body, within the size cap, or a 400/413 that says why not."""
    raw = request().raw_body or b""
    # No header reads as JSON, as Chalice does; an empty body has nothing to misread.
    content_type = request().headers.get("content-type", "application/json")
    if raw and content_type.split(";")[0].strip().lower() not in CONTENT_TYPES:
        raise UnsupportedMediaType(content_type.split(";")[0].strip()[:100])
    limit = get_settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit} bytes")
    if not raw:
        if optional:
            return None  # no body at all: the request's defaults
        raise BadRequest("request body is empty; send a JSON object")
    if not raw.strip():
        raise BadRequest(
            "request body is only whitespace, which is not JSON; send a JSON object"
            + (", or no body at all" if optional else "")
        )
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(value, dict):
        raise InvalidInput([FieldError(("body",), "must be a JSON object", "type_error.dict")])
    return value


def _page(items: list[Any], cursor: str | None) -> Response:
    """A list's page: the body stays a plain JSON array (the contract's shape); where the
    next page starts travels in a header."""
    response = _json(200, items)
    if cursor:
        response.headers["X-Next-Cursor"] = cursor
    return response


def query() -> dict[str, str]:
    return dict(request().query_params or {})


# Job ids are stored as 12-digit keys; none has more than this many digits.
MAX_JOB_ID_DIGITS = 18


def job_id_from(raw: str) -> int:
    # ASCII digits only: str.isdigit() also takes "²" and other digits int() refuses.
    if not (raw.isascii() and raw.isdigit()) or not raw.lstrip("0"):
        raise InvalidInput(
            [
                FieldError(
                    ("path", "job_id"), "job_id must be a positive integer", "type_error.integer"
                )
            ]
        )
    digits = raw.lstrip("0")
    if len(digits) > MAX_JOB_ID_DIGITS:
        # A positive integer no job can have: to a client it is a job that does not exist.
        raise JobNotFound(0)
    return int(digits)


# -- jobs -----------------------------------------------------------------------------------


@app.route("/v1/jobs", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:write")
def create_job() -> Response:
    job = jobs().create_job(body(), now(), actor())
    # What the schedule lint finds (DST days, missing days, ...): never an error.
    return _json(201, {**job.to_api(now()), "warnings": jobs().job_warnings(job, now())})


@app.route("/v1/jobs", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def list_jobs() -> Response:
    found, cursor = jobs().list_jobs(query())
    return _page([job.to_api(now()) for job in found], cursor)


@app.route("/v1/jobs/stats/overview", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def stats_overview() -> Any:
    return jobs().overview(now())


@app.route("/v1/jobs/{job_id}", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def get_job(job_id: str) -> Any:
    return jobs().get_job(job_id_from(job_id), now()).to_api(now())


@app.route("/v1/jobs/{job_id}", methods=["PUT"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:write")
def update_job(job_id: str) -> Any:
    ident = job_id_from(job_id)
    job = jobs().update_job(ident, body(), now(), actor())
    return {**job.to_api(now()), "warnings": jobs().job_warnings(job, now())}


@app.route("/v1/jobs/{job_id}", methods=["DELETE"], authorizer=api_key)
@api("jobs:write")
def delete_job(job_id: str) -> Response:
    jobs().delete_job(job_id_from(job_id), now(), actor())
    return Response(body="", status_code=204)


@app.route(
    "/v1/jobs/{job_id}/execute", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key
)
@api("jobs:execute", bucket="execute")
def execute_job(job_id: str) -> Any:
    ident = job_id_from(job_id)
    execution = jobs().execute_job(ident, body(optional=True), now(), actor())
    return {
        "message": "Job execution started",
        "task_id": execution.task_id,
        "execution_id": execution.id,
    }


@app.route("/v1/jobs/{job_id}/pause", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:write")
def pause_job(job_id: str) -> Any:
    job = jobs().pause_job(job_id_from(job_id), now(), actor(), body(optional=True))
    shown = job.to_api(now())
    # A bare pause answers exactly as the contract says; a pause with a note or an end shows them.
    extra = {k: shown[k] for k in ("paused_note", "paused_until") if shown[k] is not None}
    return {"message": "Job paused", **extra}


@app.route("/v1/jobs/{job_id}/resume", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:write")
def resume_job(job_id: str) -> Any:
    job = jobs().resume_job(job_id_from(job_id), now(), actor())
    return {"message": "Job resumed", "next_run_at": job.to_api(now())["next_run_at"]}


@app.route(
    "/v1/executions/{execution_id}/cancel",
    methods=["POST"],
    content_types=ANY_TYPE,
    authorizer=api_key,
)
@api("jobs:execute", bucket="execute")
def cancel_execution(execution_id: str) -> Any:
    cancelled = jobs().cancel_execution(execution_id, body(optional=True), now(), actor())
    return cancelled.to_api()


@app.route("/v1/jobs/{job_id}/executions", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def job_executions(job_id: str) -> Any:
    ident = job_id_from(job_id)
    found, cursor = jobs().list_executions(ident, query())
    return _page([e.to_api() for e in found], cursor)


@app.route(
    "/v1/jobs/{job_id}/backfill", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key
)
@api("jobs:execute", bucket="execute")
def backfill_job(job_id: str) -> Any:
    ident = job_id_from(job_id)
    status, answer = backfills().request(ident, body(), now(), actor())
    return _json(status, answer)


@app.route("/v1/backfills/{backfill_id}", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def get_backfill(backfill_id: str) -> Any:
    found = backfills().get(backfill_id)
    if found is None:
        return _json(404, {"detail": "Backfill not found"})
    return found


# -- schedules ----------------------------------------------------------------------------


@app.route("/v1/cron/validate", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:read")
def validate_cron() -> Any:
    from chalicelib import service

    return service.validate_cron(body(), now())


@app.route("/v1/cron/presets", methods=["GET"])
@api(None)
def cron_presets() -> Any:
    from chalicelib import service

    return service.cron_presets()


@app.route("/v1/schedules/preview", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:read")
def preview_schedule() -> Any:
    return jobs().preview(body(), now())


# -- holiday calendars (chalicelib.calendars_api) ---------------------------------------------


def calendars() -> CalendarService:
    from chalicelib.calendars_api import CalendarService

    return CalendarService(store())


def _calendar_or_404(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except CalendarNotFound:
        return _json(404, {"detail": "Calendar not found"})


@app.route("/v1/calendars", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:write")
def create_calendar() -> Response:
    return _json(201, calendars().create(body(), now(), actor()).to_api())


@app.route("/v1/calendars", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def list_calendars() -> Any:
    return [found.to_api() for found in calendars().list_calendars()]


@app.route("/v1/calendars/{name}", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def get_calendar(name: str) -> Any:
    return _calendar_or_404(lambda: calendars().get(name).to_api())


@app.route("/v1/calendars/{name}", methods=["PUT"], content_types=ANY_TYPE, authorizer=api_key)
@api("jobs:write")
def update_calendar(name: str) -> Any:
    return _calendar_or_404(lambda: calendars().update(name, body(), now(), actor()).to_api())


@app.route("/v1/calendars/{name}", methods=["DELETE"], authorizer=api_key)
@api("jobs:write")
def delete_calendar(name: str) -> Any:
    def delete() -> Response:
        calendars().delete(name, now(), actor())
        return Response(body="", status_code=204)

    return _calendar_or_404(delete)


# -- keys and the audit trail ----------------------------------------------------------------

NO_STORE = {"Cache-Control": "no-store"}


@app.route("/v1/keys", methods=["POST"], content_types=ANY_TYPE, authorizer=api_key)
@api("keys:admin")
def create_key() -> Response:
    from chalicelib import service
    from chalicelib.security.keys import KeyCreate

    made = keys().create_key(service.parse_model(KeyCreate, body(), ("body",)), actor(), now())
    response = _json(201, made)
    response.headers.update(NO_STORE)
    return response


@app.route("/v1/keys", methods=["GET"], authorizer=api_key)
@api("keys:admin")
def list_keys() -> Response:
    response = _json(200, [key.to_api() for key in keys().list_keys()])
    response.headers.update(NO_STORE)
    return response


@app.route("/v1/keys/{key_id}", methods=["DELETE"], authorizer=api_key)
@api("keys:admin")
def revoke_key(key_id: str) -> Response:
    from chalicelib.store.keys import KeyNotFound

    if not key_id.isalnum() or len(key_id) > 40:
        raise KeyNotFound(key_id[:40])
    keys().revoke_key(key_id, actor(), now())
    return Response(body="", status_code=204, headers=dict(NO_STORE))


def _audit_page(entries: list[Any], cursor: str | None) -> Response:
    return _page([e.to_api() for e in entries], cursor)


@app.route("/v1/jobs/{job_id}/audit", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def job_audit(job_id: str) -> Response:
    from chalicelib import service
    from chalicelib.security.admin import AuditQuery

    ident = job_id_from(job_id)
    q = service.parse_model(AuditQuery, query(), ("query",))
    jobs().get_job(ident)  # 404 for an unknown job
    return _audit_page(*store().audit.for_job(ident, limit=q.limit, cursor=q.cursor))


@app.route("/v1/audit", methods=["GET"], authorizer=api_key)
@api("keys:admin")
def audit_trail() -> Response:
    from chalicelib import service
    from chalicelib.security.admin import AuditQuery

    q = service.parse_model(AuditQuery, query(), ("query",))
    return _audit_page(*store().audit.all(limit=q.limit, cursor=q.cursor))


# -- the API's own description (open: no key; no job data) --------------------------------


@functools.lru_cache(maxsize=1)
def openapi_text() -> str:
    """Made at the first request, from the route table and the models (chalicelib.api)."""
    from chalicelib.api import openapi

    return json.dumps(openapi.build(app.routes), separators=(",", ":"))


@app.route("/v1/realtime", methods=["GET"], authorizer=api_key)
@api("jobs:read")
def realtime() -> Any:
    """Where the WebSocket API of real-time updates is (docs/realtime.md)."""
    from chalicelib.realtime.where import realtime_url

    return {"url": realtime_url()}


@app.route("/v1/openapi.json", methods=["GET"])
@api(None)
def openapi_document() -> Response:
    return Response(
        body=openapi_text(),
        status_code=200,
        headers={"Content-Type": "application/json", "Cache-Control": "no-cache"},
    )


@app.route("/v1/docs", methods=["GET"])
@api(None)
def docs_page() -> Response:
    from chalicelib.api import docs

    return Response(body=docs.PAGE, status_code=200, headers=dict(docs.PAGE_HEADERS))


@app.route("/v1/docs/{asset}", methods=["GET"])
@api(None)
def docs_asset(asset: str) -> Response:
    from chalicelib.api import docs

    found = docs.ASSETS.get(asset)
    if found is None:
        return _json(
            404,
            {
                "detail": f"no such file; the documentation's files: "
                f"{', '.join(sorted(docs.ASSETS))}"
            },
        )
    headers: dict[str, str | list[str]] = {
        "Content-Type": found.content_type,
        "Cache-Control": docs.ASSET_CACHE,
    }
    return Response(body=docs.read(asset), status_code=200, headers=headers)


@app.route("/ui", methods=["GET"])
@api(None)
def ui_page() -> Response:
    """The dashboard (chalicelib/api/ui.py): open, like the docs; its calls carry a key."""
    from chalicelib.api import ui

    return Response(body=ui.page(), status_code=200, headers=dict(ui.PAGE_HEADERS))


@app.route("/ui/{asset}", methods=["GET"])
@api(None)
def ui_asset(asset: str) -> Response:
    from chalicelib.api import ui

    found = ui.ASSETS.get(asset)
    if found is None:
        return _json(
            404, {"detail": f"no such file; the dashboard's files: {', '.join(sorted(ui.ASSETS))}"}
        )
    headers: dict[str, str | list[str]] = {
        "Content-Type": found.content_type,
        "Cache-Control": ui.ASSET_CACHE,
    }
    return Response(body=ui.read(asset), status_code=200, headers=headers)


# -- the engine ---------------------------------------------------------------------------


@app.schedule(Rate(1, unit=Rate.MINUTES))
def tick(event: Any) -> dict[str, Any]:
    """Every minute: send the runs due in the coming minute and any overdue, and sweep.

    A job that fails is logged, counted (`TickJobErrors`) and skipped, and the tick goes on:
    the invocation does not fail for it, so Lambda's async retries do not repeat the tick.
    """
    report = dispatcher().tick(now())
    log.info("tick", extra={"tick": report.as_dict()})
    return report.as_dict()


@app.on_sqs_message(queue=queue_name(), batch_size=10)
def worker(event: SQSEvent) -> None:
    """Run a batch of runs at once, each on its own second (engine.batch)."""
    from chalicelib.engine.batch import Record, handle_batch

    context = getattr(event, "context", None)
    remaining = (
        (lambda: context.get_remaining_time_in_millis() / 1000.0)
        if context is not None and hasattr(context, "get_remaining_time_in_millis")
        else None
    )
    handle_batch(
        [Record(r.body, r.receipt_handle) for r in event],
        worker_engine(),
        work_queue(),
        client("sqs"),
        get_settings().queue_url,
        remaining,
    )


@app.on_sqs_message(queue=dlq_name(), batch_size=10)
def dead_letter(event: SQSEvent) -> None:
    """Runs the work queue gave up on: their attempts end failed (lifecycle D)."""
    engine = worker_engine()
    for record in event:
        engine.dead_letter(record.body)


# -- real-time updates (docs/realtime.md) --------------------------------------------------


@app.on_ws_connect()
def websocket_connect(event: WebsocketEvent) -> dict[str, Any]:
    """A client connects with an API key having jobs:read; anything else is refused."""
    return sockets().connect(event.to_dict(), now())


@app.on_ws_message()
def websocket_message(event: WebsocketEvent) -> dict[str, Any]:
    """subscribe / unsubscribe / ping."""
    return sockets().message(event.to_dict(), now())


@app.on_ws_disconnect()
def websocket_disconnect(event: WebsocketEvent) -> dict[str, Any]:
    return sockets().disconnect(event.to_dict(), now())


@app.on_dynamodb_record(stream_arn=stream_arn(), batch_size=100, starting_position="LATEST")
def table_changes(event: DynamoDBEvent) -> dict[str, int]:
    """The table's changes: as events, to the connections that subscribed to them, and,
    beside that (so that the events do not wait for it), the runs they finish counted in the
    stats. If the count fails, the handler does: Lambda gives the batch again, which counts
    once (store.counters) and may send its events twice (each carries its id)."""
    from concurrent.futures import ThreadPoolExecutor

    records = event.to_dict().get("Records", [])
    with ThreadPoolExecutor(max_workers=1) as pool:
        counting = pool.submit(store().counters.count_changes, records)
        sent = fanout().handle(records, now()).as_dict()
        return {**sent, "runs_counted": counting.result()}
