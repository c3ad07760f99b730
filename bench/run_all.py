"""`make bench`: run every benchmark and write bench/RESULTS.md from what they measured."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from common import ROOT
from engine_bench import with_stream_handler, worker_memory_gb

from chalicelib import pricing

OUT = ROOT / "bench" / ".out"
SCRIPTS = [
    ["engine_bench.py", "capacity", "requests", "scale"],
    ["frequency_bench.py"],
    ["cold_start.py"],
    ["local_bench.py", "api", "precision"],
]
# Real-time event delivery exits 1 when its p99 is over 1 s or an event was not delivered,
# and the chaos soak when an invariant fails: RESULTS.md then says so, and make bench too.
REALTIME = ["realtime_bench.py"]
CHAOS = ["chaos.py"]


def machine() -> str:
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip() + ", "
                    break
    except OSError:
        pass
    return (
        f"{model}{platform.machine()}, {cores} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> None:
    """Run every benchmark, then write RESULTS.md; `--report-only` writes it again from the
    last run's figures (after editing NOTES.md, say), without measuring anything."""
    if "--report-only" not in sys.argv[1:]:
        started = time.monotonic()
        for script in SCRIPTS:
            print(f"== {' '.join(script)}", flush=True)
            subprocess.run([sys.executable, *script], cwd=ROOT / "bench", check=True)
        print(f"== {' '.join(REALTIME)}", flush=True)
        # A run that ends before writing its figures must not leave the last run's behind.
        (OUT / "realtime.json").unlink(missing_ok=True)
        realtime = subprocess.run([sys.executable, *REALTIME], cwd=ROOT / "bench")
        print(f"== {' '.join(CHAOS)}", flush=True)
        chaos = subprocess.run([sys.executable, *CHAOS], cwd=ROOT / "bench")
        run = {
            "finished": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
            "machine": machine(),
            "seconds": round(time.monotonic() - started),
        }
        (OUT / "run.json").write_text(json.dumps(run))
        report()
        if chaos.returncode:
            sys.exit("make bench: the chaos soak failed (bench/.out/chaos.json)")
        if realtime.returncode:
            sys.exit(
                "make bench: real-time event delivery missed its goal or lost events "
                "(bench/.out/realtime.json)"
            )
        return
    report()


