"""nexus_client against the real API (the Chalice app served over HTTP in-process, on moto),
its transport against a stub server (retries, Retry-After, timeouts), and the pure parts:
config resolution and the apply plan."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from nexus_client import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidInput,
    NexusClient,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from nexus_client.apply import ApplyError, load_jobs, plan
from nexus_client.config import ConfigError, resolve
from nexus_client.models import Backfill, Job, WrittenJob
from tests.conftest import TEST_ADMIN_KEY, store_admin_key

# -- the real API --------------------------------------------------------------------------


@pytest.fixture
def base_url(aws: None) -> Iterator[str]:
    from app import app
    from local.gateway import make_server

    store_admin_key()
    server = make_server(app, "127.0.0.1", 0, quiet=True)
    port = server.server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.shutdown()
        server.server.server_close()
        thread.join(5)


@pytest.fixture
def nexus(base_url: str) -> NexusClient:
    return NexusClient(base_url, TEST_ADMIN_KEY, timeout=10)


def test_a_job_goes_through_its_life_cycle_with_typed_answers(nexus, contract_job):
    job = nexus.create_job(contract_job)
    assert isinstance(job, Job) and job.id >= 1
    assert (job.name, job.timezone, job.status) == ("Daily Report", "US/Eastern", "pending")
    assert job.next_run_at is not None and job.next_run_at.tzinfo is not None

    assert nexus.get_job(job.id).cron_expression == "0 9 * * 1-5"
    updated = nexus.update_job(job.id, priority=7, name="Updated Job Name")
    assert (updated.priority, updated.name, updated.tags) == (7, "Updated Job Name", job.tags)

    assert nexus.pause_job(job.id).message == "Job paused"
    assert nexus.get_job(job.id).status == "paused"
    resumed = nexus.resume_job(job.id)
    assert resumed.message == "Job resumed" and resumed.next_run_at is not None

    started = nexus.run_job(job.id, task_kwargs={"format": "csv"})
    runs = nexus.list_runs(job.id)
    assert [r.id for r in runs] == [started.execution_id]
    assert runs[0].trigger == "manual" and runs[0].task_kwargs == {"format": "csv"}

    assert [a.action for a in nexus.job_audit(job.id)][:2] == ["job.execute", "job.resume"]
    nexus.delete_job(job.id)
    with pytest.raises(NotFound) as missing:
        nexus.get_job(job.id)
    assert missing.value.detail == "Job not found" and missing.value.status == 404


def test_iterators_follow_the_next_cursor_header_page_by_page(nexus):
    made = {
        nexus.create_job(
            {
                "name": f"j{i}",
                "job_type": "interval",
                "interval_seconds": 60,
                "task_name": "nexus.echo",
                "tags": ["paged"],
            }
        ).id
        for i in range(5)
    }
    first = nexus.list_jobs(limit=2, tags=["paged"])
    assert len(first) == 2 and first.next_cursor
    assert {job.id for job in nexus.iter_jobs(page_size=2, tags=["paged"])} == made
    assert [job.id for job in nexus.iter_jobs(page_size=2)] == sorted(made, reverse=True)


def test_a_refusal_carries_the_contract_detail_and_its_field_errors(nexus, contract_job):
    with pytest.raises(InvalidInput) as server_says:
        nexus.create_job({**contract_job, "cron_expression": "61 * * * *"})
    assert server_says.value.status == 422
    (error,) = server_says.value.errors
    assert error["loc"] == ["body", "cron_expression"] and "61" in error["msg"]

    # The client checks with the server's own model first: a typo never leaves the machine.
    with pytest.raises(InvalidInput) as local:
        nexus.create_job({**contract_job, "cron_expresion": "* * * * *"})
    assert local.value.errors[0]["loc"] == ["body", "cron_expresion"]

    job = nexus.create_job(contract_job)
    with pytest.raises(InvalidInput) as update:
        nexus.update_job(job.id, {"priority": 11})
    assert update.value.errors[0]["loc"] == ["body", "priority"]


def test_keys_scopes_and_auth_errors_are_their_own_exceptions(nexus, base_url, contract_job):
    made = nexus.create_key("reader", ["jobs:read"])
    assert made.key.startswith("nxs_") and made.scopes == ["jobs:read"]
    assert made.id in {k.id for k in nexus.list_keys()}

    reader = NexusClient(base_url, made.key)
    assert reader.list_jobs() == []
    with pytest.raises(Forbidden) as refused:
        reader.create_job(contract_job)
    assert "jobs:write" in str(refused.value.detail)
    with pytest.raises(Unauthorized):
        NexusClient(base_url, "not-a-key-but-long-enough-0123").list_jobs()

    nexus.revoke_key(made.id)
    assert [e.action for e in nexus.audit()][:2] == ["key.revoke", "key.create"]


def test_schedule_and_stats_answers_are_typed(nexus):
    valid = nexus.validate_cron("*/5 * * * *", "UTC", count=3)
    assert valid.is_valid and valid.description and len(valid.next_runs) == 3
    invalid = nexus.validate_cron("61 * * * *")
    assert not invalid.is_valid and "61" in (invalid.error or "")
    assert nexus.cron_presets()["hourly"].expression == "0 * * * *"
    preview = nexus.preview(
        job_type="cron",
        cron_expression="30 2 * * *",
        timezone="US/Eastern",
        start=datetime(2026, 3, 7, tzinfo=UTC),
        count=3,
    )
    # The spring-forward night of 2026-03-08 runs at 03:00 EDT (07:00Z).
    assert [t.isoformat() for t in preview.next_runs] == [
        "2026-03-07T07:30:00+00:00",
        "2026-03-08T07:00:00+00:00",
        "2026-03-09T06:30:00+00:00",
    ]
    assert nexus.stats().total_jobs == 0


# -- issue 13's scheduling controls, against the real API (no worker runs here) -------------


def test_a_pause_with_a_note_and_an_end_shows_them_on_the_answer_and_the_job(nexus, contract_job):
    job = nexus.create_job(contract_job)
    bare = nexus.pause_job(job.id)
    assert (bare.message, bare.paused_note, bare.paused_until) == ("Job paused", None, None)

    # Without an offset the end is wall-clock time in the job's zone (US/Eastern, EST: UTC-5).
    paused = nexus.pause_job(job.id, note="upstream maintenance", until="2030-01-02T10:00")
    assert paused.paused_note == "upstream maintenance"
    assert paused.paused_until == datetime(2030, 1, 2, 15, tzinfo=UTC)
    shown = nexus.get_job(job.id)
    assert (shown.status, shown.paused_note, shown.paused_until) == (
        "paused",
        "upstream maintenance",
        datetime(2030, 1, 2, 15, tzinfo=UTC),
    )

    resumed = nexus.resume_job(job.id)
    assert resumed.next_run_at is not None
    assert (nexus.get_job(job.id).paused_note, nexus.get_job(job.id).paused_until) == (None, None)

    with pytest.raises(InvalidInput) as past:
        nexus.pause_job(job.id, until="2020-01-01T00:00:00Z")
    assert past.value.errors[0]["loc"] == ["body", "until"] and "future" in str(past.value)
    with pytest.raises(InvalidInput) as local:  # checked before it is sent
        nexus.pause_job(job.id, note="x" * 501)
    assert local.value.errors[0]["loc"] == ["body", "note"]
    with pytest.raises(NotFound):
        nexus.pause_job(999999, note="nobody")


def test_a_pending_run_is_cancelled_once_and_then_refused_as_ended(nexus, contract_job):
    job = nexus.create_job(contract_job)
    started = nexus.run_job(job.id)
    assert started.execution_id is not None
    cancelled = nexus.cancel_run(started.execution_id, reason="bad input file")
    assert (cancelled.id, cancelled.status) == (started.execution_id, "cancelled")
    assert cancelled.reason is not None and cancelled.reason.endswith("bad input file")
    assert [r.status for r in nexus.list_runs(job.id)] == ["cancelled"]

    with pytest.raises(Conflict) as again:
        nexus.cancel_execution(started.execution_id)
    assert again.value.status == 409 and "already ended" in str(again.value.detail)
    with pytest.raises(NotFound):
        nexus.cancel_run(f"{job.id}-20200101T000000Z-1")
    with pytest.raises(NotFound):
        nexus.cancel_run("not/an id")


def test_a_backfill_dry_run_lists_the_window_and_a_backfill_is_followed_by_its_id(nexus):
    job = nexus.create_job(
        {
            "name": "weekday nine",
            "job_type": "cron",
            "cron_expression": "0 9 * * 1-5",
            "task_name": "nexus.echo",
        }
    )
    window = ("2025-01-13T00:00:00Z", "2025-01-19T23:59:59Z")  # Monday to Sunday
    plan = nexus.backfill_dry_run(job.id, *window)
    assert [t.isoformat() for t in plan.occurrences] == [
        f"2025-01-{day}T09:00:00+00:00" for day in (13, 14, 15, 16, 17)
    ]
    assert nexus.list_runs(job.id) == []  # a dry run runs nothing

    started = nexus.backfill_job(job.id, *window, overlap="buffer_all")
    assert isinstance(started, Backfill) and started.backfill_id.startswith(f"{job.id}-")
    assert (started.status, started.occurrences, started.remaining, started.overlap) == (
        "running",
        5,
        5,
        "buffer_all",
    )
    shown = nexus.get_backfill(started.backfill_id)
    assert (shown.backfill_id, shown.occurrences, shown.done) == (started.backfill_id, 5, False)

    with pytest.raises(NotFound):
        nexus.get_backfill(f"{job.id}-000000000000")
    with pytest.raises(InvalidInput) as future:
        nexus.backfill_job(job.id, "2025-01-13T00:00:00Z", "2999-01-01T00:00:00Z")
    assert future.value.errors[0]["loc"] == ["body", "end"] and "now" in str(future.value)
    with pytest.raises(InvalidInput) as local:  # the engine's own model, before sending
        nexus.backfill_job(job.id, *window, overlap="sometimes")
    assert local.value.errors[0]["loc"] == ["body", "overlap"]


def test_calendars_are_made_listed_changed_and_deleted_unless_a_job_names_them(nexus):
    made = nexus.create_calendar(
        "office-closed",
        "Europe/London",
        dates=["2025-12-25", "2025-12-24/2025-12-26", "2025-01-01"],
        description="the office is shut",
    )
    # Sorted and merged: the range swallows the day inside it.
    assert (made.name, made.timezone, made.dates) == (
        "office-closed",
        "Europe/London",
        ["2025-01-01", "2025-12-24/2025-12-26"],
    )
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "DTSTART;VALUE=DATE:20250704\r\nDTEND;VALUE=DATE:20250705\r\nSUMMARY:July 4\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert nexus.create_calendar("us-days", "US/Eastern", ics=ics).dates == ["2025-07-04"]
    assert [c.name for c in nexus.list_calendars()] == ["office-closed", "us-days"]

    changed = nexus.update_calendar("office-closed", dates=["2026-01-01"])
    assert (changed.dates, changed.description) == (["2026-01-01"], "the office is shut")

    job = nexus.create_job(
        {
            "name": "skips holidays",
            "job_type": "cron",
            "cron_expression": "0 9 * * *",
            "task_name": "nexus.echo",
            "exclude_calendars": ["office-closed"],
        }
    )
    assert nexus.get_calendar("office-closed").used_by == [job.id]
    with pytest.raises(Conflict) as in_use:
        nexus.delete_calendar("office-closed")
    assert str(job.id) in str(in_use.value.detail)
    with pytest.raises(Conflict):
        nexus.create_calendar("us-days", "UTC", dates=["2025-01-01"])

    nexus.delete_calendar("us-days")
    with pytest.raises(NotFound):
        nexus.get_calendar("us-days")
    with pytest.raises(InvalidInput) as bad:
        nexus.create_calendar("x", "UTC", dates=["2025-02-30"])
    assert bad.value.errors[0]["loc"][:2] == ["body", "dates"]
    with pytest.raises(InvalidInput) as local:  # the server's own model, before sending
        nexus.create_calendar("no spaces", "UTC", dates=["2025-01-01"])
    assert local.value.errors[0]["loc"] == ["body", "name"]


def test_written_jobs_and_previews_carry_the_schedule_lint_and_the_estimate(nexus):
    # 02:30 does not happen on US/Eastern's spring-forward night.
    dst = {
        "name": "half past two",
        "job_type": "cron",
        "cron_expression": "30 2 * * *",
        "timezone": "US/Eastern",
        "task_name": "nexus.echo",
    }
    job = nexus.create_job(dst)
    assert isinstance(job, WrittenJob) and "dst_gap" in {w.code for w in job.warnings}
    assert "dst_gap" in {w.code for w in nexus.update_job(job.id, priority=3).warnings}
    preview = nexus.preview({k: v for k, v in dst.items() if k not in ("name", "task_name")})
    assert "dst_gap" in {w.code for w in preview.warnings}
    assert preview.estimate is not None and preview.estimate.runs_per_month > 29


# -- transport, against a stub ---------------------------------------------------------


class Stub(ThreadingHTTPServer):
    """Answers each request with the next of `script` (status, headers, body, delay)."""

    def __init__(self, script: list[tuple[int, dict[str, str], Any, float]]) -> None:
        self.script = list(script)
        self.seen: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), StubHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1"


class StubHandler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.server.seen.append((self.command, self.path))
        status, headers, body, delay = self.server.script.pop(0)
        if delay:
            threading.Event().wait(delay)
        raw = json.dumps(body).encode()
        try:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_DELETE = _answer


@pytest.fixture
def stub() -> Iterator[Any]:
    servers: list[Stub] = []

    def start(*script: tuple[int, dict[str, str], Any, float]) -> Stub:
        server = Stub(list(script))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


JOB_LIST: list[Any] = []
BUSY = (503, {"Retry-After": "1"}, {"detail": "busy"}, 0.0)


def recorder() -> tuple[list[float], Any]:
    waits: list[float] = []
    return waits, waits.append


def test_a_429_is_retried_after_its_retry_after_even_for_a_post(stub, contract_job):
    server = stub(
        (429, {"Retry-After": "7"}, {"detail": "rate limit"}, 0.0),
        (201, {}, {"message": "Job execution started", "task_id": "t1"}, 0.0),
    )
    waits, sleep = recorder()
    answer = NexusClient(server.url, "k", sleep=sleep).run_job(1)
    assert answer.task_id == "t1" and waits == [7.0]
    assert [m for m, _ in server.seen] == ["POST", "POST"]


def test_a_429_that_outlasts_the_retries_raises_rate_limited_with_its_wait(stub):
    limited = (429, {"Retry-After": "2"}, {"detail": "rate limit of key nxs_x"}, 0.0)
    server = stub(*[limited] * 3)
    waits, sleep = recorder()
    with pytest.raises(RateLimited) as exc:
        NexusClient(server.url, "k", max_retries=2, sleep=sleep).list_jobs()
    assert exc.value.retry_after == 2.0 and exc.value.detail == "rate limit of key nxs_x"
    assert waits == [2.0, 2.0] and len(server.seen) == 3


def test_a_503_is_retried_for_a_get_but_not_for_a_post_that_creates(stub, contract_job):
    server = stub(BUSY, BUSY, (200, {"X-Next-Cursor": "abc"}, JOB_LIST, 0.0))
    waits, sleep = recorder()
    page = NexusClient(server.url, "k", sleep=sleep).list_jobs()
    assert page == [] and page.next_cursor == "abc" and waits == [1.0, 1.0]

    server = stub(BUSY)
    with pytest.raises(Unavailable):
        NexusClient(server.url, "k", sleep=sleep).create_job(contract_job)
    assert len(server.seen) == 1


def test_answers_without_warnings_or_an_estimate_still_read(stub, contract_job):
    """An older server answers no `warnings` and no `estimate`: the client does not need them."""
    now = "2026-01-01T00:00:00Z"
    job = {**contract_job, "id": 1, "created_at": now, "updated_at": now}
    server = stub((201, {}, job, 0.0), (200, {}, {"next_runs": [now]}, 0.0))
    nexus = NexusClient(server.url, "k")
    assert nexus.create_job(contract_job).warnings == []
    preview = nexus.preview(job_type="interval", interval_seconds=60)
    assert (preview.warnings, preview.estimate) == ([], None)


def backfill_state(status: str, sent: int, runs: dict[str, int]) -> dict[str, Any]:
    return {
        "backfill_id": "7-0123456789ab",
        "job_id": 7,
        "status": status,
        "start": "2025-01-13T00:00:00Z",
        "end": "2025-01-17T23:59:59Z",
        "overlap": "allow",
        "occurrences": 3,
        "sent": sent,
        "remaining": 3 - sent,
        "runs": runs,
    }


def test_waiting_for_a_backfill_polls_until_its_runs_have_ended_reporting_each_change(stub):
    states = [
        backfill_state("running", 1, {"pending": 1}),
        backfill_state("running", 1, {"pending": 1}),  # no change: not reported
        backfill_state("done", 3, {"completed": 2, "running": 1}),
        backfill_state("done", 3, {"completed": 3}),
    ]
    server = stub(*[(200, {}, state, 0.0) for state in states])
    waits, sleep = recorder()
    seen: list[Backfill] = []
    last = NexusClient(server.url, "k", sleep=sleep).wait_for_backfill(
        "7-0123456789ab", interval=0.25, on_progress=seen.append
    )
    assert last.runs_ended and last.runs == {"completed": 3}
    assert [(b.sent, b.runs) for b in seen] == [
        (1, {"pending": 1}),
        (3, {"completed": 2, "running": 1}),
        (3, {"completed": 3}),
    ]
    assert waits == [0.25, 0.25, 0.25]
    assert server.seen == [("GET", "/api/v1/backfills/7-0123456789ab")] * 4


def test_waiting_for_a_backfill_gives_up_at_its_timeout_with_the_last_state(stub):
    running: tuple[int, dict[str, str], Any, float] = (
        200,
        {},
        backfill_state("running", 1, {"pending": 1}),
        0.0,
    )
    server = stub(*[running] * 50)
    last = NexusClient(server.url, "k").wait_for_backfill(
        "7-0123456789ab", interval=0.05, timeout=0.2
    )
    assert (last.done, last.runs_ended) == (False, False)
    assert 2 <= len(server.seen) <= 10


def test_connection_errors_are_retried_with_growing_backoff_for_idempotent_calls_only():
    waits, sleep = recorder()
    closed = "http://127.0.0.1:9/api/v1"  # discard port: nothing listens
    with pytest.raises(ConnectionFailed):
        NexusClient(closed, max_retries=3, backoff=0.5, sleep=sleep).delete_job(1)
    assert len(waits) == 3 and 0.5 <= waits[0] < waits[1] < waits[2] <= 3.0
    waits.clear()
    with pytest.raises(ConnectionFailed):
        NexusClient(closed, sleep=sleep).pause_job(1)
    assert waits == []


def test_every_call_has_a_timeout(stub):
    server = stub((200, {}, JOB_LIST, 2.0))
    started = datetime.now(UTC)
    with pytest.raises(ConnectionFailed):
        NexusClient(server.url, "k", timeout=0.3, max_retries=0).list_jobs()
    assert (datetime.now(UTC) - started).total_seconds() < 1.5


def test_the_request_carries_the_bearer_key_and_the_query(stub):
    captured: dict[str, str] = {}

    class Capture(StubHandler):
        def _answer(self) -> None:
            captured.update(self.headers.items())
            captured["path"] = self.path
            super()._answer()

        do_GET = _answer

    server = stub((200, {}, JOB_LIST, 0.0))
    server.RequestHandlerClass = Capture
    NexusClient(server.url, "secret-key").list_jobs(is_active=True, tags=["a", "b"], limit=5)
    assert captured["Authorization"] == "Bearer secret-key"
    assert captured["path"] == "/api/v1/jobs/?limit=5&is_active=true&tags=a%2Cb"


# -- config --------------------------------------------------------------------------------


def test_flags_beat_a_named_profile_which_beats_the_environment(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        'default_profile = "local"\n'
        '[profiles.local]\nurl = "http://local/api/v1"\nkey = "local-key"\n'
        '[profiles.prod]\nurl = "https://prod/api/v1"\nkey_env = "PROD_KEY"\ntimeout = 20\n'
    )
    env = {
        "NEXUS_CONFIG": str(config),
        "NEXUS_URL": "http://env/api/v1",
        "NEXUS_KEY": "env-key",
        "PROD_KEY": "prod-key",
    }
    # No profile named: the environment over the default profile.
    assert resolve(env=env).url == "http://env/api/v1"
    assert resolve(env=env).key == "env-key"
    # A profile named: its key never goes to the environment's server, nor the reverse.
    prod = resolve(profile="prod", env=env)
    assert (prod.url, prod.key, prod.timeout) == ("https://prod/api/v1", "prod-key", 20.0)
    assert resolve(env={**env, "NEXUS_PROFILE": "prod"}).key == "prod-key"
    assert resolve(profile="prod", url="http://flag/api/v1", env=env).url == "http://flag/api/v1"
    # NEXUS_API_KEY is read first, NEXUS_KEY (the README's) after it.
    assert resolve(env={"NEXUS_API_KEY": "a", "NEXUS_KEY": "b"}).key == "a"
    with pytest.raises(ConfigError, match=r"no profile 'staging'.*local, prod"):
        resolve(profile="staging", env=env)


def test_a_yaml_config_file_works_too(tmp_path):
    config = tmp_path / "nexus" / "config.yaml"
    config.parent.mkdir()
    config.write_text("profiles:\n  default:\n    url: http://yaml/api/v1\n    key: y\n")
    settings = resolve(env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert (settings.url, settings.key, settings.profile) == ("http://yaml/api/v1", "y", "default")


# -- the apply plan (pure) ------------------------------------------------------------------


def server_job(id: int, name: str, **fields: Any) -> Job:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    base = {"job_type": "interval", "interval_seconds": 60, "task_name": "nexus.echo"}
    return Job(id=id, name=name, created_at=now, updated_at=now, **{**base, **fields})


JOBS_FILE = """
jobs:
  a:
    job_type: interval
    interval_seconds: 60
    task_name: nexus.echo
  b:
    job_type: date
    scheduled_time: "2030-01-01T09:00:00"
    timezone: Europe/London
    task_name: nexus.echo
    tags: [x, y]
