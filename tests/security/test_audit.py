"""Issue 10: every change to a job or a key is recorded with the key that made it."""

from __future__ import annotations

from typing import Any

from tests.security.test_keys_api import BODIES, make_key, table_items


def actions(trail: list[dict[str, Any]]) -> list[str]:
    return [entry["action"] for entry in trail]


def test_every_change_to_a_job_is_in_its_audit_trail_newest_first_with_who_and_from_where(api):
    writer = make_key(api, ["jobs:write", "jobs:read", "jobs:execute"])
    as_writer = api.as_key(writer["key"])
    job = as_writer.post("/v1/jobs", BODIES[("/v1/jobs", "POST")]).json
    assert job["created_by_key"] == writer["id"]
    as_writer.put(f"/v1/jobs/{job['id']}", {"name": "renamed", "priority": 5, "tags": ["a"]})
    as_writer.post(f"/v1/jobs/{job['id']}/pause")
    as_writer.post(f"/v1/jobs/{job['id']}/resume")
    run = as_writer.post(f"/v1/jobs/{job['id']}/execute", {}).json
    trail = api.get(f"/v1/jobs/{job['id']}/audit").json
    assert actions(trail) == [
        "job.execute",
        "job.resume",
        "job.pause",
        "job.update",
        "job.create",
    ]
    assert {(e["actor_key_id"], e["actor_key_name"]) for e in trail} == {
        (writer["id"], writer["name"])
    }
    assert all(e["source_ip"] and e["at"] for e in trail)
    update = trail[3]
    # Only the fields that changed (priority 5 was already 5).
    assert update["changes"] == {
        "name": {"from": "x", "to": "renamed"},
        "tags": {"from": [], "to": ["a"]},
    }
    assert trail[0]["execution_id"] == run["execution_id"]


def test_a_deleted_jobs_trail_stays_in_the_whole_audit_with_its_deletion(api):
    job = api.post("/v1/jobs", BODIES[("/v1/jobs", "POST")]).json
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert api.get(f"/v1/jobs/{job['id']}/audit").status_code == 404
    trail = api.get("/v1/audit").json
    mine = [e for e in trail if e.get("job_id") == job["id"]]
    assert actions(mine) == ["job.delete", "job.create"]


def test_keys_made_and_revoked_are_in_the_whole_audit(api):
    made = make_key(api, ["jobs:read"])
    api.delete(f"/v1/keys/{made['id']}")
    trail = [e for e in api.get("/v1/audit").json if e.get("key_id") == made["id"]]
    assert actions(trail) == ["key.revoke", "key.create"]


def test_a_refused_change_leaves_no_audit_entry(api):
    job = api.post("/v1/jobs", BODIES[("/v1/jobs", "POST")]).json

    def stored() -> list[str]:  # all but the key's request counts
        return [item for item in table_items() if '"RATE#' not in item]

    before = stored()
    assert api.put(f"/v1/jobs/{job['id']}", {"interval_seconds": -1}).status_code == 422
    assert stored() == before
    assert actions(api.get(f"/v1/jobs/{job['id']}/audit").json) == ["job.create"]


def test_the_audit_is_paged_newest_first_through_an_opaque_cursor(api):
    job = api.post("/v1/jobs", BODIES[("/v1/jobs", "POST")]).json
    for i in range(4):
        api.put(f"/v1/jobs/{job['id']}", {"name": f"name {i}"})
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = api.get(
            f"/v1/jobs/{job['id']}/audit?limit=2" + (f"&cursor={cursor}" if cursor else "")
        )
        assert page.status_code == 200 and len(page.json) <= 2
        seen += [e["changes"]["name"]["to"] if e.get("changes") else e["action"] for e in page.json]
        cursor = page.headers.get("X-Next-Cursor")
        if not cursor:
            break
    assert seen == ["name 3", "name 2", "name 1", "name 0", "job.create"]
    bad = api.get(f"/v1/jobs/{job['id']}/audit?cursor=bm90LWEtY3Vyc29y")
    assert bad.status_code == 422 and bad.json["detail"][0]["loc"] == ["query", "cursor"]
