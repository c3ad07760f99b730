"""The `nexus` command against `make run` (python -m local.run as a process): jobs, runs,
watch, jobs as code with apply (create, no-op, dry run, update, prune), and issue 13's
controls: pause notes and ends, cancels, backfills, holiday calendars, schedule warnings."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import E2E_KEY, ROOT


@pytest.fixture
def nexus(server: int, tmp_path: Path) -> Any:
    env = {
        "PATH": "/usr/bin:/bin",
        "XDG_CONFIG_HOME": str(tmp_path / "no-config"),
        "NEXUS_URL": f"http://127.0.0.1:{server}/api/v1",
        "NEXUS_KEY": E2E_KEY,  # the README's variable
        "COLUMNS": "200",
    }

    def run(*args: str, expect: int = 0, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "nexus_client", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == expect, (done.returncode, done.stdout, done.stderr)
        return done

    def data(*args: str) -> Any:
        return json.loads(run(*args, "--output", "json").stdout)

    run.json = data  # type: ignore[attr-defined]
    run.env = env  # type: ignore[attr-defined]
    return run


def test_the_contract_job_is_created_listed_paused_resumed_and_run(nexus, contract_job, tmp_path):
    tag = f"cli-{uuid.uuid4().hex[:8]}"
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({**contract_job, "tags": [*contract_job["tags"], tag]}))
    job = nexus.json("jobs", "create", "-f", str(job_file))
    assert (job["name"], job["status"], job["timezone"]) == (
        "Daily Report",
        "pending",
        "US/Eastern",
    )

    listed = nexus.json("jobs", "list", "--tag", tag)
    assert [j["id"] for j in listed] == [job["id"]]
    table = nexus("jobs", "list", "--tag", tag).stdout
    assert "Daily Report" in table and "0 9 * * 1-5" in table

    assert "Job paused" in nexus("jobs", "pause", str(job["id"])).stdout
    assert nexus.json("jobs", "get", str(job["id"]))["status"] == "paused"
    assert nexus.json("jobs", "resume", str(job["id"]))["message"] == "Job resumed"
    started = nexus.json("jobs", "run", str(job["id"]))
    runs = nexus.json("runs", "list", str(job["id"]))
    assert started["execution_id"] in [r["id"] for r in runs]

    nexus("jobs", "update", str(job["id"]), "--priority", "7")
    assert nexus.json("jobs", "get", str(job["id"]))["priority"] == 7
    nexus("jobs", "delete", str(job["id"]))


def test_exit_codes_tell_failures_apart(nexus, server):
    assert "not found" in nexus("jobs", "get", "999999", expect=3).stderr.lower()
    nexus("jobs", "update", "999999", "--priority", "11", expect=3)
    bad = nexus(
        "jobs", "create", "--name", "x", "--cron", "61 * * * *", "--task", "nexus.echo", expect=2
    )
    assert "cron_expression" in bad.stderr
    nexus("jobs", "get", "not-a-number", expect=2)  # usage
    nexus("cron", "check", "0 0 30 2 *", expect=2)
    nexus("--key", "wrong-key-but-long-enough-0123456", "jobs", "list", expect=4)
    nexus("--url", "http://127.0.0.1:9/api/v1", "--timeout", "1", "stats", expect=5)
    checked = nexus("cron", "check", "*/5 * * * *", "--tz", "UTC", "--count", "2").stdout
    assert "Every 5 minutes" in checked and checked.count("Z") == 2


def test_watch_prints_a_run_as_it_appears_and_finishes(nexus, server):
    job = nexus.json(
        "jobs",
        "create",
        "--name",
        "watched",
        "--interval",
        "3600",
        "--task",
        "nexus.echo",
        "--kwargs",
        '{"hello": "world"}',
    )
    watch = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nexus_client",
            "runs",
            "watch",
            str(job["id"]),
            "--interval",
            "0.5",
            "--until-count",
            "1",
            "--timeout",
            "60",
            "--output",
            "json",
        ],
        cwd=ROOT,
        env=nexus.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # It says so on stderr once it has seen the runs already there.
    assert "watching" in watch.stderr.readline()  # type: ignore[union-attr]
    started = nexus.json("jobs", "run", str(job["id"]))
    out, errs = watch.communicate(timeout=90)
    assert watch.returncode == 0, errs
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    mine = [e for e in events if e["id"] == started["execution_id"]]
    assert mine[0]["event"] == "new" and mine[-1]["status"] == "completed"
    nexus("jobs", "delete", str(job["id"]))


def test_watch_stops_at_its_timeout(nexus):
    job = nexus.json(
        "jobs", "create", "--name", "quiet", "--interval", "3600", "--task", "nexus.echo"
    )
    nexus("runs", "watch", str(job["id"]), "--interval", "0.2", "--timeout", "1")
    nexus(
        "runs",
        "watch",
        str(job["id"]),
        "--interval",
        "0.2",
        "--timeout",
        "1",
        "--until-count",
        "1",
        expect=1,
    )
    nexus("jobs", "delete", str(job["id"]))


def test_apply_creates_then_changes_nothing_then_shows_and_makes_a_diff_then_prunes(
    nexus, tmp_path
):
    tag = f"apply-{uuid.uuid4().hex[:8]}"
    first, second = f"{tag}-report", f"{tag}-tick"
    jobs = {
        "jobs": {
            first: {
                "job_type": "cron",
                "cron_expression": "0 9 * * 1-5",
                "timezone": "US/Eastern",
                "task_name": "tasks.generate_report",
                "task_kwargs": {"format": "pdf"},
                "tags": ["report"],
            },
            second: {"job_type": "interval", "interval_seconds": 600, "task_name": "nexus.echo"},
        }
    }
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump(jobs))
    apply = ("apply", "-f", str(path), "--tag", tag)

    made = nexus(*apply).stdout
    assert f"+ create {first}" in made and f"+ create {second}" in made
    assert {j["name"] for j in nexus.json("jobs", "list", "--tag", tag)} == {first, second}
    assert nexus(*apply).stdout.strip() == "no changes"

    jobs["jobs"][second]["interval_seconds"] = 900
    path.write_text(yaml.safe_dump(jobs))
    dry = nexus(*apply, "--dry-run").stdout
    assert f"~ update {second}" in dry and "interval_seconds: 600 -> 900" in dry
    assert "nothing changed" in dry
    (tick,) = [j for j in nexus.json("jobs", "list", "--tag", tag) if j["name"] == second]
    assert tick["interval_seconds"] == 600  # the dry run changed nothing

    changed = nexus.json(*apply)
    assert changed["changes"] == [
        {
            "action": "update",
            "name": second,
            "id": tick["id"],
            "changes": {"interval_seconds": {"from": 600, "to": 900}},
        }
    ]

    del jobs["jobs"][first]
    path.write_text(yaml.safe_dump(jobs))
    assert "no changes" in nexus(*apply).stdout  # without --prune nothing is deleted
    pruned = nexus(*apply, "--prune").stdout
    assert f"- delete {first}" in pruned
    assert [j["name"] for j in nexus.json("jobs", "list", "--tag", tag)] == [second]
    assert nexus(*apply, "--prune").stdout.strip() == "no changes"
    nexus("apply", "-f", str(path), "--prune", expect=2)  # --prune without --tag


def test_apply_refuses_a_name_two_server_jobs_carry(nexus, tmp_path):
    name = f"twin-{uuid.uuid4().hex[:8]}"
    ids = [
        nexus.json("jobs", "create", "--name", name, "--interval", "60", "--task", "nexus.echo")[
            "id"
        ]
        for _ in range(2)
    ]
    path = tmp_path / "jobs.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "jobs": {
                    name: {
                        "job_type": "interval",
                        "interval_seconds": 60,
                        "task_name": "nexus.echo",
                    }
                }
            }
        )
    )
    refused = nexus("apply", "-f", str(path), expect=2)
    assert all(str(i) in refused.stderr for i in ids)


# -- issue 13's scheduling controls ----------------------------------------------------------


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def test_a_pause_with_a_note_and_an_end_shows_on_the_job(nexus):
    job = nexus.json(
        "jobs", "create", "--name", "noted", "--interval", "3600", "--task", "nexus.echo"
    )
    ident = str(job["id"])
    until = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    paused = nexus("jobs", "pause", ident, "--note", "db upgrade", "--until", until.isoformat())
    assert "Job paused" in paused.stdout and "db upgrade" in paused.stdout

    shown = nexus.json("jobs", "show", ident)
    assert (shown["status"], shown["paused_note"]) == ("paused", "db upgrade")
    assert datetime.fromisoformat(shown["paused_until"]) == until
    table = nexus("jobs", "show", ident).stdout
    for field in ("paused_note", "db upgrade", "concurrency_policy", "blackout_windows"):
        assert field in table

    past = nexus("jobs", "pause", ident, "--until", "2020-01-01T00:00:00Z", expect=2)
    assert "until" in past.stderr and "future" in past.stderr
    assert "Job resumed" in nexus("jobs", "resume", ident).stdout
    assert nexus.json("jobs", "show", ident)["paused_note"] is None
    nexus("jobs", "pause", "999999", "--note", "nobody", expect=3)
    nexus("jobs", "delete", ident)


def test_create_and_update_show_the_schedule_warnings_and_preview_its_cost(nexus):
    # 02:30 does not happen on US/Eastern's spring-forward night.
    dst = ("--cron", "30 2 * * *", "--tz", "US/Eastern")
    made = nexus("jobs", "create", "--name", "half past two", *dst, "--task", "nexus.echo")
    assert "warning:" in made.stderr and "(dst_gap)" in made.stderr
    (job,) = [j for j in nexus.json("jobs", "list") if j["name"] == "half past two"]
    changed = nexus.json("jobs", "update", str(job["id"]), "--priority", "2")
    assert "dst_gap" in {w["code"] for w in changed["warnings"]}
    preview = nexus("preview", *dst, "--count", "2")
    assert "runs a month" in preview.stdout and "(dst_gap)" in preview.stderr
    assert "dst_gap" in {w["code"] for w in nexus.json("preview", *dst)["warnings"]}
    nexus("jobs", "delete", str(job["id"]))


def test_a_running_and_a_waiting_manual_run_are_cancelled_and_an_ended_one_is_refused(nexus):
    # buffer_one: the second run waits, pending, for the first (a 30 s sleep) to end.
    job = nexus.json(
        "jobs",
        "create",
        "--name",
        "sleeper",
        "--interval",
        "3600",
        "--task",
        "nexus.sleep",
        "--kwargs",
        '{"seconds": 30}',
        "--set",
        "concurrency_policy=buffer_one",
    )
    ident = str(job["id"])
    assert job["concurrency_policy"] == "buffer_one"

    def status(execution_id: str) -> str:
        runs = nexus.json("runs", "list", ident)
        return str({r["id"]: r["status"] for r in runs}.get(execution_id))

    first = nexus.json("jobs", "run", ident)["execution_id"]
    wait_until(lambda: status(first) == "running", 30, "the first run to start")
    second = nexus.json("jobs", "run", ident)["execution_id"]
    assert status(second) == "pending"

    waiting = nexus("runs", "cancel", second, "--reason", "not needed").stdout
    assert f"Run {second} cancelled" in waiting and "not needed" in waiting
    assert status(second) == "cancelled"

    asked = nexus.json("runs", "cancel", first, "--reason", "taking too long")
    assert asked["id"] == first and asked["status"] in ("running", "cancelled")
    wait_until(lambda: status(first) == "cancelled", 15, "the running run to stop")
    (stopped,) = [r for r in nexus.json("runs", "list", ident) if r["id"] == first]
    assert stopped["duration_seconds"] < 20  # stopped, not slept out

    ended = nexus("runs", "cancel", first, expect=1)
    assert "already ended" in ended.stderr
    nexus("runs", "cancel", f"{ident}-20200101T000000Z-1", expect=3)
    nexus("jobs", "delete", ident)


def test_a_backfill_dry_run_lists_the_window_and_a_real_one_is_followed_to_its_end(nexus):
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=3)
    window = ("--start", start.isoformat(), "--end", end.isoformat())
    # Paused: its own runs stay out of the way; a backfill runs all the same.
    job = nexus.json(
        "jobs", "create", "--name", "minutely", "--cron", "* * * * *", "--task", "nexus.echo"
    )
    ident = str(job["id"])
    nexus("jobs", "pause", ident)
    minutes = [(start + timedelta(minutes=m)).isoformat() for m in range(4)]

    plan = nexus.json("jobs", "backfill", ident, *window, "--dry-run")
    assert [datetime.fromisoformat(t).isoformat() for t in plan["occurrences"]] == minutes
    assert (
        "dry run, nothing run: 4 occurrences"
        in nexus("jobs", "backfill", ident, *window, "--dry-run").stdout
    )
    assert nexus.json("runs", "list", ident) == []

    followed = nexus(
        "jobs", "backfill", ident, *window, "--wait", "--interval", "0.5", "--timeout", "60"
    ).stdout
    assert "4 occurrences" in followed
    assert "done: 4/4 handled (sent 4, existing 0, skipped 0); runs: completed 4" in followed
    runs = nexus.json("runs", "list", ident)
    assert sorted(datetime.fromisoformat(r["scheduled_for"]).isoformat() for r in runs) == minutes
    assert {(r["trigger"], r["status"]) for r in runs} == {("backfill", "completed")}
    backfill_id = runs[0]["backfill_id"]
    shown = nexus.json("backfills", "show", backfill_id)
    assert (shown["status"], shown["sent"], shown["runs"]) == ("done", 4, {"completed": 4})
    assert backfill_id in nexus("backfills", "show", backfill_id).stdout

    # Asked again, every occurrence has its run: none runs twice.
    again = nexus.json("jobs", "backfill", ident, *window, "--wait", "--interval", "0.5")
    assert (again["status"], again["sent"], again["existing"]) == ("done", 0, 4)
    assert len(nexus.json("runs", "list", ident)) == 4

    future = ("--start", start.isoformat(), "--end", (end + timedelta(days=1)).isoformat())
    refused = nexus("jobs", "backfill", ident, *future, expect=2)
    assert "end" in refused.stderr and "now" in refused.stderr
    nexus("jobs", "backfill", ident, *window, "--overlap", "sometimes", expect=2)
    nexus("jobs", "backfill", ident, *window, "--dry-run", "--wait", expect=2)
    nexus("backfills", "show", f"{ident}-000000000000", expect=3)
    nexus("jobs", "delete", ident)


def test_calendars_are_created_listed_shown_changed_and_deleted(nexus, tmp_path):
    name, other = f"closed-{uuid.uuid4().hex[:8]}", f"ics-{uuid.uuid4().hex[:8]}"
    made = nexus.json(
        "calendars",
        "create",
        name,
        "--tz",
        "Europe/London",
        "--date",
        "2025-12-25",
        "--date",
        "2025-12-24/2025-12-26",
        "--date",
        "2026-01-01",
        "--description",
        "office shut",
    )
    assert (made["timezone"], made["dates"]) == (
        "Europe/London",
        ["2025-12-24/2025-12-26", "2026-01-01"],
    )
    ics = tmp_path / "holidays.ics"
    ics.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\n"
        "DTSTART;VALUE=DATE:20250704\r\nDTEND;VALUE=DATE:20250705\r\nSUMMARY:July 4\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    made_ics = nexus("calendars", "create", other, "--tz", "US/Eastern", "--ics", str(ics))
    assert "2025-07-04" in made_ics.stdout

    assert {name, other} <= {c["name"] for c in nexus.json("calendars", "list")}
    assert name in nexus("calendars", "list").stdout
    shown = nexus("calendars", "show", name).stdout
    assert "2025-12-24/2025-12-26" in shown and "office shut" in shown
    changed = nexus.json("calendars", "update", name, "--date", "2027-01-01")
    assert (changed["dates"], changed["description"]) == (["2027-01-01"], "office shut")

    job = nexus.json(
        "jobs",
        "create",
        "--name",
        "skips holidays",
        "--cron",
        "0 9 * * *",
        "--task",
        "nexus.echo",
        "--set",
        f'exclude_calendars=["{name}"]',
    )
    assert job["exclude_calendars"] == [name]
    assert nexus.json("calendars", "show", name)["used_by"] == [job["id"]]
    in_use = nexus("calendars", "delete", name, expect=1)
    assert str(job["id"]) in in_use.stderr
    nexus("jobs", "delete", str(job["id"]))

    assert nexus.json("calendars", "delete", name)["message"] == f"Calendar {name} deleted"
    assert f"Calendar {other} deleted" in nexus("calendars", "delete", other).stdout
    nexus("calendars", "show", name, expect=3)
    both = ("--date", "2025-01-01", "--ics", str(ics))
    nexus("calendars", "create", "x", "--tz", "UTC", *both, expect=2)
    nexus("calendars", "create", "x", "--tz", "UTC", expect=2)
    bad = nexus("calendars", "create", "x", "--tz", "UTC", "--date", "2025-02-30", expect=2)
    assert "dates" in bad.stderr
