"""Built-in tasks: enough to try every feature of the scheduler without writing code."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from chalicelib.errors import FieldError
from chalicelib.security import outbound
from chalicelib.tasks.registry import RunContext, TaskCancelled, task

HTTP_BODY_CAP = 4096


@task("nexus.echo")
def echo(ctx: RunContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Return the arguments it was called with."""
    return {"args": list(args), "kwargs": kwargs}


# The worker Lambda stops at 900 s; the task must end in time for the run to be recorded.
MAX_SLEEP = 840


@task("nexus.sleep", timeout=MAX_SLEEP + 5)
def sleep(ctx: RunContext, seconds: float = 1.0, **_: Any) -> dict[str, Any]:
    """Sleep for `seconds`, then return."""
    seconds = float(seconds)
    if not 0 <= seconds <= MAX_SLEEP:
        raise ValueError(f"seconds must be between 0 and {MAX_SLEEP}")
    ctx.sleep(seconds)
    return {"slept": seconds}


class TaskFailed(RuntimeError):
    pass


@task("nexus.fail")
def fail(ctx: RunContext, message: str = "nexus.fail always fails", **_: Any) -> None:
    """Always raise: for trying retries and dead-lettering."""
    raise TaskFailed(message)


# The task's registered timeout; its `timeout` argument (the whole request's) is capped at it.
HTTP_TIMEOUT = 60
# How often a request in flight looks at `ctx.cancelled`: a cancel ends the run within this.
CANCEL_POLL_SECONDS = 0.1


def _unless_cancelled[T](ctx: RunContext, call: Callable[[], T], what: str) -> T:
    """`call()` in a helper thread, or TaskCancelled as soon as the run is cancelled.

    A blocking socket read cannot be interrupted from another thread; the helper is left to
    end by its own deadline (the request's `timeout`), its answer unread. It is a daemon,
    so it never holds the process up."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the task's thread, which raises it
            outcome.append((False, exc))

    helper = threading.Thread(target=target, name="nexus-task-io", daemon=True)
    helper.start()
    while True:
        helper.join(CANCEL_POLL_SECONDS)
        if outcome:
            ok, value = outcome[0]
            if ok:
                return value  # type: ignore[no-any-return]
            raise value
        if ctx.cancelled.is_set():
            raise TaskCancelled(f"the run was cancelled while {what} was in flight")


def _check_http_request(args: list[Any], kwargs: dict[str, Any]) -> list[FieldError]:
    """At job creation: the URL's form and any address literal in it (no DNS: a name may
    resolve differently when the job runs, and the guard checks it again then)."""
    loc: tuple[str | int, ...]
    if "url" in kwargs:
        url, loc = kwargs["url"], ("task_kwargs", "url")
    elif args:
        url, loc = args[0], ("task_args", 0)
    else:
        return [FieldError(("task_kwargs", "url"), "field required", "value_error.missing")]
    if not isinstance(url, str):
        return []  # a secret reference ({"$secret": ...}): the guard checks what it names
    problem = outbound.literal_problem(url)
    return [] if problem is None else [FieldError(loc, problem, "value_error.url")]


@task("nexus.http_request", timeout=HTTP_TIMEOUT, validate=_check_http_request)
def http_request(
    ctx: RunContext,
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 10.0,
    **_: Any,
) -> dict[str, Any]:
    """Call `url`; a 2xx status is success. The result holds the status and a capped body.

    The request goes through the outbound guard (chalicelib.security.outbound): the URL and
    each redirect (at most 5) must reach a public address unless NEXUS_HTTP_ALLOW names it,
    or the run fails with ForbiddenDestination. `timeout` bounds the whole request.

    The request runs in a helper thread while the task watches `ctx.cancelled`: a run
    cancelled (through the API, by a newer run under `replace`, or by its timeout) stops
    within CANCEL_POLL_SECONDS with TaskCancelled, however long the server takes to answer.
    """
    seconds = float(timeout)
    if not seconds > 0:  # (NaN too)
        raise ValueError("timeout must be a positive number of seconds")
    data = None if json_body is None else json.dumps(json_body).encode()
    sent = dict(headers or {})
    if data is not None and not any(k.lower() == "content-type" for k in sent):
        sent["Content-Type"] = "application/json"
    if not any(k.lower() == "user-agent" for k in sent):
        sent["User-Agent"] = "nexus-scheduler"
    response = _unless_cancelled(
        ctx,
        lambda: outbound.fetch(
            url,
            method=method,
            headers=sent,
            body=data,
            timeout=min(seconds, HTTP_TIMEOUT),
            body_cap=HTTP_BODY_CAP,
        ),
        f"its {method.upper()} request",
    )
    if not 200 <= response.status < 300:
        raise TaskFailed(f"{method.upper()} {response.url} answered {response.status}")
    return {
        "status": response.status,
        "body": response.body.decode("utf-8", errors="replace"),
        "truncated": response.truncated,
        "url": response.url,
    }


@task("tasks.generate_report")
def generate_report(
    ctx: RunContext, *args: Any, format: str = "pdf", **kwargs: Any
) -> dict[str, Any]:
    """The contract's example task: describe the report a run would produce."""
    return {
        "report": f"report-{ctx.job_id}-{ctx.scheduled_for:%Y%m%dT%H%M%SZ}.{format}",
        "format": format,
        "generated_at": datetime.now(UTC).isoformat(),
        "options": kwargs,
    }