"""


def test_a_plan_updates_only_the_fields_that_differ_once_normalised():
    declared = load_jobs(JOBS_FILE)
    server = [
        server_job(1, "a", priority=7, is_active=False),
        # 09:00 in London in January is 09:00Z; tags in another order are the same tags.
        server_job(
            2,
            "b",
            job_type="date",
            interval_seconds=None,
            timezone="Europe/London",
            scheduled_time=datetime(2030, 1, 1, 9, tzinfo=UTC),
            tags=["y", "x"],
        ),
    ]
    (update,) = plan(declared, server).actions
    assert (update.kind, update.job_id) == ("update", 1)
    assert update.body == {"is_active": True, "priority": 5}
    assert {c.field: (c.old, c.new) for c in update.changes} == {
        "is_active": (False, True),
        "priority": (7, 5),
    }


def test_prune_deletes_only_undeclared_jobs_with_the_tag_and_tag_marks_the_declared_ones():
    declared = load_jobs(JOBS_FILE)
    server = [server_job(3, "old", tags=["managed"]), server_job(4, "hand-made")]
    actions = plan(declared, server, tag="managed", prune=True).actions
    assert [(a.kind, a.name, a.job_id) for a in actions] == [
        ("create", "a", None),
        ("create", "b", None),
        ("delete", "old", 3),
    ]
    assert actions[0].body["tags"] == ["managed"] and actions[1].body["tags"] == [
        "x",
        "y",
        "managed",
    ]
    with pytest.raises(ApplyError, match="--prune needs --tag"):
        plan(declared, server, prune=True)


def test_a_name_on_two_server_jobs_is_an_error_naming_both():
    with pytest.raises(ApplyError, match="'a' is the name of jobs 5, 9"):
        plan(load_jobs(JOBS_FILE), [server_job(9, "a"), server_job(5, "a")])


def test_a_file_must_declare_each_name_once_and_valid_fields():
    twice = (
        "jobs:\n  a: {job_type: interval, interval_seconds: 1, task_name: t}\n"
        "  a: {job_type: interval, interval_seconds: 2, task_name: t}\n"
    )
    with pytest.raises(ApplyError, match="'a' is declared twice"):
        load_jobs(twice)
    listed = (
        "jobs:\n" + "- {name: a, job_type: cron, cron_expression: '* * * * *', task_name: t}\n" * 2
    )
    with pytest.raises(ApplyError, match="a: declared twice"):
        load_jobs(listed)
    with pytest.raises(ApplyError, match=r"a\.priority: Input should be less than or equal to 10"):
        load_jobs(
            "jobs:\n  a: {job_type: interval, interval_seconds: 1, task_name: t, priority: 11}"
        )


def test_a_redacted_credential_is_not_a_change():
    declared = load_jobs(
        "jobs:\n  a: {job_type: interval, interval_seconds: 60, task_name: nexus.echo,"
        " task_kwargs: {api_token: s3cret, n: 1}}"
    )
    same = server_job(1, "a", task_kwargs={"api_token": "***", "n": 1})
    other = server_job(1, "a", task_kwargs={"api_token": "***", "n": 2})
    assert plan(declared, [same]).empty
    assert plan(declared, [other]).actions[0].body == {
        "task_kwargs": {"api_token": "s3cret", "n": 1}
    }


def test_the_cli_shows_a_job_as_the_api_sent_it_not_the_servers_bookkeeping(
    base_url, nexus, contract_job, monkeypatch
):
    from typer.testing import CliRunner

    from nexus_client.cli import app as cli

    job = nexus.create_job(contract_job)
    monkeypatch.setenv("NEXUS_URL", base_url)
    monkeypatch.setenv("NEXUS_API_KEY", TEST_ADMIN_KEY)
    sent = nexus.request("GET", f"/jobs/{job.id}").json()
    shown = CliRunner().invoke(cli, ["jobs", "show", str(job.id), "-o", "json"])
    assert shown.exit_code == 0, shown.output
    printed = json.loads(shown.stdout)
    assert printed.keys() <= sent.keys()
    assert printed["concurrency_policy"] == sent["concurrency_policy"]
    table = CliRunner().invoke(cli, ["jobs", "show", str(job.id)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "concurrency_policy" in table.stdout
    for kept_to_itself in ("failure_streak", "schedule_rev", "queued_runs", "overdue_notice"):
        assert kept_to_itself not in sent
        assert kept_to_itself not in printed
        assert kept_to_itself not in table.stdout
