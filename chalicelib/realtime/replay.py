"""What a client missed while it was away: each job change and each run's latest state since
a time, rebuilt from the audit trail and the run history (docs/realtime.md, "Reconnecting").

Job changes come from the audit trail (written in the change's own transaction, so one exists
for every change made through the API), each with the job as it is now. Runs come from the
history of each job subscribed to: every run scheduled from `LOOKBACK` before `since` on whose
latest change (queued, started, ended) is at or after `since`, once, in its current state.
At most `MAX_REPLAYED` events, oldest first; the answer says when there were more.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.realtime.events import Event, run_event_time, run_event_type
from chalicelib.store import Store

MAX_REPLAYED = 1_000
# A run scheduled this long before `since` that changed after it (a long run, a late retry)
# is found too; older runs are not looked at.
LOOKBACK = timedelta(hours=1)
# Jobs looked at for a subscription to every job.
MAX_JOBS = 1_000
AUDIT_EVENTS = {
    "job.create": "job.created",
    "job.update": "job.updated",
    "job.pause": "job.paused",
    "job.resume": "job.resumed",
    "job.delete": "job.deleted",
}


def since(
    store: Store, jobs: str | list[int], start: datetime, now: datetime
) -> tuple[list[Event], bool]:
    """(the events, oldest first, at most MAX_REPLAYED; whether there were more)."""
    wanted = None if isinstance(jobs, str) else set(jobs)
    events: list[Event] = []
    entries = [
        e
        for e in store.audit.since(start, limit=MAX_REPLAYED + 1)
        if e.job_id is not None
        and e.action in AUDIT_EVENTS
        and (wanted is None or e.job_id in wanted)
    ]
    current: dict[int, dict[str, object]] = {}
    for job_id in {e.job_id for e in entries if e.job_id is not None}:
        job = store.jobs.find_job(job_id)
        current[job_id] = job.to_api() if job is not None else {"id": job_id}
    for entry in entries:
        assert entry.job_id is not None
        kind = AUDIT_EVENTS[entry.action]
        events.append(Event(kind, entry.job_id, entry.at, current[entry.job_id], replay=True))
    job_ids = sorted(wanted) if wanted is not None else _every_job(store)
    for job_id in job_ids:
        for run in store.runs.between(job_id, start - LOOKBACK, now + timedelta(days=1)):
            changed = run_event_time(run, run.created_at)
            if changed >= start:
                events.append(
                    Event(run_event_type(run), job_id, changed, run.to_api(), replay=True)
                )
        if len(events) > MAX_REPLAYED:
            break
    events.sort(key=lambda e: e.time)
    return events[:MAX_REPLAYED], len(events) > MAX_REPLAYED


def _every_job(store: Store) -> list[int]:
    ids: list[int] = []
    cursor = None
    while len(ids) < MAX_JOBS:
        page, cursor = store.jobs.list_jobs_page(skip=0, limit=100, cursor=cursor)
        ids.extend(job.id for job in page)
        if not cursor:
            break
    return ids[:MAX_JOBS]
