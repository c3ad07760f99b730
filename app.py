"""NEXUS Scheduler: the Chalice wiring. Routes only; the work is in chalicelib.

Routes are defined under `/v1` and API Gateway serves them on the stage `api`, so the public
base URL is `.../api/v1`. Locally, `local/server.py` serves this same app at the same path.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError
from chalice.app import Chalice, Rate, Request, Response, SQSEvent

from chalicelib import service
from chalicelib.aws import client
from chalicelib.config import dlq_name, get_settings, queue_name
from chalicelib.engine.batch import COALESCE_SECONDS, Record, handle_batch
from chalicelib.engine.queue import WorkQueue
from chalicelib.engine.tick import Dispatcher
from chalicelib.engine.worker import Worker
from chalicelib.errors import (
    BadRequest,
    ConcurrentUpdate,
    FieldError,
    InvalidInput,
    JobNotFound,
    NexusError,
    PayloadTooLarge,
    Unavailable,
)
from chalicelib.observability import setup_logging
from chalicelib.store import Store
from chalicelib.store.items import is_retryable
from chalicelib.tasks import registry

app = Chalice(app_name="nexus-scheduler")
setup_logging()  # JSON lines on the "nexus" loggers; NEXUS_LOG_LEVEL, default INFO
log = logging.getLogger("nexus.api")

# Callers may send JSON without a JSON content type (curl -d does): the body is read as
# JSON whatever the header says.
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]
MAX_JSON_DEPTH = 32


def now() -> datetime:
    return datetime.now(UTC)


@functools.lru_cache(maxsize=1)
def store() -> Store:
    return Store.over(client("dynamodb"), get_settings().table_name)


@functools.lru_cache(maxsize=1)
def work_queue() -> WorkQueue:
    return WorkQueue(client("sqs"), get_settings().queue_url)


@functools.lru_cache(maxsize=1)
def dispatcher() -> Dispatcher:
    retention = timedelta(days=get_settings().history_days)
    return Dispatcher(store(), work_queue(), retention=retention)


@functools.lru_cache(maxsize=1)
def jobs() -> service.JobService:
    return service.JobService(store(), registry, dispatcher(), work_queue(), client("sqs"))


@functools.lru_cache(maxsize=1)
def worker_engine() -> Worker:
    retention = timedelta(days=get_settings().history_days)
    return Worker(store(), work_queue(), registry, retention=retention, linger=COALESCE_SECONDS)


# -- one place where domain errors become HTTP --------------------------------------------


def _json(status: int, body: Any) -> Response:
    return Response(
        body=json.dumps(body, separators=(",", ":")),
        status_code=status,
        headers={"Content-Type": "application/json"},
    )


def _error_response(exc: Exception) -> Response:
    if isinstance(exc, InvalidInput):
        return _json(422, {"detail": [e.as_dict() for e in exc.errors]})
    if isinstance(exc, JobNotFound):
        return _json(404, {"detail": "Job not found"})
    if isinstance(exc, BadRequest):
        return _json(400, {"detail": str(exc)})
    if isinstance(exc, PayloadTooLarge):
        return _json(413, {"detail": str(exc)})
    if isinstance(exc, ConcurrentUpdate):
        return _json(409, {"detail": str(exc)})
    if isinstance(exc, Unavailable) or is_retryable(exc) or isinstance(exc, BotoCoreError):
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


def api(view: Callable[..., Any]) -> Callable[..., Response]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            result = view(*args, **kwargs)
        except NexusError as exc:
            return _error_response(exc)
        except Exception as exc:
            return _error_response(exc)
        if isinstance(result, Response):
            return result
        return _json(200, result)

    return wrapper


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
    limit = get_settings().max_body_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {limit} bytes")
    if not raw.strip():
        if optional:
            return None
        raise BadRequest("request body is empty; send a JSON object")
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(value, dict):
        raise InvalidInput([FieldError(("body",), "must be a JSON object", "type_error.dict")])
    return value


def query() -> dict[str, str]:
    return dict(request().query_params or {})


def job_id_from(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 18 or int(raw) < 1:
        raise InvalidInput(
            [
                FieldError(
                    ("path", "job_id"), "job_id must be a positive integer", "type_error.integer"
                )
            ]
        )
    return int(raw)


# -- jobs -----------------------------------------------------------------------------------


@app.route("/v1/jobs", methods=["POST"], content_types=CONTENT_TYPES)
@api
def create_job() -> Response:
    job = jobs().create_job(body(), now())
    return _json(201, job.to_api())


@app.route("/v1/jobs", methods=["GET"])
@api
def list_jobs() -> Any:
    return [job.to_api() for job in jobs().list_jobs(query())]


@app.route("/v1/jobs/stats/overview", methods=["GET"])
@api
def stats_overview() -> Any:
    return jobs().overview(now())


@app.route("/v1/jobs/{job_id}", methods=["GET"])
@api
def get_job(job_id: str) -> Any:
    return jobs().get_job(job_id_from(job_id)).to_api()


@app.route("/v1/jobs/{job_id}", methods=["PUT"], content_types=CONTENT_TYPES)
@api
def update_job(job_id: str) -> Any:
    ident = job_id_from(job_id)
    return jobs().update_job(ident, body(), now()).to_api()


@app.route("/v1/jobs/{job_id}", methods=["DELETE"])
@api
def delete_job(job_id: str) -> Response:
    jobs().delete_job(job_id_from(job_id), now())
    return Response(body="", status_code=204)


@app.route("/v1/jobs/{job_id}/execute", methods=["POST"], content_types=CONTENT_TYPES)
@api
def execute_job(job_id: str) -> Any:
    ident = job_id_from(job_id)
    execution = jobs().execute_job(ident, body(optional=True), now())
    return {
        "message": "Job execution started",
        "task_id": execution.task_id,
        "execution_id": execution.id,
    }


@app.route("/v1/jobs/{job_id}/pause", methods=["POST"], content_types=CONTENT_TYPES)
@api
def pause_job(job_id: str) -> Any:
    jobs().pause_job(job_id_from(job_id), now())
    return {"message": "Job paused"}


@app.route("/v1/jobs/{job_id}/resume", methods=["POST"], content_types=CONTENT_TYPES)
@api
def resume_job(job_id: str) -> Any:
    job = jobs().resume_job(job_id_from(job_id), now())
    return {"message": "Job resumed", "next_run_at": job.to_api()["next_run_at"]}


@app.route("/v1/jobs/{job_id}/executions", methods=["GET"])
@api
def job_executions(job_id: str) -> Any:
    ident = job_id_from(job_id)
    return [e.to_api() for e in jobs().list_executions(ident, query())]


# -- schedules ----------------------------------------------------------------------------


@app.route("/v1/cron/validate", methods=["POST"], content_types=CONTENT_TYPES)
@api
def validate_cron() -> Any:
    return service.validate_cron(body(), now())


@app.route("/v1/cron/presets", methods=["GET"])
@api
def cron_presets() -> Any:
    return service.cron_presets()


@app.route("/v1/schedules/preview", methods=["POST"], content_types=CONTENT_TYPES)
@api
def preview_schedule() -> Any:
    return service.preview(body(), now())


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
    context = getattr(event, "context", None)
    remaining = (
        (lambda: context.get_remaining_time_in_millis() / 1000.0)
        if context is not None and hasattr(context, "get_remaining_time_in_millis")
        else None
    )
    try:
        handle_batch(
            [Record(r.body, r.receipt_handle) for r in event],
            worker_engine(),
            work_queue(),
            client("sqs"),
            get_settings().queue_url,
            remaining,
        )
    finally:
        worker_engine().flush()


@app.on_sqs_message(queue=dlq_name(), batch_size=10)
def dead_letter(event: SQSEvent) -> None:
    """Runs the work queue gave up on: their attempts end failed (lifecycle D)."""
    engine = worker_engine()
    for record in event:
        engine.dead_letter(record.body)
