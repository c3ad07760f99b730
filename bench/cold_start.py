"""Cold start: the import time of app.py against a bare `import boto3`, in the same run; and
what a fresh process then spends on its first API request.

1. `import app` over `import boto3`: cumulative times from `python -X importtime`, each in a
   fresh interpreter, best of N. The two are measured in turns (boto3, app, boto3, ...) so
   that a load that comes and goes on the machine weighs on both alike.
2. `import app` + the first API request: app.py imports only what its routes and handlers
   need to be declared, and each getter imports the rest on first use, so part of what was
   paid at import is paid by the first request instead. Here a fresh interpreter, with boto3
   and the test harness (chalice.test, which Lambda does not load) already imported, imports
   app and sends one authenticated GET /v1/jobs to an embedded AWS (moto's server in a child
   process, local/aws_process.py), then a second one: the first request's time over the
   second's is what the first request pays for being first (imports, AWS clients, the
   key's first lookup). Best of N, and the median.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from common import BENCH_KEY, ROOT, command, local_env


def import_ms(module: str) -> float:
    """Cumulative import time of `module` in a fresh interpreter, from -X importtime."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "0"}
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    for line in reversed(out.splitlines()):
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if m and m.group(2) == module:
            return int(m.group(1)) / 1000
    raise RuntimeError(f"no import line for {module}")


# Run in a fresh interpreter: prints the three times, in ms, as JSON.
FIRST_REQUEST = """
import json, sys, time
import boto3
from chalice.test import Client
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
# chalice.test.Client sets the stage's environment (.chalice/config.json) during each call:
# the settings are read first, so that the app uses the bench's table (as tests/conftest.py).
from chalicelib.config import get_settings
get_settings()
headers = {"Authorization": "Bearer " + sys.argv[1]}
with Client(app.app) as client:
    t2 = time.perf_counter()
    first = client.http.get("/v1/jobs", headers=headers)
    t3 = time.perf_counter()
    second = client.http.get("/v1/jobs", headers=headers)
    t4 = time.perf_counter()
assert first.status_code == second.status_code == 200, (first.status_code, first.body)
print(json.dumps({"import": (t1 - t0) * 1000, "first": (t3 - t2) * 1000,
                  "second": (t4 - t3) * 1000}))
"""


def first_request_ms(repeats: int) -> dict[str, float]:
    """import app + the first GET /v1/jobs in a fresh interpreter (see the module's doc)."""
    from local.aws_process import EmbeddedAws
    from local.resources import ensure_queue, ensure_table

    moto = EmbeddedAws().start()
    try:
        os.environ["NEXUS_AWS_ENDPOINT_URL"] = moto.endpoint
        from chalicelib.aws import client
        from chalicelib.config import get_settings
        from chalicelib.security.admin import KeyService
        from chalicelib.store import Store

        ensure_table(client("dynamodb"), get_settings().table_name, stream=False)
        os.environ["NEXUS_QUEUE_URL"] = ensure_queue(client("sqs"), "nexus-bench-work")
        store = Store.over(client("dynamodb"), get_settings().table_name)
        KeyService(store).ensure_key(BENCH_KEY, "bench admin", datetime.now(UTC))
        runs: list[dict[str, float]] = []
        for _ in range(repeats):
            out = subprocess.run(
                [sys.executable, "-c", FIRST_REQUEST, BENCH_KEY],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise RuntimeError(f"the first-request run failed:\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        moto.stop()
    totals = [r["import"] + r["first"] for r in runs]
    best = min(runs, key=lambda r: r["import"] + r["first"])
    return {
        "first_request_total_ms": min(totals),
        "first_request_total_median_ms": statistics.median(totals),
        "first_request_import_ms": best["import"],
        "first_request_ms": best["first"],
        "second_request_ms": min(r["second"] for r in runs),
    }


def main(repeats: int = 7) -> dict[str, Any]:
    local_env()
    import_ms("app")  # compile the bytecode once, as a deployed package has it
    boto_runs: list[float] = []
    app_runs: list[float] = []
    for _ in range(repeats):
        boto_runs.append(import_ms("boto3"))
        app_runs.append(import_ms("app"))
    boto, app = min(boto_runs), min(app_runs)
    over_median = statistics.median(a - b for a, b in zip(app_runs, boto_runs, strict=True))
    print(
        f"import boto3: {boto:.0f} ms; import app: {app:.0f} ms; app over boto3: "
        f"{app - boto:.0f} ms (best of {repeats}; median of the pairs {over_median:.0f} ms)"
    )
    first = first_request_ms(repeats)
    print(
        f"import app + first GET /v1/jobs, boto3 loaded: {first['first_request_total_ms']:.0f} ms "
        f"({first['first_request_import_ms']:.0f} + {first['first_request_ms']:.0f} ms; "
        f"a second request: {first['second_request_ms']:.0f} ms) "
        f"(best of {repeats}; median {first['first_request_total_median_ms']:.0f} ms)"
    )
    return {
        "boto3_ms": boto,
        "app_ms": app,
        "over_boto3_ms": app - boto,
        "over_boto3_median_ms": over_median,
        **first,
        "command": command(),
    }


if __name__ == "__main__":
    result = main()
    (ROOT / "bench" / ".out").mkdir(exist_ok=True)
    (ROOT / "bench" / ".out" / "cold_start.json").write_text(json.dumps(result, indent=1))
