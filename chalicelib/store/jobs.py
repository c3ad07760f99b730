"""Jobs: the job items, their list index, their due-index entry and their run slots.

Every API write is conditional on the job's `version`; so is the tick's claim, which bumps
it, so a PUT that read the job before a claim cannot write the claimed `next_run_at` back.
The engine's own fields (`last_run_*`, `running`) are never written by the API.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import ConcurrentUpdate, FieldError, InvalidInput, JobNotFound
from chalicelib.models import UPDATABLE, Execution, Job
from chalicelib.queued import after_claim
from chalicelib.queued import encode as encode_queued
from chalicelib.queued import latest as latest_queued
from chalicelib.store.counters import Counters
from chalicelib.store.items import (
    DUE_INDEX,
    LIST_INDEX,
    LIST_PARTITION,
    META,
    batch_get,
    conditional_update,
    due_shard,
    due_sort_key,
    execution_from_item,
    failed_conditions,
    is_condition_failure,
    is_fence,
    job_from_item,
    job_item,
    job_key,
    job_pk,
    load,
    run_item_key,
    run_key,
    with_backoff,
)
from chalicelib.timefmt import parse_stored, sortable

# Written by the engine only: an API update never touches them, so it cannot undo a run's record.
ENGINE_FIELDS = frozenset(
    {
        "last_run_at",
        "last_run_status",
        "running",
        "deleted_at",
        "buffered",
        "failure_streak",
        "streak_before",
        "streak_run",
        "last_success_at",
        "overdue_since",
        "overdue_notice",
        "overdue_notice_since",
        "overdue_notice_until",
        "overdue_notifications",
        "queued_runs",
    }
)
# Set by a pause, cleared by a resume: written (or removed) with the job's state.
PAUSE_FIELDS = frozenset({"paused_note", "paused_until"})
# A filter expression may be at most 4 KB; a tag filter of this many tags stays far below it.
MAX_TAG_FILTER = 20
# Policies under which at most one run of the job runs at a time (the slot is the check).
EXCLUSIVE = frozenset({"forbid", "buffer_one", "replace"})
# An `allow` job shows at most this many runs in its slot map (the item would grow past 1 KB,
# and every job write costs a write unit per KB); a `forbid` job has at most one.
MAX_SHOWN_RUNNING = 10


def _last_run_sets(status: str) -> str:
    """F2's SET: the job's last run, and for a completed one its last success (the
    dead-man's switch's clock, engine.watch), in the same write at no extra cost."""
    sets = "SET last_run_at = :at, last_run_status = :st"
    return f"{sets}, last_success_at = :at" if status == "completed" else sets


class DueEntry:
    """One entry of the due index: a job's next run, or a run attempt to (re)send."""

    __slots__ = ("due_at", "pk", "priority", "sk")

    def __init__(self, pk: str, sk: str, due_at: datetime, priority: int) -> None:
        self.pk, self.sk, self.due_at, self.priority = pk, sk, due_at, priority

    @property
    def job_id(self) -> int:
        return int(self.pk.removeprefix("JOB#"))

    @property
    def is_job(self) -> bool:
        return self.sk == "JOB"


