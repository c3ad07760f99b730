"""On the local stack (make run's server): start precision, and API throughput and latency."""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common import AUTH, BENCH_KEY, ROOT, command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], ready: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NEXUS_"))}
    env["NEXUS_LOG_LEVEL"] = "WARNING"
    env["NEXUS_ADMIN_KEY"] = BENCH_KEY
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stdout = proc.stdout
    assert stdout is not None
    if ready:
        for line in stdout:
            if line.startswith(ready):
                break
    # Keep reading what it prints: a full pipe would stop the server mid-benchmark.
    threading.Thread(target=lambda: [None for _ in stdout], daemon=True).start()
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def call(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None) -> Any:
    conn.request(
        method,
        path,
        body=None if body is None else json.dumps(body),
        headers={"Content-Type": "application/json", **AUTH},
    )
    response = conn.getresponse()
    data = response.read()
    if response.status >= 400:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def precision(jobs: int = 50, interval: int = 5, seconds: int = 35) -> dict[str, Any]:
    """`jobs` interval jobs, every `interval` s, spread over its seconds, for `seconds`.

    Each job has an end_time, so the expected runs are known in advance; the benchmark waits
    until every one of them is over (or a minute more), and a run that never started counts
    as not started rather than dropping out of the figures.
    """
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        proc = start(
            [
                "-m",
                "local.run",
                "--port",
                str(port),
                "--ws-port",
                "0",
                "--quiet",
                "--state-dir",
                state,
            ],
            "State in",
        )
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            # Start the runs once every job exists (a create takes a few hundred ms on moto).
            t0 = (datetime.now(UTC) + timedelta(seconds=jobs * 0.5 + 10)).replace(microsecond=0)
            end = t0 + timedelta(seconds=seconds)
            expected: dict[int, int] = {}
            for i in range(jobs):
                start_at = t0 + timedelta(seconds=i % interval)
                job = call(
                    conn,
                    "POST",
                    "/api/v1/jobs",
                    {
                        "name": f"precision {i}",
                        "job_type": "interval",
                        "task_name": "nexus.echo",
                        "interval_seconds": interval,
                        "start_time": stamp(start_at),
                        "end_time": stamp(end),
                    },
                )
                # Runs at start_at, start_at + interval, ... up to end_time included.
                expected[job["id"]] = int((end - start_at).total_seconds() // interval) + 1
            # Reading every job's history makes moto walk the table: only once the runs are
            # over, so the reads do not slow down the last of them.
            time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 5)
            deadline = time.monotonic() + 60
            while True:
                runs = {
                    job_id: [
                        r
                        for r in call(conn, "GET", f"/api/v1/jobs/{job_id}/executions?limit=500")
                        if r["trigger"] == "scheduled"
                    ]
                    for job_id in expected
                }
                over = sum(
                    1 for rs in runs.values() for r in rs if r["status"] in ("completed", "failed")
                )
                if over >= sum(expected.values()) or time.monotonic() > deadline:
                    break
                time.sleep(5)
        finally:
            stop(proc)
    late: list[float] = []
    rows: list[dict[str, Any]] = []
    for rs in runs.values():
        for run in rs:
            rows.append(run)
            if run["started_at"]:
                started, due = parse(run["started_at"]), parse(run["scheduled_for"])
                late.append((started - due).total_seconds())
    # Every run, for looking into a figure that misses its goal.
    (ROOT / "bench" / ".out").mkdir(exist_ok=True)
    (ROOT / "bench" / ".out" / "precision_runs.json").write_text(json.dumps(rows, indent=0))
    result = {
        "runs": len(late),
        "expected_runs": sum(expected.values()),
        "not_started": sum(expected.values()) - len(late),
        "jobs": jobs,
        "runs_per_second": jobs / interval,
        "p50_s": percentile(late, 50),
        "p95_s": percentile(late, 95),
        "p99_s": percentile(late, 99),
        "max_s": max(late),
        "min_s": min(late),
    }
    print(
        "start precision: "
        + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
        )
    )
    return result


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def measure(
    conn: http.client.HTTPConnection, method: str, path: str, body: Any = None, n: int = 300
) -> dict[str, float]:
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        call(conn, method, path, body(i) if callable(body) else body)
        latencies.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    return {
        "requests": n,
        "rps": n / total,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


def api(n: int = 300) -> dict[str, Any]:
    port, bare_port = free_port(), free_port()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as state:
        proc = start(
            [
                "-m",
                "local.run",
                "--ws-port",
                "0",
                "--port",
                str(port),
                "--quiet",
                "--no-engine",
                "--state-dir",
                state,
            ],
            "State in",
        )
        bare = start([str(ROOT / "bench" / "bare_app.py"), str(bare_port)], "")
        try:
            wait_port(bare_port)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            job = {"job_type": "interval", "interval_seconds": 86400, "task_name": "nexus.echo"}
            first = None
            for i in range(150):
                created = call(conn, "POST", "/api/v1/jobs", {"name": f"api {i}", **job})
                first = first or created["id"]
            results["GET /jobs/{id}"] = measure(conn, "GET", f"/api/v1/jobs/{first}", n=n)
            results["GET /jobs/?limit=100"] = measure(
                conn, "GET", "/api/v1/jobs/?limit=100", n=n // 10
            )
            results["POST /jobs/"] = measure(
                conn, "POST", "/api/v1/jobs/", lambda i: {"name": f"bench {i}", **job}, n=n // 3
            )
            bare_conn = http.client.HTTPConnection("127.0.0.1", bare_port, timeout=30)
            results["bare Chalice route"] = measure(bare_conn, "GET", "/api/v1/ping", n=n)
        finally:
            for p in (proc, bare):
                stop(p)
    for name, r in results.items():
        print(
            f"{name:<22} {r['rps']:7.1f} req/s  p50 {r['p50_ms']:6.1f} ms  "
            f"p99 {r['p99_ms']:6.1f} ms"
        )
    return results


if __name__ == "__main__":
    which = sys.argv[1:] or ["api", "precision"]
    out: dict[str, Any] = {"command": command()}
    if "api" in which:
        out["api"] = api()
    if "precision" in which:
        out["precision"] = precision()
    (ROOT / "bench" / ".out").mkdir(exist_ok=True)
    (ROOT / "bench" / ".out" / "local.json").write_text(json.dumps(out, indent=1))
