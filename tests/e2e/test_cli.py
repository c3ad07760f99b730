"""The `nexus` command against `make run` (python -m local.run as a process): jobs, runs,
watch, and jobs as code with apply (create, no-op, dry run, update, prune)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
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
