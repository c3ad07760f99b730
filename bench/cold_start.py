"""Cold start: the import time of app.py against a bare `import boto3`, in the same run; the
API function's whole import path; and what a fresh process then spends on its first request.

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
3. The API function's import path: `import app` alone leaves most of the API to first use,
   so figure 1 is not what the API function imports before it answers. Here a fresh
   interpreter with boto3 imported imports app and answers one request as Lambda hands it
   to the API function (`app.app(event, context)`; the authorizer, a function of its own,
   runs in this process to give the route its context), and the modules that were not loaded
   before (sys.modules, in the order they were first loaded) are its import path: for an
   authenticated POST /v1/jobs of a cron job, and separately for a GET /v1/jobs that lists
   it. Then, best of N in fresh interpreters with boto3 imported: the time to `import app`
   and importlib.import_module each of those names in that order: imports only (no AWS
   client is made, nothing is sent), nothing subtracted.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from common import BENCH_KEY, ROOT, command, local_env


def import_ms(module: str) -> float:
    """Cumulative import time of `module` in a fresh interpreter, from -X importtime."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
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


# Run in a fresh interpreter, as Lambda runs the API function: boto3 loaded, app imported,
# one request handed over as API Gateway's proxy event with the authorizer's context. Prints
# the modules the import and the request loaded, in the order they were first loaded.
API_REQUEST = """
import json, sys
import boto3
before = set(sys.modules)
import app
method, body, token = sys.argv[1], sys.argv[2] or None, "Bearer " + sys.argv[3]
arn = "arn:aws:execute-api:us-east-1:123456789012:bench/api/" + method + "/v1/jobs"
auth = app.api_key({"type": "TOKEN", "authorizationToken": token, "methodArn": arn}, None)
context = {**auth["context"], "principalId": auth["principalId"]}
event = {
    "requestContext": {
        "httpMethod": method, "resourcePath": "/v1/jobs", "path": "/v1/jobs",
        "identity": {"sourceIp": "127.0.0.1"}, "authorizer": context,
    },
    "headers": {"authorization": token, "content-type": "application/json"},
    "pathParameters": None, "stageVariables": {}, "multiValueQueryStringParameters": None,
    "body": body, "isBase64Encoded": False,
}
answer = app.app(event, None)
assert answer["statusCode"] in (200, 201), answer
print(json.dumps([name for name in sys.modules if name not in before]))
"""

# Run in a fresh interpreter: boto3 loaded, the time in ms to import app and the names on
# stdin (importlib.import_module, in their order); then, after the clock stopped, the names
# of those modules that were loaded from source (no .pyc beside them to read), as Lambda
# loads none of them: the deployed zip carries their bytecode (infra/bytecode.py).
IMPORT_PATH = """
import importlib, json, os, sys, time
import boto3
names = json.loads(sys.stdin.read())
t0 = time.perf_counter()
import app
for name in names:
    importlib.import_module(name)
t1 = time.perf_counter()
def from_source(name):
    spec = getattr(sys.modules[name], "__spec__", None)
    origin = getattr(spec, "origin", None) or ""
    return origin.endswith(".py") and not (spec.cached and os.path.exists(spec.cached))
print(json.dumps({"ms": (t1 - t0) * 1000,
                  "from_source": [n for n in ["app", *names] if from_source(n)]}))
"""

# The POST's body: a cron job, as the contract's example.
CRON_JOB = {
    "name": "bench cold start",
    "job_type": "cron",
    "cron_expression": "0 9 * * 1-5",
    "timezone": "America/New_York",
    "task_name": "nexus.echo",
}


