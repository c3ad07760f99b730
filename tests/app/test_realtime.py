"""Real-time events: what each change to the table means, and how the fan-out delivers it,
under the faults a WebSocket fan-out meets (a client gone, a send that fails, a record twice).

The changes are made through the API on moto and read from the table's change stream as
moto records it; the WebSocket API's management API (post_to_connection) is the one part
played here (`ManagementApi`), as API Gateway answers it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends

from chalicelib.aws import client
from chalicelib.config import get_settings
from chalicelib.models import Execution
from chalicelib.realtime.events import Event, from_records
from chalicelib.realtime.fanout import STATS_EVERY, Fanout, Sender
from chalicelib.store import Store
from chalicelib.store.items import execution_item, job_item

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def streamed(api: Any) -> None:
    """The API on moto, its table with the change stream on, as deployed and on make run
    (local/resources.ensure_table)."""
    stream = client("dynamodb").describe_table(TableName=get_settings().table_name)["Table"]
    assert stream["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


class Stream:
    """The table's change stream, from the moment this is made."""

    def __init__(self) -> None:
        self._shard = (
            dynamodb_backends["123456789012"]["us-east-1"]
            .tables[get_settings().table_name]
            .stream_shard
        )
        self._seen = len(self._shard.items)

    def records(self) -> list[dict[str, Any]]:
        """The new records, as Lambda delivers them (moto's in-process mock does not route
        DynamoDB Streams calls; its server does, and make run reads it so)."""
        fresh = [json.loads(json.dumps(r.record, default=str)) for r in self._shard.items]
        fresh = fresh[self._seen :]
        self._seen += len(fresh)
        return fresh


def events(records: list[dict[str, Any]], job_id: int | None = None) -> list[Event]:
    return [
        e
        for e in from_records(records, T0)
        if isinstance(e, Event) and (job_id is None or e.job_id == job_id)
    ]


def a_job(**fields: Any) -> dict[str, Any]:
    return {
        "name": "watched",
        "job_type": "interval",
        "interval_seconds": 3600,
        "task_name": "nexus.echo",
        **fields,
    }


# -- what a change means -------------------------------------------------------------------


def test_each_change_to_a_job_through_the_api_is_one_event_of_its_kind(api):
    stream = Stream()
    job = api.post("/v1/jobs", a_job()).json
    created = events(stream.records(), job["id"])
    assert [e.type for e in created] == ["job.created"]
    assert created[0].data == api.get(f"/v1/jobs/{job['id']}").json
    steps = [
        (lambda: api.post(f"/v1/jobs/{job['id']}/pause"), "job.paused"),
        (lambda: api.post(f"/v1/jobs/{job['id']}/resume"), "job.resumed"),
        (lambda: api.put(f"/v1/jobs/{job['id']}", {"name": "renamed"}), "job.updated"),
        (lambda: api.delete(f"/v1/jobs/{job['id']}"), "job.deleted"),
    ]
    for change, kind in steps:
        assert change().status_code in (200, 204)
        assert [e.type for e in events(stream.records(), job["id"])] == [kind]


def test_a_job_counted_in_the_stats_makes_the_stats_change(api):
    stream = Stream()
    api.post("/v1/jobs", a_job())
    assert "stats.changed" in [e.type for e in events(stream.records())]


def test_a_refused_change_makes_no_event(api):
    job = api.post("/v1/jobs", a_job()).json
    stream = Stream()
    assert api.put(f"/v1/jobs/{job['id']}", {"interval_seconds": 0}).status_code == 422
    assert api.post("/v1/jobs", a_job(timezone="Mars/Olympus")).status_code == 422
    assert events(stream.records()) == []


def job_change(old: Any, new: Any, seq: int = 1) -> dict[str, Any]:
    keys = {"pk": {"S": f"JOB#{new.id}"}, "sk": {"S": "JOB"}}
    return {
        "eventName": "MODIFY",
        "dynamodb": {
            "Keys": keys,
            "SequenceNumber": str(seq),
            "OldImage": job_item(old),
            "NewImage": job_item(new),
        },
    }


def test_what_a_run_changes_on_its_job_is_not_also_a_job_update_but_a_new_next_run_is(api):
    made = api.post("/v1/jobs", a_job()).json
    job = Store.over(client("dynamodb"), get_settings().table_name).jobs.get_job(made["id"])
    ran = job.model_copy(update={"last_run_at": T0, "last_run_status": "completed"})
    assert events([job_change(job, ran)]) == []
    moved = job.model_copy(update={"next_run_at": T0 + timedelta(hours=2)})
    (event,) = events([job_change(job, moved)])
    assert event.type == "job.updated"
    assert event.data is not None and event.data["next_run_at"] == "2026-11-26T14:00:00Z"


