"""The `nexus` command: the NEXUS API from a shell (see nexus_client.config for where it finds
its server and key, and nexus_client.apply for jobs as code).

Exit codes tell failures apart: 0 success, 2 invalid input (the command line, or a 400/422
answer), 3 not found (404), 4 auth (401/403), 5 server or connection error, 1 anything else
(a 409 conflict such as cancelling a run that has ended, a wait that timed out).
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nexus_client import apply as jobs_as_code
from nexus_client.client import NexusClient
from nexus_client.config import ConfigError, resolve
from nexus_client.errors import (
    BadRequest,
    ConnectionFailed,
    Forbidden,
    NexusError,
    NotFound,
    ServerError,
    Unauthorized,
)
from nexus_client.models import (
    FINAL_STATUSES,
    Backfill,
    BackfillPlan,
    Calendar,
    Execution,
    Job,
    ScheduleWarning,
    WrittenJob,
)

EXIT_OTHER, EXIT_INVALID, EXIT_NOT_FOUND, EXIT_AUTH, EXIT_SERVER = 1, 2, 3, 4, 5

out = Console()
err = Console(stderr=True)


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, (BadRequest, ConfigError, jobs_as_code.ApplyError)):
        return EXIT_INVALID
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, (Unauthorized, Forbidden)):
        return EXIT_AUTH
    if isinstance(exc, (ServerError, ConnectionFailed)):
        return EXIT_SERVER
    return EXIT_OTHER


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", help="table for people, json for scripts")
]

app = typer.Typer(
    help="NEXUS Scheduler from the command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
jobs_app = typer.Typer(help="Create, list, change and run jobs.", no_args_is_help=True)
runs_app = typer.Typer(help="A job's runs.", no_args_is_help=True)
cron_app = typer.Typer(help="Cron expressions.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (an admin key's scope).", no_args_is_help=True)
backfills_app = typer.Typer(help="Backfills: a job's past occurrences run.", no_args_is_help=True)
calendars_app = typer.Typer(
    help="Holiday calendars (jobs name them in exclude_calendars / only_calendars).",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")
app.add_typer(runs_app, name="runs")
app.add_typer(backfills_app, name="backfills")
app.add_typer(calendars_app, name="calendars")
app.add_typer(cron_app, name="cron")
app.add_typer(keys_app, name="keys")


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option(help="API base URL, e.g. http://localhost:8000/api/v1")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="API key (prefer NEXUS_API_KEY or a profile)")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="a profile of the config file")] = None,
    timeout: Annotated[float | None, typer.Option(help="seconds per request")] = None,
) -> None:
    """Server and key: --url/--key, a --profile (NEXUS_PROFILE) of ~/.config/nexus/config.toml,
    or NEXUS_URL and NEXUS_API_KEY (or NEXUS_KEY)."""
    ctx.obj = {"url": url, "key": key, "profile": profile, "timeout": timeout}


def client(ctx: typer.Context) -> NexusClient:
    options = ctx.find_root().obj or {}
    settings = resolve(**options)
    return NexusClient(settings.url, settings.key, timeout=settings.timeout)


# -- output --------------------------------------------------------------------------------


def _dump(value: Any) -> Any:
    if isinstance(value, Job):
        # What the API sent: the server's model also holds its own bookkeeping (failure
        # streaks, leases, runs sent ahead), which the API never shows; its defaults are not
        # the job's values.
        return value.model_dump(mode="json", include=value.model_fields_set)
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _json(value: Any) -> None:
    if isinstance(value, list):
        value = [_dump(v) for v in value]
    elif isinstance(value, dict):
        value = {k: _dump(v) for k, v in value.items()}
    else:
        value = _dump(value)
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "-"


def _schedule(job: Job) -> str:
    return str(
        {
            "cron": job.cron_expression,
            "interval": f"every {job.interval_seconds}s",
            "date": job.scheduled_time,
            "calendar": job.calendar_rule,
        }[job.job_type]
    )


JOB_COLUMNS = ("id", "name", "type", "schedule", "timezone", "status", "next run", "tags")


def _job_row(job: Job) -> list[str]:
    return [
        str(job.id),
        job.name,
        job.job_type,
        _schedule(job),
        job.timezone,
        job.status,
        _when(job.next_run_at),
        ",".join(job.tags),
    ]


def _table(columns: tuple[str, ...], rows: list[list[str]], title: str | None = None) -> None:
    table = Table(*columns, title=title)
    for row in rows:
        table.add_row(*row)
    out.print(table)


def _show_job(job: Job, output: Output) -> None:
    """Every field (pause note and end, concurrency, calendars, blackouts included), then
    the schedule lint's warnings of a job just created or changed, on stderr."""
    if output is Output.json:
        _json(job)
        return
    table = Table("field", "value", title=f"job {job.id}")
    shown = _dump(job)
    shown.pop("warnings", None)  # on stderr, below
    for name, value in shown.items():
        table.add_row(name, value if isinstance(value, str) else json.dumps(value))
    out.print(table)
    if isinstance(job, WrittenJob):
        _warnings(job.warnings)