class JobStore:
    def __init__(self, client: Any, table_name: str, counters: Counters) -> None:
        self._db = client
        self._table = table_name
        self._counters = counters

    # -- the API's writes -------------------------------------------------------------------

    def next_job_id(self) -> int:
        out = with_backoff(
            lambda: self._db.update_item(
                TableName=self._table,
                Key={"pk": {"S": META}, "sk": {"S": "SEQ#JOB"}},
                UpdateExpression="ADD seq :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            ),
            what="allocating a job id",
        )
        return int(out["Attributes"]["seq"]["N"])

    def get_job(self, job_id: int) -> Job:
        job = self.find_job(job_id)
        if job is None or job.deleted_at is not None:
            raise JobNotFound(job_id)
        return job

    def find_job(self, job_id: int) -> Job | None:
        """The job item as stored, a deleted job's tombstone included."""
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table, Key=job_key(job_id), ConsistentRead=True
            ),
            what="reading the job",
        )
        return job_from_item(out["Item"]) if "Item" in out else None

    def find_jobs(self, job_ids: Sequence[int]) -> dict[int, Job]:
        """The job items of `job_ids` that exist (tombstones included), by id: BatchGetItem,
        strongly consistent, 100 to a request."""
        found = batch_get(self._db, self._table, [job_key(i) for i in job_ids])
        jobs = (job_from_item(raw) for raw in found.values())
        return {job.id: job for job in jobs}

    def create_job(self, job: Job, also: Sequence[dict[str, Any]] = ()) -> None:
        """Create the job; `also`: transaction items written with it (its audit entry)."""
        with_backoff(
            lambda: self._db.transact_write_items(
                TransactItems=[
                    *also,
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": job_item(job),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    self._counters.job_delta(total_jobs=1, active_jobs=int(job.is_active)),
                ]
            ),
            what="creating the job",
        )

    def replace_job(
        self,
        before: Job,
        after: Job,
        *,
        reschedule: bool,
        also: Sequence[dict[str, Any]] = (),
        fences: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Write the caller-owned fields of `after`, only if nobody changed the job since `before`.

        An update, not a put: the engine's fields may change at any moment while a run
        finishes, and an API write must not undo them. `next_run_at` and the due-index entry
        are written only when `reschedule` says the schedule or the job's state changed.
        `also`: items of the same transaction; `fences` too, but one whose run has a record
        (it started) is left out (`_transact`).
        """
        item = job_item(after)
        names: dict[str, str] = {}
        values: dict[str, Any] = {":expected": {"N": str(before.version)}}
        sets, removes = [], []
        due_fields = {"next_run_at", "due_pk", "due_sk"}
        for i, (key, value) in enumerate(sorted(item.items())):
            if key in ("pk", "sk") or key in ENGINE_FIELDS:
                continue
            if key in due_fields and not reschedule:
                continue
            names[f"#f{i}"] = key
            values[f":v{i}"] = value
            sets.append(f"#f{i} = :v{i}")
        cleared = {
            k
            for k, v in after.model_dump(include=set(UPDATABLE) | PAUSE_FIELDS).items()
            if v is None
        }
        if reschedule:
            cleared |= {"next_run_at", "due_pk", "due_sk", "schedule_error"}
            # The runs the tick sent ahead are not the job's next ones any more: a pause, a
            # resume or a new schedule starts again from now (a run sent ahead that is still
            # due runs; one of a replaced schedule or inside a pause does not: engine.worker,
            # SR and SP). The two latest already due stay: the API reads the job's last run
            # from their records (JobStore.shown).
            due = encode_queued(latest_queued(before.queued_runs, after.updated_at, 2)[::-1])
            if due is not None:
                names["#q"], values[":q"] = "queued_runs", {"S": due}
                sets.append("#q = :q")
            elif before.queued_runs is not None:
                names["#q"] = "queued_runs"
                removes.append("#q")
        for key in sorted(cleared - set(item)):
            names[f"#r_{key}"] = key
            removes.append(f"#r_{key}")
        names["#v"] = "version"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        delta = int(after.is_active) - int(before.is_active)
        update = {
            "Update": {
                "TableName": self._table,
                "Key": job_key(after.id),
                "UpdateExpression": expression,
                "ConditionExpression": "#v = :expected AND attribute_not_exists(deleted_at)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }
        try:
            if delta or also or fences:
                items = [update, *also]
                if delta:
                    items.append(self._counters.job_delta(active_jobs=delta))
                self._transact(items, fences, "updating the job")
            else:
                with_backoff(lambda: self._db.update_item(**update["Update"]), what="updating")
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConcurrentUpdate(
                    f"job {before.id} changed while this request was being handled; retry it"
                ) from exc
            raise

    def _transact(
        self, items: list[dict[str, Any]], fences: Sequence[dict[str, Any]], what: str
    ) -> None:
        """`items` and `fences` in one transaction. A fence whose condition fails (its run
        started before this write) is left out and the rest written again; any other
        failure raises."""
        left = list(fences)
        while True:
            try:
                with_backoff(
                    lambda every=[*items, *left]: self._db.transact_write_items(  # type: ignore[misc]
                        TransactItems=every
                    ),
                    what=what,
                )
                return
            except ClientError as exc:
                failed = failed_conditions(exc, len(items) + len(left))
                if failed is None or any(failed[: len(items)]):
                    raise
                left = [f for f, x in zip(left, failed[len(items) :], strict=True) if not x]

    def mark_deleted(
        self,
        job: Job,
        now: datetime,
        also: Sequence[dict[str, Any]] = (),
        fences: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Delete the job as the API sees it, in one write: a tombstone that leaves the list
        and the counts at once, and is due now so the sweep removes its history (bounded
        work per tick) and then the tombstone itself. A job deleted while overdue
        (engine.watch) is no longer counted overdue: the write is conditional on the overdue
        state it was read in."""
        values = {
            ":now": {"S": sortable(now)},
            ":false": {"BOOL": False},
            ":dp": {"S": due_shard(job.id)},
            ":ds": {"S": due_sort_key(now, job.id)},
            ":one": {"N": "1"},
            ":expected": {"N": str(job.version)},
        }
        overdue = "attribute_not_exists(overdue_since)"
        if job.overdue_since is not None:
            overdue = "overdue_since = :overdue"
            values[":overdue"] = {"S": sortable(job.overdue_since)}
        try:
            self._transact(
                [
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": job_key(job.id),
                            "UpdateExpression": (
                                "SET deleted_at = :now, is_active = :false, "
                                "due_pk = :dp, due_sk = :ds ADD version :one "
                                "REMOVE list_pk, list_sk, next_run_at"
                            ),
                            "ConditionExpression": (
                                "version = :expected AND attribute_not_exists(deleted_at)"
                                f" AND {overdue}"
                            ),
                            "ExpressionAttributeValues": values,
                        }
                    },
                    self._counters.job_delta(
                        total_jobs=-1,
                        active_jobs=-int(job.is_active),
                        overdue_jobs=-int(job.overdue_since is not None),
                    ),
                    *also,
                ],
                fences,
                "deleting the job",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise ConcurrentUpdate(
                    f"job {job.id} changed while it was being deleted; retry the delete"
                ) from exc
            raise

    def reschedule_tombstone(self, job_id: int, when: datetime) -> None:
        self._update(
            job_id,
            "SET due_sk = :ds",
            "attribute_exists(deleted_at)",
            {":ds": {"S": due_sort_key(when, job_id)}},
        )

    def remove_tombstone(self, job_id: int) -> None:
        try:
            with_backoff(
                lambda: self._db.delete_item(
                    TableName=self._table,
                    Key=job_key(job_id),
                    ConditionExpression="attribute_exists(deleted_at)",
                ),
                what="removing a deleted job",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    # -- reads ------------------------------------------------------------------------------

    def list_jobs(
        self,
        *,
        skip: int,
        limit: int,
        is_active: bool | None = None,
        job_type: str | None = None,
        tags: list[str] | None = None,
    ) -> list[Job]:
        """Newest first: one page (`list_jobs_page` also says where the next one starts)."""
        page, _ = self.list_jobs_page(
            skip=skip, limit=limit, is_active=is_active, job_type=job_type, tags=tags
        )
        return page

    def list_jobs_page(
        self,
        *,
        skip: int,
        limit: int,
        cursor: str | None = None,
        is_active: bool | None = None,
        job_type: str | None = None,
        tags: list[str] | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first. Reads the index keys of `skip + limit` matching jobs after `cursor`,
        then the page; with the cursor of the next page when there may be one.

        The filters are re-applied on every page, so a cursor carries only where the
        previous page ended (its last index key), never what was asked.
        """
        filters: list[str] = []
        values: dict[str, Any] = {":p": {"S": LIST_PARTITION}}
        names: dict[str, str] = {}
        if is_active is not None:
            filters.append("is_active = :active")
            values[":active"] = {"BOOL": is_active}
        if job_type is not None:
            filters.append("job_type = :type")
            values[":type"] = {"S": job_type}
        if tags and len(tags) > MAX_TAG_FILTER:
            raise ValueError(f"at most {MAX_TAG_FILTER} tags in a filter")
        for i, tag in enumerate(tags or []):
            filters.append(f"contains(#tags, :tag{i})")
            values[f":tag{i}"] = {"S": tag}
            names["#tags"] = "tags"
        params: dict[str, Any] = {
            "IndexName": LIST_INDEX,
            "KeyConditionExpression": "list_pk = :p",
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            # The index's own key too: it is the cursor when the item ends a page.
            "ProjectionExpression": "pk, sk, list_pk, list_sk",
        }
        if filters:
            params["FilterExpression"] = " AND ".join(filters)
        if names:
            params["ExpressionAttributeNames"] = names
        if cursor:
            params["ExclusiveStartKey"] = start_key(
                cursor, INDEX_KEY, equal={"list_pk": LIST_PARTITION}
            )
        wanted = skip + limit
        keys = list(
            query_all(
                self._db, self._table, page_size=min(wanted, 1000), stop_after=wanted, **params
            )
        )
        jobs = self._get_jobs([{"pk": k["pk"], "sk": k["sk"]} for k in keys[skip:wanted]])
        return jobs, page_cursor(keys, wanted, INDEX_KEY)

    def _get_jobs(self, keys: list[dict[str, Any]]) -> list[Job]:
        found = batch_get(self._db, self._table, keys)
        jobs = [
            job_from_item(found[(k["pk"]["S"], k["sk"]["S"])])
            for k in keys
            if (k["pk"]["S"], k["sk"]["S"]) in found
        ]
        # A job deleted between the index read and the batch read is simply left out.
        return [job for job in jobs if job.deleted_at is None]

    def query_due(self, until: datetime) -> list[DueEntry]:
        """Everything due at or before `until`, from every shard of the sparse `by_due` index.

        Reads are proportional to what is due, not to what is stored. The index is eventually
        consistent: callers re-read from the table before they act.
        """
        bound = f"{sortable(until)}#~"
        entries = []
        for shard in range(8):
            for raw in query_all(
                self._db,
                self._table,
                IndexName=DUE_INDEX,
                KeyConditionExpression="due_pk = :p AND due_sk <= :until",
                ExpressionAttributeValues={":p": {"S": f"DUE#{shard}"}, ":until": {"S": bound}},
            ):
                item = load(raw)
                due_at = parse_stored(item["due_sk"].split("#")[0]) or datetime.min
                entries.append(
                    DueEntry(item["pk"], item["sk"], due_at, int(item.get("priority", 5)))
                )
        return entries

    # -- the tick's writes ------------------------------------------------------------------

    def claim(
        self,
        job: Job,
        new_next: datetime | None,
        queued: Sequence[datetime] = (),
        *,
        now: datetime,
    ) -> bool:
        """Advance the job's next run, only if it is still `job.next_run_at` and active (T2),
        and keep the runs sent ahead (`queued`, chalicelib.queued) for the API's next run.

        Of two ticks that planned the same runs, one advances the job and the other's
        condition fails. The version moves on, so an API write that read the job before the
        claim is refused (409, retried by the service) instead of writing the old time back.
        """
        assert job.next_run_at is not None
        names = {"#next": "next_run_at", "#active": "is_active", "#v": "version"}
        values: dict[str, Any] = {
            ":old": {"S": sortable(job.next_run_at)},
            ":true": {"BOOL": True},
            ":one": {"N": "1"},
        }
        # The runs an earlier claim sent that are still to come stay in the list, and the two
        # latest already due: the API reads the job's last run from their records
        # (JobStore.shown), and a run's worker knows from the list when the next is due
        # (engine.worker, F2).
        queued = after_claim(job.queued_runs, queued, now)
        sets: list[str] = []
        removes: list[str] = []
        text = encode_queued(queued)
        if text is not None:
            names["#q"], values[":q"] = "queued_runs", {"S": text}
            sets.append("#q = :q")
        if new_next is None:
            names.update({"#dp": "due_pk", "#ds": "due_sk"})
            removes += ["#next", "#dp", "#ds"]
        else:
            names["#ds"] = "due_sk"
            values[":new"] = {"S": sortable(new_next)}
            values[":due"] = {"S": due_sort_key(new_next, job.id)}
            sets[:0] = ["#next = :new", "#ds = :due"]
        expression = " ".join(
            [
                *([f"SET {', '.join(sets)}"] if sets else []),
                *([f"REMOVE {', '.join(removes)}"] if removes else []),
                "ADD #v :one",
            ]
        )
        return self._update(
            job.id,
            expression,
            "#next = :old AND #active = :true AND attribute_not_exists(deleted_at)",
            values,
            names,
        )

    def shown(self, jobs: list[Job], now: datetime) -> list[Job]:
        """The jobs as the API shows them, with their last run read from the records of the
        runs the tick sent ahead: a completed scheduled run of a plain job that ends before
        the next is due (engine.worker, F2) does not write the job, which saves a write unit a
        run. The two latest of those runs at or before `now` are read (one BatchGetItem for up
        to 50 jobs), and the later of what they and the job say is shown. (A run that ends
        later writes the job; one that ends without an outcome carries the outcome before it
        onto the job: engine.lifecycle, CY.)"""
        keys: list[dict[str, Any]] = []
        for job in jobs:
            if job.queued_runs:
                for t in latest_queued(job.queued_runs, now, 2):
                    keys.append(run_item_key(job.id, run_key(t, 1)))
        if not keys:
            return jobs
        found = batch_get(self._db, self._table, keys)
        latest: dict[str, Execution] = {}
        for raw in found.values():
            if is_fence(raw):
                continue
            record = execution_from_item(raw)
            if record.status not in ("completed", "failed") or record.completed_at is None:
                continue
            pk = job_pk(record.job_id)
            if pk not in latest or record.completed_at > (latest[pk].completed_at or now):
                latest[pk] = record
        out = []
        for job in jobs:
            last = latest.get(job_pk(job.id))
            at = last.completed_at if last is not None else None
            if last is None or at is None or (job.last_run_at and job.last_run_at >= at):
                out.append(job)
                continue
            update: dict[str, Any] = {"last_run_at": at, "last_run_status": last.status}
            if last.status == "completed" and (
                job.last_success_at is None or job.last_success_at < at
            ):
                update["last_success_at"] = at
            out.append(job.model_copy(update=update))
        return out

    def defer(self, job: Job, until: datetime, error: str) -> None:
        """Keep a job the tick cannot evaluate out of the way until `until`, with its error
        shown on the job; a PUT that fixes the schedule clears it."""
        self._update(
            job.id,
            "SET due_sk = :due, schedule_error = :err",
            "attribute_exists(due_pk)",
            {":due": {"S": due_sort_key(until, job.id)}, ":err": {"S": error[:500]}},
        )

    # -- the worker's writes (transitions S1 and F2 of engine.lifecycle) ---------------------

    def take_slot(
        self,
        job: Job,
        key: str,
        lease_until: datetime,
        now: datetime,
        *,
        exclusive: bool | None = None,
    ) -> bool:
        """Put the run `key` in the job's slots. For an exclusive job (`forbid`, `buffer_one`,
        `replace`) only while none is held by another run whose lease is still good, and no
        other run is waiting its turn (`buffered`): the overlap check and the claim of the slot
        are one conditional write, so two runs of such a job never both start. Taking the slot
        ends this run's own wait."""
        values: dict[str, Any] = {":lease": {"S": sortable(lease_until)}}
        names = {"#r": "running", "#k": key}
        update = "SET #r.#k = :lease"
        if exclusive is None:
            exclusive = job.concurrency_policy in EXCLUSIVE
        if exclusive:
            # Its own slot already (a takeover of a run whose worker died) or a free one that
            # no other run waits for.
            condition = (
                "attribute_exists(#r.#k) OR ((attribute_not_exists(#r) OR size(#r) = :zero) "
                "AND (attribute_not_exists(#b) OR #b = :key))"
            )
            values[":zero"] = {"N": "0"}
            values[":key"] = {"S": key}
            names["#b"] = "buffered"
            update += " REMOVE #b"
        else:
            condition = "attribute_not_exists(#r) OR size(#r) < :cap OR attribute_exists(#r.#k)"
            values[":cap"] = {"N": str(MAX_SHOWN_RUNNING)}
        try:
            taken = self._update(
                job.id, update, f"attribute_not_exists(deleted_at) AND ({condition})", values, names
            )
        except ClientError as exc:
            # A path in a map can be set only once the map exists; jobs get an empty one when
            # they are created, but a job stored before slots existed has none.
            if "document path" not in str(exc):
                raise
            self._update(
                job.id,
                "SET #r = if_not_exists(#r, :empty)",
                "attribute_exists(pk)",
                {":empty": {"M": {}}},
                {"#r": "running"},
            )
            return self.take_slot(job, key, lease_until, now, exclusive=exclusive)
        if taken or not exclusive:
            return taken
        return self._free_stale_slots(job.id, now) and self._update(
            job.id, update, f"attribute_not_exists(deleted_at) AND ({condition})", values, names
        )

    def wait_turn(self, job_id: int, key: str, *, newer_only: bool) -> bool:
        """Make run `key` the one that waits for the running one (buffer_one, replace): only if
        no other run waits (`newer_only`: or the one waiting is older, as `replace` wants).
        True if `key` waits now (a repeat finds it waiting already)."""
        condition = "attribute_not_exists(#b) OR #b = :key"
        if newer_only:
            condition += " OR #b < :key"
        return self._update(
            job_id,
            "SET #b = :key",
            f"attribute_not_exists(deleted_at) AND ({condition})",
            {":key": {"S": key}},
            {"#b": "buffered"},
        )

    def end_wait(self, job_id: int, key: str) -> bool:
        """Run `key` no longer waits (it ended without starting)."""
        return self._update(
            job_id, "REMOVE #b", "#b = :key", {":key": {"S": key}}, {"#b": "buffered"}
        )

    def _free_stale_slots(self, job_id: int, now: datetime) -> bool:
        """Release the slots whose lease is over (their worker died, and nothing finished
        them); True if any was. Each release is conditional on the lease read, so a slot
        renewed meanwhile stays."""
        job = self.find_job(job_id)
        if job is None:
            return False
        freed = False
        for key, lease in job.running.items():
            until = parse_stored(lease)
            if until is not None and until < now:
                freed |= self._update(
                    job_id,
                    "REMOVE #r.#k",
                    "#r.#k = :lease",
                    {":lease": {"S": lease}},
                    {"#r": "running", "#k": key},
                )
        return freed

    def renew_slot(self, job_id: int, key: str, lease_until: datetime) -> None:
        self._update(
            job_id,
            "SET #r.#k = :lease",
            "attribute_exists(#r.#k)",
            {":lease": {"S": sortable(lease_until)}},
            {"#r": "running", "#k": key},
        )

    def run_finished(
        self, job_id: int, key: str | None, status: str, finished_at: datetime
    ) -> None:
        """Release the run's slot and record it as the job's last run (F2).

        Idempotent, so a redelivered message can make it again: removing a slot that is gone
        changes nothing, and the last run only moves forward in time.
        """
        values = {":at": {"S": sortable(finished_at)}, ":st": {"S": status}}
        forward = "attribute_not_exists(last_run_at) OR last_run_at <= :at"
        sets = _last_run_sets(status)
        if key is None:
            self._update(job_id, sets, forward, values)
            return
        names = {"#r": "running", "#k": key}
        try:
            if self._update(job_id, f"{sets} REMOVE #r.#k", forward, values, names):
                return
        except ClientError as exc:
            if "document path" not in str(exc):
                raise
            # A job stored before slots existed has no slot map: nothing to release.
            self._update(job_id, sets, forward, values)
            return
        self.release_slot(job_id, key)

    def run_finished_counted(
        self, job_id: int, key: str, status: str, finished_at: datetime
    ) -> tuple[int, int] | None:
        """F2 of a run's final outcome for a job with `notify`: run_finished, and in the same
        write the job's streak of failed runs (+1 for a failed run, 0 for a completed one).

        Returns the streak before and after this run: `(streak_before, failure_streak)`. A
        repeat (the run's message delivered again) does not count the run twice: the write
        is conditional on `streak_run` not being this run, and the repeat reads the values the
        first one wrote. None if the job's last run is another's (an older outcome recorded
        after a newer one): then the streak says nothing of this run."""
        failed = status != "completed"
        values: dict[str, Any] = {
            ":at": {"S": sortable(finished_at)},
            ":st": {"S": status},
            ":zero": {"N": "0"},
            ":key": {"S": key},
        }
        streak = "if_not_exists(failure_streak, :zero) + :one" if failed else ":zero"
        if failed:
            values[":one"] = {"N": "1"}
        sets = (
            f"{_last_run_sets(status)}, "
            f"streak_before = if_not_exists(failure_streak, :zero), failure_streak = {streak}, "
            "streak_run = :key"
        )
        condition = (
            "attribute_exists(pk) AND (attribute_not_exists(last_run_at) OR last_run_at <= :at)"
            " AND (attribute_not_exists(streak_run) OR streak_run <> :key)"
        )

        def write(expression: str, names: dict[str, str] | None) -> dict[str, Any]:
            params: dict[str, Any] = {
                "TableName": self._table,
                "Key": job_key(job_id),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeValues": values,
                "ReturnValues": "ALL_NEW",
            }
            if names:
                params["ExpressionAttributeNames"] = names
            out: dict[str, Any] = with_backoff(
                lambda: self._db.update_item(**params), what="updating the job"
            )
            return out

        try:
            try:
                out = write(f"{sets} REMOVE #r.#k", {"#r": "running", "#k": key})
            except ClientError as exc:
                if "document path" not in str(exc):
                    raise
                out = write(sets, None)  # a job stored before slots existed
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            # Counted already (a repeat), or an older outcome: F2 as usual, then read.
            self.run_finished(job_id, key, status, finished_at)
            job = self.find_job(job_id)
            if job is None or job.streak_run != key:
                return None
            return job.streak_before, job.failure_streak
        after = load(out.get("Attributes", {}))
        return int(after.get("streak_before", 0)), int(after.get("failure_streak", 0))

    def release_slot(self, job_id: int, key: str, lease: datetime | None = None) -> None:
        """Take `key` out of the job's slots; with `lease`, only if it is still that lease (a
        worker that lost its run must not take away the slot of the run's new owner)."""
        names = {"#r": "running", "#k": key}
        if lease is None:
            self._update(job_id, "REMOVE #r.#k", "attribute_exists(#r.#k)", {}, names)
        else:
            self._update(
                job_id, "REMOVE #r.#k", "#r.#k = :lease", {":lease": {"S": sortable(lease)}}, names
            )

    def _update(
        self,
        job_id: int,
        update: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> bool:
        return conditional_update(
            self._db,
            self._table,
            job_key(job_id),
            update,
            condition,
            values,
            names,
            what="updating the job",
        )


# The key of an item in the `by_created` index: what a cursor of the job list holds.
INDEX_KEY = {"pk", "sk", "list_pk", "list_sk"}


def start_key(
    cursor: str,
    names: set[str],
    *,
    equal: dict[str, str] | None = None,
    prefix: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The ExclusiveStartKey a list's cursor stands for: a key of that very list, or a 422.

    `decode_cursor` refuses what is not a key at all; a key of another list (another job's
    runs) would make DynamoDB fail the Query, so it is refused here, in the same shape.
    """
    # audit imports store.keys, which imports this module: imported where it is used.
    from chalicelib.store.audit import decode_cursor

    key = decode_cursor(cursor, names)
    same_list = (
        set(key) == names
        and all(key[name]["S"] == value for name, value in (equal or {}).items())
        and all(key[name]["S"].startswith(value) for name, value in (prefix or {}).items())
    )
    if not same_list:
        raise InvalidInput(
            [
                FieldError(
                    ("query", "cursor"),
                    "a cursor of another list; use the X-Next-Cursor header of this list's "
                    "previous page, or leave cursor out for the first page",
                    "value_error.cursor",
                )
            ]
        )
    return key


def page_cursor(items: list[dict[str, Any]], wanted: int, names: set[str]) -> str | None:
    """The cursor after the `wanted`th item read (its key `names`), if all `wanted` were
    there: there may be more. A page cut short by the end of the list has none."""
    from chalicelib.store.audit import encode_cursor

    if len(items) < wanted:
        return None
    last = items[wanted - 1]
    return encode_cursor({name: last[name] for name in sorted(names)})


def query_all(
    db: Any,
    table: str,
    *,
    page_size: int | None = None,
    stop_after: int | None = None,
    **params: Any,
) -> Iterator[dict[str, Any]]:
    params["TableName"] = table
    if page_size:
        params["Limit"] = page_size
    seen = 0

    def page() -> dict[str, Any]:
        out: dict[str, Any] = db.query(**params)
        return out

    while True:
        out = with_backoff(page, what="reading")
        for item in out.get("Items", []):
            yield item
            seen += 1
            if stop_after is not None and seen >= stop_after:
                return
        last = out.get("LastEvaluatedKey")
        if not last:
            return
        params["ExclusiveStartKey"] = last