def test_of_several_updates_of_a_job_in_one_batch_only_the_last_is_sent(api):
    made = api.post("/v1/jobs", a_job()).json
    job = Store.over(client("dynamodb"), get_settings().table_name).jobs.get_job(made["id"])
    first = job.model_copy(update={"next_run_at": T0 + timedelta(hours=2)})
    second = first.model_copy(update={"name": "renamed"})
    (event,) = events([job_change(job, first, 1), job_change(first, second, 2)])
    assert (event.type, event.id) == ("job.updated", "2")
    assert event.data is not None and event.data["name"] == "renamed"


def run(status: str, **fields: Any) -> Execution:
    base: dict[str, Any] = {
        "id": "exec-1",
        "job_id": 7,
        "status": status,
        "trigger": "scheduled",
        "scheduled_for": T0,
        "task_id": "t",
        "task_name": "nexus.echo",
        "created_at": T0,
    }
    return Execution.model_validate({**base, **fields})


def change(old: Execution | None, new: Execution | None, seq: int = 1) -> dict[str, Any]:
    some = new or old
    assert some is not None
    keys = {"pk": {"S": f"JOB#{some.job_id}"}, "sk": {"S": some.run_key}}
    record: dict[str, Any] = {
        "eventName": "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY"),
        "dynamodb": {"Keys": keys, "SequenceNumber": str(seq), "ApproximateCreationDateTime": 1e9},
    }
    if old is not None:
        record["dynamodb"]["OldImage"] = execution_item(old)
    if new is not None:
        record["dynamodb"]["NewImage"] = execution_item(new)
    return record


STARTED = T0 + timedelta(seconds=1)
ENDED = T0 + timedelta(seconds=2)


@pytest.mark.parametrize(
    ("old", "new", "kind", "at"),
    [
        (None, run("pending", trigger="manual"), "run.pending", T0),
        (None, run("pending", trigger="retry", attempt=2), "run.retrying", T0),
        (None, run("running", started_at=STARTED), "run.started", STARTED),
        (run("pending"), run("running", started_at=STARTED), "run.started", STARTED),
        (run("running"), run("completed", completed_at=ENDED), "run.succeeded", ENDED),
        (run("running"), run("failed", completed_at=ENDED), "run.failed", ENDED),
        (run("pending"), run("dead_lettered", completed_at=ENDED), "run.failed", ENDED),
        (None, run("skipped", completed_at=ENDED, reason="overlap"), "run.skipped", ENDED),
        (None, run("missed", completed_at=ENDED, missed_count=3), "run.missed", ENDED),
        (
            run("missed", missed_count=3),
            run("missed", completed_at=ENDED, missed_count=5),
            "run.missed",
            ENDED,
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_run_record_that_changes_state_is_the_event_of_its_new_state(old, new, kind, at):
    (event,) = events([change(old, new)])
    assert (event.type, event.job_id, event.time) == (kind, 7, at)
    assert event.data == new.to_api()


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (run("running", lease_owner="a"), run("running", lease_owner="b")),  # taken over
        (run("completed"), None),  # expired from the history
    ],
    ids=["a lease taken over", "a record expiring"],
)
def test_a_run_record_that_changes_no_state_makes_no_event(old, new):
    assert events([change(old, new)]) == []


def fence_change(new: Execution | None, *, fenced_before: bool = True) -> dict[str, Any]:
    """A fence put at a run's key (new None), or a record put over one (chalicelib.snapshot)."""
    keys = {"pk": {"S": "JOB#7"}, "sk": {"S": run("running").run_key}}
    fence = {**keys, "fence": {"S": "1"}, "expires_at": {"N": "2000000000"}}
    record: dict[str, Any] = {
        "eventName": "MODIFY" if fenced_before else "INSERT",
        "dynamodb": {"Keys": keys, "SequenceNumber": "1", "ApproximateCreationDateTime": 1e9},
    }
    if fenced_before:
        record["dynamodb"]["OldImage"] = fence
    record["dynamodb"]["NewImage"] = execution_item(new) if new is not None else fence
    if new is None and not fenced_before:
        record["dynamodb"].pop("OldImage", None)
    return record


def test_a_fence_is_no_run_and_makes_no_event_and_a_run_put_over_one_is_its_start():
    assert events([fence_change(None, fenced_before=False)]) == []
    assert events([fence_change(None)]) == []  # a fence put again
    (event,) = events([fence_change(run("running", started_at=STARTED))])
    assert (event.type, event.time) == ("run.started", STARTED)


def test_a_record_delivered_twice_is_two_events_with_one_id_for_the_client_to_drop():
    record = change(None, run("running", started_at=STARTED), seq=42)
    first, second = events([record, record])
    assert first.to_json() == second.to_json()
    assert json.loads(first.to_json())["id"] == "42"


# -- the fan-out -------------------------------------------------------------------------------


def gone_error(operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "GoneException", "Message": ""},
            "ResponseMetadata": {"HTTPStatusCode": 410},
        },
        operation,
    )


