"""The dead-man's switch: a job that has not succeeded within `expect_success_within` seconds
is overdue, and says so once (`job.overdue`), and again when a run succeeds (`job.recovered`).

Whatever the reason (paused by mistake, failing, the tick down, never run at all), the
question is only "when did a run last succeed?". F2 records a completed run's end as the
job's `last_success_at`, in the write it makes anyway; the switch's deadline is

    max(last_success_at, expect_since) + expect_success_within

where `expect_since` is when the job started expecting (its creation, or the update that set
or changed `expect_success_within`): a job that has never run is overdue that long after it
was told to expect a success.

Where the state is (store.watches): on the job item (`overdue_since`, `overdue_notice`,
`overdue_notifications`), and a watch item in the job's partition that puts the job in the
`by_due` index at the next instant to look at it. Who looks (`Watch.check`, idempotent):

- a worker, on a `watch` control message (engine.control) timed for the watch's second: the
  tick sends one for each watch due up to its window ahead (`on_due`; it never looks itself,
  so a slow webhook cannot hold up the runs it sends);
- the API, after it writes a job whose expectation changed (a message timed the same way);
- the worker, after a run of an overdue job completed (a message for now).

A check reads the job and makes at most one transition, each one transaction conditional on
the state it read (so of two checks at once one makes it): on time -> overdue (`overdue_since`
the deadline, the overdue count +1, the notice `job.overdue` kept on the job); overdue -> on
time (a success after `overdue_since`: notice `job.recovered`, count -1; or no longer
expecting, or expecting longer: no notice). Then the notice is sent to the job's channels
(chalicelib.notify.channels_for) and recorded (`overdue_notifications`), and the notice
cleared. A check that dies between the transition and the record leaves the notice on the
job and the watch due: the next check sends it again (at least once; the event id, from
`overdue_since`, is the same). The check that makes a transition is presumed to be sending
its notice for NOTICE_LEASE (recorded as `overdue_notice_until`): a check that meets the
notice before then leaves it, so two checks at once (the API's and the tick's, at the same
deadline) send it once; one after takes it over (a conditional write: of two, one) and sends
it. A check that finds a success later than the deadline its
watch was set for, with no spell recorded (the check at the deadline died or came late),
records the spell from that deadline and announces it late, its recovery next: never lost.
While a job is overdue its watch stays due, so every tick
has a worker look at it (one message, one read) until it recovers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from chalicelib import notify
from chalicelib.engine.control import control_body, on_its_second, send_control
from chalicelib.engine.queue import WorkQueue
from chalicelib.models import Job
from chalicelib.store import DueEntry, Store
from chalicelib.timefmt import iso, parse_stored

log = logging.getLogger("nexus.watch")

CONTROL = "watch"
# The due-index entries of watches (Dispatcher's `on_due`): their sort key.
DUE_PREFIX = "WATCH"
OVERDUE = "job.overdue"
RECOVERED = "job.recovered"
# How long the check that set (or took over) a notice is presumed to be sending it: longer
# than a channel's tries (notify.deliver: 3 of WEBHOOK_TIMEOUT 5 s, 3 s of backoff; 18 s),
# shorter than the minute between the ticks that have a worker look at an overdue job again.
# A send that outlasts it (several channels, all timing out) may be sent again: at least once.
NOTICE_LEASE = timedelta(seconds=45)


def deadline(job: Job) -> datetime | None:
    """When the job is overdue if no run succeeds before; None if it expects nothing."""
    if job.expect_success_within is None:
        return None
    since = job.expect_since or job.created_at
    base = max(since, job.last_success_at) if job.last_success_at is not None else since
    return base + timedelta(seconds=job.expect_success_within)


def send_check(queue: WorkQueue, job_id: int, at: datetime, now: datetime) -> None:
    """Have the job's switch looked at at `at` (a `watch` control message)."""
    send_control(queue, control_body(CONTROL, job_id=job_id, at=iso(at)), at, now)


def facts(job: Job) -> dict[str, Any]:
    """The `overdue` object of a job.overdue or job.recovered body (chalicelib.notify)."""
    recovered = job.overdue_notice == RECOVERED
    return {
        "expect_success_within": job.expect_success_within,
        "last_success_at": iso(job.last_success_at),
        "since": iso(job.overdue_notice_since or job.overdue_since),
        "recovered_at": iso(job.last_success_at) if recovered else None,
    }


