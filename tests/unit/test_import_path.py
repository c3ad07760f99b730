"""What each Lambda function imports: every one of them imports app.py, so app.py imports only
what its routes and handlers need to be declared, and the tick and the workers never load
the API's modules (its routes' logic, the OpenAPI document, the docs and dashboard, schedule
descriptions and lint, keys and calendars administration).

Each case runs in a fresh interpreter, so that nothing another test imported is counted.
Only module names are asserted, never times (bench/cold_start.py measures those).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Modules only the API's routes need (and the stream handler, which builds the API's job
# service for its overview): none of them may load with app.py, the tick or the workers.
API_ONLY = (
    "chalicelib.service",
    "chalicelib.lint",
    "chalicelib.pricing",
    "chalicelib.calendars_api",
    "chalicelib.api.openapi",
    "chalicelib.api.responses",
    "chalicelib.api.examples",
    "chalicelib.api.docs",
    "chalicelib.api.ui",
    "chalicelib.security.gate",
    "chalicelib.realtime.socket",
    "chalicelib.realtime.fanout",
    "chalicelib.realtime.where",
    "cron_descriptor",
)

# Loaded by what app.py's import declares; the tick, the workers and the routes load them
# on first use.
HEAVY = (
    "pydantic",
    "chalicelib.models",
    "chalicelib.notify",
    "chalicelib.store",
    "chalicelib.schedules",
    "chalicelib.engine.tick",
    "chalicelib.engine.worker",
    "chalicelib.tasks",
    "chalicelib.security.keys",
    "chalicelib.security.outbound",
)


def modules_after(script: str) -> set[str]:
    """The names in sys.modules once `script` has run in a fresh interpreter."""
    code = script + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "NEXUS_TABLE": "nexus-import-path",
        "NEXUS_METRICS": "off",
    }
    env.pop("NEXUS_AWS_ENDPOINT_URL", None)
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"the script failed:\n{done.stderr[-4000:]}"
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


# The tick finds a job due now, sends its run to the queue; the worker runs it from that
# message, as Lambda hands it over; the dead-letter handler gets an empty batch.
ENGINE = """
from datetime import UTC, datetime, timedelta
import os
from moto import mock_aws

with mock_aws():
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.resources import ensure_queue, ensure_table

    ensure_table(client("dynamodb"), get_settings().table_name, stream=False)
    os.environ["NEXUS_QUEUE_URL"] = ensure_queue(client("sqs"), "nexus-import-path-work")
    get_settings.cache_clear()

    import app

    from chalicelib.models import Job
    from chalicelib.store import job_item

    now = datetime.now(UTC).replace(microsecond=0)
    job = Job(
        id=1, name="due", job_type="interval", interval_seconds=3600, task_name="nexus.echo",
        created_at=now - timedelta(days=1), updated_at=now - timedelta(days=1),
        next_run_at=now,
    )
    sqs = client("sqs")
    client("dynamodb").put_item(TableName=get_settings().table_name, Item=job_item(job))
    report = app.tick({
        "version": "0", "account": "123456789012", "region": "us-east-1", "detail": {},
        "detail-type": "Scheduled Event", "source": "aws.events", "time": now.isoformat(),
        "id": "tick", "resources": [],
    }, None)
    messages = sqs.receive_message(
        QueueUrl=get_settings().queue_url, MaxNumberOfMessages=10
    ).get("Messages", [])
    assert messages, f"the tick sent no run: {report}"
    app.worker({"Records": [
        {
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"], "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:nexus-import-path-work",
            "awsRegion": "us-east-1",
        }
        for m in messages
    ]}, None)
    app.dead_letter({"Records": []}, None)
    runs, _ = app.store().runs.history(1, skip=0, limit=10)
    assert [r.status for r in runs] == ["completed"], runs
"""


def test_the_tick_and_the_workers_never_import_the_api_modules():
    loaded = modules_after(ENGINE)
    # The engine did run: its modules are there.
    assert {"chalicelib.engine.tick", "chalicelib.engine.worker", "chalicelib.tasks"} <= loaded
    assert sorted(loaded & set(API_ONLY)) == []


def test_importing_app_loads_none_of_the_api_modules_nor_the_engine():
    loaded = modules_after("import app")
    assert sorted(loaded & set(API_ONLY)) == []
    assert sorted(loaded & set(HEAVY)) == []


def test_a_first_api_request_loads_what_its_route_needs():
    # The other side of the lazy imports: the route's modules do load when it is called.
    loaded = modules_after(
        "import app\n"
        "from chalice.test import Client\n"
        "with Client(app.app) as client:\n"
        "    answer = client.http.get('/v1/cron/presets')\n"
        "assert answer.status_code == 200, answer.body\n"
    )
    assert {"chalicelib.service", "cron_descriptor"} <= loaded
    assert "chalicelib.api.openapi" not in loaded


# A first GET /v1/jobs with a key, as the API function answers it (chalice.test on moto).
FIRST_READ = """
import os
from datetime import UTC, datetime
from moto import mock_aws