class ManagementApi:
    """API Gateway's management API as a test plays it: frames kept per connection, GoneException
    for a connection closed under it, a 500 for a broken one."""

    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.broken: set[str] = set()
        self.closed: list[str] = []

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> None:
        if ConnectionId in self.gone:
            raise gone_error("PostToConnection")
        if ConnectionId in self.broken:
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "boom"}}, "PostToConnection"
            )
        self.frames[ConnectionId].append(json.loads(Data))

    def delete_connection(self, ConnectionId: str) -> None:
        self.closed.append(ConnectionId)

    def kinds(self, connection_id: str) -> list[str]:
        return [f["type"] for f in self.frames[connection_id]]


@pytest.fixture
def wired(api):
    store = Store.over(client("dynamodb"), get_settings().table_name)
    gateway = ManagementApi()
    stats_reads: list[datetime] = []

    def stats(now: datetime) -> dict[str, Any]:
        stats_reads.append(now)
        return {"total_jobs": len(stats_reads)}

    fanout = Fanout(store.connections, Sender(lambda endpoint: gateway), stats)
    return api, store, gateway, fanout, stats_reads


def listener(store: Store, name: str, jobs: Any, key_id: str = "k1") -> str:
    store.connections.open(name, "https://ws.example/api", key_id, T0)
    store.connections.subscribe(name, jobs)
    return name


def test_each_listener_gets_the_events_of_the_jobs_it_subscribed_to_in_the_streams_order(wired):
    api, store, gateway, fanout, _ = wired
    stream = Stream()
    one = api.post("/v1/jobs", a_job(name="one")).json
    two = api.post("/v1/jobs", a_job(name="two")).json
    everything = listener(store, "all", "*")
    only_two = listener(store, "two", [two["id"]])
    silent = "silent"
    store.connections.open(silent, "https://ws.example/api", "k1", T0)  # never subscribed
    api.post(f"/v1/jobs/{one['id']}/pause")
    api.post(f"/v1/jobs/{two['id']}/pause")
    api.post(f"/v1/jobs/{two['id']}/resume")
    report = fanout.handle(stream.records(), T0)
    job_events = lambda c: [  # noqa: E731
        (f["type"], f["job_id"]) for f in gateway.frames[c] if f["type"].startswith("job.")
    ]
    assert job_events(everything)[-3:] == [
        ("job.paused", one["id"]),
        ("job.paused", two["id"]),
        ("job.resumed", two["id"]),
    ]
    assert job_events(only_two)[-2:] == [("job.paused", two["id"]), ("job.resumed", two["id"])]
    assert all(job_id == two["id"] for _, job_id in job_events(only_two))
    assert gateway.frames[silent] == []
    assert report.failed == 0 and report.gone == 0


def test_a_listener_gone_without_a_goodbye_is_removed_and_the_others_still_get_everything(wired):
    api, store, gateway, fanout, _ = wired
    stream = Stream()
    listener(store, "stays", "*")
    listener(store, "gone", "*")
    gateway.gone.add("gone")
    job = api.post("/v1/jobs", a_job()).json
    report = fanout.handle(stream.records(), T0)
    assert "job.created" in gateway.kinds("stays")
    assert report.gone == 1
    assert store.connections.get("gone") is None
    assert store.connections.get("stays") is not None
    api.post(f"/v1/jobs/{job['id']}/pause")
    fanout.handle(stream.records(), T0 + timedelta(seconds=5))
    assert "job.paused" in gateway.kinds("stays")


