"""Run attempts: one item per attempt of a run, at the run's identity (items.run_key).

Each method is one transition of engine.lifecycle, made by one conditional write on the
attempt's item, so a repeat of any of them changes nothing. A final record that adds to the
statistics carries what it adds (`counts`, `counted_at`); the stream handler adds it to the
counters when the record appears in the table's change stream (store.counters).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.models import Execution
from chalicelib.store.counters import COUNTED_AT, COUNTS
from chalicelib.store.items import (
    FENCE,
    NOT_RECORDED,
    RECORDED,
    STATUS_NAME,
    conditional_update,
    drain_unprocessed,
    due_shard,
    due_sort_key,
    dump,
    execution_from_item,
    execution_item,
    failed_conditions,
    is_condition_failure,
    is_fence,
    job_pk,
    run_item_key,
    run_key,
    to_item_fields,
    with_backoff,
)
from chalicelib.store.jobs import page_cursor, query_all, start_key
from chalicelib.timefmt import sortable


class FinalWrite:
    """One final record to write: the request (a transaction item's shape) and what it counts."""

    def __init__(
        self, item: dict[str, Any], count_at: datetime, deltas: dict[str, int | float]
    ) -> None:
        self.item, self.count_at, self.deltas = item, count_at, deltas


def counted(write: FinalWrite) -> dict[str, Any]:
    """The write's request with what its record counts added to the record, for the stream
    handler to count (Counters.count_changes); unchanged if it counts nothing."""
    deltas = {k: v for k, v in write.deltas.items() if v}
    if not deltas:
        return write.item
    counts: dict[str, Any] = {
        COUNTS: {"M": {k: {"N": repr(v)} for k, v in deltas.items()}},
        COUNTED_AT: {"S": sortable(write.count_at)},
    }
    if "Put" in write.item:
        put = write.item["Put"]
        return {"Put": {**put, "Item": {**put["Item"], **counts}}}
    update = dict(write.item["Update"])
    sets, _, rest = update["UpdateExpression"].partition(" REMOVE ")
    sets += ", #counts = :counts, #counted_at = :counted_at"
    update["UpdateExpression"] = sets + (f" REMOVE {rest}" if rest else "")
    update["ExpressionAttributeNames"] = {
        **update["ExpressionAttributeNames"],
        "#counts": COUNTS,
        "#counted_at": COUNTED_AT,
    }
    update["ExpressionAttributeValues"] = {
        **update["ExpressionAttributeValues"],
        ":counts": counts[COUNTS],
        ":counted_at": counts[COUNTED_AT],
    }
    return {"Update": update}


class RunStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._db = client
        self._table = table_name

    # -- reads ------------------------------------------------------------------------------

    def get(self, job_id: int, key: str) -> Execution | None:
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table, Key=run_item_key(job_id, key), ConsistentRead=True
            ),
            what="reading the run",
        )
        item = out.get("Item")
        return execution_from_item(item) if item is not None and not is_fence(item) else None

    def history(
        self, job_id: int, *, skip: int, limit: int, cursor: str | None = None
    ) -> tuple[list[Execution], str | None]:
        """Newest first, from one Query on the job's partition: a page, and the cursor of
        the next when there may be one."""
        pk = job_pk(job_id)
        params: dict[str, Any] = {}
        if cursor:
            params["ExclusiveStartKey"] = start_key(
                cursor, {"pk", "sk"}, equal={"pk": pk}, prefix={"sk": "RUN#"}
            )
        wanted = skip + limit
        items = list(
            query_all(
                self._db,
                self._table,
                page_size=wanted,
                stop_after=wanted,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
                FilterExpression=RECORDED,
                ExpressionAttributeNames=STATUS_NAME,
                ExpressionAttributeValues={":pk": {"S": pk}, ":run": {"S": "RUN#"}},
                ScanIndexForward=False,
                **params,
            )
        )
        page = [execution_from_item(raw) for raw in items[skip:wanted]]
        return page, page_cursor(items, wanted, {"pk", "sk"})

    def between(self, job_id: int, first: datetime, last: datetime) -> list[Execution]:
        """Every record of the runs scheduled from `first` to `last`: one Query, reading only
        what exists there."""
        low, high = f"RUN#{sortable(first)}#", f"RUN#{sortable(last)}#~"
        return [execution_from_item(raw) for raw in self._records(job_id, low, high)]

    def latest_before(self, job_id: int, scheduled_for: datetime, limit: int) -> list[Execution]:
        """The records of the `limit` latest attempts of the job's runs scheduled before
        `scheduled_for`, newest first: one Query, read consistently."""
        items = self._records(
            job_id,
            "RUN#",
            f"RUN#{sortable(scheduled_for)}#",
            page_size=limit,
            stop_after=limit,
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        return [execution_from_item(raw) for raw in items]

    def _records(self, job_id: int, low: str, high: str, **params: Any) -> Iterator[dict[str, Any]]:
        """The job's run records (not fences) with keys from `low` to `high`."""
        return query_all(
            self._db,
            self._table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            FilterExpression=RECORDED,
            ExpressionAttributeNames=STATUS_NAME,
            ExpressionAttributeValues={
                ":pk": {"S": job_pk(job_id)},
                ":a": {"S": low},
                ":b": {"S": high},
            },
            **params,
        )

    # -- P: a pending attempt that must be sent (manual runs, retries) ----------------------

    def put_pending(
        self, execution: Execution, resend_at: datetime, also: Sequence[dict[str, Any]] = ()
    ) -> bool:
        """Record a pending attempt, in the due index until it starts: if its message is
        never sent (a crash, a failed send), the tick sends it at `resend_at`. False if the
        attempt was recorded already. `also`: transaction items written with it."""
        item = execution_item(
            execution,
            due_pk=due_shard(execution.job_id),
            due_sk=due_sort_key(resend_at, execution.job_id),
        )
        if not also:
            return self._put(item)
        put = {
            "Put": {
                "TableName": self._table,
                "Item": item,
                "ConditionExpression": NOT_RECORDED,
                "ExpressionAttributeNames": STATUS_NAME,
            }
        }
        try:
            with_backoff(
                lambda: self._db.transact_write_items(TransactItems=[put, *also]),
                what="recording the run",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def move_resend(self, job_id: int, key: str, resend_at: datetime) -> bool:
        """An unfinished attempt was sent (again), or is still under a live lease: check on
        it next at `resend_at` (TR)."""
        return self._update(
            job_id,
            key,
            "SET #dp = :dp, #ds = :ds",
            "#st IN (:pending, :running)",
            {"#ds": "due_sk", "#dp": "due_pk", "#st": "status"},
            {
                ":dp": {"S": due_shard(job_id)},
                ":ds": {"S": due_sort_key(resend_at, job_id)},
                ":pending": {"S": "pending"},
                ":running": {"S": "running"},
            },
        )

    def drop_resend(self, job_id: int, key: str) -> bool:
        """Take an attempt that is no longer pending out of the due index."""
        return self._update(
            job_id,
            key,
            "REMOVE #dp, #ds",
            "attribute_exists(#dp) AND #st <> :pending",
            {"#ds": "due_sk", "#dp": "due_pk", "#st": "status"},
            {":pending": {"S": "pending"}},
        )

    # -- S: start under a lease -------------------------------------------------------------

    def start_new(self, execution: Execution, *, unread: bool = False) -> bool:
        """Create a scheduled run's record as running (S0): its message is its pending state.
        False if the run has a record already (a duplicate message, or a missed record).
        `unread`: the start was decided without the record (and perhaps without the job):
        then a fence there refuses it too."""
        return self._put(execution_item(execution), unread=unread)

    def put_final(self, execution: Execution, *, unread: bool = False) -> bool:
        """Record a final outcome for a run that has no record (TM, MS, SK on a scheduled
        run), one that adds to no counter. False if the run has a record already (or, if
        `unread`, a fence: see start_new)."""
        return self._put(execution_item(execution), unread=unread)

    def fence(self, job_id: int, runs: Sequence[datetime], expires_at: datetime) -> int:
        """Put a fence at the first attempt of each of `runs` that has no record yet, so that
        a start decided from a snapshot of the job (chalicelib.snapshot) is refused there and
        decides again with the job read. A run with a record keeps it. One transaction for
        up to 100 runs, made again without the runs it found recorded; how many were put."""
        left = self.fence_items(job_id, runs, expires_at)
        put = 0
        while left:
            part, left = left[:100], left[100:]
            while part:
                try:
                    self._fence_all(part)
                except ClientError as exc:
                    failed = failed_conditions(exc, len(part))
                    if failed is None:
                        raise
                    # Those runs have started (or ended): their records stay.
                    part = [i for i, f in zip(part, failed, strict=True) if not f]
                    continue
                put += len(part)
                break
        return put

    def fence_items(
        self, job_id: int, runs: Sequence[datetime], expires_at: datetime
    ) -> list[dict[str, Any]]:
        """Transaction items putting a fence at the first attempt of each of `runs`, on
        condition that it has no record (a fence there is replaced)."""
        expires = {"N": str(int(expires_at.timestamp()))}
        return [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        **run_item_key(job_id, run_key(t, 1)),
                        FENCE: {"S": "1"},
                        "expires_at": expires,
                    },
                    "ConditionExpression": NOT_RECORDED,
                    "ExpressionAttributeNames": STATUS_NAME,
                }
            }
            for t in dict.fromkeys(runs)
        ]

    def _fence_all(self, items: list[dict[str, Any]]) -> None:
        with_backoff(
            lambda: self._db.transact_write_items(TransactItems=items),
            what="fencing the runs sent ahead",
        )

    def start_pending(
        self, execution: Execution, now: datetime, lease_until: datetime, owner: str
    ) -> bool:
        """pending -> running under a lease, out of the due index (S2)."""
        return self._lease(execution, now, lease_until, owner, "#st = :pending")

    def take_over(
        self, execution: Execution, now: datetime, lease_until: datetime, owner: str
    ) -> bool:
        """running, lease over (its worker died) -> running under a new lease (S3)."""
        return self._lease(execution, now, lease_until, owner, "#st = :running AND #lu < :now")

    def _lease(
        self, execution: Execution, now: datetime, lease_until: datetime, owner: str, when: str
    ) -> bool:
        return self._update(
            execution.job_id,
            execution.run_key,
            "SET #st = :running, #sa = :now, #lu = :lease, #lo = :owner REMOVE #dp, #ds",
            when,
            self._lease_names(),
            {
                **self._lease_values(now, lease_until, owner),
                **({":pending": {"S": "pending"}} if ":pending" in when else {}),
            },
        )

    def renew(self, execution: Execution, owner: str, lease_until: datetime) -> bool:
        """Keep the lease of a run that is still going (its task overran, and has not yet
        stopped): nobody takes it over, and its retry does not start, until it has."""
        return self._update(
            execution.job_id,
            execution.run_key,
            "SET #lu = :lease",
            "#st = :running AND #lo = :owner",
            {"#lu": "lease_until", "#lo": "lease_owner", "#st": "status"},
            {
                ":lease": {"S": sortable(lease_until)},
                ":owner": {"S": owner},
                ":running": {"S": "running"},
            },
        )

    def request_cancel(self, job_id: int, key: str, reason: str) -> bool:
        """Ask a running attempt to stop: its worker sees `cancel_requested` within a second
        and ends it `cancelled` (no retry). Only on a running attempt; the first reason stays."""
        return self._update(
            job_id,
            key,
            "SET #cr = :why",
            "#st = :running AND attribute_not_exists(#cr)",
            {"#cr": "cancel_requested", "#st": "status"},
            {":why": {"S": reason[:500]}, ":running": {"S": "running"}},
        )

    def record_notifications(
        self, job_id: int, key: str, notifications: list[dict[str, Any]]
    ) -> bool:
        """N: the "notified" marker of a final record: what its notifications became. Only
        once (a repeat that finds it there sends nothing); the record's outcome is untouched."""
        return self._update(
            job_id,
            key,
            "SET #n = :n",
            "attribute_not_exists(#n)",
            {"#n": "notifications"},
            {":n": dump({"n": notifications})["n"]},
        )

    def cancel_requested(self, job_id: int, key: str) -> str | None:
        """Why the attempt must stop, if it must: a small consistent read (the worker polls it
        while the task runs)."""
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table,
                Key=run_item_key(job_id, key),
                ConsistentRead=True,
                ProjectionExpression="cancel_requested",
            ),
            what="reading the run",
        )
        value = out.get("Item", {}).get("cancel_requested", {}).get("S")
        return str(value) if value else None

    @staticmethod
    def _lease_names() -> dict[str, str]:
        return {
            "#st": "status",
            "#lu": "lease_until",
            "#lo": "lease_owner",
            "#sa": "started_at",
            "#dp": "due_pk",
            "#ds": "due_sk",
        }

    @staticmethod
    def _lease_values(now: datetime, lease_until: datetime, owner: str) -> dict[str, Any]:
        return {
            ":running": {"S": "running"},
            ":now": {"S": sortable(now)},
            ":lease": {"S": sortable(lease_until)},
            ":owner": {"S": owner},
        }

    # -- F1 and E: final records, with their counts -----------------------------------------

    def outcome(
        self, execution: Execution, owner: str, deltas: dict[str, int | float]
    ) -> FinalWrite:
        """The outcome held in `execution`, written only if `owner` still holds the lease."""
        fields = {
            "status": execution.status,
            "completed_at": execution.completed_at,
            "duration_seconds": execution.duration_seconds,
            "result": execution.result,
            "error": execution.error,
            "reason": execution.reason,
        }
        names, values, sets = self._fields(fields)
        names.update({"#lo": "lease_owner", "#lu": "lease_until", "#st0": "status"})
        values.update({":owner": {"S": owner}, ":running": {"S": "running"}})
        item = {
            "Update": {
                "TableName": self._table,
                "Key": run_item_key(execution.job_id, execution.run_key),
                "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE #lu",
                "ConditionExpression": "attribute_exists(pk) AND #st0 = :running AND #lo = :owner",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        return FinalWrite(item, execution.started_at or execution.created_at, deltas)

    def settlement(
        self,
        execution: Execution,
        status: str,
        reason: str,
        now: datetime,
        error: dict[str, Any] | None = None,
        deltas: dict[str, int | float] | None = None,
    ) -> FinalWrite:
        """End an attempt that will not run (or will not finish): skipped, missed, failed.

        Only from pending, or from running once its lease is over, so a finished attempt's
        record is never rewritten.
        """
        names, values, sets = self._fields(
            {"status": status, "reason": reason, "completed_at": now, "error": error}
        )
        names.update({"#st0": "status", "#lu": "lease_until", "#dp": "due_pk", "#ds": "due_sk"})
        values.update(
            {
                ":pending": {"S": "pending"},
                ":running": {"S": "running"},
                ":now": {"S": sortable(now)},
            }
        )
        item = {
            "Update": {
                "TableName": self._table,
                "Key": run_item_key(execution.job_id, execution.run_key),
                "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE #lu, #dp, #ds",
                "ConditionExpression": "attribute_exists(pk) AND "
                "(#st0 = :pending OR (#st0 = :running AND #lu < :now))",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        return FinalWrite(item, execution.started_at or now, deltas or {})

    def new_final(
        self, execution: Execution, deltas: dict[str, int | float] | None = None
    ) -> FinalWrite:
        """A final record for a run that has none yet (a scheduled run skipped or missed
        before it started): a put, only where nothing is recorded."""
        item = {
            "Put": {
                "TableName": self._table,
                "Item": execution_item(execution),
                "ConditionExpression": NOT_RECORDED,
                "ExpressionAttributeNames": STATUS_NAME,
            }
        }
        return FinalWrite(item, execution.created_at, deltas or {})

    def commit(self, writes: Sequence[FinalWrite]) -> list[bool]:
        """Write final records, each alone, with what each counts (`counts`, `counted_at`).

        A record whose condition fails (a duplicate; a lease lost) is not written. Returns,
        per write, whether it was made here.
        """
        return [self._write_final(write) for write in writes]

    def _write_final(self, write: FinalWrite) -> bool:
        request = counted(write)
        try:
            if "Update" in request:
                with_backoff(lambda: self._db.update_item(**request["Update"]), what="recording")
            else:
                with_backoff(lambda: self._db.put_item(**request["Put"]), what="recording")
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    # -- the missed-runs range record (M) ---------------------------------------------------

    def record_missed_range(self, record: Execution) -> int:
        """Write (or extend) the record of a range of missed runs, counted by the first run's
        identity (attempt 0). Returns how many runs it newly counts: 0 for a repeat."""
        assert record.missed_count is not None and record.missed_until is not None
        until = sortable(record.missed_until)
        if self._put(execution_item(record)):
            return record.missed_count
        try:
            out = with_backoff(
                lambda: self._db.update_item(
                    TableName=self._table,
                    Key=run_item_key(record.job_id, record.run_key),
                    UpdateExpression="SET missed_count = :n, missed_until = :u, reason = :r",
                    ConditionExpression="missed_until < :u",
                    ExpressionAttributeValues={
                        ":n": {"N": str(record.missed_count)},
                        ":u": {"S": until},
                        ":r": {"S": record.reason or ""},
                    },
                    ReturnValues="UPDATED_OLD",
                ),
                what="recording missed runs",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return 0
            raise
        old = int(out.get("Attributes", {}).get("missed_count", {}).get("N", "0"))
        return record.missed_count - old

    # -- deleting a job's history (sweep) ---------------------------------------------------

    def purge(self, job_id: int, limit: int) -> int:
        """Delete up to `limit` records of the job's partition except the job item; how many.
        Its fences stay until they expire: a run sent ahead of the delete that carries the
        job must still find one, after the tombstone too (chalicelib.snapshot)."""
        keys = []
        for item in query_all(
            self._db,
            self._table,
            page_size=limit,
            stop_after=limit,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
            FilterExpression=RECORDED,
            ExpressionAttributeNames=STATUS_NAME,
            ExpressionAttributeValues={":pk": {"S": job_pk(job_id)}, ":run": {"S": "RUN#"}},
            ProjectionExpression="pk, sk",
        ):
            keys.append({"pk": item["pk"], "sk": item["sk"]})
        for start in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": key}} for key in keys[start : start + 25]]
            drain_unprocessed(
                lambda r: self._db.batch_write_item(RequestItems=r),
                {self._table: requests},
                "UnprocessedItems",
            )
        return len(keys)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _fields(fields: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any], list[str]]:
        item = dump(to_item_fields(fields))
        names = {f"#f{i}": k for i, k in enumerate(item)}
        values = {f":v{i}": v for i, v in enumerate(item.values())}
        return names, values, [f"#f{i} = :v{i}" for i in range(len(item))]

    def _put(self, item: dict[str, Any], *, unread: bool = False) -> bool:
        """Put a record where none is (a fence counts as none, unless `unread`)."""
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if unread
            else {"ConditionExpression": NOT_RECORDED, "ExpressionAttributeNames": STATUS_NAME}
        )
        try:
            with_backoff(
                lambda: self._db.put_item(TableName=self._table, Item=item, **condition),
                what="recording the run",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    def _update(
        self,
        job_id: int,
        key: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        return conditional_update(
            self._db,
            self._table,
            run_item_key(job_id, key),
            update,
            condition,
            values,
            names,
            what="updating the run",
        )