def report() -> None:
    run = json.loads((OUT / "run.json").read_text())
    engine = json.loads((OUT / "engine.json").read_text())
    cold = json.loads((OUT / "cold_start.json").read_text())
    local = json.loads((OUT / "local.json").read_text())
    chaos = json.loads((OUT / "chaos.json").read_text())
    realtime_file = OUT / "realtime.json"
    realtime = json.loads(realtime_file.read_text()) if realtime_file.exists() else None
    scale, req, cap = engine["scale"], engine["requests"], engine["capacity"]
    freq = json.loads((OUT / "frequency.json").read_text())
    costs = frequency_costs(
        freq,
        req["worker_seconds_per_run"] * worker_memory_gb(),
        req["stream_handler"],
        early_wait_gb_seconds(req),
    )
    per_run = req["per_run"]
    prec, api = local["precision"], local["api"]
    rows = [
        (
            "Tick DynamoDB items read, 1k / 10k / 100k stored jobs, 100 due",
            " / ".join(str(r["dynamodb_items_read"]) for r in scale["rows"])
            + f" (ratio {scale['items_ratio']:.2f})",
            "100k/1k <= 1.1",
            verdict(scale["items_ratio"] <= 1.1),
            "items read counted by botocore events",
            "python bench/engine_bench.py scale",
        ),
        (
            "Tick AWS calls, 1k / 10k / 100k stored jobs, 100 due",
            " / ".join(str(r["aws_calls"]) for r in scale["rows"])
            + f" (ratio {scale['calls_ratio']:.2f})",
            "100k/1k <= 1.1",
            verdict(scale["calls_ratio"] <= 1.1),
            "calls counted by botocore events",
            "python bench/engine_bench.py scale",
        ),
        (
            "DynamoDB writes per run (requests; write units)",
            f"{per_run['dynamodb_writes']:.2f}; {per_run['dynamodb_write_units']:.2f} units",
            "<= 3",
            verdict(per_run["dynamodb_writes"] <= 3),
            "200 runs through app.tick and app.worker, tick to finished record",
            "python bench/engine_bench.py requests",
        ),
        (
            "DynamoDB reads per run (requests / items)",
            f"{per_run['dynamodb_reads']:.2f} / {per_run['dynamodb_items_read']:.2f}",
            "-",
            "-",
            "same run",
            "python bench/engine_bench.py requests",
        ),
        (
            "SQS requests per run (send / receive / delete / hold)",
            f"{per_run['sqs_requests']:.3f} ({per_run['sqs_sends']:.3f} / "
            f"{per_run['sqs_receives']:.3f} / {per_run['sqs_deletes']:.3f} / "
            f"{per_run['sqs_holds']:.3f})",
            "<= 0.3",
            verdict(per_run["sqs_requests"] <= 0.3),
            "through app.worker; receives and deletes as Lambda's event source makes them",
            "python bench/engine_bench.py requests",
        ),
        (
            "Lambda invocations per run",
            f"{per_run['lambda_invocations']:.3f}",
            "-",
            "-",
            "1 tick + 1 per batch of 10",
            "python bench/engine_bench.py requests",
        ),
        *frequency_rows(freq, costs),
        (
            "Start lateness p50 / p95 / p99 / max",
            f"{prec['p50_s'] * 1000:.0f} / {prec['p95_s'] * 1000:.0f} / "
            f"{prec['p99_s'] * 1000:.0f} / {prec['max_s'] * 1000:.0f} ms "
            f"({prec['runs']} of {prec['expected_runs']} runs of {prec['jobs']} jobs, "
            f"{prec['runs_per_second']:.0f} runs/s)",
            "p99 <= 1 s (stretch 250 ms)",
            verdict(prec["p99_s"] <= 1.0 and prec["not_started"] == 0),
            "started_at - scheduled_for on make run's stack",
            "python bench/local_bench.py precision",
        ),
        realtime_row(realtime),
        (
            "Dispatch capacity (tick CPU, stubbed AWS)",
            f"{cap['runs_per_cpu_second']:,.0f} runs/s = "
            f"{cap['runs_per_60s_tick']:,.0f} per 60 s tick",
            ">= 100,000 per minute",
            verdict(cap["runs_per_60s_tick"] >= 100_000),
            "EventBridge Scheduler's default quota: 1,000/s",
            "python bench/engine_bench.py capacity",
        ),
        capacity_row(cap),
        (
            "Cold start: import app over import boto3",
            f"{cold['over_boto3_ms']:.0f} ms ({cold['app_ms']:.0f} vs {cold['boto3_ms']:.0f} ms)",
            "-",
            "-",
            "python -X importtime, best of 7: app.py alone; the rest of the API is imported on "
            "first use (next row)",
            "python bench/cold_start.py",
        ),
        (
            "Cold start: the API's import path (import app + what its first request imports) "
            "over import boto3",
            f"GET /v1/jobs {cold['api_path_get_ms']:.0f} ms, POST /v1/jobs "
            f"{cold['api_path_post_ms']:.0f} ms ({len(cold['api_path_get_modules'])} / "
            f"{len(cold['api_path_post_modules'])} modules; medians "
            f"{cold['api_path_get_median_ms']:.0f} / {cold['api_path_post_median_ms']:.0f} ms)",
            "<= 150 ms",
            verdict(max(cold["api_path_get_ms"], cold["api_path_post_ms"]) <= 150),
            "modules a first request as Lambda hands it loads (sys.modules before / after), "
            "then imported alone in fresh interpreters with boto3 loaded, best of 7",
            "python bench/cold_start.py",
        ),
        (
            "Cold start: import app + first API request, boto3 loaded",
            f"{cold['first_request_total_ms']:.0f} ms ({cold['first_request_import_ms']:.0f} + "
            f"{cold['first_request_ms']:.0f} ms; a second request "
            f"{cold['second_request_ms']:.0f} ms)",
            "-",
            "-",
            "GET /v1/jobs with a key, chalice.test on the embedded AWS, best of 7: the first "
            "request loads what app.py leaves to first use, and makes the AWS clients",
            "python bench/cold_start.py",
        ),
    ]
    soak = chaos["runs"]
    faults = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in chaos["faults"].items())
    rows += [
        (
            "Chaos soak: runs doubled / lost / stuck",
            f"{soak['duplicates']} / {soak['lost']} / {soak['stuck']} "
            f"({chaos['runs_in_soak']} runs of {chaos['jobs']} jobs due in "
            f"{chaos['seconds']['soak']:.0f} s; {soak['attempts_run']} attempts, "
            f"{soak['retries']} retries, {soak['task_executions']} task executions)",
            "0 / 0 / 0 over >= 1,000 runs",
            verdict(chaos["ok"]),
            f"faults injected: {faults}",
            "make chaos",
        ),
        (
            "Chaos soak: other invariants",
            ", ".join(
                f"{k.replace('_', ' ')} {soak[k]}"
                for k in (
                    "overlaps",
                    "record_overlaps",
                    "status_mismatches",
                    "counter_mismatches",
                    "api_mismatches",
                )
            )
            + f", API 500s {chaos['api']['errors_500']}",
            "all 0",
            verdict(chaos["ok"]),
            f"start lateness p50 {soak['start_lateness_p50_s']} s, "
            f"p99 {soak['start_lateness_p99_s']} s; by status {soak['by_status']}",
            "make chaos",
        ),
    ]
    for name, r in api.items():
        rows.append(
            (
                f"API {name}: req/s, p99",
                f"{r['rps']:.1f} req/s, p99 {r['p99_ms']:.1f} ms ({r['requests']} requests)",
                "-",
                "-",
                "keep-alive client, one at a time, make run --no-engine",
                "python bench/local_bench.py api",
            )
        )
    lines = [
        "# Benchmark results",
        "",
        f"Made by `make bench` on {run['finished']}, on {run['machine']}, "
        f"in {run['seconds']} s. Counts and ratios come from one run each;",
        "wall-clock figures are noisy on a shared machine.",
        "",
        "| figure | value | goal | | anchor | command |",
        "|---|---|---|---|---|---|",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
        *realtime_section(realtime),
        "## What a run costs, by how often its job runs",
        "",
        *cost_table(costs),
        "",
        "## Where a goal is missed, and why",
        "",
        (ROOT / "bench" / "NOTES.md").read_text() if (ROOT / "bench" / "NOTES.md").exists() else "",
    ]
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(lines))
    write_readme_cost_table(cost_table(costs))
    print((ROOT / "bench" / "RESULTS.md").read_text())
    measured = with_stream_handler(
        per_run,
        req["worker_seconds_per_run"] * worker_memory_gb() + early_wait_gb_seconds(req),
        req["stream_handler"],
    )
    line = drift_line(measured)
    if line:
        print(line)