KEY = "import-path-admin-key-0123456789"
with mock_aws():
    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.resources import ensure_queue, ensure_table

    ensure_table(client("dynamodb"), get_settings().table_name, stream=False)
    os.environ["NEXUS_QUEUE_URL"] = ensure_queue(client("sqs"), "nexus-import-path-work")
    get_settings.cache_clear()
    get_settings()  # read before chalice.test.Client sets the stage's environment

    import app
    from chalice.test import Client

    app.keys().ensure_key(KEY, "import path", datetime.now(UTC))
    with Client(app.app) as test_client:
        answer = test_client.http.get("/v1/jobs", headers={"Authorization": "Bearer " + KEY})
    assert answer.status_code == 200, answer.body
"""


def test_a_first_read_of_the_jobs_loads_the_service_but_not_the_lint_nor_pricing():
    # Only a write or a preview lints a schedule and prices it: the service imports those
    # modules on first use, so a read does not pay for them (bench/cold_start.py).
    loaded = modules_after(FIRST_READ)
    assert "chalicelib.service" in loaded
    assert sorted(loaded & {"chalicelib.lint", "chalicelib.pricing"}) == []


# Loaded by a write or a dispatch, never by a read of the jobs: the tick and the engine's
# other modules, the schedule modules, the task registry (and every task) and the stores of
# the tables a read does not touch (holiday calendars, backfills, watches, WebSocket
# listeners). The service and the store import them on first use, and the jobs service
# holds the dispatcher and the registry as app.py makes them when first used.
NOT_READ = (
    "chalicelib.engine.tick",
    "chalicelib.engine.backfill",
    "chalicelib.engine.watch",
    "chalicelib.engine.pauses",
    "chalicelib.schedules",
    "chalicelib.cron",
    "chalicelib.calendar_rule",
    "chalicelib.exclusions",
    "chalicelib.holidays",
    "chalicelib.tasks",
    "chalicelib.tasks.registry",
    "chalicelib.security.outbound",
    "chalicelib.store.calendars",
    "chalicelib.store.backfills",
    "chalicelib.store.watches",
    "chalicelib.store.connections",
    "chalicelib.store.runs",
)  # (not dateutil nor pytz, which the calendars load: moto, which the script runs on, loads them)


def test_a_first_read_of_the_jobs_loads_neither_the_engine_nor_the_schedules_nor_the_tasks():
    loaded = modules_after(FIRST_READ)
    assert {"chalicelib.service", "chalicelib.store.jobs", "chalicelib.store.keys"} <= loaded
    assert sorted(loaded & set(NOT_READ)) == []


def test_a_first_write_of_a_job_loads_the_schedules_the_tasks_and_the_dispatcher_it_uses():
    # The other side: what the read leaves out is there when a job is created (its schedule
    # compiled, its task looked up, the dispatcher asked whether a run is due before the
    # next tick), so the service has all it had before, only later.
    loaded = modules_after(
        FIRST_READ
        + """
    import json
    body = {"name": "first write", "job_type": "cron", "cron_expression": "0 9 * * 1-5",
            "task_name": "nexus.echo"}
    with Client(app.app) as test_client:
        answer = test_client.http.post(
            "/v1/jobs", body=json.dumps(body),
            headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"},
        )
    assert answer.status_code == 201, answer.body
"""
    )
    assert {
        "chalicelib.schedules",
        "chalicelib.cron",
        "chalicelib.tasks.registry",
        "chalicelib.engine.tick",
    } <= loaded


def test_importing_the_store_package_loads_no_tables_store_until_one_is_used():
    loaded = modules_after("import chalicelib.store")
    assert sorted(name for name in loaded if name.startswith("chalicelib.store.")) == []
    loaded = modules_after("from chalicelib.store import CalendarStore")
    assert "chalicelib.store.calendars" in loaded
    assert "chalicelib.store.backfills" not in loaded
