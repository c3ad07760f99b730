"""Built-in tasks: enough to try every feature of the scheduler without writing code."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from chalicelib.tasks.registry import RunContext, task

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


@task("nexus.http_request", timeout=60)
def http_request(
    ctx: RunContext,
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    timeout: float = 10.0,
    **_: Any,
) -> dict[str, Any]:
    """Call `url`; a 2xx status is success. The result holds the status and a capped body."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("url must start with http:// or https://")
    data = None if json_body is None else json.dumps(json_body).encode()
    request = urllib.request.Request(url, data=data, method=method.upper())
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=float(timeout)) as response:
            body = response.read(HTTP_BODY_CAP + 1)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise TaskFailed(f"{method.upper()} {url} answered {exc.code}") from exc
    text = body[:HTTP_BODY_CAP].decode("utf-8", errors="replace")
    return {"status": status, "body": text, "truncated": len(body) > HTTP_BODY_CAP}


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
