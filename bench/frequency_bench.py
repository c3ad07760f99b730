"""DynamoDB write units per run, by how often a job runs: every 10 seconds, once a minute,
once a day.

The whole engine runs on a virtual clock (tests/engine/harness.py: moto's DynamoDB, an
in-memory SQS with delays, the tick every minute), with the worker as Lambda runs it in
production: batches of up to 10 messages, each final record written alone, and the stream
handler's count of the runs (one write for the changes of each round of deliveries: a quiet
table's stream hands over small batches; and one invocation of the handler a batch, the
changes its own count wrote making a batch of their own). Every DynamoDB write after the
jobs exist is counted by item kind and priced as engine_bench.requests_per_run prices them:
one unit per started KB of the item, two in a transaction, and two for each move of a job's
entry in the `by_due` index.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import timedelta
from typing import Any

from common import ROOT, counting, local_env
from engine_bench import item_sizes, write_counter

FREQUENCIES: dict[str, tuple[dict[str, Any], timedelta]] = {
    # job fields, and how much virtual time to run (10 jobs of each)
    "every 10 seconds": ({"job_type": "interval", "interval_seconds": 10}, timedelta(minutes=15)),
    "once a minute": ({"job_type": "cron", "cron_expression": "* * * * *"}, timedelta(minutes=45)),
    "once a day": ({"job_type": "cron", "cron_expression": "0 3 * * *"}, timedelta(days=3)),
}


def units_for(name: str, fields: dict[str, Any], span: timedelta, jobs: int = 10) -> dict[str, Any]:
    from moto import mock_aws

    from chalicelib.engine.batch import BatchIncomplete, Record, handle_batch
    from local.aws_process import serialise_dynamodb
    from tests.engine.harness import System

    with mock_aws():
        # Batches run their messages in threads: DynamoDB's atomic requests, not moto's.
        serialise_dynamodb()
        system = System(f"nexus-freq-{abs(hash(name)) % 10_000}")

        def deliver() -> int:
            handled = 0
            while True:
                out = system.sqs.receive_message(QueueUrl=system.queue_url, MaxNumberOfMessages=10)
                messages = out.get("Messages", [])
                if not messages:
                    system.count_runs()
                    return handled
                records = [Record(m["Body"], m["ReceiptHandle"]) for m in messages]
                try:
                    handle_batch(records, system.worker, system.queue, system.sqs, system.queue_url)
                except BatchIncomplete:
                    continue
                system.sqs.delete_message_batch(
                    QueueUrl=system.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": r.receipt_handle}
                        for i, r in enumerate(records)
                    ],
                )
                handled += len(records)

        system.deliver = deliver  # type: ignore[method-assign]
        for i in range(jobs):
            system.create_job(name=f"{name} {i}", **fields)
        writes: Counter[str] = Counter()
        sqs_calls: Counter[str] = Counter()
        sent_messages: list[int] = []

        def counted(name: str, method: Any) -> Any:
            def call(**params: Any) -> Any:
                out = method(**params)
                # Lambda's event source polls an empty queue too: a monthly floor, not a
                # cost per run; only receives that bring messages count here.
                if name != "ReceiveMessage" or out.get("Messages"):
                    sqs_calls[name] += 1
                if name == "SendMessageBatch":
                    sent_messages.append(len(params["Entries"]))
                return out

            return call

        for op, attr in (
            ("SendMessageBatch", "send_message_batch"),
            ("ReceiveMessage", "receive_message"),
            ("DeleteMessageBatch", "delete_message_batch"),
            ("ChangeMessageVisibilityBatch", "change_message_visibility_batch"),
            ("ChangeMessageVisibility", "change_message_visibility"),
        ):
            setattr(system.sqs, attr, counted(op, getattr(system.sqs, attr)))

        # The stream handler's invocations: one a batch of changes it is given (a round's).
        count_changes = system.store.counters.count_changes
        stream_batches: list[int] = []

        def counted_batch(records: Any) -> int:
            stream_batches.append(len(records))
            return count_changes(records)

        system.store.counters.count_changes = counted_batch  # type: ignore[method-assign]
        count_writes = write_counter(writes)
        system.db.meta.events.register("provide-client-params.dynamodb", count_writes)
        with counting(system.db) as reads:
            system.run(until=span, stop_when_quiet=False)
        system.db.meta.events.unregister("provide-client-params.dynamodb", count_writes)
        system.store.counters.count_changes = count_changes  # type: ignore[method-assign]
        runs = sum(1 for r in system.records() if r.status == "completed")
        sizes = item_sizes(system.db, system.store.table_name)
        batches = sqs_calls["ReceiveMessage"]
        sent = sum(sent_messages)
    units = {
        "executions": writes["execution"] * -(-sizes["execution"] // 1024),
        "jobs": writes["job"] * -(-sizes["job"] // 1024),
        "claims": writes["claim"] * -(-sizes["job"] // 1024),
        "counters": writes["counters"] * -(-sizes["counters"] // 1024),
        "due index": writes["claim"] * 2,
    }
    total = sum(units.values())
    return {
        "jobs": jobs,
        "virtual_time_s": span.total_seconds(),
        "runs": runs,
        "per_run": {
            "dynamodb_write_units": total / runs,
            "dynamodb_items_read": reads.items_read / runs,
            # Sends by the messages they carried: the last claims of the span send runs
            # due after it, and the first runs were sent when their jobs were created.
            "sqs_requests": sqs_calls["SendMessageBatch"] / sent
            + sum(n for op, n in sqs_calls.items() if op != "SendMessageBatch") / runs,
            # The worker's invocations, one a batch (the tick's, one a minute whatever the
            # jobs, are the monthly floor, not a cost per run).
            "lambda_invocations": batches / runs,
            # The stream handler's, one a round of changes (its count's write is priced so).
            "stream_invocations": len(stream_batches) / runs,
        },
        "units_per_run_by_kind": {k: round(v / runs, 3) for k, v in units.items()},
        "sqs_calls": dict(sqs_calls),
        "item_sizes": sizes,
    }


def main(which: list[str]) -> dict[str, Any]:
    local_env()
    out = {}
    for name in which:
        fields, span = FREQUENCIES[name]
        out[name] = units_for(name, fields, span)
        print(f"{name}: {json.dumps(out[name])}", flush=True)
    return out


if __name__ == "__main__":
    result = main(sys.argv[1:] or list(FREQUENCIES))
    if not sys.argv[1:]:
        (ROOT / "bench" / ".out").mkdir(exist_ok=True)
        (ROOT / "bench" / ".out" / "frequency.json").write_text(json.dumps(result, indent=1))