# The README's cost table sits between these lines; make bench writes what is between them.
COST_TABLE_START = "<!-- cost table: written by make bench (bench/run_all.py), do not edit -->"
COST_TABLE_END = "<!-- end of the cost table -->"
# The job frequency the goals are about (issue 15): a job that runs every minute or more often.
GOAL_FREQUENCIES = ("every 10 seconds", "once a minute")


def early_wait_gb_seconds(req: dict[str, Any]) -> float:
    """The worker's wait for runs that show up before their time (engine_bench.py,
    ShowsUp), in GB-seconds a run; 0 in an engine.json from before it was counted."""
    return float(req.get("early_wait_seconds_per_run", 0.0)) * worker_memory_gb()


def frequency_costs(
    freq: dict[str, Any], gb_seconds: float, stream: dict[str, float], early_wait: float = 0.0
) -> dict[str, dict[str, float]]:
    """Per frequency: what a run makes (bench/frequency_bench.py) and what it costs, on-demand
    and provisioned, beside EventBridge Scheduler + Lambda with the same task Lambda time (the
    worker's, measured by engine_bench.py requests at the prod worker's memory). NEXUS's side
    adds the stream handler's share of a run: `stream` (engine_bench.StreamReader.feed, one
    invocation a round of changes) per invocation, times the invocations a run at that
    frequency (frequency_bench counts them where it counts the count's write); and the
    worker's wait for runs that show up early (`early_wait` GB-seconds a run), which a task
    EventBridge Scheduler invokes at its time does not have."""
    out = {}
    for name, f in freq.items():
        # The stream handler's share at this frequency: what an invocation of it costs
        # (engine_bench), times its invocations a run here (one a round of changes).
        share = stream
        if "stream_invocations" in f["per_run"] and stream["lambda_invocations"]:
            scale = f["per_run"]["stream_invocations"] / stream["lambda_invocations"]
            share = {k: v * scale for k, v in stream.items()}
        per_run = with_stream_handler(f["per_run"], gb_seconds + early_wait, share)
        out[name] = {
            **per_run,
            "stream_gb_seconds": share["lambda_gb_seconds"],
            "early_wait_gb_seconds": early_wait,
            "stream_invocations": share["lambda_invocations"],
            "on_demand": 1e6 * pricing.cost_per_run(per_run),
            "provisioned": 1e6 * pricing.provisioned_cost_per_run(per_run),
            "scheduler": 1e6 * pricing.scheduler_cost_per_run(gb_seconds),
            "runs": f["runs"],
            "jobs": f["jobs"],
        }
    return out


