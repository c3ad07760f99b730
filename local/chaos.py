"""`make chaos`: faults injected into `make run`, and the audit that shows what they did.

Switched on only by `python -m local.run --chaos SPEC` (or `NEXUS_CHAOS=SPEC`); nothing here is
imported otherwise. SPEC is a seed, optionally followed by settings:
`7,aws_errors=0.01,kill=0.0015,tick_kill=0.0005,kill_after=0.5,duplicate=1,second_tick=1`
(the defaults).

What it does, all of it counted (`Chaos.report`, written to `<state dir>/chaos.json`):

- **AWS errors**: `aws_errors` of the AWS calls made through the app's clients (DynamoDB and
  SQS, `chalicelib.aws.client`) by the API, the ticks and the worker invocations get a
  retryable error (ProvisionedThroughputExceededException, ThrottlingException,
  InternalServerError; SQS: ThrottlingException, ServiceUnavailable), from a botocore
  `before-call` hook: botocore does not retry it, so the caller sees it as after botocore's
  own retries ran out. The local event source's receives are left alone.
- **Killed invocations**: every AWS call made by a worker invocation (and the threads it
  starts) dies with probability `kill` (a tick's with `tick_kill`): a `Killed`, a
  BaseException that `except Exception` cannot swallow, is raised before the request is sent,
  or (`kill_after` of the time) after it landed. From then on every AWS call of that
  invocation raises it too, as if its process were gone: nothing it does reaches AWS any
  more, its messages are neither finished nor deleted, and they come back after their
  visibility timeout (or the hold the worker set). The event source counts it and goes on.
- **Duplicate deliveries** (`duplicate`): every batch the event source receives is handed to
  two invocations at once (the second up to half a second later), with the same messages and
  receipt handles: both really run `app.worker`.
- **A second tick** (`second_tick`): a second loop calls `app.tick` on the same period, each
  time up to `tick_jitter` seconds after the first.
- **Tasks with short timeouts**: `chaos.echo`, `chaos.fail` and `chaos.sleep` are the
  built-in tasks with timeouts of a few seconds, so a killed run's lease (its timeout + 30 s)
  runs out within the soak; each execution of them is logged (`chaos-executions.jsonl`) with
  the invocation that ran it, so the audit can tell a takeover after a death from a run done
  twice.

`audit()` at the end checks the table, the API and that log (see bench/chaos.py).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("nexus.chaos")

Handler = Callable[[dict[str, Any], Any], Any]

# Where an invocation's tag is kept on its threads.
_TAG = "_nexus_chaos_invocation"
# The key, in botocore's request context, of a kill planned for after the call lands.
_KILL_AFTER = "nexus_chaos_kill_after"

# Retryable errors, as each service answers them: (code, HTTP status).
ERRORS: dict[str, tuple[tuple[str, int], ...]] = {
    "dynamodb": (
        ("ProvisionedThroughputExceededException", 400),
        ("ThrottlingException", 400),
        ("InternalServerError", 500),
    ),
    "sqs": (("ThrottlingException", 400), ("ServiceUnavailable", 503)),
}
# Threads that are not the app: the event source's receivers. MainThread only sets up and
# shuts down.
_NOT_THE_APP = ("MainThread",)

# The chaos tasks: the built-ins with short timeouts (name, built-in, timeout in seconds).
TASKS = (("chaos.echo", "echo", 2.0), ("chaos.fail", "fail", 2.0), ("chaos.sleep", "sleep", 5.0))


class Killed(BaseException):
    """The invocation's process died here. A BaseException, so `except Exception` in the
    handler, its thread pool or the event source cannot swallow it."""


@dataclass(frozen=True)
class ChaosConfig:
    seed: int = 1
    aws_errors: float = 0.01
    kill: float = 0.0015
    tick_kill: float = 0.0005
    kill_after: float = 0.5
    duplicate: bool = True
    second_tick: bool = True
    tick_jitter: float = 2.0

    @classmethod
    def parse(cls, spec: str) -> ChaosConfig:
        """`SEED[,name=value...]`; a bare `1`/`on` means seed 1 and the defaults."""
        parts = [p.strip() for p in spec.split(",") if p.strip()]
        values: dict[str, Any] = {}
        kinds = {f.name: f.type for f in fields(cls)}
        for i, part in enumerate(parts):
            if "=" not in part:
                if i != 0:
                    raise ValueError(f"chaos: {part!r} is not name=value")
                values["seed"] = 1 if part.lower() in ("on", "true", "yes") else int(part)
                continue
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in kinds:
                raise ValueError(f"chaos: unknown setting {name!r}: one of {', '.join(kinds)}")
            kind = kinds[name]
            if kind in ("bool", bool):
                values[name] = raw.strip().lower() in ("1", "on", "true", "yes")
            elif kind in ("int", int):
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        config = cls(**values)
        for name in ("aws_errors", "kill", "tick_kill", "kill_after"):
            value = getattr(config, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"chaos: {name} must be a probability, not {value}")
        return config


class Invocation:
    """One handler invocation (a worker batch, a tick), and every thread it starts."""

    _ids = iter(range(1, 1 << 62))
    _ids_lock = threading.Lock()

    def __init__(self, function: str, kill_rate: float) -> None:
        with Invocation._ids_lock:
            self.id = next(Invocation._ids)
        self.function = function
        self.kill_rate = kill_rate
        self.dead_at: float | None = None

    @property
    def dead(self) -> bool:
        return self.dead_at is not None


def current_invocation() -> Invocation | None:
    tag = getattr(threading.current_thread(), _TAG, None)
    return tag if isinstance(tag, Invocation) else None


# A thread belongs to the invocation of the thread that created it: the handler's thread pool,
# its timers and its task threads die with it. Patched in only while chaos is installed.
_original_thread_init = threading.Thread.__init__
_inheritance_users = 0
_inheritance_lock = threading.Lock()


def _inheriting_init(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
    _original_thread_init(self, *args, **kwargs)
    tag = getattr(threading.current_thread(), _TAG, None)
    if tag is not None:
        setattr(self, _TAG, tag)


def _inherit_tags(on: bool) -> None:
    global _inheritance_users
    with _inheritance_lock:
        _inheritance_users += 1 if on else -1
        threading.Thread.__init__ = (  # type: ignore[method-assign]
            _inheriting_init if _inheritance_users > 0 else _original_thread_init
        )


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self._body


def error_response(model: Any, code: str, status: int) -> tuple[Any, dict[str, Any]]:
    """The error answer AWS would give, parsed by botocore's own parser (JSON protocol:
    DynamoDB and SQS), as a `before-call` hook returns it."""
    from botocore.awsrequest import AWSResponse
    from botocore.parsers import create_parser

    service = model.service_model
    headers = {
        "x-amzn-requestid": uuid.uuid4().hex,
        "content-type": "application/x-amz-json-1.0",
    }
    if "awsQueryCompatible" in service.metadata:
        headers["x-amzn-query-error"] = f"{code};{'Sender' if status < 500 else 'Receiver'}"
    body = json.dumps(
        {"__type": f"com.amazonaws.{service.endpoint_prefix}#{code}", "message": "chaos"}
    ).encode()
    parser = create_parser(service.resolved_protocol)
    parsed: dict[str, Any] = parser.parse(
        {"status_code": status, "headers": headers, "body": body}, model.output_shape
    )
    parsed.setdefault("ResponseMetadata", {}).update(HTTPStatusCode=status, MaxAttemptsReached=True)
    return AWSResponse("", status, headers, _Raw(body)), parsed  # type: ignore[arg-type]


# The Chaos whose tasks are registered (the registry is the process's; tasks are registered
# once and log to whichever Chaos is installed).
_active: Chaos | None = None


class Chaos:
    def __init__(self, config: ChaosConfig, report_dir: str | os.PathLike[str] | None = None):
        self.config = config
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        self._key = f"nexus-chaos-{id(self)}"
        self._report_dir = Path(report_dir) if report_dir is not None else None
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._previous_excepthook: Any = None
        self.started = time.time()

    @classmethod
    def from_spec(cls, spec: str, report_dir: str | os.PathLike[str] | None = None) -> Chaos:
        return cls(ChaosConfig.parse(spec), report_dir)

    # -- switching it on and off ----------------------------------------------------------

    def install(self, *clients: Any) -> Chaos:
        global _active
        for client in clients:
            events = client.meta.events
            events.register_first("before-call", self._before_call, f"{self._key}-before")
            events.register_first("after-call", self._after_call, f"{self._key}-after")
            self._clients.append(client)
        _inherit_tags(True)
        self._previous_excepthook = threading.excepthook
        threading.excepthook = self._excepthook
        register_tasks()
        _active = self
        if self._report_dir is not None:
            self._report_dir.mkdir(parents=True, exist_ok=True)
            self._writer = threading.Thread(
                target=self._write_reports, name="nexus-chaos-report", daemon=True
            )
            self._writer.start()
            atexit.register(self.write_report)
        log.warning("CHAOS ON: %s", json.dumps(asdict(self.config)))
        return self

    def uninstall(self) -> None:
        global _active
        for client in self._clients:
            events = client.meta.events
            events.unregister("before-call", self._before_call, f"{self._key}-before")
            events.unregister("after-call", self._after_call, f"{self._key}-after")
        self._clients = []
        _inherit_tags(False)
        if self._previous_excepthook is not None:
            threading.excepthook = self._previous_excepthook
            self._previous_excepthook = None
        self._stop.set()
        if self._writer is not None:
            self._writer.join(5)
            atexit.unregister(self.write_report)
            self.write_report()
        if _active is self:
            _active = None

    # -- the botocore hooks -----------------------------------------------------------------

    def _draw(self, p: float) -> bool:
        if p <= 0:
            return False
        with self._lock:
            return self._rng.random() < p

    def _count(self, *names: str) -> None:
        with self._lock:
            self.counts.update(names)

    def _before_call(self, model: Any, context: dict[str, Any], **_: Any) -> Any:
        operation = f"{model.service_model.service_name}.{model.name}"
        self._count(f"calls.{operation}")
        invocation = current_invocation()
        if invocation is not None:
            if invocation.dead:
                raise Killed(f"{invocation.function} #{invocation.id} is dead ({operation})")
            if self._draw(invocation.kill_rate):
                if self._draw(self.config.kill_after):
                    context[_KILL_AFTER] = True  # let the call land, then die
                else:
                    self._kill(invocation, "before", operation)
        if not self._faultable() or not self._draw(self.config.aws_errors):
            return None
        service = model.service_model.service_name
        choices = ERRORS.get(service)
        if not choices:
            return None
        with self._lock:
            code, status = self._rng.choice(choices)
        self._count("aws_errors", f"aws_errors.{operation}", f"aws_errors.{code}")
        return error_response(model, code, status)

    def _after_call(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if context.pop(_KILL_AFTER, False):
            invocation = current_invocation()
            if invocation is not None and not invocation.dead:
                operation = f"{model.service_model.service_name}.{model.name}"
                self._kill(invocation, "after", operation)

    def _kill(self, invocation: Invocation, when: str, operation: str) -> None:
        self._died(invocation, f"kill_{when}")
        self._count(f"kills.{when}.{operation}")
        raise Killed(f"{invocation.function} #{invocation.id} killed {when} {operation}")

    def _died(self, invocation: Invocation, how: str) -> None:
        if invocation.dead:
            return
        invocation.dead_at = time.time()
        self._count(f"killed.{invocation.function}", f"killed_by.{how}")
        self._log({"dead": invocation.id, "at": invocation.dead_at, "fn": invocation.function})

    @staticmethod
    def _faultable() -> bool:
        name = threading.current_thread().name
        return name not in _NOT_THE_APP and not name.endswith("-receiver")

    def _excepthook(self, args: Any) -> None:
        if isinstance(args.exc_value, Killed):
            self._count("threads_ended_by_kill")
            return
        (self._previous_excepthook or threading.__excepthook__)(args)

    # -- invocations ----------------------------------------------------------------------

    def invoke(self, function: str, messages: list[Any], deliver: Callable[[], None]) -> None:
        """The event source's hook: run `deliver` (one invocation of the handler with this
        batch) as an invocation that may be killed, and, with `duplicate`, a second one with
        the same messages at once."""
        twin: threading.Thread | None = None
        if self.config.duplicate:
            with self._lock:
                delay = self._rng.uniform(0.0, 0.5)
            with self._lock:
                self.counts.update({"duplicate_batches": 1, "duplicate_deliveries": len(messages)})
            twin = threading.Thread(
                target=self._invocation,
                args=(function, messages, deliver, delay),
                name=f"{function}-twin",
                daemon=True,
            )
            twin.start()
        self._invocation(function, messages, deliver, 0.0)
        if twin is not None:
            twin.join()

    def _invocation(
        self, function: str, messages: list[Any], deliver: Callable[[], None], delay: float
    ) -> None:
        if delay:
            time.sleep(delay)
        invocation = Invocation(function, self.config.kill)
        thread = threading.current_thread()
        previous = getattr(thread, _TAG, None)
        setattr(thread, _TAG, invocation)
        self._count(f"invocations.{function}")
        started, ended = time.time(), "returned"
        try:
            deliver()
        except Killed:
            # Dead, by its own kill or by one that reached it through a thread it shared with
            # a dead invocation (the worker's group commit): either way it is gone.
            self._died(invocation, "collateral")
            self._count(f"invocations_ended_by_kill.{function}")
            ended = "killed"
        finally:
            setattr(thread, _TAG, previous)
            self._log(
                {
                    "inv": invocation.id,
                    "fn": function,
                    "t0": started,
                    "t1": time.time(),
                    "end": ended,
                    "msgs": [_message_summary(m) for m in messages],
                }
            )

    def tick_handler(self, handler: Handler, function: str, *, second: bool = False) -> Handler:
        """`handler` as a tick invocation that may be killed; `second`: the second tick,
        fired up to `tick_jitter` seconds after the first."""

        def tick(event: dict[str, Any], context: Any) -> Any:
            if second:
                with self._lock:
                    delay = self._rng.uniform(0.0, self.config.tick_jitter)
                time.sleep(delay)
            invocation = Invocation(function, self.config.tick_kill)
            thread = threading.current_thread()
            setattr(thread, _TAG, invocation)
            self._count("second_ticks" if second else "ticks")
            try:
                return handler(event, context)
            except Killed:
                self._died(invocation, "collateral")
                self._count(f"invocations_ended_by_kill.{function}")
                return None
            finally:
                setattr(thread, _TAG, None)

        return tick

    # -- the task log and the report ----------------------------------------------------------

    def _log(self, entry: dict[str, Any]) -> None:
        if self._report_dir is None:
            return
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self._log_lock, (self._report_dir / "chaos-executions.jsonl").open("a") as out:
            out.write(line)

    def task_ran(self, ctx: Any, started: float, ended: float, ok: bool) -> None:
        invocation = current_invocation()
        self._count("task_executions")
        self._log(
            {
                "e": ctx.execution_id,
                "job": ctx.job_id,
                "t0": started,
                "t1": ended,
                "inv": invocation.id if invocation is not None else None,
                "ok": ok,
            }
        )

    def report(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
        killed = sum(n for k, n in counts.items() if k.startswith("killed."))
        return {
            "config": asdict(self.config),
            "seconds": round(time.time() - self.started, 1),
            "faults": {
                "aws_errors": counts.get("aws_errors", 0),
                "duplicate_deliveries": counts.get("duplicate_deliveries", 0),
                "killed_invocations": killed,
                "second_tick_ticks": counts.get("second_ticks", 0),
            },
            # Each batch reached the handler twice: batches received, and invocations made.
            "batches": counts.get("duplicate_batches", 0),
            "invocations": {
                k.removeprefix("invocations."): n
                for k, n in counts.items()
                if k.startswith("invocations.")
            },
            "counts": dict(sorted(counts.items())),
        }

    def write_report(self) -> None:
        if self._report_dir is None:
            return
        target = self._report_dir / "chaos.json"
        temp = target.with_suffix(".json.tmp")
        temp.write_text(json.dumps(self.report(), indent=1))
        os.replace(temp, target)

    def _write_reports(self) -> None:
        while not self._stop.wait(2.0):
            try:
                self.write_report()
            except OSError:
                log.exception("could not write the chaos report")


def _message_summary(message: Any) -> list[Any]:
    """An SQS message, for the log: its id, receive count and run."""
    try:
        body = json.loads(message.get("Body") or "{}")
    except ValueError:
        body = {}
    attributes = message.get("Attributes") or {}
    return [
        message.get("MessageId"),
        attributes.get("ApproximateReceiveCount"),
        body.get("job_id"),
        body.get("run_key"),
    ]


def register_tasks() -> None:
    """Register the chaos tasks once per process: each logs its executions to the installed
    Chaos."""
    from chalicelib.tasks import builtin, registry

    for name, builtin_name, timeout in TASKS:
        if name in registry:
            continue
        func = getattr(builtin, builtin_name)
        registry.task(name, timeout=timeout)(_logged(func))


def _logged(func: Callable[..., Any]) -> Callable[..., Any]:
    def task(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        started, ok = time.time(), False
        try:
            result = func(ctx, *args, **kwargs)
            ok = True
            return result
        finally:
            chaos = _active
            if chaos is not None:
                chaos.task_ran(ctx, started, time.time(), ok)

    task.__doc__ = func.__doc__
    return task


# -- the audit --------------------------------------------------------------------------------

Occurrences = Callable[[Mapping[str, Any], datetime, datetime], list[datetime]]


def _instant(value: Any) -> datetime | None:
    """A time as the table or the API gives it (a datetime, or ISO 8601 text ending in Z)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def audit(
    jobs: Sequence[Mapping[str, Any]],
    runs: Sequence[Mapping[str, Any]],
    *,
    stats: Mapping[str, Any] | None = None,
    api_jobs: Mapping[int, Mapping[str, Any]] | None = None,
    api_runs: Mapping[int, Sequence[Mapping[str, Any]]] | None = None,
    paused_at: Mapping[int, datetime] | None = None,
    occurrences: Occurrences | None = None,
    executions: Sequence[Mapping[str, Any]] | None = None,
    deaths: Mapping[int, float] | None = None,
    manual: Iterable[str] = (),
) -> dict[str, Any]:
    """Check what the table (jobs and run records, as `store.from_item` reads them), the API
    and the task log say after a soak. Returns the figures and, per invariant, what broke it.

    - duplicates: an attempt after one that did not fail, after a dead-lettered one, or
      beyond max_retries + 1; an occurrence both in a missed range and recorded on its own;
      an attempt whose task ran twice at once, or again after its outcome was recorded (a
      second run after the first runner died or failed is the takeover, counted apart);
    - lost: an attempt missing below a later one; a failed attempt that could retry and has
      no retry; an occurrence of a recurring job, from its creation to its pause less its
      misfire grace, with no record; a manual run the API acknowledged with no record;
    - stuck: a record still pending or running;
    - overlaps: two task executions of a `forbid` job at once (the task log's own times);
    - record overlaps: two records of a `forbid` job whose started_at..completed_at overlap;
    - status mismatches: a job holding a run slot (or the API showing it running) with no run
      running; a job whose last run is not its latest finished record;
    - counter mismatches: the stats overview against the completed and failed records;
    - api mismatches: a job's history through the API against the table.
    """
    findings: dict[str, list[str]] = {
        k: []
        for k in (
            "duplicates",
            "lost",
            "stuck",
            "overlaps",
            "record_overlaps",
            "status_mismatches",
            "counter_mismatches",
            "api_mismatches",
        )
    }
    jobs_by_id = {int(j["id"]): j for j in jobs}
    by_job: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in runs:
        by_job[int(r["job_id"])].append(r)
    statuses = Counter(str(r["status"]) for r in runs)
    occurrences_checked = 0

    # Identities: attempts 1..n, all but the last failed, none beyond max_retries + 1.
    identities: dict[tuple[int, datetime], dict[int, Mapping[str, Any]]] = defaultdict(dict)
    ranges: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for r in runs:
        if int(r["attempt"]) == 0:
            ranges[int(r["job_id"])].append(r)
        else:
            identities[(int(r["job_id"]), r["scheduled_for"])][int(r["attempt"])] = r
    for (job_id, scheduled_for), attempts in sorted(identities.items()):
        job = jobs_by_id.get(job_id)
        max_attempts = int(job.get("max_retries", 0)) + 1 if job else None
        where = f"job {job_id} run {scheduled_for:%Y-%m-%dT%H:%M:%S.%fZ}"
        last = max(attempts)
        for n in range(1, last + 1):
            record = attempts.get(n)
            if record is None:
                findings["lost"].append(f"{where}: attempt {n} missing, attempt {last} exists")
                continue
            if n < last and record["status"] != "failed":
                findings["duplicates"].append(
                    f"{where}: attempt {n + 1} exists after attempt {n} ended {record['status']}"
                )
            elif n < last and record.get("reason") == "dead-lettered":
                findings["duplicates"].append(
                    f"{where}: attempt {n + 1} exists after attempt {n} was dead-lettered"
                )
        if max_attempts is not None and last > max_attempts:
            findings["duplicates"].append(
                f"{where}: attempt {last} is beyond max_retries + 1 = {max_attempts}"
            )
        final = attempts[last]
        if (
            max_attempts is not None
            and final["status"] == "failed"
            and final.get("reason") != "dead-lettered"
            and last < max_attempts
            and not (job and job.get("deleted_at"))
        ):
            findings["lost"].append(
                f"{where}: attempt {last} failed and its retry (of {max_attempts}) never came"
            )

    for r in runs:
        if r["status"] in ("pending", "running"):
            findings["stuck"].append(
                f"job {r['job_id']} {r.get('id')}: still {r['status']}"
                + (f" (lease until {r.get('lease_until')})" if r.get("lease_until") else "")
            )

    # Occurrences: each one recorded, once.
    for job_id, job in sorted(jobs_by_id.items()):
        covered: list[tuple[datetime, datetime]] = [
            (r["scheduled_for"], r.get("missed_until") or r["scheduled_for"])
            for r in ranges.get(job_id, [])
        ]
        own = {sf for (jid, sf) in identities if jid == job_id}
        for first, until in covered:
            if occurrences is None:
                continue
            for t in occurrences(job, first, until):
                if t in own:
                    findings["duplicates"].append(
                        f"job {job_id} run {t:%Y-%m-%dT%H:%M:%SZ}: in a missed range and "
                        "recorded on its own"
                    )
        pause = (paused_at or {}).get(job_id)
        if occurrences is None or pause is None or job.get("job_type") not in ("interval", "cron"):
            continue
        last_due = pause - timedelta(seconds=int(job.get("misfire_grace_seconds", 0)))
        created = job["created_at"]
        if last_due <= created:
            continue
        for t in occurrences(job, created, last_due):
            occurrences_checked += 1
            if t in own or any(a <= t <= b for a, b in covered):
                continue
            findings["lost"].append(
                f"job {job_id} run {t:%Y-%m-%dT%H:%M:%SZ}: no record (paused at "
                f"{pause:%H:%M:%S}, grace {job.get('misfire_grace_seconds')} s)"
            )

    known_ids = {str(r.get("id")) for r in runs}
    for execution_id in manual:
        if execution_id not in known_ids:
            findings["lost"].append(f"manual run {execution_id}: acknowledged, no record")

    # Task executions: never two of one attempt at once, none after its outcome was recorded.
    # One after its runner died, or failed before recording the outcome, is the takeover (S3).
    re_executions = after_death = 0
    finished_at = {
        str(r.get("id")): r["completed_at"].timestamp()
        for r in runs
        if r["status"] in ("completed", "failed") and r.get("completed_at")
    }
    by_execution: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in executions or []:
        by_execution[str(e["e"])].append(e)
    for execution_id, ran in sorted(by_execution.items()):
        ran.sort(key=lambda e: float(e["t0"]))
        re_executions += len(ran) - 1
        busy_until, runner = float(ran[0]["t1"]), ran[0].get("inv")
        for e in ran[1:]:
            died = (deaths or {}).get(runner) if runner is not None else None
            after_death += died is not None and died <= float(e["t0"])
            if float(e["t0"]) < busy_until:
                findings["duplicates"].append(
                    f"{execution_id}: its task ran twice at once (invocations {runner} and "
                    f"{e.get('inv')}, {busy_until - float(e['t0']):.3f} s together)"
                )
            busy_until, runner = max(busy_until, float(e["t1"])), e.get("inv")
        recorded = finished_at.get(execution_id)
        if recorded is not None and float(ran[-1]["t0"]) > recorded:
            findings["duplicates"].append(
                f"{execution_id}: its task ran again at {ran[-1]['t0']:.3f}, after its outcome "
                f"was recorded (completed_at {recorded:.3f})"
            )

    # forbid: no two runs at once.
    for job_id, job in sorted(jobs_by_id.items()):
        if job.get("concurrency_policy") != "forbid":
            continue
        spans = sorted(
            (r["started_at"], r["completed_at"], str(r.get("id")))
            for r in by_job.get(job_id, [])
            if r.get("started_at") and r.get("completed_at") and r["status"] != "skipped"
        )
        for (started, _, name), (ended, before) in zip(spans[1:], _latest_ends(spans), strict=True):
            if started < ended:
                findings["record_overlaps"].append(
                    f"job {job_id}: {name} started at {started:%H:%M:%S.%f} before {before} "
                    f"ended at {ended:%H:%M:%S.%f}"
                )
        tasks = sorted(
            (float(e["t0"]), float(e["t1"]), str(e["e"]))
            for e in executions or []
            if int(e["job"]) == job_id
        )
        for (t0, _, name), (t1, before) in zip(tasks[1:], _latest_ends(tasks), strict=True):
            if t0 < t1:
                findings["overlaps"].append(
                    f"job {job_id}: the task of {name} started {t1 - t0:.3f} s before the task "
                    f"of {before} ended"
                )

    # The job's own view of its runs.
    for job_id, job in sorted(jobs_by_id.items()):
        mine = by_job.get(job_id, [])
        running = {r_key(r) for r in mine if r["status"] == "running"}
        for key in job.get("running") or {}:
            if key not in running:
                findings["status_mismatches"].append(
                    f"job {job_id}: holds the run slot {key}, whose record is "
                    + next((str(r["status"]) for r in mine if r_key(r) == key), "absent")
                )
        api_job = (api_jobs or {}).get(job_id)
        if api_job is not None:
            if int(api_job.get("running_count") or 0) > len(running):
                findings["status_mismatches"].append(
                    f"job {job_id}: the API says running_count {api_job.get('running_count')}, "
                    f"{len(running)} record(s) running"
                )
            if api_job.get("status") == "running" and not running:
                findings["status_mismatches"].append(
                    f"job {job_id}: the API says running, no record is"
                )
        finished = [r for r in mine if r["status"] in ("completed", "failed") and r["completed_at"]]
        if finished:
            latest = max(finished, key=lambda r: r["completed_at"])
            # The last run as the API shows it when it was read: a plain job's quick success
            # is not written on the job item, the API reads it from the run's record.
            shown = api_job if api_job is not None else job
            if (
                _instant(shown.get("last_run_at")) != latest["completed_at"]
                or shown.get("last_run_status") != latest["status"]
            ):
                findings["status_mismatches"].append(
                    f"job {job_id}: last run {shown.get('last_run_status')} at "
                    f"{shown.get('last_run_at')}, latest finished record {latest.get('id')} "
                    f"{latest['status']} at {latest['completed_at']}"
                )

    # Counters: counted with each completed or failed record, and nowhere else.
    if stats is not None:
        expected = {
            "total_executions": statuses["completed"] + statuses["failed"],
            "successful_executions": statuses["completed"],
            "failed_executions": statuses["failed"],
        }
        for name, want in expected.items():
            if int(stats.get(name, -1)) != want:
                findings["counter_mismatches"].append(
                    f"stats {name} {stats.get(name)}, records {want}"
                )

    if api_runs is not None:
        for job_id in sorted(jobs_by_id):
            table_view = sorted((str(r.get("id")), str(r["status"])) for r in by_job[job_id])
            api_view = sorted(
                (str(r.get("id")), str(r.get("status"))) for r in api_runs.get(job_id, [])
            )
            if table_view != api_view:
                only_table = sorted(set(table_view) - set(api_view))[:3]
                only_api = sorted(set(api_view) - set(table_view))[:3]
                findings["api_mismatches"].append(
                    f"job {job_id}: {len(table_view)} records in the table, {len(api_view)} "
                    f"through the API; table only {only_table}, API only {only_api}"
                )

    lateness = sorted(
        (r["started_at"] - r["scheduled_for"]).total_seconds()
        for r in runs
        if r.get("trigger") == "scheduled" and int(r["attempt"]) == 1 and r.get("started_at")
    )
    return {
        "start_lateness_p50_s": round(lateness[len(lateness) // 2], 3) if lateness else None,
        "start_lateness_p99_s": round(lateness[int(len(lateness) * 0.99)], 3) if lateness else None,
        "records": len(runs),
        "by_status": dict(sorted(statuses.items())),
        "attempts_run": statuses["completed"] + statuses["failed"],
        "identities": len(identities),
        "retries": sum(1 for r in runs if int(r["attempt"]) > 1),
        "task_executions": len(executions or []),
        "re_executions": re_executions,
        "re_executions_after_kill": after_death,
        "occurrences_checked": occurrences_checked,
        **{k: len(v) for k, v in findings.items()},
        "findings": findings,
    }


def _latest_ends(spans: Sequence[tuple[Any, Any, str]]) -> list[tuple[Any, str]]:
    """For each span but the last (sorted by start): the latest end so far, and whose."""
    out: list[tuple[Any, str]] = []
    for _, end, name in spans[:-1]:
        out.append((end, name) if not out or end > out[-1][0] else out[-1])
    return out


def r_key(record: Mapping[str, Any]) -> str:
    """A record's sort key, as the job's slots name it."""
    from chalicelib.store.items import run_key

    return run_key(record["scheduled_for"], int(record["attempt"]))
