#!/usr/bin/env python3
"""Smoke check: the API contract end to end against a running NEXUS.

    NEXUS_KEY=<admin key> python scripts/smoke.py http://127.0.0.1:8000/api/v1   # make run
    NEXUS_KEY=<admin key> python scripts/smoke.py https://xxx.execute-api.../api/v1

It needs an admin key (`make run` prints one; `make admin-key STAGE=dev` makes one for a
deployment), in NEXUS_KEY or --key. It also checks that the API refuses a request without a
key (401) and a key without the scope (403), makes a read-only key and revokes it.

Creates jobs named `smoke-...` (one of each type), reads, lists, updates, pauses and resumes
them, runs one with `nexus.echo` and waits for its result, checks the schedule endpoints, the
stats and the error shapes, then deletes every job it created, whatever happened. Prints one
`PASS name` / `FAIL name: why` line per check and `N passed, M failed` last; exits 0 only
if every check passed. Standard library only, so it runs anywhere Python 3.11 does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

TIMEOUT = 15.0


class Client:
    def __init__(self, base_url: str, key: str | None) -> None:
        self.base = base_url.rstrip("/")
        self.key = key

    def with_key(self, key: str | None) -> Client:
        return Client(self.base, key)

    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
                **({"Authorization": f"Bearer {self.key}"} if self.key else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        try:
            return status, (json.loads(payload) if payload else None)
        except ValueError:
            return status, payload.decode(errors="replace")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def expect_status(got: tuple[int, Any], status: int) -> Any:
    code, body = got
    expect(code == status, f"expected HTTP {status}, got {code}: {str(body)[:300]}")
    return body


class Smoke:
    def __init__(self, client: Client, wait_seconds: float) -> None:
        self.api = client
        self.wait_seconds = wait_seconds
        self.tag = f"smoke-{uuid.uuid4().hex[:8]}"
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[int] = []
        self.passed = 0
        self.failed = 0

    def check(self, name: str, step: Callable[[], None]) -> bool:
        try:
            step()
        except Exception as exc:  # every failure is a FAIL line, never a crash
            self.failed += 1
            reason = str(exc) if isinstance(exc, AssertionError) else repr(exc)
            print(f"FAIL {name}: {reason}", flush=True)
            return False
        self.passed += 1
        print(f"PASS {name}", flush=True)
        return True

    def job(self, kind: str) -> dict[str, Any]:
        expect(kind in self.jobs, f"the {kind} job was not created")
        return self.jobs[kind]

    # -- the checks -------------------------------------------------------------------------

    def create(self, kind: str, fields: dict[str, Any]) -> Callable[[], None]:
        def step() -> None:
            body = {
                "name": f"smoke-{kind}-{self.tag}",
                "task_name": "nexus.echo",
                "tags": [self.tag, "smoke"],
                "created_by": "smoke",
                **fields,
            }
            job = expect_status(self.api.call("POST", "/jobs", body), 201)
            self.created.append(job["id"])
            self.jobs[kind] = job
            expect(job["job_type"] == fields["job_type"], f"job_type is {job['job_type']}")
            expect(job["is_active"] is True, "a new job is active")
            expect(job["next_run_at"] is not None, "a new job has a next_run_at")

        return step

    def refused_without_a_key(self) -> None:
        for key in (None, "nxs_000000000000_" + "A" * 43):
            code, body = self.api.with_key(key).call("GET", "/jobs")
            expect(code == 401, f"expected 401 with key {key!r}, got {code}: {body}")
            expect(isinstance(body, dict) and "detail" in body, f"401 body is {body}")

    def scoped_key(self) -> None:
        made = expect_status(
            self.api.call("POST", "/keys", {"name": f"smoke-{self.tag}", "scopes": ["jobs:read"]}),
            201,
        )
        expect(made["key"].startswith("nxs_"), "a new key is shown once, starting nxs_")
        reader = self.api.with_key(made["key"])
        expect_status(reader.call("GET", "/jobs?limit=1"), 200)
        code, body = reader.call("POST", "/jobs", {"name": "x"})
        expect(code == 403 and "jobs:write" in str(body), f"a read-only key wrote: {code} {body}")
        listed = expect_status(self.api.call("GET", "/keys"), 200)
        expect(
            all("key" not in k and "secret_hash" not in k for k in listed),
            "GET /keys never shows a secret",
        )
        expect_status(self.api.call("DELETE", f"/keys/{made['id']}"), 204)

    def audit(self) -> None:
        job = self.job("cron")
        trail = expect_status(self.api.call("GET", f"/jobs/{job['id']}/audit"), 200)
        actions = [entry["action"] for entry in trail]
        expect("job.create" in actions and "job.update" in actions, f"audit shows {actions}")

    def get(self) -> None:
        job = self.job("cron")
        got = expect_status(self.api.call("GET", f"/jobs/{job['id']}"), 200)
        expect(got["id"] == job["id"] and got["name"] == job["name"], "GET returns the job")

    def list_filtered(self) -> None:
        cron_id = self.job("cron")["id"]
        query = f"?is_active=true&job_type=cron&tags={self.tag},smoke&limit=50"
        listed = expect_status(self.api.call("GET", "/jobs" + query), 200)
        expect([j["id"] for j in listed] == [cron_id], f"filtered list is {listed}")
        every = expect_status(self.api.call("GET", f"/jobs?tags={self.tag}"), 200)
        expect(
            sorted(j["id"] for j in every) == sorted(self.created),
            "listing by the smoke tag finds every smoke job",
        )

    def update(self) -> None:
        job = self.job("cron")
        changes = {"name": f"smoke-cron-updated-{self.tag}", "priority": 7}
        got = expect_status(self.api.call("PUT", f"/jobs/{job['id']}", changes), 200)
        expect(got["name"] == changes["name"] and got["priority"] == 7, f"updated: {got}")
        expect(got["cron_expression"] == job["cron_expression"], "other fields are kept")

    def cron_validate(self) -> None:
        good = expect_status(
            self.api.call(
                "POST",
                "/cron/validate",
                {"expression": "*/5 * * * *", "timezone": "UTC", "start": "2025-01-20T14:02:00Z"},
            ),
            200,
        )
        expect(good["is_valid"] is True, f"valid expression: {good}")
        expect(good["next_runs"][0] == "2025-01-20T14:05:00Z", f"next runs: {good}")
        bad = expect_status(
            self.api.call("POST", "/cron/validate", {"expression": "61 * * *"}), 200
        )
        expect(bad["is_valid"] is False and bad["error"], f"invalid expression: {bad}")

    def presets(self) -> None:
        presets = expect_status(self.api.call("GET", "/cron/presets"), 200)
        expect(isinstance(presets, dict) and presets, "presets are a non-empty object")
        first = next(iter(presets.values()))
        expect({"expression", "description"} <= set(first), f"a preset: {first}")

    def preview(self) -> None:
        body = {
            "job_type": "cron",
            "cron_expression": "30 2 * * *",
            "timezone": "US/Eastern",
            "start": "2026-03-07T00:00:00Z",
            "count": 3,
        }
        got = expect_status(self.api.call("POST", "/schedules/preview", body), 200)
        expect(len(got["next_runs"]) == 3, f"preview: {got}")

    def execute_and_wait(self) -> None:
        job = self.job("interval")
        overrides = {"task_args": [1, "two"], "task_kwargs": {"smoke": True}}
        started = expect_status(self.api.call("POST", f"/jobs/{job['id']}/execute", overrides), 200)
        expect(started.get("execution_id") and started.get("task_id"), f"execute: {started}")
        deadline = time.monotonic() + self.wait_seconds
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            runs = expect_status(self.api.call("GET", f"/jobs/{job['id']}/executions"), 200)
            run = next((r for r in runs if r["id"] == started["execution_id"]), {})
            if run.get("status") in ("completed", "failed", "dead_lettered", "skipped"):
                break
            time.sleep(0.5)
        expect(
            run.get("status") == "completed",
            f"execution is {run.get('status', 'not listed')} after {self.wait_seconds:g} s: "
            f"{run.get('error')}",
        )
        expected = {"args": overrides["task_args"], "kwargs": overrides["task_kwargs"]}
        expect(run["result"] == expected, f"result is {run['result']}")

    def pause_resume(self) -> None:
        job_id = self.job("calendar")["id"]
        expect_status(self.api.call("POST", f"/jobs/{job_id}/pause"), 200)
        paused = expect_status(self.api.call("GET", f"/jobs/{job_id}"), 200)
        expect(paused["is_active"] is False, "paused job is inactive")
        expect(paused["next_run_at"] is None, "paused job has no next run")
        resumed = expect_status(self.api.call("POST", f"/jobs/{job_id}/resume"), 200)
        expect(resumed["next_run_at"] is not None, f"resume: {resumed}")
        again = expect_status(self.api.call("GET", f"/jobs/{job_id}"), 200)
        expect(again["is_active"] is True, "resumed job is active")

    def executions(self) -> None:
        job_id = self.job("interval")["id"]
        runs = expect_status(self.api.call("GET", f"/jobs/{job_id}/executions?limit=10"), 200)
        expect(isinstance(runs, list) and runs, "the executed job has a history")
        expect(all(r["job_id"] == job_id for r in runs), "every execution is the job's")

    def stats(self) -> None:
        stats = expect_status(self.api.call("GET", "/jobs/stats/overview"), 200)
        for key in ("total_jobs", "active_jobs", "total_executions", "average_duration"):
            expect(key in stats, f"stats lacks {key}: {stats}")
        expect(stats["total_jobs"] >= len(self.created), f"total_jobs: {stats['total_jobs']}")

    def not_found(self) -> None:
        got = expect_status(self.api.call("GET", "/jobs/999999999999"), 404)
        expect(got == {"detail": "Job not found"}, f"404 body: {got}")

    def invalid(self) -> None:
        body = {
            "name": f"smoke-invalid-{self.tag}",
            "job_type": "cron",
            "cron_expression": "not a cron",
            "task_name": "nexus.echo",
        }
        code, got = self.api.call("POST", "/jobs", body)
        if code == 201:  # it must not have been, but do not leave it behind
            self.created.append(got["id"])
        expect(code == 422, f"expected HTTP 422, got {code}: {got}")
        locs = [tuple(e["loc"]) for e in got["detail"]]
        expect(("body", "cron_expression") in locs, f"422 detail: {got}")
        expect(all({"loc", "msg", "type"} <= set(e) for e in got["detail"]), "422 entry shape")

    def malformed(self) -> None:
        got = expect_status(self.api.call("POST", "/jobs", raw=b'{"name": "smoke-'), 400)
        expect(
            isinstance(got, dict) and "not valid JSON" in str(got.get("detail")),
            f"400 body: {got}",
        )

    def delete_all(self) -> None:
        problems = []
        for job_id in list(self.created):
            code, body = self.api.call("DELETE", f"/jobs/{job_id}")
            if code not in (204, 404):
                problems.append(f"DELETE {job_id}: HTTP {code} {body}")
                continue
            self.created.remove(job_id)
            if self.api.call("GET", f"/jobs/{job_id}")[0] != 404:
                problems.append(f"job {job_id} is still there after DELETE")
        expect(not problems, "; ".join(problems))

    def run(self) -> int:
        try:
            self.check(
                "create cron job",
                self.create("cron", {"job_type": "cron", "cron_expression": "0 9 * * 1-5"}),
            )
            self.check(
                "create interval job",
                self.create("interval", {"job_type": "interval", "interval_seconds": 3600}),
            )
            self.check(
                "create date job",
                self.create(
                    "date",
                    {
                        "job_type": "date",
                        "scheduled_time": "2030-01-01T09:00:00",
                        "timezone": "Europe/London",
                    },
                ),
            )
            self.check(
                "create calendar job",
                self.create(
                    "calendar",
                    {
                        "job_type": "calendar",
                        "calendar_rule": "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
                    },
                ),
            )
            self.check("401 without a key or with an unknown one", self.refused_without_a_key)
            self.check("a read-only key reads, cannot write, and is revoked", self.scoped_key)
            self.check("get job", self.get)
            self.check("list jobs with filters", self.list_filtered)
            self.check("update job", self.update)
            self.check("cron validate", self.cron_validate)
            self.check("cron presets", self.presets)
            self.check("schedules preview", self.preview)
            self.check("execute job and wait for its result", self.execute_and_wait)
            self.check("pause and resume", self.pause_resume)
            self.check("list executions", self.executions)
            self.check("stats overview", self.stats)
            self.check("audit trail of a job", self.audit)
            self.check("404 on a missing job", self.not_found)
            self.check("422 with loc on an invalid job", self.invalid)
            self.check("400 on malformed JSON", self.malformed)
        finally:
            self.check("delete every smoke job", self.delete_all)
            print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base_url", help="the API's base URL, ending in /api/v1")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait for the executed run"
    )
    parser.add_argument(
        "--key", default=os.environ.get("NEXUS_KEY"), help="an admin key (default: $NEXUS_KEY)"
    )
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("an admin key is needed: set NEXUS_KEY or pass --key")
    return Smoke(Client(args.base_url, args.key), args.wait).run()


if __name__ == "__main__":
    sys.exit(main())
