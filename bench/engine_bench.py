"""Tick scale, AWS requests per run with their cost, and dispatch capacity.

In-process moto for the first (counts, not wall time: moto's Query walks the whole table);
the embedded AWS of make run, in a process of its own, for the second, so the worker's time
is its own CPU and its waits on calls, not moto's CPU; stubbed clients for the third: the
tick's own CPU, then each call taking what AWS takes (`--dynamodb-ms`, `--sqs-ms`,
`--sqs-batch-ms`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from common import ROOT, bench_job, command, counting, embedded_aws, local_env, seed_jobs

# The prices, and the one cost formula the API's estimates use too.
from chalicelib.pricing import PRICE, PRICES_AS_OF, cost_per_run


def setup(stream: bool = False) -> tuple[Any, Any, str, str]:
    import os

    from chalicelib.aws import client
    from chalicelib.config import get_settings
    from local.resources import ensure_queue, ensure_table

    ensure_table(client("dynamodb"), "nexus-bench", stream=stream)
    url = ensure_queue(client("sqs"), "nexus-bench-work")
    os.environ["NEXUS_QUEUE_URL"] = url
    get_settings.cache_clear()
    return client("dynamodb"), client("sqs"), "nexus-bench", url


def tick_scale() -> dict[str, Any]:
    from moto import mock_aws

    from chalicelib.engine.queue import WorkQueue
    from chalicelib.engine.tick import Dispatcher
    from chalicelib.store import Store

    rows = []
    with mock_aws():
        db, sqs, table, url = setup()
        dispatcher = Dispatcher(Store.over(db, table), WorkQueue(sqs, url))
        now = datetime.now(UTC).replace(microsecond=0)
        later = now + timedelta(days=1)
        stored, next_id = 0, 1
        for size in (1_000, 10_000, 100_000):
            seed_jobs(db, table, size - stored - 100, first_id=next_id, next_run_at=later)
            next_id += size - stored - 100
            seed_jobs(db, table, 100, first_id=next_id, next_run_at=now)
            next_id += 100
            stored = size
            with counting(db, sqs) as counter:
                report = dispatcher.tick(now)
            assert report.runs_sent == 100, report
            rows.append(
                {
                    "stored_jobs": size,
                    "due_runs": 100,
                    "dynamodb_items_read": counter.items_read,
                    "aws_calls": counter.total(),
                }
            )
            print(
                f"tick over {size:>7} stored jobs, 100 due: {counter.items_read} items read, "
                f"{counter.total()} AWS calls",
                flush=True,
            )
    return {
        "rows": rows,
        "items_ratio": rows[-1]["dynamodb_items_read"] / rows[0]["dynamodb_items_read"],
        "calls_ratio": rows[-1]["aws_calls"] / rows[0]["aws_calls"],
    }


READS = ("GetItem", "Query", "BatchGetItem", "Scan")


def kind(params: dict[str, Any]) -> str:
    """What a DynamoDB request writes: a job (its claim apart), an execution, the counters."""
    key = params.get("Key") or params.get("Item") or {}
    sk = key.get("sk", {}).get("S", "")
    if not sk or ("UpdateExpression" not in params and "Item" not in params):
        return "read"
    if sk == "JOB":
        names = params.get("ExpressionAttributeNames", {}).values()
        return "claim" if "due_sk" in names else "job"
    if sk.startswith("RUN#"):
        return "execution"
    return "counters"


def dynamo_size(value: dict[str, Any]) -> int:
    """An attribute value's size by DynamoDB's rules (near enough: numbers as their digits)."""
    ((kind_, v),) = value.items()
    if kind_ == "S":
        return len(v.encode())
    if kind_ == "N":
        return len(v.lstrip("-").replace(".", "")) // 2 + 1
    if kind_ in ("BOOL", "NULL"):
        return 1
    if kind_ == "M":
        return 3 + sum(len(k.encode()) + dynamo_size(x) + 1 for k, x in v.items())
    if kind_ == "L":
        return 3 + sum(dynamo_size(x) + 1 for x in v)
    return len(v)


def item_sizes(db: Any, table: str) -> dict[str, int]:
    """The largest job, execution and counter item at the end of the run, in bytes."""
    largest = {"job": 0, "execution": 0, "counters": 0}
    for page in db.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            size = sum(len(k.encode()) + dynamo_size(v) for k, v in item.items())
            sk = item["sk"]["S"]
            which = "job" if sk == "JOB" else "execution" if sk.startswith("RUN#") else "counters"
            largest[which] = max(largest[which], size)
    return largest


def worker_memory_gb(stage: str = "prod", function: str = "worker") -> float:
    """A Lambda function's memory (the worker's unless named), as .chalice/config.json
    deploys it."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return int(config["stages"][stage]["lambda_functions"][function]["lambda_memory_size"]) / 1024


# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB (AWS Lambda
# developer guide, "Configuring Lambda function memory").
ONE_VCPU_GB = 1769 / 1024
# How far ahead of their time the requests benchmark's runs are due when the tick sends them:
# the tick sends every run in the minute before it (its window), so a run's message is sent
# ahead, with the job it may start from (chalicelib.snapshot).
SENT_AHEAD_SECONDS = 3


def lambda_seconds(wall: float, cpu: float, memory_gb: float) -> float:
    """What a Lambda of `memory_gb` would take for work that took `wall` seconds here, `cpu`
    of them this process's CPU (all its threads): the waits as they were, the CPU slower by
    the share of a vCPU the memory buys (none faster above one vCPU)."""
    return wall + cpu * max(0.0, ONE_VCPU_GB / memory_gb - 1)


class ShowsUp:
    """How long before its run each message the tick sends shows up, from the instant it was
    sent and its delay (a botocore handler on the SQS client); by run. SQS delays are whole
    seconds, so a message shows up before its run unless the tick held it (engine.queue,
    Alignment), and its worker waits until the run's time, a wait Lambda bills. The
    benchmark starts its invocations once the runs are due, so it counts that wait here:
    each invocation waits for the earliest of its messages, had it been given them the
    moment they showed up. Conservative: the time Lambda takes to give it a message that
    shows up would shorten the wait."""

    def __init__(self) -> None:
        self.early: dict[tuple[int, str], float] = {}

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        sent = time.time()
        for entry in params["Entries"]:
            body = json.loads(entry["MessageBody"])
            start = datetime.fromisoformat(body["not_before"]).timestamp()
            run = (body["job_id"], body["scheduled_for"])
            self.early[run] = start - (sent + entry["DelaySeconds"])

    def wait(self, messages: list[dict[str, Any]]) -> float:
        """What an invocation given `messages` waits before the first of their runs."""
        runs = [json.loads(m["Body"]) for m in messages]
        return max(0.0, max(self.early[(r["job_id"], r["scheduled_for"])] for r in runs))


def write_counter(writes: Counter[str]) -> Callable[..., None]:
    """A botocore `provide-client-params.dynamodb` handler adding what each request writes to
    `writes`, by kind of item: a transaction costs two write units per item it writes, twice
    a plain write."""

    def count_writes(params: dict[str, Any], **_: Any) -> None:
        for entry in params.get("TransactItems", []):
            ((_action, body),) = entry.items()
            writes.update({kind(body): 2})
        if "TransactItems" not in params:
            writes.update([kind(params)])

    return count_writes


