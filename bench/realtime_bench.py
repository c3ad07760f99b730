"""On make run's stack: real-time event delivery, from the write to a WebSocket client.

`make run` on free ports with a fresh state directory; CLIENTS WebSocket clients subscribe to
every job ("*", docs/realtime.md); JOBS interval jobs (every 1 to 3 s, nexus.echo, and
nexus.fail for one in ten so that run.failed is seen too) run for SECONDS. Each client
notes when every frame arrives (time.time() as `recv` returns it, before parsing), and the
delay of an event is that minus when its record was written, on the same machine's clock:

- every event kind: the event's `recorded_at`, when the table recorded the change (the
  embedded AWS's change-stream time for the record). A run's end is recorded with its
  batch's, up to engine.batch.COALESCE_SECONDS after `data.completed_at`; that wait is the
  worker's, not delivery, and is reported apart (`outcome_write_wait`). A job's creation is
  recorded while its POST is answered; the POST's own time is the API's, not delivery
  (measured from just before the POST was sent, one run gave job.created a p99 of 1.09 s
  where from its record it is a fraction of that).

Percentiles are nearest-rank: the p-th of N sorted delays is the ceil(p/100 * N)-th (1-based).

Completeness: once every job's runs are over, each job's history is read
(GET /jobs/{id}/executions) and every run in it stands for the events its status implies
(completed: run.started + run.succeeded, failed: run.started + run.failed, skipped /
missed: run.skipped / run.missed), keyed by the run's id; with job.created for each job,
every client must have received every one of them. Missing ones are counted (goal 0).

Exits 1 if an event kind's delay p99 (or all kinds') is over GOAL_P99_S, an event is
missing, or a client failed. Figures: bench/.out/realtime.json; every delay:
bench/.out/realtime_events.json.
"""

from __future__ import annotations

import http.client
import json
import math
import resource
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from common import BENCH_KEY, ROOT, command
from local_bench import call, free_port, parse, stamp, start, stop
from websockets.sync.client import connect

CLIENTS = 5
JOBS = 20
SECONDS = 60
GOAL_P99_S = 1.0
# The delays measured, and what every run's record in the history says a client must get.
MEASURED = ("job.created", "run.started", "run.succeeded", "run.failed")
BY_STATUS = {
    "running": ("run.started",),
    "completed": ("run.started", "run.succeeded"),
    "failed": ("run.started", "run.failed"),
    "dead_lettered": ("run.failed",),
    "skipped": ("run.skipped",),
    "missed": ("run.missed",),
}
CHECKED = {"job.created", *(k for kinds in BY_STATUS.values() for k in kinds)}
FINAL = {"completed", "failed", "dead_lettered", "skipped", "missed"}


def nearest_rank(values: list[float], p: float) -> float:
    """The nearest-rank percentile: the ceil(p/100 * N)-th smallest of N values (1-based)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "p50_s": None, "p95_s": None, "p99_s": None, "max_s": None}
    return {
        "count": len(values),
        "p50_s": nearest_rank(values, 50),
        "p95_s": nearest_rank(values, 95),
        "p99_s": nearest_rank(values, 99),
        "max_s": max(values),
    }


class Client(threading.Thread):
    """One WebSocket client subscribed to "*": every frame, with when it arrived."""

    def __init__(self, url: str, index: int) -> None:
        super().__init__(name=f"realtime-client-{index}", daemon=True)
        self.url = url
        self.frames: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        try:
            with connect(self.url, open_timeout=30, max_size=None) as ws:
                ws.send(json.dumps({"action": "subscribe", "jobs": "*"}))
                while not self.done.is_set():
                    try:
                        text = ws.recv(timeout=0.2)
                    except TimeoutError:
                        continue
                    at = time.time()
                    frame = text if isinstance(text, str) else text.decode()
                    if not self.ready.is_set() and '"subscribed"' in frame:
                        self.ready.set()
                        continue
                    self.frames.append((at, frame))
        except Exception as exc:  # reported, and the benchmark fails on it
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def events(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, json.loads(text)) for at, text in self.frames]


def event_key(event: dict[str, Any]) -> tuple[str, str]:
    """What an event is about: a run's id, or the job's id for a job's events."""
    kind = event.get("type", "")
    if kind.startswith("run."):
        return kind, str((event.get("data") or {}).get("id"))
    return kind, str(event.get("job_id"))