def frequency_rows(
    freq: dict[str, Any], costs: dict[str, dict[str, float]]
) -> list[tuple[str, ...]]:
    units = " / ".join(
        f"{c['dynamodb_write_units']:.2f}" + (f" ({name})" if name else "")
        for name, c in costs.items()
    )
    worst = max(costs[n]["dynamodb_write_units"] for n in GOAL_FREQUENCIES if n in costs)
    minute = costs.get("once a minute")
    rows: list[tuple[str, ...]] = [
        (
            "DynamoDB write units per run, by job frequency",
            units,
            "<= 4 for jobs every minute or more often",
            verdict(worst <= 4),
            "10 jobs of each on the engine's virtual clock (tests/engine/harness.py), batches "
            "of 10 as Lambda sends them; by item size, 2 per item in a transaction, 2 per "
            "move of a due-index entry",
            "python bench/frequency_bench.py",
        )
    ]
    if minute is not None:
        rows.append(
            (
                "AWS cost per million runs of a once-a-minute job",
                f"${minute['on_demand']:.2f} on-demand; ${minute['provisioned']:.2f} with "
                f"provisioned capacity at {pricing.PROVISIONED_UTILIZATION:.0%} use",
                "<= $2.00",
                verdict(minute["on_demand"] <= 2),
                f"EventBridge Scheduler + Lambda: ${minute['scheduler']:.2f}; "
                f"{pricing.PRICES_AS_OF}",
                "python bench/frequency_bench.py + engine_bench.py requests",
            )
        )
    return rows


