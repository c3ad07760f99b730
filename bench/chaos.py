"""`make chaos`: a chaos soak on make run's stack, then an audit of every run it made.

Starts `python -m local.run --chaos SEED` (local/chaos.py: 1 % of AWS calls fail with a
retryable error, worker and tick invocations are killed at random AWS calls, every SQS batch
goes to two invocations, a second tick fires beside the first) on a free port with a fresh
state folder and a 5 s tick, creates 52 jobs through the API (interval jobs every 1-3 s,
six-field cron jobs every 2-5 s, every-minute cron jobs, failing jobs with 2 retries, `forbid`
jobs whose task outlasts their interval, overlapping `allow` jobs) and a few manual runs,
lets them run, pauses every job, waits for the system to settle (no run pending or running,
both queues empty but for runs sent ahead past the pause, which come due later and are
dropped unrecorded), then audits the table, the API and the task log (local.chaos.audit):
no run doubled, lost or stuck, no `forbid` overlap, jobs and counters that agree with the
runs. Writes bench/.out/chaos.json; exits 1 if an invariant failed.

    python bench/chaos.py [--seed N] [--seconds S] [--settle S] [--chaos SPEC]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import AUTH, BENCH_KEY, ROOT, command

OUT = ROOT / "bench" / ".out"
INVARIANTS = (
    "duplicates",
    "lost",
    "stuck",
    "overlaps",
    "record_overlaps",
    "status_mismatches",
    "counter_mismatches",
    "api_mismatches",
)
# At least this many attempts must have run for the soak to say anything.
MIN_RUNS = 1_000
GRACE = 20  # misfire grace of the recurring jobs, seconds
HTTP_ATTEMPTS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


class Server:
    """make run's stack with chaos on, its output in a log file."""

    def __init__(
        self, port: int, state: Path, spec: str, tick: float, log_path: Path, level: str
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NEXUS_"))}
        env.update(
            NEXUS_LOG_LEVEL=level,
            NEXUS_TICK_SECONDS=str(tick),
            NEXUS_CHAOS=spec,
            NEXUS_METRICS="off",
            NEXUS_ADMIN_KEY=BENCH_KEY,
        )
        self.log_path = log_path
        argv = ["-m", "local.run", "--quiet", "--port", str(port), "--ws-port", "0"]
        argv += ["--state-dir", str(state)]
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.endpoint = ""
        stdout = self.proc.stdout
        assert stdout is not None
        log = log_path.open("w")
        deadline = time.monotonic() + 120
        for line in stdout:
            log.write(line)
            found = re.search(r"embedded AWS at (http://127\.0\.0\.1:\d+)", line)
            if found:
                self.endpoint = found.group(1)
            if line.startswith("State in") or time.monotonic() > deadline:
                break
        log.flush()
        if not self.endpoint:
            self.stop()
            raise RuntimeError(f"local.run did not start: see {log_path}")

        def copy() -> None:  # keep reading: a full pipe would stop the server
            for rest in stdout:
                log.write(rest)
            log.close()

        self._copier = threading.Thread(target=copy, daemon=True)
        self._copier.start()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Api:
    """The API, with 503 and 409 retried (with backoff) and any 500 kept as a finding."""

    def __init__(self, port: int, shared: Api | None = None) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.retried: Counter[str] = shared.retried if shared else Counter()
        self.errors_500: list[str] = shared.errors_500 if shared else []

    def each(self, calls: list[tuple[str, str, Any]], workers: int = 6) -> list[Any]:
        """Make `calls` (method, path, body) on `workers` connections at once, in order."""
        local = threading.local()

        def one(call: tuple[str, str, Any]) -> Any:
            if not hasattr(local, "api"):
                local.api = Api(self.port, self)
            return local.api.call(*call)

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, calls))

    def call(self, method: str, path: str, body: Any = None) -> Any:
        if method == "HISTORY":
            return self.history(int(path))
        pause = 0.2
        for _ in range(HTTP_ATTEMPTS):
            try:
                self.conn.request(
                    method,
                    "/api/v1" + path,
                    body=None if body is None else json.dumps(body),
                    headers={"Content-Type": "application/json", **AUTH},
                )
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.retried["connection"] += 1
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                time.sleep(pause)
                pause = min(pause * 2, 3.0)
                continue
            if response.status in (409, 503):
                self.retried[str(response.status)] += 1
            elif response.status >= 500:
                self.errors_500.append(f"{method} {path}: {response.status} {data[:300]!r}")
            elif response.status >= 400:
                raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
            else:
                return json.loads(data) if data else None
            time.sleep(pause)
            pause = min(pause * 2, 3.0)
        raise RuntimeError(f"{method} {path}: no answer after {HTTP_ATTEMPTS} attempts")

    def history(self, job_id: int) -> list[dict[str, Any]]:
        """Every record of the job, through the API's pages."""
        runs: list[dict[str, Any]] = []
        for page in range(40):
            got = self.call("GET", f"/jobs/{job_id}/executions?limit=500&skip={page * 500}")
            runs.extend(got)
            if len(got) < 500:
                break
        return runs