def import_path(method: str) -> list[str]:
    """The modules the API function loads to import app and answer its first `method`
    /v1/jobs (see the module's doc); inside embedded_aws()."""
    body = json.dumps(CRON_JOB) if method == "POST" else ""
    out = subprocess.run(
        [sys.executable, "-c", API_REQUEST, method, body, BENCH_KEY],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {method} /v1/jobs run failed:\n{out.stderr[-3000:]}")
    names: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return names


def import_path_ms(names: list[str]) -> float:
    """import app + `names` in a fresh interpreter with boto3 imported, in ms."""
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_PATH],
        cwd=ROOT,
        input=json.dumps(names),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"importing the API's import path failed:\n{out.stderr[-3000:]}")
    found = json.loads(out.stdout.strip().splitlines()[-1])
    if found["from_source"]:
        # Python could not write their bytecode (a read-only directory?): this run compiled
        # them, which a deployed function, whose zip carries it, does not.
        raise RuntimeError(f"imported without bytecode: {', '.join(found['from_source'])}")
    return float(found["ms"])


@contextmanager
def embedded_aws() -> Iterator[None]:
    """moto's server in a child process, with the bench's table, queue and admin key; the
    environment points at it, so that child interpreters inherit it."""
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
        yield
    finally:
        moto.stop()
        os.environ.pop("NEXUS_AWS_ENDPOINT_URL", None)


def first_request_ms(repeats: int) -> dict[str, float]:
    """import app + the first GET /v1/jobs in a fresh interpreter (see the module's doc);
    inside embedded_aws()."""
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
    totals = [r["import"] + r["first"] for r in runs]
    best = min(runs, key=lambda r: r["import"] + r["first"])
    return {
        "first_request_total_ms": min(totals),
        "first_request_total_median_ms": statistics.median(totals),
        "first_request_import_ms": best["import"],
        "first_request_ms": best["first"],
        "second_request_ms": min(r["second"] for r in runs),
    }


def api_path(repeats: int) -> dict[str, Any]:
    """Figure 3 (see the module's doc), for GET and POST /v1/jobs; inside embedded_aws()."""
    # The POST first: it creates a job, so that the GET lists one (and loads what that needs).
    paths = {method: import_path(method) for method in ("POST", "GET")}
    runs: dict[str, list[float]] = {method: [] for method in paths}
    for _ in range(repeats):
        for method, names in paths.items():  # in turns, as boto3 and app above
            runs[method].append(import_path_ms(names))
    result: dict[str, Any] = {}
    for method, names in paths.items():
        key = method.lower()
        result[f"api_path_{key}_ms"] = min(runs[method])
        result[f"api_path_{key}_median_ms"] = statistics.median(runs[method])
        result[f"api_path_{key}_modules"] = names
        print(
            f"the API's import path, {method} /v1/jobs (import app + {len(names) - 1} modules "
            f"its first request loads), boto3 loaded: {min(runs[method]):.0f} ms "
            f"(best of {repeats}; median {statistics.median(runs[method]):.0f} ms)"
        )
    return result


def main(repeats: int = 7, only_api_path: bool = False) -> dict[str, Any]:
    local_env()
    # Every child interpreter writes and then reads the bytecode of what it imports: with
    # PYTHONDONTWRITEBYTECODE set (to any value, "0" too) no .pyc of ours was ever written,
    # and each run compiled our modules' source again. The figures are imports from
    # bytecode, as the deployed zip's (infra/bytecode.py; `make package` and `make deploy`
    # compile it): import_path_ms fails if a module of the path was read from source.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    # The interpreter settings the functions run with on AWS (.chalice/config.json's dev
    # stage): PYDANTIC_DISABLE_PLUGINS spares pydantic's plugin lookup.
    stage = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
    for name in ("PYDANTIC_DISABLE_PLUGINS",):
        if name in stage.get("environment_variables", {}):
            os.environ[name] = stage["environment_variables"][name]
    import_ms("app")  # compile app's bytecode once (the API path's: its first probe)
    if only_api_path:
        with embedded_aws():
            return api_path(repeats)
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
    with embedded_aws():
        path = api_path(repeats)
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
        **path,
        **first,
        "command": command(),
    }


if __name__ == "__main__":
    # `python bench/cold_start.py api-path`: the API's import path alone, printed, not saved.
    if sys.argv[1:] == ["api-path"]:
        main(only_api_path=True)
        sys.exit()
    result = main()
    (ROOT / "bench" / ".out").mkdir(exist_ok=True)
    (ROOT / "bench" / ".out" / "cold_start.json").write_text(json.dumps(result, indent=1))