def written_at(event: dict[str, Any]) -> float | None:
    recorded = event.get("recorded_at")
    return parse(recorded).timestamp() if recorded else None


def history(conn: http.client.HTTPConnection, job_ids: list[int]) -> dict[int, list[Any]]:
    return {j: call(conn, "GET", f"/api/v1/jobs/{j}/executions?limit=500") for j in job_ids}


def measure(
    clients: int = CLIENTS, jobs: int = JOBS, seconds: int = SECONDS
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    port, ws_port = free_port(), free_port()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    with tempfile.TemporaryDirectory() as state:
        proc = start(
            [
                "-m",
                "local.run",
                "--port",
                str(port),
                "--ws-port",
                str(ws_port),
                "--quiet",
                "--state-dir",
                state,
            ],
            "State in",
        )
        listeners: list[Client] = []
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            url = call(conn, "GET", "/api/v1/realtime")["url"]
            url += "?" + urllib.parse.urlencode({"token": BENCH_KEY})
            listeners = [Client(url, i) for i in range(clients)]
            for c in listeners:
                c.start()
            for c in listeners:
                if not c.ready.wait(60) or c.error:
                    raise RuntimeError(f"a client did not subscribe: {c.error or 'timeout'}")

            # The runs start once every job exists (a create takes tens of ms on moto).
            t0 = (datetime.now(UTC) + timedelta(seconds=5 + jobs * 0.1)).replace(microsecond=0)
            end = t0 + timedelta(seconds=seconds)
            posted: dict[int, float] = {}
            expected_runs: dict[int, int] = {}
            for i in range(jobs):
                interval = 1 + i % 3
                start_at = t0 + timedelta(seconds=i % interval)
                body = {
                    "name": f"realtime {i}",
                    "job_type": "interval",
                    "task_name": "nexus.fail" if i % 10 == 9 else "nexus.echo",
                    "interval_seconds": interval,
                    "start_time": stamp(start_at),
                    "end_time": stamp(end),
                }
                before = time.time()
                job = call(conn, "POST", "/api/v1/jobs", body)
                posted[job["id"]] = before
                expected_runs[job["id"]] = int((end - start_at).total_seconds() // interval) + 1
            late_creates = max(0.0, time.time() - t0.timestamp())

            # Every run over (or half a minute more), then the history, read once the runs
            # are over so that moto's table walks do not slow them down.
            time.sleep(max(0.0, end.timestamp() - time.time()) + 3)
            deadline = time.monotonic() + 30
            while True:
                runs = history(conn, list(posted))
                over = sum(1 for rs in runs.values() for r in rs if r["status"] in FINAL)
                if over >= sum(expected_runs.values()) or time.monotonic() > deadline:
                    break
                time.sleep(2)

            expected: set[tuple[str, str]] = {("job.created", str(j)) for j in posted}
            for rs in runs.values():
                for r in rs:
                    for kind in BY_STATUS.get(r["status"], ()):
                        if kind == "run.started" and not r.get("started_at"):
                            continue
                        expected.add((kind, str(r["id"])))
            # What was written is in the history now; give the last events a moment to
            # arrive (the delays themselves are unaffected by this wait).
            settle = time.monotonic() + 10
            while time.monotonic() < settle:
                got = [{event_key(json.loads(t)) for _, t in c.frames} for c in listeners]
                if all(expected <= g for g in got):
                    break
                time.sleep(0.5)
        finally:
            for c in listeners:
                c.done.set()
            for c in listeners:
                c.join(10)
            stop(proc)

    used = resource.getrusage(resource.RUSAGE_SELF)
    client_cpu = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    errors = [c.error for c in listeners if c.error]
    delays: dict[str, list[float]] = {k: [] for k in MEASURED}
    write_waits: list[float] = []  # a run's end to its record's write (the worker's batching)
    rows: list[dict[str, Any]] = []
    received = duplicates = unexpected = 0
    missing: list[dict[str, Any]] = []
    by_type: Counter[str] = Counter()
    for index, c in enumerate(listeners):
        seen: set[tuple[str, str]] = set()
        for at, event in c.events():
            key = event_key(event)
            by_type[key[0]] += 1
            # Job events other than job.created recur (job.updated, ...): only a run's event
            # or a job's creation seen twice is a duplicate.
            if key[0] not in CHECKED:
                continue
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            if key not in expected:
                unexpected += 1
            if key[0] not in MEASURED:
                continue
            written = written_at(event)
            if written is None:
                continue
            delays[key[0]].append(at - written)
            ended = (event.get("data") or {}).get("completed_at")
            if index == 0 and key[0] in ("run.succeeded", "run.failed") and ended:
                write_waits.append(written - parse(ended).timestamp())
            rows.append(
                {
                    "client": index,
                    "type": key[0],
                    "key": key[1],
                    "written_at": written,
                    "received_at": at,
                    "delay_s": at - written,
                }
            )
        received += len(expected & seen)
        missing += [{"client": index, "type": k, "key": i} for k, i in sorted(expected - seen)]

    per_kind = {k: summary(v) for k, v in delays.items()}
    overall = summary([d for v in delays.values() for d in v])
    statuses = Counter(r["status"] for rs in runs.values() for r in rs)
    goal_met = all(s["p99_s"] is None or s["p99_s"] <= GOAL_P99_S for s in per_kind.values())
    goal_met = goal_met and overall["p99_s"] is not None and overall["p99_s"] <= GOAL_P99_S
    result = {
        "clients": clients,
        "jobs": jobs,
        "seconds": seconds,
        "runs": sum(statuses.values()),
        "expected_runs": sum(expected_runs.values()),
        "runs_by_status": dict(statuses),
        "creates_late_s": round(late_creates, 3),
        # This process's CPU (the clients, and reading the history): small beside the stack's.
        "client_cpu_s": round(client_cpu, 2),
        "delays": per_kind,
        "overall": overall,
        "outcome_write_wait": summary(write_waits),
        "events_by_type": dict(by_type),
        "expected_events": len(expected) * clients,
        "received_events": received,
        "missing_events": len(expected) * clients - received,
        "missing_examples": missing[:20],
        "duplicate_events": duplicates,
        "unexpected_events": unexpected,
        "client_errors": errors,
        "goal_p99_s": GOAL_P99_S,
        "percentiles": "nearest-rank",
        "goal_met": goal_met,
    }
    result["ok"] = bool(goal_met and result["missing_events"] == 0 and not errors)
    return result, rows


def show(result: dict[str, Any]) -> None:
    print(
        f"{result['clients']} clients, {result['jobs']} jobs, {result['runs']} runs "
        f"({result['runs_by_status']}; {result['expected_runs']} expected) in "
        f"{result['seconds']} s"
    )
    print(f"{'event':<14} {'count':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in [*result["delays"].items(), ("overall", result["overall"])]:
        if not s["count"]:
            print(f"{name:<14} {0:>6}")
            continue
        print(
            f"{name:<14} {s['count']:>6} {s['p50_s'] * 1000:>8.0f} {s['p95_s'] * 1000:>8.0f} "
            f"{s['p99_s'] * 1000:>8.0f} {s['max_s'] * 1000:>8.0f}"
        )
    print(
        f"events expected {result['expected_events']}, received {result['received_events']}, "
        f"missing {result['missing_events']}, duplicates {result['duplicate_events']}, "
        f"client errors {len(result['client_errors'])}"
    )
    print(
        f"goal p99 <= {result['goal_p99_s']:.0f} s: {'met' if result['goal_met'] else 'MISSED'}; "
        f"{'ok' if result['ok'] else 'FAILED'}"
    )


def options(argv: list[str]) -> dict[str, int]:
    """`--clients N`, `--jobs N`, `--seconds N`: for looking into a figure (make bench runs
    the defaults)."""
    out: dict[str, int] = {}
    for name, value in zip(argv[::2], argv[1::2], strict=False):
        if name.removeprefix("--") not in ("clients", "jobs", "seconds"):
            sys.exit(f"unknown option {name}")
        out[name.removeprefix("--")] = int(value)
    return out


if __name__ == "__main__":
    result, rows = measure(**options(sys.argv[1:]))
    show(result)
    out = ROOT / "bench" / ".out"
    out.mkdir(exist_ok=True)
    # Every delay, for looking into a figure that misses its goal.
    (out / "realtime_events.json").write_text(json.dumps(rows, indent=0))
    (out / "realtime.json").write_text(json.dumps({"command": command(), **result}, indent=1))
    if not result["ok"]:
        sys.exit(1)