def workload(start: datetime) -> list[dict[str, Any]]:
    """52 jobs, none running before `start` (so they are all created on a quiet system):
    about 14 attempts a second, with retries, skips and overlaps."""
    common = {"misfire_grace_seconds": GRACE, "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ")}
    jobs: list[dict[str, Any]] = []

    def add(kind: str, n: int, **fields: Any) -> None:
        jobs.append({"name": f"chaos {kind} {n}", **common, **fields})

    for i, interval in enumerate([1, 2, 2, 3, 3, 3, 3, 3]):
        add("interval", i, job_type="interval", interval_seconds=interval, task_name="chaos.echo")
    for i, expression in enumerate(["*/5 * * * * *", "*/10 * * * * *"] * 2):
        add("cron-seconds", i, job_type="cron", cron_expression=expression, task_name="chaos.echo")
    for i in range(20):
        add("cron-minute", i, job_type="cron", cron_expression="* * * * *", task_name="chaos.echo")
    for i in range(6):
        add(
            "fail",
            i,
            job_type="interval",
            interval_seconds=15,
            task_name="chaos.fail",
            max_retries=2,
            retry_delay=1,
        )
    for i in range(6):
        add(
            "forbid",
            i,
            job_type="interval",
            interval_seconds=3,
            task_name="chaos.sleep",
            task_kwargs={"seconds": 4},
            concurrency_policy="forbid",
        )
    for i in range(2):
        add(
            "overlap",
            i,
            job_type="interval",
            interval_seconds=3,
            task_name="chaos.sleep",
            task_kwargs={"seconds": 4},
        )
    for i in range(6):
        add("fail-no-retry", i, job_type="interval", interval_seconds=20, task_name="chaos.fail")
    return jobs


def occurrences(job: Any, first: datetime, last: datetime) -> list[datetime]:
    """The job's scheduled times from `first` to `last`, by the engine's own schedule."""
    from chalicelib.models import Job
    from chalicelib.schedules import compile_schedule

    model = Job.model_validate(job)
    schedule = compile_schedule(model, anchor=model.created_at)
    out: list[datetime] = []
    t = schedule.next_after(first - timedelta(microseconds=1))
    while t is not None and t <= last and len(out) < 100_000:
        out.append(t)
        t = schedule.next_after(t)
    return out


def scan(endpoint: str) -> list[dict[str, Any]]:
    import boto3

    db = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    items: list[dict[str, Any]] = []
    for page in db.get_paginator("scan").paginate(TableName="nexus-local", ConsistentRead=True):
        items.extend(page.get("Items", []))
    return items


def unsettled(endpoint: str) -> dict[str, int]:
    """What still moves: records pending or running, messages in either queue."""
    import boto3

    from chalicelib.store.items import from_item

    left: Counter[str] = Counter()
    for raw in scan(endpoint):
        item = from_item(raw)
        if str(item.get("sk", "")).startswith("RUN#") and item.get("status") in (
            "pending",
            "running",
        ):
            left[str(item["status"])] += 1
    sqs = boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    for name in ("nexus-local-work", "nexus-local-work-dlq"):
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        delayed = int(attributes.pop("ApproximateNumberOfMessagesDelayed", 0))
        left[name] += sum(int(v) for v in attributes.values())
        # Still delayed after every job's pause: runs the tick sent ahead (CLAIM_AHEAD), timed
        # after the pause, which the worker drops unrecorded when they come due (SP), up to
        # 14 minutes later. A retry or a run due before the pause has a record pending, counted
        # above, so these are not work left; they are reported apart.
        left[f"{name} (delayed)"] += delayed
    return {k: v for k, v in left.items() if v}


def still_moving(left: dict[str, int]) -> dict[str, int]:
    """What `unsettled` found, less the messages still delayed (see there)."""
    return {k: v for k, v in left.items() if not k.endswith("(delayed)")}