def requests_per_run(runs: int = 200) -> dict[str, Any]:
    """Every AWS request of `runs` scheduled runs, tick to finished record, split by kind.

    The runs go through the deployed handlers, `app.tick` and `app.worker`, with the events
    Lambda would pass them, so what the handler adds around the engine (message holds,
    counter writes gathered per batch, deletes) is counted too.

    AWS is make run's embedded AWS in a process of its own (common.embedded_aws): the
    worker's wall time is its own CPU and its waits on calls answered over a local socket,
    where moto's answer takes a few milliseconds, about what DynamoDB takes in its region.
    Its Lambda time (lambda_seconds) adds the CPU that runs slower on a Lambda of the prod
    worker's memory. With moto in this process its CPU counted as the worker's: 38 ms a run,
    of which the worker's own CPU is 5 to 10 ms on this machine.
    """
    import os

    from local.engine import LambdaContext, scheduled_event, sqs_event

    with embedded_aws():
        db, sqs, table, url = setup(stream=True)
        os.environ["NEXUS_TABLE"] = table
        import app as app_module

        for cached in (
            app_module.store,
            app_module.work_queue,
            app_module.dispatcher,
            app_module.worker_engine,
            app_module.fanout,
        ):
            cached.cache_clear()
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=SENT_AHEAD_SECONDS)
        seed_jobs(db, table, runs, first_id=1, next_run_at=due)
        changes = StreamReader(db, table)
        lambda_invocations = 1  # the tick
        worker_seconds = worker_cpu = 0.0
        memory = worker_memory_gb()
        invocations: list[float] = []  # each invocation's Lambda time at the worker's memory
        writes: Counter[str] = Counter()

        count_writes = write_counter(writes)
        db.meta.events.register("provide-client-params.dynamodb", count_writes)
        shows_up = ShowsUp()
        sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", shows_up)
        waits: list[float] = []  # each invocation's early wait
        with counting(db, sqs) as counter:
            app_module.tick(
                scheduled_event(time.time(), "arn:aws:events:us-east-1:1:rule/tick", "us-east-1"),
                LambdaContext("tick", "us-east-1"),
            )
            # The stream's changes, by round: the tick's claims, then each worker batch's.
            rounds = [changes.take()]
            # The runs were sent ahead: their messages show up once they are due (ShowsUp
            # counts the wait of one that shows up before).
            time.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds() + 0.05))
            while True:  # what Lambda's SQS event source does: receive 10, invoke, delete
                out = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
                )
                messages = out.get("Messages", [])
                if not messages:
                    break
                lambda_invocations += 1
                waits.append(shows_up.wait(messages))
                started, cpu = time.perf_counter(), time.process_time()
                app_module.worker(
                    sqs_event(messages, arn, "us-east-1"), LambdaContext("worker", "us-east-1")
                )
                wall, used = time.perf_counter() - started, time.process_time() - cpu
                worker_seconds += wall
                worker_cpu += used
                invocations.append(lambda_seconds(wall, used, memory))
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )
                rounds.append(changes.take())
        stream = changes.feed(app_module, runs, db, sqs, rounds)
        sizes = item_sizes(db, table)
    calls = counter.calls
    reads = sum(n for name, n in calls.items() if name.split(".")[-1] in READS)
    writes_total = sum(
        n for name, n in calls.items() if name.startswith("dynamodb.") and name[9:] not in READS
    )
    # Write units: one per started KB of the item written (the larger of before and after,
    # here the item as it ends up), two in a transaction, plus the `by_due` index entry a
    # claim moves (a delete and a put there: 2 units).
    units = {
        "executions": writes["execution"] * -(-sizes["execution"] // 1024),
        "jobs": (writes["job"] + writes["claim"]) * -(-sizes["job"] // 1024),
        "counters": writes["counters"] * -(-sizes["counters"] // 1024),
        "due index": writes["claim"] * 2,
    }
    writes_units = sum(units.values())
    sqs_by_op = {k.split(".", 1)[1]: v for k, v in calls.items() if k.startswith("sqs.")}
    sqs_total = sum(sqs_by_op.values())
    per_run = {
        "dynamodb_reads": reads / runs,
        "dynamodb_items_read": counter.items_read / runs,
        "dynamodb_writes": writes_total / runs,
        "dynamodb_write_units": writes_units / runs,
        "sqs_requests": sqs_total / runs,
        "sqs_sends": sum(v for k, v in sqs_by_op.items() if k.startswith("Send")) / runs,
        "sqs_receives": sqs_by_op.get("ReceiveMessage", 0) / runs,
        "sqs_deletes": sum(v for k, v in sqs_by_op.items() if k.startswith("Delete")) / runs,
        "sqs_holds": sum(v for k, v in sqs_by_op.items() if k.startswith("Change")) / runs,
        "lambda_invocations": lambda_invocations / runs,
    }
    # The median invocation, times the invocations: a pause of this shared machine (a
    # neighbour's burst, a collection) inflates one invocation, not the figure.
    on_lambda = statistics.median(invocations) * len(invocations) / runs
    early_wait = sum(waits) / runs
    gb_seconds = on_lambda * memory
    cost = 1e6 * cost_per_run(
        with_stream_handler(per_run, (on_lambda + early_wait) * memory, stream), PRICE
    )
    # EventBridge Scheduler invokes the task at its time: its Lambda has the worker's work,
    # not its early wait.
    scheduler = 1e6 * (
        PRICE["scheduler_invocation"]
        + PRICE["lambda_request"]
        + gb_seconds * PRICE["lambda_gb_second"]
    )
    print(f"per run: {json.dumps({k: round(v, 3) for k, v in per_run.items()})}")
    print(f"calls: {dict(calls)}")
    print(f"writes by item: {dict(writes)}; item sizes (bytes): {sizes}; write units: {units}")
    print(
        f"worker per run: {1e3 * worker_seconds / runs:.1f} ms wall, "
        f"{1e3 * worker_cpu / runs:.1f} ms CPU; on a {memory * 1024:.0f} MB Lambda "
        f"{1e3 * on_lambda:.1f} ms ({gb_seconds:.4f} GB-s; the median of "
        f"{len(invocations)} invocations, times them), and its early wait "
        f"{1e3 * early_wait:.1f} ms a run ({1e3 * statistics.mean(waits):.1f} ms an "
        f"invocation; each message {1e3 * min(shows_up.early.values()):.1f} to "
        f"{1e3 * max(shows_up.early.values()):.1f} ms before its run)"
    )
    print(f"stream handler per run: {json.dumps({k: round(v, 5) for k, v in stream.items()})}")
    print(f"cost per million runs: ${cost:.2f} (EventBridge Scheduler + Lambda: ${scheduler:.2f})")
    return {
        "per_run": per_run,
        "calls": dict(calls),
        "writes_by_item": dict(writes),
        "item_sizes": sizes,
        "write_units": units,
        "cost_per_million": cost,
        "scheduler_cost_per_million": scheduler,
        "prices": PRICE,
        "prices_as_of": PRICES_AS_OF,
        "worker_seconds_per_run": on_lambda,
        "early_wait_seconds_per_run": early_wait,
        "early_wait_seconds_per_invocation": statistics.mean(waits),
        "shows_up_early_seconds": {
            "min": min(shows_up.early.values()),
            "max": max(shows_up.early.values()),
        },
        "worker_wall_seconds_per_run": worker_seconds / runs,
        "worker_cpu_seconds_per_run": worker_cpu / runs,
        "stream_handler": stream,
    }


class StreamReader:
    """The table's change stream from now on, read as Lambda's event source reads it."""

    def __init__(self, db: Any, table: str) -> None:
        from chalicelib.aws import client

        self._streams = client("dynamodbstreams")
        self.arn = db.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        description = self._streams.describe_stream(StreamArn=self.arn)["StreamDescription"]
        shard = description["Shards"][0]["ShardId"]
        self._iterator = self._streams.get_shard_iterator(
            StreamArn=self.arn, ShardId=shard, ShardIteratorType="LATEST"
        )["ShardIterator"]

    def take(self) -> list[dict[str, Any]]:
        """Every change written since the last call, as Lambda's event source gives them."""
        from local.realtime import BATCH_SIZE, lambda_record

        out: list[dict[str, Any]] = []
        while True:
            page = self._streams.get_records(ShardIterator=self._iterator, Limit=BATCH_SIZE)
            self._iterator = page["NextShardIterator"]
            if not page["Records"]:
                return out
            out.extend(lambda_record(r, self.arn) for r in page["Records"])

    def feed(
        self, app_module: Any, runs: int, db: Any, sqs: Any, rounds: list[list[dict[str, Any]]]
    ) -> dict[str, float]:
        """The stream handler (app.table_changes, with no listener subscribed) on each round
        of changes (what the tick wrote, then what each worker batch wrote: Lambda's event
        source polls a shard four times a second, so a batch's runs, finished within a
        fraction of one, reach the handler together), up to the handler's batch size an
        invocation, then on the change its own count made, as a quiet table's shard gives
        it; what it adds per run: its invocations, the items it reads, its SQS requests and
        its Lambda time at its prod memory."""
        from local.engine import LambdaContext
        from local.realtime import BATCH_SIZE

        memory = worker_memory_gb(function="table_changes")
        # Each invocation's Lambda time at the handler's memory: a round's, and the one its
        # own count's change makes (on a quiet table that change comes alone, after it).
        rounds_times: list[float] = []
        own_times: list[float] = []
        batches: list[list[dict[str, Any]]] = []

        def invoke(batch: list[dict[str, Any]], times: list[float]) -> None:
            started, used = time.perf_counter(), time.process_time()
            app_module.table_changes(
                {"Records": batch}, LambdaContext("table_changes", "us-east-1")
            )
            wall, cpu = time.perf_counter() - started, time.process_time() - used
            times.append(lambda_seconds(wall, cpu, memory))
            batches.append(batch)

        with counting(db, sqs) as counter:
            for records in rounds:
                for start in range(0, len(records), BATCH_SIZE):
                    invoke(records[start : start + BATCH_SIZE], rounds_times)
                own = self.take()
                if own:
                    invoke(own, own_times)
        print(
            "stream handler invocations (ms): rounds "
            f"{[round(1e3 * t) for t in rounds_times]}, its own changes "
            f"{[round(1e3 * t) for t in own_times]}"
        )
        # As the worker's: the median invocation of each kind times their number (the
        # first imports the handler's modules: a cold start, not a cost per run).
        seconds = sum(len(t) * statistics.median(t) for t in (rounds_times, own_times) if t)
        dynamodb = {k[9:]: n for k, n in counter.calls.items() if k.startswith("dynamodb.")}
        # A read request costs a read unit even when it finds nothing (the listeners' Query).
        read_units = max(counter.items_read, sum(n for k, n in dynamodb.items() if k in READS))
        return {
            "records": sum(len(b) for b in batches) / runs,
            "lambda_invocations": len(batches) / runs,
            "dynamodb_items_read": read_units / runs,
            "dynamodb_writes": sum(n for k, n in dynamodb.items() if k not in READS) / runs,
            "sqs_requests": counter.total("sqs.") / runs,
            "lambda_gb_seconds": seconds * memory / runs,
        }


def with_stream_handler(
    per_run: dict[str, float], worker_gb_seconds: float, stream: dict[str, float]
) -> dict[str, float]:
    """A run's requests (keys as pricing.PER_RUN) with the worker's Lambda time and what the
    stream handler adds for it."""
    return {
        **per_run,
        "dynamodb_items_read": per_run["dynamodb_items_read"] + stream["dynamodb_items_read"],
        "sqs_requests": per_run["sqs_requests"] + stream["sqs_requests"],
        "lambda_invocations": per_run["lambda_invocations"] + stream["lambda_invocations"],
        "lambda_gb_seconds": worker_gb_seconds + stream["lambda_gb_seconds"],
    }


class _Latency:
    """What the stubs charge per call, in seconds, and the calls they answered, by operation.

    `time.sleep` releases the GIL as waiting on a socket does, so the tick's threads overlap
    the waits as they would real AWS calls (botocore's own CPU per call is not in it)."""

    def __init__(self, dynamodb: float = 0.0, sqs: float = 0.0, sqs_batch: float = 0.0) -> None:
        self.dynamodb, self.sqs, self.sqs_batch = dynamodb, sqs, sqs_batch
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def wait(self, operation: str, seconds: float) -> None:
        with self._lock:
            self.calls[operation] += 1
        if seconds:
            time.sleep(seconds)


class _StubDynamo:
    """Answers the tick's DynamoDB calls from memory, each after `latency.dynamodb`."""

    def __init__(self, jobs: list[Any], latency: _Latency) -> None:
        from chalicelib.store import job_item

        self.latency = latency
        self.items = {f"JOB#{j.id}": job_item(j) for j in jobs}
        self.index: dict[str, list[dict[str, Any]]] = {}
        for item in self.items.values():
            self.index.setdefault(item["due_pk"]["S"], []).append(
                {k: item[k] for k in ("pk", "sk", "due_pk", "due_sk", "priority")}
            )

    def query(self, **params: Any) -> dict[str, Any]:
        self.latency.wait("dynamodb.Query", self.latency.dynamodb)
        shard = params["ExpressionAttributeValues"][":p"]["S"]
        return {"Items": self.index.get(shard, [])}

    def get_item(self, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.latency.wait("dynamodb.GetItem", self.latency.dynamodb)
        return {"Item": self.items[Key["pk"]["S"]]}

    def batch_get_item(self, RequestItems: dict[str, Any], **_: Any) -> dict[str, Any]:
        self.latency.wait("dynamodb.BatchGetItem", self.latency.dynamodb)
        ((table, request),) = RequestItems.items()
        found = [self.items[k["pk"]["S"]] for k in request["Keys"] if k["pk"]["S"] in self.items]
        return {"Responses": {table: found}, "UnprocessedKeys": {}}

    def put_item(self, **_: Any) -> dict[str, Any]:
        self.latency.wait("dynamodb.PutItem", self.latency.dynamodb)
        return {}

    def update_item(self, **_: Any) -> dict[str, Any]:
        self.latency.wait("dynamodb.UpdateItem", self.latency.dynamodb)
        return {}


class _StubSqs:
    def __init__(self, latency: _Latency) -> None:
        self.latency = latency

    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        self.latency.wait("sqs.SendMessageBatch", self.latency.sqs_batch)
        return {"Successful": [], "Failed": []}

    def send_message(self, **_: Any) -> dict[str, Any]:
        self.latency.wait("sqs.SendMessage", self.latency.sqs)
        return {}


def _stub_tick(due: int, latency: _Latency, concurrency: int) -> tuple[Any, float, float]:
    """One tick over `due` jobs with one run each, on the stubs: (report, wall s, CPU s).

    As the deployed tick (app.dispatcher) sees them in a steady state: the runs due on whole
    seconds over the coming minute, so that it sends them ahead, holding its sends for its
    first ALIGN_FOR (engine.queue, Alignment)."""
    from chalicelib.engine.queue import WorkQueue
    from chalicelib.engine.tick import ALIGN_FOR, Dispatcher
    from chalicelib.store import Store

    now = datetime.now(UTC)
    second = now.replace(microsecond=0)
    created = now - timedelta(days=1)
    jobs = [
        bench_job(i, created=created, next_run_at=second + timedelta(seconds=1 + i % 59))
        for i in range(1, due + 1)
    ]
    dispatcher = Dispatcher(
        Store.over(_StubDynamo(jobs, latency), "t"),
        WorkQueue(_StubSqs(latency), "stub"),
        max_runs_per_tick=10**9,
        concurrency=concurrency,
        align_for=ALIGN_FOR,
    )
    wall, cpu = time.perf_counter(), time.process_time()
    report = dispatcher.tick(datetime.now(UTC))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.runs_sent == due and report.jobs_failed == 0, report
    return report, wall, cpu


def dispatch_capacity(
    due: int = 20_000,
    *,
    dynamodb_ms: float = 5.0,
    sqs_ms: float = 10.0,
    sqs_batch_ms: float = 10.0,
    concurrency: int | None = None,
) -> dict[str, Any]:
    """Runs one tick sends in 60 s: first the tick's own CPU (stubs that answer at once),
    then with each call taking what AWS takes (`*_ms`): a tick over `due` runs, scaled."""
    from chalicelib.config import TICK_CONCURRENCY

    threads = concurrency or TICK_CONCURRENCY
    _, _, cpu = _stub_tick(due, _Latency(), threads)
    per_second = due / cpu
    print(
        f"dispatch, no latency: {due} runs in {cpu:.2f} s of CPU = {per_second:,.0f} runs/s; "
        f"{per_second * 60:,.0f} runs in a 60 s tick"
    )
    latency = _Latency(dynamodb_ms / 1000, sqs_ms / 1000, sqs_batch_ms / 1000)
    report, wall, busy = _stub_tick(due, latency, threads)
    calls = sum(latency.calls.values())
    in_tick = due / wall * 60
    print(
        f"dispatch, DynamoDB {dynamodb_ms:g} ms, SQS SendMessageBatch {sqs_batch_ms:g} ms, "
        f"other SQS {sqs_ms:g} ms, {threads} calls at once: {due} runs in {wall:.2f} s "
        f"({busy:.2f} s of CPU, {calls} calls: {dict(latency.calls)}; "
        f"{report.runs_aligned} sent held to show up within 50 ms of their runs); "
        f"{in_tick:,.0f} runs in a 60 s tick"
    )
    return {
        "runs": due,
        "cpu_seconds": cpu,
        "runs_per_cpu_second": per_second,
        "runs_per_60s_tick": per_second * 60,
        "latency": {
            "dynamodb_ms": dynamodb_ms,
            "sqs_ms": sqs_ms,
            "sqs_batch_ms": sqs_batch_ms,
            "concurrency": threads,
            "runs": due,
            "seconds": wall,
            "cpu_seconds": busy,
            "calls": calls,
            "calls_by_operation": dict(latency.calls),
            "runs_aligned": report.runs_aligned,
            "runs_per_60s_tick": in_tick,
        },
    }


REQUEST_MEASUREMENTS = 3


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "which",
        nargs="*",
        choices=["scale", "requests", "capacity"],
        help="the benchmarks to run (default: all three)",
    )
    parser.add_argument("--due", type=int, default=20_000, help="capacity: runs in the tick")
    parser.add_argument(
        "--dynamodb-ms", type=float, default=5.0, help="capacity: latency of a DynamoDB call"
    )
    parser.add_argument(
        "--sqs-ms", type=float, default=10.0, help="capacity: latency of an SQS call"
    )
    parser.add_argument(
        "--sqs-batch-ms",
        type=float,
        default=None,
        help="capacity: latency of an SQS SendMessageBatch (default: --sqs-ms)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="capacity: the tick's calls at once (default: chalicelib.config.TICK_CONCURRENCY)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    local_env()
    import sys

    args = arguments(sys.argv[1:])
    which = args.which or ["scale", "requests", "capacity"]
    out: dict[str, Any] = {"command": command()}
    if "capacity" in which:
        out["capacity"] = dispatch_capacity(
            args.due,
            dynamodb_ms=args.dynamodb_ms,
            sqs_ms=args.sqs_ms,
            sqs_batch_ms=args.sqs_ms if args.sqs_batch_ms is None else args.sqs_batch_ms,
            concurrency=args.concurrency,
        )
    if "requests" in which:
        # The Lambda time varies from one measurement to the next on this shared machine
        # (0.0186 to 0.0209 GB-s a run in four in a row): three, and the median of them.
        measured = sorted(
            (requests_per_run() for _ in range(REQUEST_MEASUREMENTS)),
            key=lambda r: r["worker_seconds_per_run"],
        )
        out["requests"] = measured[len(measured) // 2]
        out["requests"]["worker_seconds_measured"] = [r["worker_seconds_per_run"] for r in measured]
        print(f"requests: the median of {REQUEST_MEASUREMENTS} measurements, by the worker's time")
    if "scale" in which:
        out["scale"] = tick_scale()
    (ROOT / "bench" / ".out").mkdir(exist_ok=True)
    (ROOT / "bench" / ".out" / "engine.json").write_text(json.dumps(out, indent=1, default=str))