def test_a_send_that_fails_neither_stops_the_batch_nor_drops_the_listener(wired):
    api, store, gateway, fanout, _ = wired
    stream = Stream()
    listener(store, "fine", "*")
    listener(store, "broken", "*")
    gateway.broken.add("broken")
    api.post("/v1/jobs", a_job())
    report = fanout.handle(stream.records(), T0)  # does not raise: Lambda would resend all
    assert report.failed == 2  # the job's event, then the stats (each its own round of sends)
    assert "job.created" in gateway.kinds("fine")
    # Still subscribed: the next batch is tried again.
    assert store.connections.get("broken") is not None


def test_stats_change_at_most_once_a_second_and_a_held_change_goes_with_the_next_batch(wired):
    api, store, gateway, fanout, stats_reads = wired
    stream = Stream()
    listener(store, "watcher", [999])  # stats go to every subscriber, whatever its jobs
    api.post("/v1/jobs", a_job())
    fanout.handle(stream.records(), T0)
    api.post("/v1/jobs", a_job())
    fanout.handle(stream.records(), T0 + STATS_EVERY / 2)  # inside the second: held
    assert gateway.kinds("watcher") == ["stats.changed"]
    fanout.handle([], T0 + STATS_EVERY)  # the next batch after the second sends it
    assert gateway.kinds("watcher") == ["stats.changed", "stats.changed"]
    assert [f["data"]["total_jobs"] for f in gateway.frames["watcher"]] == [1, 2]
    assert stats_reads == [T0, T0 + STATS_EVERY]
    fanout.handle([], T0 + 3 * STATS_EVERY)  # nothing changed: nothing sent
    assert len(gateway.frames["watcher"]) == 2


def test_with_nobody_subscribed_the_stats_are_not_read_and_a_later_subscriber_gets_them(wired):
    api, store, gateway, fanout, stats_reads = wired
    stream = Stream()
    store.connections.open("silent", "https://ws.example/api", "k1", T0)  # never subscribed
    api.post("/v1/jobs", a_job())
    fanout.handle(stream.records(), T0)
    fanout.handle([], T0 + 2 * STATS_EVERY)
    assert stats_reads == []
    assert gateway.frames == {}
    listener(store, "late", "*")
    fanout.handle([], T0 + 4 * STATS_EVERY)  # the list is read again after CONNECTIONS_FRESH
    assert stats_reads == [T0 + 4 * STATS_EVERY]
    assert gateway.kinds("late") == ["stats.changed"]


def test_revoking_a_key_closes_the_connections_it_opened_and_only_those(wired):
    api, store, gateway, fanout, _ = wired
    made = api.post("/v1/keys", {"name": "watcher", "scopes": ["jobs:read"]}).json
    listener(store, "theirs", "*", key_id=made["id"])
    listener(store, "ours", "*")
    stream = Stream()
    assert api.delete(f"/v1/keys/{made['id']}").status_code == 204
    report = fanout.handle(stream.records(), T0)
    assert gateway.closed == ["theirs"]
    assert report.closed == 1
    assert store.connections.get("theirs") is None
    assert store.connections.get("ours") is not None


def test_a_connection_past_its_lifetime_gets_nothing(wired):
    api, store, gateway, fanout, _ = wired
    listener(store, "old", "*")
    stream = Stream()
    api.post("/v1/jobs", a_job())
    fanout.handle(stream.records(), T0 + timedelta(hours=3))
    assert gateway.frames["old"] == []


def test_a_subscription_recorded_before_a_change_hears_it_without_reading_every_listener_again(
    wired,
):
    api, store, gateway, fanout, _ = wired
    stream = Stream()
    listener(store, "first", "*")
    api.post("/v1/jobs", a_job(name="one"))
    fanout.handle(stream.records(), T0)  # reads the listeners: one Query
    queries: list[str] = []
    client("dynamodb").meta.events.register(
        "before-call.dynamodb.Query", lambda **kw: queries.append("Query")
    )
    listener(store, "late", "*")
    api.post("/v1/jobs", a_job(name="two"))
    store.connections.close("first")
    fanout.handle(stream.records(), T0 + timedelta(milliseconds=500))
    assert queries == []  # the batch's own connection records kept the list current
    assert [f["data"]["name"] for f in gateway.frames["late"] if f["type"] == "job.created"] == [
        "two"
    ]
    assert [f["data"]["name"] for f in gateway.frames["first"] if f["type"] == "job.created"] == [
        "one"
    ]
    fanout.handle(stream.records(), T0 + timedelta(seconds=2))
    assert len(queries) <= 1  # read again once the list is a second old (if there is news)