def _warnings(warnings: list[ScheduleWarning]) -> None:
    for warning in warnings:
        err.print(
            f"[yellow]warning:[/yellow] {escape(warning.message)} ({escape(warning.code)})",
            highlight=False,
            soft_wrap=True,
        )


RUN_COLUMNS = ("id", "scheduled for", "trigger", "attempt", "status", "started", "seconds", "error")


def _run_row(run: Execution) -> list[str]:
    error = run.error or {}
    message = error.get("type") or error.get("message") or run.reason or ""
    seconds = f"{run.duration_seconds:.2f}" if run.duration_seconds is not None else "-"
    return [
        run.id,
        _when(run.scheduled_for),
        run.trigger,
        str(run.attempt),
        run.status,
        _when(run.started_at),
        seconds,
        str(message),
    ]


def _parse_json(option: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=option) from None


def _read_fields(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--file") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold one job's fields", param_hint="--file")
    return data


def _fields(
    file: Path | None,
    name: str | None,
    cron: str | None,
    interval: int | None,
    at: str | None,
    calendar: str | None,
    task: str | None,
    tz: str | None,
    tags: list[str] | None,
    args: str | None,
    kwargs: str | None,
    description: str | None,
    priority: int | None,
    sets: list[str] | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = _read_fields(file) if file else {}
    schedules = {"cron": cron, "interval": interval, "date": at, "calendar": calendar}
    given = [kind for kind, value in schedules.items() if value is not None]
    if len(given) > 1:
        raise typer.BadParameter("give one of --cron, --interval, --at, --calendar")
    if given:
        kind = given[0]
        fields["job_type"] = kind
        field = {
            "cron": "cron_expression",
            "interval": "interval_seconds",
            "date": "scheduled_time",
            "calendar": "calendar_rule",
        }[kind]
        fields[field] = schedules[kind]
    simple = {
        "name": name,
        "task_name": task,
        "timezone": tz,
        "description": description,
        "priority": priority,
        "task_args": _parse_json("--args", args),
        "task_kwargs": _parse_json("--kwargs", kwargs),
        "tags": tags or None,
    }
    fields.update({k: v for k, v in simple.items() if v is not None})
    for item in sets or []:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            raise typer.BadParameter(f"'{item}' is not FIELD=VALUE", param_hint="--set")
        try:
            fields[field] = json.loads(raw)
        except ValueError:
            fields[field] = raw
    return fields


FileOpt = Annotated[Path | None, typer.Option("--file", "-f", help="a YAML/JSON file of fields")]
NameOpt = Annotated[str | None, typer.Option(help="job name")]
CronOpt = Annotated[str | None, typer.Option(help="cron expression (a cron job)")]
IntervalOpt = Annotated[int | None, typer.Option(help="seconds (an interval job)")]
AtOpt = Annotated[str | None, typer.Option(help="ISO date-time (a date job)")]
CalendarOpt = Annotated[str | None, typer.Option(help="RFC 5545 rule (a calendar job)")]
TaskOpt = Annotated[str | None, typer.Option(help="registered task name, e.g. nexus.echo")]
TzOpt = Annotated[str | None, typer.Option("--tz", help="IANA time zone")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeat for more)")]
ArgsOpt = Annotated[str | None, typer.Option("--args", help="task_args as JSON")]
KwargsOpt = Annotated[str | None, typer.Option("--kwargs", help="task_kwargs as JSON")]
DescOpt = Annotated[str | None, typer.Option(help="description")]
PriorityOpt = Annotated[int | None, typer.Option(help="0-10")]
SetOpt = Annotated[
    list[str] | None, typer.Option("--set", help="FIELD=VALUE, VALUE as JSON if it parses")
]


# -- jobs ----------------------------------------------------------------------------------


@jobs_app.command("list")
def jobs_list(
    ctx: typer.Context,
    active: Annotated[bool | None, typer.Option("--active/--paused", help="only these")] = None,
    job_type: Annotated[
        str | None, typer.Option("--type", help="cron, interval, date, calendar")
    ] = None,
    tag: TagOpt = None,
    limit: Annotated[int | None, typer.Option(help="at most this many (default: all)")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Jobs, newest first."""
    found: list[Job] = []
    for job in client(ctx).iter_jobs(is_active=active, job_type=job_type, tags=tag or None):
        found.append(job)
        if limit is not None and len(found) >= limit:
            break
    if output is Output.json:
        _json(found)
    else:
        _table(JOB_COLUMNS, [_job_row(j) for j in found])


@jobs_app.command("get")
def jobs_get(ctx: typer.Context, job_id: int, output: OutputOpt = Output.table) -> None:
    """One job, every field."""
    _show_job(client(ctx).get_job(job_id), output)


jobs_app.command("show", help="One job, every field (the same as get).")(jobs_get)


@jobs_app.command("create")
def jobs_create(
    ctx: typer.Context,
    file: FileOpt = None,
    name: NameOpt = None,
    cron: CronOpt = None,
    interval: IntervalOpt = None,
    at: AtOpt = None,
    calendar: CalendarOpt = None,
    task: TaskOpt = None,
    tz: TzOpt = None,
    tag: TagOpt = None,
    args: ArgsOpt = None,
    kwargs: KwargsOpt = None,
    description: DescOpt = None,
    priority: PriorityOpt = None,
    paused: Annotated[bool, typer.Option("--paused", help="create it paused")] = False,
    set_: SetOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """A new job, from --file and/or options (options win)."""
    fields = _fields(
        file,
        name,
        cron,
        interval,
        at,
        calendar,
        task,
        tz,
        tag,
        args,
        kwargs,
        description,
        priority,
        set_,
    )
    if paused:
        fields["is_active"] = False
    _show_job(client(ctx).create_job(fields), output)


@jobs_app.command("update")
def jobs_update(
    ctx: typer.Context,
    job_id: int,
    file: FileOpt = None,
    name: NameOpt = None,
    cron: CronOpt = None,
    interval: IntervalOpt = None,
    at: AtOpt = None,
    calendar: CalendarOpt = None,
    task: TaskOpt = None,
    tz: TzOpt = None,
    tag: TagOpt = None,
    args: ArgsOpt = None,
    kwargs: KwargsOpt = None,
    description: DescOpt = None,
    priority: PriorityOpt = None,
    set_: SetOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change only the fields given (--tag replaces the tags)."""
    fields = _fields(
        file,
        name,
        cron,
        interval,
        at,
        calendar,
        task,
        tz,
        tag,
        args,
        kwargs,
        description,
        priority,
        set_,
    )
    if not fields:
        raise typer.BadParameter("nothing to change: give --file, a field option or --set")
    _show_job(client(ctx).update_job(job_id, fields), output)


@jobs_app.command("delete")
def jobs_delete(ctx: typer.Context, job_id: int, output: OutputOpt = Output.table) -> None:
    """Delete a job (its history is removed after)."""
    client(ctx).delete_job(job_id)
    _message({"message": f"Job {job_id} deleted", "id": job_id}, output)


def _message(answer: Any, output: Output) -> None:
    if output is Output.json:
        _json(answer)
    else:
        data = answer.model_dump(mode="json") if isinstance(answer, BaseModel) else answer
        extra = ", ".join(f"{k}: {v}" for k, v in data.items() if k != "message" and v is not None)
        out.print(data["message"] + (f" ({extra})" if extra else ""), highlight=False)


@jobs_app.command("pause")
def jobs_pause(
    ctx: typer.Context,
    job_id: int,
    note: Annotated[
        str | None, typer.Option(help="why it is paused: shown on the job until it resumes")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="resume by itself at this ISO instant (without an offset: in the job's zone)"
        ),
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Pause a job: no run until it is resumed (or until --until; the runs the pause
    covered are not replayed)."""
    _message(client(ctx).pause_job(job_id, note=note, until=until), output)


@jobs_app.command("resume")
def jobs_resume(ctx: typer.Context, job_id: int, output: OutputOpt = Output.table) -> None:
    """Resume a job from now (missed runs are not replayed)."""
    _message(client(ctx).resume_job(job_id), output)


@jobs_app.command("run")
def jobs_run(
    ctx: typer.Context,
    job_id: int,
    args: ArgsOpt = None,
    kwargs: KwargsOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Run a job now (optionally with other task_args/task_kwargs)."""
    answer = client(ctx).run_job(
        job_id, _parse_json("--args", args), _parse_json("--kwargs", kwargs)
    )
    _message(answer, output)


class Overlap(StrEnum):
    allow = "allow"
    skip = "skip"
    buffer_all = "buffer_all"


@jobs_app.command("backfill")
def jobs_backfill(
    ctx: typer.Context,
    job_id: int,
    start: Annotated[
        str, typer.Option(help="the first instant, ISO (without an offset: in the job's zone)")
    ],
    end: Annotated[str, typer.Option(help="the last instant, ISO; not after now")],
    overlap: Annotated[
        Overlap,
        typer.Option(
            help="allow: beside the job's other runs; skip: not while another runs; "
            "buffer_all: one at a time"
        ),
    ] = Overlap.allow,
    dry_run: Annotated[bool, typer.Option(help="list the occurrences, run nothing")] = False,
    wait: Annotated[
        bool,
        typer.Option(help="follow it until every occurrence is sent and each run has ended"),
    ] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls (--wait)")] = 1.0,
    timeout: Annotated[
        float | None, typer.Option(help="stop waiting after this many seconds (exit 1)")
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Run the job's occurrences from --start to --end (both included), each once: an
    occurrence that has a run already is not run again. Follow it with `backfills show`."""
    nexus = client(ctx)
    if dry_run:
        if wait:
            raise typer.BadParameter("a dry run runs nothing to wait for", param_hint="--wait")
        _show_plan(nexus.backfill_dry_run(job_id, start, end, overlap=overlap.value), output)
        return
    started = nexus.backfill_job(job_id, start, end, overlap=overlap.value)
    if not wait:
        _show_backfill(started, output)
        return
    # Progress goes to stdout for people, to stderr when stdout is the JSON of the end state.
    progress = err if output is Output.json else out
    progress.print(
        f"backfill {started.backfill_id}: {started.occurrences} occurrences "
        f"({started.excluded} left out by calendars or blackouts)",
        highlight=False,
    )
    last = nexus.wait_for_backfill(
        started.backfill_id,
        interval=interval,
        timeout=timeout,
        on_progress=lambda b: progress.print(_progress_line(b), highlight=False),
    )
    if output is Output.json:
        _json(last)
    if not last.runs_ended:
        err.print(f"timed out after {timeout}s: {_progress_line(last)}", highlight=False)
        raise typer.Exit(EXIT_OTHER)


def _progress_line(backfill: Backfill) -> str:
    handled = backfill.occurrences - backfill.remaining
    runs = ", ".join(f"{status} {n}" for status, n in sorted(backfill.runs.items())) or "none"
    line = (
        f"{backfill.status}: {handled}/{backfill.occurrences} handled (sent {backfill.sent}, "
        f"existing {backfill.existing}, skipped {backfill.skipped}); runs: {runs}"
    )
    return line + (f"; {backfill.reason}" if backfill.reason else "")


def _show_plan(plan: BackfillPlan, output: Output) -> None:
    if output is Output.json:
        _json(plan)
        return
    for when in plan.occurrences:
        out.print(_when(when), highlight=False)
    out.print(
        f"dry run, nothing run: {len(plan.occurrences)} occurrences "
        f"({plan.excluded} left out by calendars or blackouts)",
        highlight=False,
    )


def _show_backfill(backfill: Backfill, output: Output) -> None:
    if output is Output.json:
        _json(backfill)
        return
    table = Table("field", "value", title=f"backfill {backfill.backfill_id}")
    for name, value in backfill.model_dump(mode="json").items():
        table.add_row(name, value if isinstance(value, str) else json.dumps(value))
    out.print(table)


@backfills_app.command("show")
def backfills_show(ctx: typer.Context, backfill_id: str, output: OutputOpt = Output.table) -> None:
    """A backfill's progress, and its runs by status."""
    _show_backfill(client(ctx).get_backfill(backfill_id), output)


# -- runs ----------------------------------------------------------------------------------


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    job_id: int,
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    output: OutputOpt = Output.table,
) -> None:
    """A job's run attempts, newest first."""
    found: list[Execution] = []
    for run in client(ctx).iter_runs(job_id, page_size=min(limit, 500)):
        found.append(run)
        if len(found) >= limit:
            break
    if output is Output.json:
        _json(found)
    else:
        _table(RUN_COLUMNS, [_run_row(r) for r in found])


@runs_app.command("cancel")
def runs_cancel(
    ctx: typer.Context,
    execution_id: str,
    reason: Annotated[str | None, typer.Option(help="why (recorded on the run)")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Cancel a run: a pending one never starts, a running one is asked to stop (it ends
    cancelled, with no retry). A run that has ended is refused (exit 1)."""
    run = client(ctx).cancel_run(execution_id, reason)
    if output is Output.json:
        _json(run)
    elif run.status == "cancelled":
        out.print(f"Run {run.id} cancelled ({run.reason})", highlight=False)
    else:
        out.print(
            f"Run {run.id} is {run.status}: asked to stop ({run.cancel_requested}); "
            "it ends cancelled",
            highlight=False,
        )


@runs_app.command("watch")
def runs_watch(
    ctx: typer.Context,
    job_id: int,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 2.0,
    until_count: Annotated[
        int | None, typer.Option(help="stop once this many new runs have finished")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Follow a job's runs: each new run and each change of status, as it is seen.

    Runs already finished when it starts are not shown. With --until-count N it ends (exit 0)
    once N runs that started after it have finished; --timeout ends it (exit 1 if
    --until-count was not reached)."""
    nexus = client(ctx)
    nexus.get_job(job_id)  # a 404 now, not a silent watch
    seen = {run.id: run.status for run in nexus.list_runs(job_id, limit=100)}
    finished: set[str] = set()
    started = time.monotonic()
    # On stderr, so scripts reading stdout see only runs; tests wait for it before a run.
    err.print(f"watching job {job_id}'s runs", highlight=False)
    while True:
        for run in reversed(nexus.list_runs(job_id, limit=100)):
            before = seen.get(run.id)
            if before == run.status:
                continue
            seen[run.id] = run.status
            event = "new" if before is None else "status"
            if output is Output.json:
                line = {"event": event, "previous": before, **run.model_dump(mode="json")}
                sys.stdout.write(json.dumps(line, default=str) + "\n")
                sys.stdout.flush()
            else:
                change = f"{before} -> {run.status}" if before else run.status
                out.print(
                    f"{_when(run.scheduled_for)}  {run.trigger:9}  attempt {run.attempt}  "
                    f"{change}  {run.id}",
                    highlight=False,
                )
            if run.is_final and (before is None or before not in FINAL_STATUSES):
                finished.add(run.id)
        if until_count is not None and len(finished) >= until_count:
            return
        if timeout is not None and time.monotonic() - started >= timeout:
            if until_count is not None:
                err.print(f"timed out: {len(finished)} of {until_count} runs finished")
                raise typer.Exit(EXIT_OTHER)
            return
        time.sleep(interval)


# -- stats, cron, preview --------------------------------------------------------------


@app.command("stats")
def stats(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """The scheduler's overview: jobs and runs."""
    answer = client(ctx).stats()
    if output is Output.json:
        _json(answer)
    else:
        _table(("statistic", "value"), [[k, str(v)] for k, v in answer.model_dump().items()])


@cron_app.command("check")
def cron_check(
    ctx: typer.Context,
    expression: str,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone")] = "UTC",
    count: Annotated[int, typer.Option(help="how many next runs, 1-100")] = 5,
    output: OutputOpt = Output.table,
) -> None:
    """Is EXPRESSION valid, what it means, and its next runs (exit 2 when invalid)."""
    answer = client(ctx).validate_cron(expression, tz, count=count)
    if output is Output.json:
        _json(answer)
    elif answer.is_valid:
        out.print(f"{expression}: {answer.description}", highlight=False)
        for when in answer.next_runs:
            out.print(f"  {_when(when)}", highlight=False)
    else:
        err.print(f"{expression}: invalid: {answer.error}", highlight=False)
    if not answer.is_valid:
        raise typer.Exit(EXIT_INVALID)


@cron_app.command("presets")
def cron_presets(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """Common cron expressions."""
    answer = client(ctx).cron_presets()
    if output is Output.json:
        _json(answer)
    else:
        rows = [[name, p.expression, p.description] for name, p in answer.items()]
        _table(("name", "expression", "description"), rows)


@app.command("preview")
def preview(
    ctx: typer.Context,
    cron: CronOpt = None,
    interval: IntervalOpt = None,
    at: AtOpt = None,
    calendar: CalendarOpt = None,
    tz: TzOpt = None,
    start: Annotated[str | None, typer.Option(help="from this instant (default now)")] = None,
    count: Annotated[int, typer.Option(help="how many, 1-100")] = 5,
    output: OutputOpt = Output.table,
) -> None:
    """The next runs of any schedule, before creating the job."""
    fields = _fields(
        None, None, cron, interval, at, calendar, None, tz, None, None, None, None, None, None
    )
    if "job_type" not in fields:
        raise typer.BadParameter("give one of --cron, --interval, --at, --calendar")
    if start is not None:
        fields["start"] = start
    answer = client(ctx).preview(fields, count=count)
    if output is Output.json:
        _json(answer)
        return
    for when in answer.next_runs:
        out.print(_when(when), highlight=False)
    if answer.estimate is not None:
        cost = answer.estimate
        out.print(
            f"about {cost.runs_per_month:g} runs a month, ${cost.cost_per_month_usd:.4f} a month "
            f"on AWS",
            highlight=False,
        )
    _warnings(answer.warnings)


# -- holiday calendars ---------------------------------------------------------------------


def _calendar_days(dates: list[str] | None, ics: Path | None, *, required: bool) -> dict[str, Any]:
    if dates and ics is not None:
        raise typer.BadParameter("give the days as --date or as --ics, not both")
    if ics is not None:
        try:
            return {"ics": ics.read_text()}
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {ics}: {exc}", param_hint="--ics") from None
    if dates:
        return {"dates": dates}
    if required:
        raise typer.BadParameter("give the days: --date (repeat for more) or --ics FILE")
    return {}


def _show_calendar(calendar: Calendar, output: Output) -> None:
    if output is Output.json:
        _json(calendar)
        return
    table = Table("field", "value", title=f"calendar {calendar.name}")
    table.add_row("name", calendar.name)
    table.add_row("timezone", calendar.timezone)
    table.add_row("description", calendar.description or "-")
    table.add_row("dates", "\n".join(calendar.dates) or "-")
    table.add_row("used by jobs", ", ".join(str(i) for i in calendar.used_by) or "-")
    table.add_row("created", _when(calendar.created_at))
    table.add_row("updated", _when(calendar.updated_at))
    out.print(table)


DateOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--date", help="a day YYYY-MM-DD or a range YYYY-MM-DD/YYYY-MM-DD (repeat for more)"
    ),
]
IcsOpt = Annotated[
    Path | None, typer.Option("--ics", help="an iCalendar file: the days of its events")
]


@calendars_app.command("list")
def calendars_list(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """Every holiday calendar, by name."""
    found = client(ctx).list_calendars()
    if output is Output.json:
        _json(found)
        return
    rows = [
        [
            c.name,
            c.timezone,
            str(len(c.dates)),
            c.dates[0].split("/")[0] if c.dates else "-",
            c.dates[-1].split("/")[-1] if c.dates else "-",
            ",".join(str(i) for i in c.used_by),
            c.description or "",
        ]
        for c in found
    ]
    _table(("name", "timezone", "entries", "first", "last", "used by", "description"), rows)


@calendars_app.command("show")
def calendars_show(ctx: typer.Context, name: str, output: OutputOpt = Output.table) -> None:
    """One calendar: its days and the jobs that name it."""
    _show_calendar(client(ctx).get_calendar(name), output)


@calendars_app.command("create")
def calendars_create(
    ctx: typer.Context,
    name: str,
    tz: Annotated[str, typer.Option("--tz", help="the IANA zone its days are days of")],
    date: DateOpt = None,
    ics: IcsOpt = None,
    description: DescOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """A new calendar, its days as --date (repeated) or --ics FILE."""
    days = _calendar_days(date, ics, required=True)
    made = client(ctx).create_calendar(name, tz, description=description, **days)
    _show_calendar(made, output)


@calendars_app.command("update")
def calendars_update(
    ctx: typer.Context,
    name: str,
    tz: Annotated[str | None, typer.Option("--tz", help="another IANA zone")] = None,
    date: DateOpt = None,
    ics: IcsOpt = None,
    description: DescOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Change a calendar: --date (repeated) or --ics replace all its days."""
    changes = _calendar_days(date, ics, required=False)
    if tz is not None:
        changes["timezone"] = tz
    if description is not None:
        changes["description"] = description
    if not changes:
        raise typer.BadParameter("nothing to change: give --tz, --date, --ics or --description")
    _show_calendar(client(ctx).update_calendar(name, changes), output)


@calendars_app.command("delete")
def calendars_delete(ctx: typer.Context, name: str, output: OutputOpt = Output.table) -> None:
    """Delete a calendar (refused, exit 1, while jobs name it)."""
    client(ctx).delete_calendar(name)
    _message({"message": f"Calendar {name} deleted", "name": name}, output)


# -- keys ----------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    name: str,
    scope: Annotated[
        list[str],
        typer.Option(help="jobs:read, jobs:write, jobs:execute, keys:admin (repeat for more)"),
    ],
    expires_at: Annotated[str | None, typer.Option(help="ISO instant with offset")] = None,
    rate: Annotated[int | None, typer.Option(help="requests a second")] = None,
    burst: Annotated[int | None, typer.Option(help="burst size")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """A new key; its secret is printed this once."""
    limits = {k: v for k, v in {"rate": rate, "burst": burst}.items() if v is not None}
    from datetime import datetime

    when = datetime.fromisoformat(expires_at) if expires_at else None
    answer = client(ctx).create_key(name, scope, expires_at=when, rate_limit=limits or None)
    if output is Output.json:
        _json(answer)
    else:
        err.print(f"key {answer.id} ({answer.name}, {', '.join(answer.scopes)}); shown once:")
        sys.stdout.write(answer.key + "\n")


@keys_app.command("list")
def keys_list(ctx: typer.Context, output: OutputOpt = Output.table) -> None:
    """Every key (never a secret)."""
    found = client(ctx).list_keys()
    if output is Output.json:
        _json(found)
        return
    rows = [
        [
            k.id,
            k.name,
            ",".join(k.scopes),
            _when(k.created_at),
            _when(k.expires_at),
            _when(k.revoked_at),
            _when(k.last_used_at),
        ]
        for k in found
    ]
    _table(("id", "name", "scopes", "created", "expires", "revoked", "last used"), rows)


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str, output: OutputOpt = Output.table) -> None:
    """Revoke a key (it stops working within 60 s)."""
    client(ctx).revoke_key(key_id)
    _message({"message": f"Key {key_id} revoked", "id": key_id}, output)


# -- jobs as code --------------------------------------------------------------------------


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Option("--file", "-f", help="the jobs file (YAML)")],
    tag: Annotated[
        str | None, typer.Option(help="mark the file's jobs with TAG (what --prune looks at)")
    ] = None,
    prune: Annotated[
        bool, typer.Option(help="delete the jobs carrying --tag that the file does not declare")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="print the changes, make none")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Make the service match a jobs file: create, update (only the fields that differ) and,
    with --prune --tag TAG, delete. See `nexus_client.apply` for the file's format."""
    if prune and not tag:
        raise typer.BadParameter("--prune needs --tag TAG", param_hint="--prune")
    declared = jobs_as_code.load_file(file)
    nexus = client(ctx)
    the_plan = jobs_as_code.plan(declared, nexus.iter_jobs(), tag=tag, prune=prune)
    done = the_plan.actions if dry_run else list(jobs_as_code.execute(the_plan, nexus))
    if output is Output.json:
        _json({"dry_run": dry_run, "changes": [a.to_json() for a in done]})
        return
    if the_plan.empty:
        out.print("no changes")
        return
    for action in done:
        _print_action(action)
    counts = {k: len(the_plan.of(k)) for k in ("create", "update", "delete")}
    summary = ", ".join(f"{n} to {k}" if dry_run else f"{n} {k}d" for k, n in counts.items())
    out.print(("dry run, nothing changed: " if dry_run else "") + summary, highlight=False)


def _print_action(action: jobs_as_code.Action) -> None:
    sign = {"create": "[green]+[/green]", "update": "[yellow]~[/yellow]", "delete": "[red]-[/red]"}
    ident = f" (#{action.job_id})" if action.job_id is not None else ""
    out.print(f"{sign[action.kind]} {action.kind} {escape(action.name)}{ident}", highlight=False)
    for change in action.changes:
        old, new = json.dumps(change.old), json.dumps(change.new)
        out.print(f"    {change.field}: {old} -> {new}", highlight=False, markup=False)


def run() -> None:
    """The `nexus` command: a failure is one line on stderr and the exit code for its kind."""
    try:
        app()
    except (NexusError, ConfigError, jobs_as_code.ApplyError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exit_code(exc))


if __name__ == "__main__":
    run()
