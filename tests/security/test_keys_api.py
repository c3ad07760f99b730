"""Issue 10: nobody gets in without a key, a key gets only its scopes, and its rate."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import app as app_module
from tests.conftest import TEST_ADMIN_KEY

# The routes anyone may call (README "API keys"): static data, no job data, no storage.
OPEN_ROUTES = {
    ("/v1/cron/presets", "GET"),
    ("/v1/openapi.json", "GET"),
    ("/v1/docs", "GET"),
    ("/v1/docs/{asset}", "GET"),
    # The dashboard's page and files: no job data; its calls carry the key typed in.
    ("/ui", "GET"),
    ("/ui/{asset}", "GET"),
}
SCOPE_OF = {
    ("/v1/jobs", "POST"): "jobs:write",
    ("/v1/jobs", "GET"): "jobs:read",
    ("/v1/jobs/stats/overview", "GET"): "jobs:read",
    ("/v1/jobs/{job_id}", "GET"): "jobs:read",
    ("/v1/jobs/{job_id}", "PUT"): "jobs:write",
    ("/v1/jobs/{job_id}", "DELETE"): "jobs:write",
    ("/v1/jobs/{job_id}/execute", "POST"): "jobs:execute",
    ("/v1/jobs/{job_id}/pause", "POST"): "jobs:write",
    ("/v1/jobs/{job_id}/resume", "POST"): "jobs:write",
    ("/v1/jobs/{job_id}/executions", "GET"): "jobs:read",
    ("/v1/jobs/{job_id}/audit", "GET"): "jobs:read",
    ("/v1/cron/validate", "POST"): "jobs:read",
    ("/v1/schedules/preview", "POST"): "jobs:read",
    ("/v1/keys", "POST"): "keys:admin",
    ("/v1/keys", "GET"): "keys:admin",
    ("/v1/keys/{key_id}", "DELETE"): "keys:admin",
    ("/v1/audit", "GET"): "keys:admin",
    ("/v1/realtime", "GET"): "jobs:read",
    ("/v1/jobs/{job_id}/backfill", "POST"): "jobs:execute",
    ("/v1/backfills/{backfill_id}", "GET"): "jobs:read",
    ("/v1/executions/{execution_id}/cancel", "POST"): "jobs:execute",
    ("/v1/calendars", "POST"): "jobs:write",
    ("/v1/calendars", "GET"): "jobs:read",
    ("/v1/calendars/{name}", "GET"): "jobs:read",
    ("/v1/calendars/{name}", "PUT"): "jobs:write",
    ("/v1/calendars/{name}", "DELETE"): "jobs:write",
}
BODIES: dict[tuple[str, str], Any] = {
    ("/v1/jobs", "POST"): {
        "name": "x",
        "job_type": "interval",
        "interval_seconds": 60,
        "task_name": "nexus.echo",
    },
    ("/v1/jobs/{job_id}", "PUT"): {"name": "changed"},
    ("/v1/cron/validate", "POST"): {"expression": "* * * * *"},
    ("/v1/schedules/preview", "POST"): {"job_type": "cron", "cron_expression": "* * * * *"},
    ("/v1/keys", "POST"): {"name": "k", "scopes": ["jobs:read"]},
    ("/v1/jobs/{job_id}/backfill", "POST"): {
        "start": "2029-12-31T00:00:00Z",
        "end": "2030-01-01T00:00:00Z",
    },
    ("/v1/calendars", "POST"): {"name": "c", "timezone": "UTC", "dates": ["2030-01-01"]},
    ("/v1/calendars/{name}", "PUT"): {"dates": []},
}


def every_route() -> list[tuple[str, str]]:
    return sorted(
        (path, method)
        for path, methods in app_module.app.routes.items()
        for method in methods
        if (path, method) not in OPEN_ROUTES
    )


def make_key(api: Any, scopes: list[str], **fields: Any) -> dict[str, Any]:
    response = api.post("/v1/keys", {"name": f"key {scopes}", "scopes": scopes, **fields})
    assert response.status_code == 201, response.json
    return dict(response.json)


def table_items() -> list[str]:
    from chalicelib.aws import client
    from chalicelib.config import get_settings

    db = client("dynamodb")
    items = db.scan(TableName=get_settings().table_name)["Items"]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


@pytest.fixture
def job(api: Any) -> dict[str, Any]:
    response = api.post("/v1/jobs", BODIES[("/v1/jobs", "POST")])
    assert response.status_code == 201
    return dict(response.json)


def test_every_route_but_the_open_ones_has_a_scope_in_this_test():
    assert set(every_route()) == set(SCOPE_OF)
    opened = {
        (path, method)
        for path, methods in app_module.app.routes.items()
        for method, entry in methods.items()
        if entry.view_function.nexus_scope is None
    }
    assert opened == OPEN_ROUTES


@pytest.mark.parametrize(
    "case", ["no key", "malformed", "unknown", "revoked", "expired", "without the scope"]
)
def test_every_route_refuses_a_request_without_a_good_key_and_changes_nothing(
    api, job, case, monkeypatch
):
    victim = make_key(api, ["jobs:read"])
    keys: dict[str, str | None] = {
        "no key": None,
        "malformed": "nxs_not-a-key",
        "unknown": "nxs_000000000000_" + "A" * 43,
    }
    revoked = make_key(api, ["keys:admin"])
    assert api.delete(f"/v1/keys/{revoked['id']}").status_code == 204
    keys["revoked"] = revoked["key"]
    keys["expired"] = make_key(api, ["keys:admin"], expires_at="2030-01-01T00:00:00Z")["key"]
    scoped = {scope: make_key(api, [scope])["key"] for scope in ("jobs:read", "jobs:execute")}
    later = datetime(2030, 1, 2, tzinfo=UTC)  # the expired key's time has passed
    monkeypatch.setattr(app_module, "now", lambda: later)
    for key in scoped.values():
        # Used once, so its last_used_at is fresh and the calls below write nothing.
        api.as_key(key).get("/v1/jobs/stats/overview")
    paths = {
        "job_id": str(job["id"]),
        "key_id": victim["id"],
        "backfill_id": f"{job['id']}-000000000000",
        "execution_id": f"{job['id']}-20300101T000000Z-1",
        "name": "c",
    }
    for path, method in every_route():
        scope = SCOPE_OF[(path, method)]
        if case == "without the scope":
            caller = api.as_key(scoped["jobs:execute" if scope != "jobs:execute" else "jobs:read"])
        else:
            caller = api.as_key(keys[case])
        before = table_items()
        url = re.sub(r"\{(\w+)\}", lambda m: paths[m.group(1)], path)
        response = caller.call(method.lower(), url, BODIES.get((path, method)))
        expected = 403 if case == "without the scope" else 401
        assert response.status_code == expected, (method, path, response.json)
        if case == "without the scope":
            assert f"'{scope}'" in response.json["detail"]
        elif case != "no key":
            # The app's own 401 (a request without any key is answered by the gateway before
            # the app: tests/e2e/test_auth_on_make_run.py checks its shape).
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert response.json["detail"]
        assert table_items() == before, (method, path)


# -- keys ----------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_only_its_hash_is_stored(api):
    made = make_key(api, ["jobs:read", "jobs:write"], expires_at="2099-01-01T00:00:00Z")
    assert made["key"].startswith(f"nxs_{made['id']}_")
    assert made["scopes"] == ["jobs:read", "jobs:write"]
    assert made["expires_at"] == "2099-01-01T00:00:00Z"
    listed = api.get("/v1/keys")
    assert listed.headers["Cache-Control"] == "no-store"
    (shown,) = [k for k in listed.json if k["id"] == made["id"]]
    assert "key" not in shown and "secret_hash" not in shown
    secret = made["key"].rsplit("_", 1)[1]
    stored = "\n".join(table_items())
    assert secret not in stored and made["key"] not in stored and TEST_ADMIN_KEY not in stored


def test_a_key_works_with_its_scopes_until_it_is_revoked(api, job):
    reader = api.as_key(make_key(api, ["jobs:read"])["key"])
    assert reader.get(f"/v1/jobs/{job['id']}").status_code == 200
    assert reader.put(f"/v1/jobs/{job['id']}", {"name": "no"}).status_code == 403
    key_id = reader.key.split("_")[1]  # type: ignore[union-attr]
    assert api.delete(f"/v1/keys/{key_id}").status_code == 204
    refused = reader.get(f"/v1/jobs/{job['id']}")
    assert refused.status_code == 401 and "revoked" in refused.json["detail"]
    assert api.delete("/v1/keys/nosuchkey000").status_code == 404


def test_a_key_request_is_checked_like_any_other_body(api):
    bad = api.post("/v1/keys", {"name": "x", "scopes": ["jobs:everything"]})
    assert bad.status_code == 422
    assert bad.json["detail"][0]["loc"][:2] == ["body", "scopes"]
    past = api.post("/v1/keys", {"name": "x", "scopes": ["jobs:read"], "expires_at": "2001-01-01Z"})
    assert past.status_code == 422


# -- rate limits ---------------------------------------------------------------------------


def test_past_its_rate_a_key_gets_429_with_retry_after_then_succeeds_after_it(api, monkeypatch):
    key = make_key(api, ["jobs:read"], rate_limit={"rate": 2, "burst": 4})["key"]
    caller = api.as_key(key)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)  # a window starts here: windows are burst/rate = 2 s
    monkeypatch.setattr(app_module, "now", lambda: t0)
    answers = [caller.get("/v1/jobs/stats/overview") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["3", "2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "4" for a in answers)
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "2"
    assert "rate limit" in refused.json["detail"]
    monkeypatch.setattr(app_module, "now", lambda: t0 + timedelta(seconds=2))
    assert caller.get("/v1/jobs/stats/overview").status_code == 200


def test_runs_on_demand_are_counted_apart_from_other_requests(api, job, monkeypatch):
    key = make_key(api, ["jobs:execute", "jobs:read"], rate_limit={"execute_rate": 1})["key"]
    caller = api.as_key(key)
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(app_module, "now", lambda: t0)
    runs = [caller.post(f"/v1/jobs/{job['id']}/execute", {}) for _ in range(3)]
    assert [r.status_code for r in runs] == [200, 200, 429]
    assert caller.get(f"/v1/jobs/{job['id']}").status_code == 200


@contextmanager
def throttled(operation: str, pk_prefix: str) -> Iterator[None]:
    """DynamoDB answers ThrottlingException to `operation` on items whose pk starts with
    `pk_prefix` (a botocore hook: after botocore's own retries ran out, as it were)."""
    from botocore.exceptions import ClientError

    from chalicelib.aws import client

    def throttle(params: dict[str, Any], **_: Any) -> None:
        if params["Key"]["pk"]["S"].startswith(pk_prefix):
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, operation)

    events = client("dynamodb").meta.events
    events.register(f"provide-client-params.dynamodb.{operation}", throttle)
    try:
        yield
    finally:
        events.unregister(f"provide-client-params.dynamodb.{operation}", throttle)


