"""The dead-man's switch (engine.watch): when to look at a watched job, and its transitions.

| item  | pk         | sk      | due index                            |
|-------|------------|---------|--------------------------------------|
| watch | `JOB#<id>` | `WATCH` | `DUE#<shard>`, `<check_at>#<job id>` |

The job item holds the switch's state (`expect_success_within`, `expect_since`,
`last_success_at`, `overdue_since`, `overdue_notice`, `overdue_notice_until`,
`overdue_notifications`); the watch item
only says when to look at it again. A job becomes overdue, or stops being overdue, in one
transaction: the job item (conditional on the state it was read in), the overdue count
(`overdue_jobs`, so the overview's count is exactly the jobs marked overdue) and the watch
item. A job deleted while overdue takes its count with it (JobStore.mark_deleted).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.models import Job
from chalicelib.store.counters import Counters
from chalicelib.store.items import (
    conditional_update,
    due_shard,
    due_sort_key,
    dump,
    is_condition_failure,
    job_key,
    job_pk,
    with_backoff,
)
from chalicelib.timefmt import parse_stored, sortable

SK = "WATCH"


def watch_key(job_id: int) -> dict[str, Any]:
    return {"pk": {"S": job_pk(job_id)}, "sk": {"S": SK}}


class WatchStore:
    def __init__(self, client: Any, table_name: str, counters: Counters) -> None:
        self._db = client
        self._table = table_name
        self._counters = counters

    def put_item(self, job_id: int, check_at: datetime) -> dict[str, Any]:
        """A transaction item: look at the job at `check_at` (the API writes it with the job)."""
        item = {
            "pk": job_pk(job_id),
            "sk": SK,
            "job_id": job_id,
            "due_pk": due_shard(job_id),
            "due_sk": due_sort_key(check_at, job_id),
        }
        return {"Put": {"TableName": self._table, "Item": dump(item)}}

    def due(self, job_id: int) -> datetime | None:
        """When the job's watch is due (the deadline it was last set for), or None."""
        out = with_backoff(
            lambda: self._db.get_item(
                TableName=self._table,
                Key=watch_key(job_id),
                ConsistentRead=True,
                ProjectionExpression="due_sk",
            ),
            what="reading the job's watch",
        )
        raw = out.get("Item", {}).get("due_sk", {}).get("S")
        return parse_stored(raw.split("#")[0]) if raw else None

    def move(self, job_id: int, check_at: datetime) -> None:
        """Look at the job next at `check_at` (it exists: a watch removed meanwhile stays so)."""
        conditional_update(
            self._db,
            self._table,
            watch_key(job_id),
            "SET due_sk = :ds",
            "attribute_exists(sk)",
            {":ds": {"S": due_sort_key(check_at, job_id)}},
            what="moving the job's watch",
        )

    def remove(self, job_id: int) -> None:
        with_backoff(
            lambda: self._db.delete_item(TableName=self._table, Key=watch_key(job_id)),
            what="removing the job's watch",
        )

    def mark_overdue(
        self, job: Job, since: datetime, notice: str, check_at: datetime, sending_until: datetime
    ) -> bool:
        """The job is overdue since `since`: set it, with `notice` to send (by this check, until
        `sending_until`), count it. Only if it was not overdue, is not deleted and still
        expects what it was read with."""
        assert job.expect_success_within is not None
        update = {
            "TableName": self._table,
            "Key": job_key(job.id),
            "UpdateExpression": (
                "SET overdue_since = :since, overdue_notice = :notice, "
                "overdue_notice_since = :since, overdue_notice_until = :until"
            ),
            "ConditionExpression": (
                "attribute_exists(pk) AND attribute_not_exists(deleted_at) "
                "AND attribute_not_exists(overdue_since) AND attribute_not_exists(overdue_notice) "
                "AND expect_success_within = :w"
            ),
            "ExpressionAttributeValues": {
                ":since": {"S": sortable(since)},
                ":notice": {"S": notice},
                ":w": {"N": str(job.expect_success_within)},
                ":until": {"S": sortable(sending_until)},
            },
        }
        return self._transition(job, update, +1, check_at)

    def mark_on_time(
        self,
        job: Job,
        notice: str | None,
        check_at: datetime | None,
        sending_until: datetime | None = None,
    ) -> bool:
        """The job is no longer overdue (a success came; or it expects no more, or less): clear
        it, with `notice` to send if any (by this check, until `sending_until`), uncount it;
        look again at `check_at` (None: the watch goes). Only if it is still overdue since the
        instant it was read with."""
        assert job.overdue_since is not None
        values: dict[str, Any] = {":since": {"S": sortable(job.overdue_since)}}
        expression = "REMOVE overdue_since"
        if notice is not None:
            assert sending_until is not None
            expression = (
                "SET overdue_notice = :notice, overdue_notice_since = :since, "
                "overdue_notice_until = :until " + expression
            )
            values[":notice"] = {"S": notice}
            values[":until"] = {"S": sortable(sending_until)}
        update = {
            "TableName": self._table,
            "Key": job_key(job.id),
            "UpdateExpression": expression,
            "ConditionExpression": ("attribute_not_exists(deleted_at) AND overdue_since = :since"),
            "ExpressionAttributeValues": values,
        }
        return self._transition(job, update, -1, check_at)

    def notice_sent(
        self, job: Job, notice: str, deliveries: list[dict[str, Any]], check_at: datetime | None
    ) -> bool:
        """`notice` is sent (each delivery, sent or failed, recorded); look again at `check_at`
        (None: the watch goes). Only if the notice is still the one read: of two that sent it,
        one records it."""
        done = conditional_update(
            self._db,
            self._table,
            job_key(job.id),
            "SET overdue_notifications = :n "
            "REMOVE overdue_notice, overdue_notice_since, overdue_notice_until",
            "overdue_notice = :notice",
            {":n": dump({"n": deliveries})["n"], ":notice": {"S": notice}},
            what="recording the job's overdue notification",
        )
        if done:
            if check_at is None:
                self.remove(job.id)
            else:
                self.move(job.id, check_at)
        return done

    def claim_notice(self, job: Job, notice: str, now: datetime, until: datetime) -> bool:
        """Take over sending `notice`, until `until`: only if it is still to be sent and the
        check that was sending it is presumed dead (its time is over, or it recorded none)."""
        return conditional_update(
            self._db,
            self._table,
            job_key(job.id),
            "SET overdue_notice_until = :until",
            "overdue_notice = :notice AND "
            "(attribute_not_exists(overdue_notice_until) OR overdue_notice_until <= :now)",
            {
                ":until": {"S": sortable(until)},
                ":notice": {"S": notice},
                ":now": {"S": sortable(now)},
            },
            what="taking over the job's overdue notification",
        )

    def _transition(
        self, job: Job, update: dict[str, Any], delta: int, check_at: datetime | None
    ) -> bool:
        watch = (
            {"Delete": {"TableName": self._table, "Key": watch_key(job.id)}}
            if check_at is None
            else self.put_item(job.id, check_at)
        )
        items = [{"Update": update}, self._counters.job_delta(overdue_jobs=delta), watch]
        try:
            with_backoff(
                lambda: self._db.transact_write_items(TransactItems=items),
                what="recording the job's overdue state",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