class Watch:
    """The dead-man's switch's checks: the tick's hook, the `watch` control handler."""

    def __init__(
        self,
        store: Store,
        queue: WorkQueue,
        *,
        window: timedelta = timedelta(seconds=60),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._queue = queue
        self._window = window
        self._sleep = sleep

    def on_due(self, entry: DueEntry, now: datetime) -> None:
        """The tick met the job's watch: have a worker look at its second (now, if it is due).
        The tick itself never looks: a notice's delivery (a slow webhook) must not hold up
        the runs the tick sends."""
        send_check(self._queue, entry.job_id, max(entry.due_at, now), now)

    def handle(self, data: dict[str, Any], now: datetime) -> None:
        """A `watch` control message: look at the job at the message's second."""
        try:
            job_id = int(str(data["job_id"]))
            at = parse_stored(str(data["at"]))
        except (KeyError, ValueError):
            log.error("dropping a watch message without a job and a time: %.200s", data)
            return
        if at is None:
            return
        when = on_its_second(at, now, self._sleep)
        if when is not None:
            self.check(job_id, when)

    def check(self, job_id: int, now: datetime) -> str | None:
        """Look at the job's switch at `now`, make the transition it needs, send its notice.
        Returns the notice sent (job.overdue, job.recovered) or None."""
        watches = self._store.watches
        job = self._store.jobs.find_job(job_id)
        if job is None or job.deleted_at is not None:
            watches.remove(job_id)  # a deleted job's count went with it (mark_deleted)
            return None
        if job.overdue_notice is not None:
            # Another check is sending it, or died between its transition and its record: send
            # it again only in the second case (presumed once its time to send is over).
            sending = job.overdue_notice_until is not None and job.overdue_notice_until > now
            if sending or not watches.claim_notice(
                job, job.overdue_notice, now, now + NOTICE_LEASE
            ):
                return None
            return self._send(job, job.overdue_notice, now)
        limit = deadline(job)
        if job.overdue_since is None:
            if limit is not None and limit > now:
                # A success came after the deadline the watch was set for, and no check saw
                # that deadline pass (one died, or came late): the job was overdue from then
                # to that success. Announced late rather than never; its recovery follows.
                missed = self._missed_deadline(job, watches.due(job_id), now)
                if missed is not None:
                    limit = missed
            if limit is None:
                watches.remove(job_id)
            elif limit > now:
                watches.move(job_id, limit)
                if limit <= now + self._window:
                    send_check(self._queue, job_id, limit, now)
            elif watches.mark_overdue(
                job, limit, OVERDUE, check_at=now, sending_until=now + NOTICE_LEASE
            ):
                job = job.model_copy(
                    update={
                        "overdue_since": limit,
                        "overdue_notice": OVERDUE,
                        "overdue_notice_since": limit,
                    }
                )
                log.warning(
                    "job overdue: no run succeeded in time",
                    extra={"job_id": job_id, "overdue_since": iso(limit)},
                )
                return self._send(job, OVERDUE, now)
            return None
        if job.last_success_at is not None and job.last_success_at > job.overdue_since:
            if watches.mark_on_time(job, RECOVERED, check_at=now, sending_until=now + NOTICE_LEASE):
                job = job.model_copy(
                    update={
                        "overdue_since": None,
                        "overdue_notice": RECOVERED,
                        "overdue_notice_since": job.overdue_since,
                    }
                )
                log.info("job recovered: a run succeeded", extra={"job_id": job_id})
                return self._send(job, RECOVERED, now)
        elif limit is None or limit > now:
            # It expects no success any more, or a later one (expect_success_within changed):
            # on time again, with nothing to announce.
            watches.mark_on_time(job, None, check_at=limit)
        return None

    @staticmethod
    def _missed_deadline(job: Job, due: datetime | None, now: datetime) -> datetime | None:
        """The watch's deadline `due`, if it passed before the job's last success came: the
        job was overdue from `due` on. Only a real deadline counts (one at least S after the
        job started expecting), not a watch due `now` after an update."""
        if due is None or due > now or job.last_success_at is None:
            return None
        assert job.expect_success_within is not None
        first = (job.expect_since or job.created_at) + timedelta(seconds=job.expect_success_within)
        return due if first <= due < job.last_success_at else None

    def _send(self, job: Job, notice: str, now: datetime) -> str:
        """Send `notice` to the job's channels, record what became of it, clear it."""
        body = notify.event_body(notice, job, None, now, overdue=facts(job))
        deliveries = [
            notify.deliver(channel, body, now=now, sleep=self._sleep).as_dict()
            for channel in notify.channels_for(job.notify)
        ]
        # Overdue: looked at again by every tick until a success; on time: at its deadline.
        check_at = now if notice == OVERDUE else deadline(job)
        recorded = self._store.watches.notice_sent(job, notice, deliveries, check_at)
        if recorded and check_at is not None and now < check_at <= now + self._window:
            send_check(self._queue, job.id, check_at, now)
        sent = sum(d["status"] == "sent" for d in deliveries)
        log.info(
            "overdue notice sent",
            extra={
                "job_id": job.id,
                "event": notice,
                "sent": sent,
                "failed": len(deliveries) - sent,
            },
        )
        return notice