def test_a_rate_counter_that_cannot_be_written_lets_the_request_through(api):
    """Fail open (security.gate)."""
    with throttled("UpdateItem", "RATE#"):
        answer = api.get("/v1/jobs/stats/overview")
    assert answer.status_code == 200
    assert "RateLimit-Remaining" not in answer.headers


def test_a_key_that_cannot_be_read_just_now_gets_503_not_500(api):
    with throttled("GetItem", "KEY#"):
        answer = api.get("/v1/jobs")
    assert answer.status_code == 503 and answer.headers["Retry-After"]


@pytest.mark.parametrize("value", [True, 2.5, "10"], ids=["true", "a fraction", "a string"])
def test_a_rate_limit_that_is_not_a_whole_number_is_refused_naming_the_field(api, value):
    api.get("/v1/keys")  # the admin key's last use is noted now, not during the refusal
    unchanged = lambda: [i for i in table_items() if '"RATE#' not in i]  # noqa: E731
    before = unchanged()
    response = api.post(
        "/v1/keys", {"name": "k", "scopes": ["jobs:read"], "rate_limit": {"rate": value}}
    )
    assert response.status_code == 422
    assert "rate_limit" in json.dumps(response.json) and "rate" in json.dumps(response.json)
    assert unchanged() == before  # no key, no audit entry (the request's own count aside)