def log_summary(path: Path) -> dict[str, Any]:
    """Exceptions in the server's output, by their last line: what the chaos caused
    (Killed, injected AWS errors) and anything else."""
    exceptions: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    pattern = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Killed|Unavailable|Incomplete)):?")
    for line in path.read_text(errors="replace").splitlines():
        for level in (" WARNING ", " ERROR ", " CRITICAL ", '"level": "ERROR"'):
            if level in line:
                levels[level.strip(' "').replace('"level": ', "")] += 1
        found = pattern.match(line)
        if found:
            text = re.sub(r"#\d+", "#N", line.strip())
            text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+Z?", "T", text)
            exceptions[text[:160]] += 1
    return {"levels": dict(levels), "exceptions": dict(exceptions.most_common(25))}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    from chalicelib.store.items import from_item
    from local.chaos import audit

    spec = args.chaos or f"{args.seed}"
    rng = random.Random(args.seed)
    OUT.mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nexus-chaos-") as folder:
        state = Path(folder)
        port = free_port()
        server = Server(port, state, spec, args.tick, OUT / "chaos-server.log", args.log_level)
        timings["start"] = time.monotonic() - started
        api = Api(port)
        created: dict[int, dict[str, Any]] = {}
        manual: list[str] = []
        reads = 0
        paused_at: dict[int, datetime] = {}
        try:
            # Created on a quiet system: the first runs are after the last job exists.
            mark = time.monotonic()
            first_run = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
            specs = workload(first_run)
            for job in api.each([("POST", "/jobs", spec) for spec in specs]):
                created[int(job["id"])] = job
            timings["create_jobs"] = time.monotonic() - mark
            took = timings["create_jobs"]
            print(f"chaos: {len(created)} jobs created in {took:.0f} s", flush=True)
            time.sleep(max(0.0, (first_run - datetime.now(UTC)).total_seconds()))

            # The soak: manual runs at random moments, and the API read now and then (it
            # meets the injected AWS errors too); the rest is the engine's.
            mark = time.monotonic()
            ids = sorted(created)
            events = [(rng.uniform(5, args.seconds - 5), "execute") for _ in range(args.manual)]
            events += [(float(t), "read") for t in range(3, int(args.seconds), 3)]
            for moment, what in sorted(events):
                time.sleep(max(0.0, mark + moment - time.monotonic()))
                job_id = rng.choice(ids)
                if what == "execute":
                    answer = api.call("POST", f"/jobs/{job_id}/execute", {})
                    manual.append(str(answer["execution_id"]))
                else:
                    path = rng.choice(
                        [
                            f"/jobs/{job_id}/executions?limit=20",
                            f"/jobs/{job_id}",
                            "/jobs/stats/overview",
                        ]
                    )
                    api.call("GET", path)
                    reads += 1
            time.sleep(max(0.0, mark + args.seconds - time.monotonic()))
            timings["soak"] = time.monotonic() - mark

            # Stop making work. A pause is applied between its request and its answer: every
            # run due before the request was sent while the job was active.
            mark = time.monotonic()
            for job_id in ids:
                paused_at[job_id] = datetime.now(UTC)
            api.each([("POST", f"/jobs/{job_id}/pause", None) for job_id in ids])
            timings["pause"] = time.monotonic() - mark
            print(f"chaos: soaked {timings['soak']:.0f} s, paused every job", flush=True)

            mark = time.monotonic()
            left: dict[str, int] = {}
            while time.monotonic() - mark < args.settle:
                time.sleep(5)
                left = unsettled(server.endpoint)
                if not still_moving(left):
                    break
            timings["settle"] = time.monotonic() - mark
            print(
                f"chaos: settled in {timings['settle']:.0f} s"
                + (f"; still moving: {left}" if left else ""),
                flush=True,
            )

            mark = time.monotonic()
            items = [from_item(raw) for raw in scan(server.endpoint)]
            jobs = [i for i in items if i.get("sk") == "JOB" and str(i["pk"]).startswith("JOB#")]
            runs = [i for i in items if str(i.get("sk", "")).startswith("RUN#") and "status" in i]
            api_jobs = {int(j["id"]): j for j in api.call("GET", "/jobs?limit=1000")}
            histories = api.each([("HISTORY", str(job_id), None) for job_id in ids], workers=4)
            api_runs = dict(zip(ids, histories, strict=True))
            stats = api.call("GET", "/jobs/stats/overview")
            timings["read"] = time.monotonic() - mark
        finally:
            code = server.stop()
        report_path, log_path = state / "chaos.json", state / "chaos-executions.jsonl"
        chaos_report = json.loads(report_path.read_text()) if report_path.exists() else {}
        # Everything the audit read, for looking into a finding.
        if log_path.exists():
            shutil.copy(log_path, OUT / "chaos-executions.jsonl")
        with (OUT / "chaos-table.jsonl").open("w") as dump:
            for item in items:
                dump.write(json.dumps(item, default=str) + "\n")
        executions: list[dict[str, Any]] = []
        deaths: dict[int, float] = {}
        if log_path.exists():
            for line in log_path.read_text().splitlines():
                entry = json.loads(line)
                if "dead" in entry:
                    deaths[int(entry["dead"])] = float(entry["at"])
                elif "e" in entry:
                    executions.append(entry)
    result = audit(
        jobs,
        runs,
        stats=stats,
        api_jobs=api_jobs,
        api_runs=api_runs,
        paused_at=paused_at,
        occurrences=occurrences,
        executions=executions,
        deaths=deaths,
        manual=manual,
    )
    findings = result.pop("findings")
    timings["total"] = time.monotonic() - started
    out: dict[str, Any] = {
        "command": command(),
        "chaos": spec,
        "jobs": len(created),
        "manual_runs": len(manual),
        "api_reads": reads,
        # Runs due while the jobs were active: every record but the skips after the pause.
        "runs_in_soak": sum(
            1
            for r in runs
            if r["scheduled_for"] < paused_at.get(int(r["job_id"]), r["scheduled_for"])
        ),
        "runs": result,
        "faults": chaos_report.get("faults", {}),
        "batches": chaos_report.get("batches"),
        "invocations": chaos_report.get("invocations", {}),
        "fault_counts": chaos_report.get("counts", {}),
        "api": {"retried": dict(api.retried), "errors_500": len(api.errors_500)},
        "settled": not still_moving(left),
        "still_moving": still_moving(left),
        "delayed_at_end": {k: v for k, v in left.items() if k not in still_moving(left)},
        "server_exit": code,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "server_log": log_summary(OUT / "chaos-server.log"),
        "findings": {k: v[:50] for k, v in findings.items() if v},
        "api_500s": api.errors_500[:50],
    }
    failed = [k for k in INVARIANTS if result[k]]
    if api.errors_500:
        failed.append("api_500s")
    if out["runs_in_soak"] < MIN_RUNS:
        failed.append(f"fewer than {MIN_RUNS} runs due in the soak")
    if not chaos_report:
        failed.append("no chaos report from the server")
    out["failed"] = failed
    out["ok"] = not failed
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=150, help="how long jobs run")
    parser.add_argument("--settle", type=float, default=150, help="the most to wait after")
    parser.add_argument("--tick", type=float, default=5, help="NEXUS_TICK_SECONDS")
    parser.add_argument("--manual", type=int, default=12, help="manual runs during the soak")
    parser.add_argument("--chaos", default="", help="local.run's --chaos SPEC (default: SEED)")
    parser.add_argument("--log-level", default="INFO", help="the server's NEXUS_LOG_LEVEL")
    args = parser.parse_args()
    out = soak(args)
    (OUT / "chaos.json").write_text(json.dumps(out, indent=1, default=str))
    runs, faults = out["runs"], out["faults"]
    print(
        f"chaos soak ({out['chaos']}): {out['jobs']} jobs, {out['runs_in_soak']} runs due in "
        f"the soak, {runs['records']} run records "
        f"({runs['attempts_run']} attempts run, {runs['retries']} retries, "
        f"{runs['task_executions']} task executions, {runs['re_executions']} of them again "
        f"after their runner died or failed; {runs['by_status']}), "
        f"{runs['occurrences_checked']} occurrences checked; start lateness p50 "
        f"{runs['start_lateness_p50_s']} s, p99 {runs['start_lateness_p99_s']} s"
    )
    print(
        "faults injected: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in faults.items())
        + f"; {out['batches']} batches received, invocations {out['invocations']}"
        + f"; API retried {out['api']['retried']}"
    )
    print(
        "invariants: "
        + ", ".join(f"{k.replace('_', ' ')} {runs[k]}" for k in INVARIANTS)
        + f", API 500s {out['api']['errors_500']}"
    )
    print(f"seconds: {out['seconds']}")
    for kind, items in out["findings"].items():
        print(f"-- {kind} ({runs[kind]}):")
        for item in items[:10]:
            print(f"   {item}")
    for line in out["api_500s"][:10]:
        print(f"-- API 500: {line}")
    print("PASS" if out["ok"] else f"FAIL: {', '.join(out['failed'])}")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