def cost_table(costs: dict[str, dict[str, float]]) -> list[str]:
    """The cost table of RESULTS.md and the README, from the same figures."""
    lines = [
        "| a run of a job that runs | DynamoDB write units | items read | SQS requests "
        "| Lambda invocations | on-demand, per million runs | provisioned capacity "
        f"({pricing.PROVISIONED_UTILIZATION:.0%} use) | EventBridge Scheduler + Lambda |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in costs.items():
        lines.append(
            f"| {name} | {c['dynamodb_write_units']:.2f} | {c['dynamodb_items_read']:.2f} | "
            f"{c['sqs_requests']:.3f} | {c['lambda_invocations']:.3f} | "
            f"${c['on_demand']:.2f} | ${c['provisioned']:.2f} | ${c['scheduler']:.2f} |"
        )
    first = next(iter(costs.values()), None)
    stream_gb = first["stream_gb_seconds"] if first else 0.0
    wait_gb = first.get("early_wait_gb_seconds", 0.0) if first else 0.0
    gb = first["lambda_gb_seconds"] - stream_gb - wait_gb if first else 0.0
    stream_calls = first["stream_invocations"] if first else 0.0
    lines += [
        "",
        f"Prices: {pricing.PRICES_AS_OF}; Lambda at ${pricing.PRICE['lambda_gb_second']:.10f} "
        f"per GB-second. Lambda time: {gb:.4f} GB-seconds a run on both sides (the worker's "
        "time for a task that returns at once, with AWS in a process of its own and the CPU "
        "slowed to the share of a vCPU the prod worker's memory buys: "
        "bench/engine_bench.py lambda_seconds); NEXUS's side adds the worker's wait for a "
        f"run that shows up before its second ({wait_gb:.4f} GB-seconds a run: SQS delays "
        "are whole seconds, so the tick holds its sends until each message will show up "
        "within 50 ms of its run; measured from the instant each was sent and its delay, an "
        "invocation waiting for the earliest of its messages) and the stream handler's "
        f"{stream_gb:.4f} GB-seconds and {stream_calls:.3f} invocations a run (one a round "
        "of changes, no WebSocket listener), counted in the columns. Provisioned: "
        f"${pricing.PRICE['dynamodb_wcu_hour']} per write unit-hour and "
        f"${pricing.PRICE['dynamodb_rcu_hour']} per read unit-hour, with a steady load using "
        f"{pricing.PROVISIONED_UTILIZATION:.0%} of what is provisioned. Not included: the "
        "task's own time, retries, the monthly floor (the tick, whose hold of under a "
        "second a minute is at most 21,600 GB-seconds, $0.29 at the tick's 512 MB, a "
        "month; queue polling, alarms).",
    ]
    return lines


def write_readme_cost_table(table: list[str]) -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(COST_TABLE_START), text.index(COST_TABLE_END)
    block = "\n".join([COST_TABLE_START, *table, COST_TABLE_END])
    readme.write_text(text[:start] + block + text[end + len(COST_TABLE_END) :])


def drift_line(measured: dict[str, float]) -> str | None:
    """A line naming each per-run figure more than 10% away from `pricing.PER_RUN`, the
    constants the API's cost estimates use; None when all are within."""
    off = pricing.drift(measured)
    if not off:
        return None
    figures = "; ".join(f"{key} measured {m:.4g}, PER_RUN {c:.4g}" for key, (m, c) in off.items())
    return (
        f"PER_RUN drift over {pricing.DRIFT_TOLERANCE:.0%}: {figures}. Update PER_RUN in "
        "chalicelib/pricing.py to these figures."
    )


def capacity_row(cap: dict[str, Any]) -> tuple[str, ...]:
    """The tick's runs a minute when each call takes what AWS takes (the stub sleeps)."""
    lat = cap.get("latency")
    goal, command = ">= 100,000 runs per 60 s tick", "python bench/engine_bench.py capacity"
    if lat is None:
        name = "Dispatch capacity with latency (DynamoDB 5 ms, SQS 10 ms)"
        return (name, "not measured (an older engine.json)", goal, verdict(False), "-", command)
    name = (
        f"Dispatch capacity with latency (DynamoDB {lat['dynamodb_ms']:g} ms, "
        f"SQS {lat['sqs_batch_ms']:g} ms)"
    )
    return (
        name,
        f"{lat['runs_per_60s_tick']:,.0f} per 60 s tick ({lat['runs']:,} runs in "
        f"{lat['seconds']:.1f} s, {lat['calls']:,} calls, {lat['concurrency']} at once)",
        goal,
        verdict(lat["runs_per_60s_tick"] >= 100_000),
        "stubbed AWS that sleeps per call; botocore's own CPU per call not included",
        command,
    )


def realtime_row(rt: dict[str, Any] | None) -> tuple[str, ...]:
    name, goal = "Event delivery p50 / p95 / p99 / max, write to WebSocket client", "p99 <= 1 s"
    command = "python bench/realtime_bench.py"
    if rt is None:
        return (
            name,
            "not measured (no bench/.out/realtime.json)",
            goal,
            verdict(False),
            "-",
            command,
        )
    o = rt["overall"]
    if not o["count"]:
        return (name, "no event received", goal, verdict(False), "-", command)
    return (
        name,
        f"{o['p50_s'] * 1000:.0f} / {o['p95_s'] * 1000:.0f} / {o['p99_s'] * 1000:.0f} / "
        f"{o['max_s'] * 1000:.0f} ms ({o['count']} events to {rt['clients']} clients; "
        f"{rt['missing_events']} of {rt['expected_events']} missing)",
        f"{goal}, none missing",
        verdict(rt["ok"]),
        'make run; by event kind in "Real-time event delivery" below',
        command,
    )


def realtime_section(rt: dict[str, Any] | None) -> list[str]:
    lines = ["## Real-time event delivery (make run)", ""]
    if rt is None:
        return [*lines, "Not measured: `bench/realtime_bench.py` wrote no figures.", ""]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f} ms"

    rows = [*rt["delays"].items(), ("all of them", rt["overall"])]
    lines += [
        f'{rt["clients"]} WebSocket clients subscribed to `"*"` on `make run`, while '
        f"{rt['jobs']} interval jobs (every 1 to 3 s) ran for {rt['seconds']} s: "
        f"{rt['runs']} runs ({', '.join(f'{v} {k}' for k, v in rt['runs_by_status'].items())}). "
        "Delay: when the client's `recv` returned (time.time()) minus when the table recorded "
        "the change, on the same clock: the event's `recorded_at` (the embedded AWS's stream "
        "time for the record), for every kind. "
        "Percentiles are nearest-rank. A run's end is recorded with its batch's, after the "
        "task ended (`completed_at`): that wait is the worker's, not delivery; its p50 / p99: "
        f"{ms(rt['outcome_write_wait']['p50_s'])} / {ms(rt['outcome_write_wait']['p99_s'])}.",
        "",
        "| event | count | p50 | p95 | p99 | max | p99 <= 1 s |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {name} | {s['count']} | {ms(s['p50_s'])} | {ms(s['p95_s'])} | "
            f"{ms(s['p99_s'])} | {ms(s['max_s'])} | "
            f"{'-' if s['p99_s'] is None else verdict(s['p99_s'] <= rt['goal_p99_s'])} |"
            for name, s in rows
        ],
        "",
        f"Completeness: each job's history (`GET /jobs/{{id}}/executions`) read once its runs "
        f"were over; every run in it, by its status, and every job's creation make "
        f"{rt['expected_events']} events for the clients together: {rt['received_events']} "
        f"received, **{rt['missing_events']} missing**, {rt['duplicate_events']} duplicates"
        + (f", client errors: {'; '.join(rt['client_errors'])}" if rt["client_errors"] else "")
        + ".",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
