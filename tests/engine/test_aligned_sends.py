"""The tick holds its sends so that each run's message shows up within ALIGN_TOLERANCE of the
run, not up to a second before it (SQS delays are whole seconds, and a worker waits out an
early message, a wait Lambda bills): whatever the instant of the tick, whichever call dies.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from chalicelib.engine.queue import ALIGN_TOLERANCE, WorkQueue
from chalicelib.engine.tick import ALIGN_FOR, Dispatcher
from chalicelib.models import Job
from tests.engine.harness import EPOCH, System, check_invariants
from tests.faults import FaultInjector


class SentAt:
    """The work queue's SQS client, noting when (on the virtual clock) each message it sent
    was sent, with its delay."""

    def __init__(self, system: System) -> None:
        self._system = system
        self.sent: list[tuple[datetime, int, dict[str, Any]]] = []

    def send_message_batch(self, **params: Any) -> Any:
        out = self._system.sqs.send_message_batch(**params)
        now = self._system.clock.now
        self.sent.extend(
            (now, entry["DelaySeconds"], json.loads(entry["MessageBody"]))
            for entry in params["Entries"]
        )
        return out

    def shows_up_early(self) -> list[float]:
        """For each message sent ahead of its run: how long before the run it shows up
        (negative: after it)."""
        out = []
        for sent_at, delay, body in self.sent:
            start_at = datetime.fromisoformat(body["not_before"])
            if (start_at - sent_at).total_seconds() > ALIGN_TOLERANCE:
                out.append((start_at - (sent_at + timedelta(seconds=delay))).total_seconds())
        return out


def aligned_ticks(system: System) -> SentAt:
    """The deployed tick's hold (ALIGN_FOR), its sleeps on the virtual clock; one call at a
    time, as that clock is one for every thread."""
    sqs = SentAt(system)
    system.dispatcher = Dispatcher(
        system.store,
        WorkQueue(sqs, system.queue_url, sleep=lambda _s: None),
        concurrency=1,
        monotonic=lambda: system.clock.now.timestamp(),
        sleep=system.clock.sleep,
        align_for=ALIGN_FOR,
    )
    return sqs


def jobs_from_two(
    system: System, minutes: int = 4, plain: int = 4, every_20s: int = 2
) -> list[Job]:
    """For `minutes` from 2:00: `plain` jobs every minute (their runs carry the job),
    `every_20s` jobs every 20 s, one every 7 s; created, and ticking, 0.37 s into a second."""
    system.clock.now = EPOCH + timedelta(seconds=0.37)
    window = {
        "start_time": (EPOCH + timedelta(minutes=2)).isoformat(),
        "end_time": (EPOCH + timedelta(minutes=2 + minutes)).isoformat(),
    }
    every_minute = {"job_type": "cron", "cron_expression": "* * * * *"}
    return [
        *(system.create_job(**every_minute, **window) for _ in range(plain)),
        *(
            system.create_job(job_type="interval", interval_seconds=20, **window)
            for _ in range(every_20s)
        ),
        system.create_job(job_type="interval", interval_seconds=7, **window),
    ]


def test_every_run_sent_by_a_tick_shows_up_within_50_ms_of_its_time_and_starts_on_it(system):
    sqs = aligned_ticks(system)
    jobs = jobs_from_two(system)
    system.run(until=timedelta(minutes=8), stop_when_quiet=False)
    runs = check_invariants(system, jobs)
    early = sqs.shows_up_early()
    assert len(early) == len(runs) == 4 * 5 + 2 * 13 + 35
    assert max(abs(e) for e in early) <= ALIGN_TOLERANCE + 1e-6
    late = [
        (attempts[0].started_at - t).total_seconds()
        for (_, t), attempts in runs.items()
        if attempts[0].started_at is not None
    ]
    assert len(late) == len(runs) and min(late) >= 0 and max(late) <= ALIGN_TOLERANCE + 1e-6


def test_without_the_hold_the_same_runs_show_up_up_to_a_second_early(system):
    sqs = aligned_ticks(system)
    system.dispatcher.align_for = timedelta(0)
    jobs = jobs_from_two(system)
    system.run(until=timedelta(minutes=8), stop_when_quiet=False)
    check_invariants(system, jobs)
    early = sqs.shows_up_early()
    assert early and min(early) >= 0 and max(early) == pytest.approx(0.63, abs=1e-6)


def test_a_tick_holds_its_sends_under_a_second_and_counts_the_runs_it_aligned(system):
    sqs = aligned_ticks(system)
    jobs_from_two(system)
    system.clock.now = EPOCH + timedelta(minutes=1, seconds=0.37)
    report = system.dispatcher.tick(system.clock.now)
    held = (system.clock.now - (EPOCH + timedelta(minutes=1, seconds=0.37))).total_seconds()
    assert report.runs_sent == len(sqs.sent) == report.runs_aligned > 0
    assert 0 < held < 1


@pytest.mark.parametrize("kind", ["crash", "crash_after"])
def test_a_crash_at_any_send_of_an_aligned_tick_loses_and_doubles_nothing(aws, kind):
    few = {"minutes": 1, "plain": 1, "every_20s": 0}
    baseline = System("aligned-0")
    aligned_ticks(baseline)
    jobs_from_two(baseline, **few)
    counter = baseline.inject(FaultInjector())
    baseline.run(until=timedelta(minutes=4), stop_when_quiet=False)
    sends = counter.calls.count("sqs.SendMessageBatch")
    assert sends >= 2, sends
    for n in range(1, sends + 1):
        system = System(f"aligned-{kind}-{n}")
        sqs = aligned_ticks(system)
        jobs = jobs_from_two(system, **few)
        system.inject(FaultInjector().inject(n, kind, op="SendMessageBatch"))
        system.run(until=timedelta(minutes=4), stop_when_quiet=False)
        system.stop_faults()
        system.run(until=timedelta(hours=1))
        assert system.deaths.total == 1, f"send {n}: {system.deaths}"
        runs = check_invariants(system, jobs)
        assert len(runs) == 2 + 9
        # A run its tick sent after the crash is still held to its time.
        assert max(abs(e) for e in sqs.shows_up_early()) <= ALIGN_TOLERANCE + 1e-6


def test_a_job_with_no_grace_runs_when_its_message_shows_up_milliseconds_after_its_time(system):
    # Ticking 0.03 s into a second, the tick sends at once, its delays rounded up: each
    # message shows up 30 ms after its run. A grace of 0 means "within its own second".
    sqs = aligned_ticks(system)
    system.clock.now = EPOCH + timedelta(seconds=0.03)
    window = {
        "start_time": (EPOCH + timedelta(minutes=2)).isoformat(),
        "end_time": (EPOCH + timedelta(minutes=4)).isoformat(),
    }
    job = system.create_job(
        job_type="cron", cron_expression="* * * * *", misfire_grace_seconds=0, **window
    )
    system.run(until=timedelta(minutes=6), stop_when_quiet=False)
    runs = check_invariants(system, [job])
    assert min(sqs.shows_up_early()) == pytest.approx(-0.03, abs=1e-6)
    assert len(runs) == 3
    assert {attempts[-1].status for attempts in runs.values()} == {"completed"}


def test_a_job_with_no_grace_misses_a_run_a_late_tick_finds_more_than_a_second_old(system):
    aligned_ticks(system)
    start = EPOCH + timedelta(minutes=2)
    job = system.create_job(
        job_type="date", scheduled_time=start.isoformat(), misfire_grace_seconds=0
    )
    system.clock.now = start + timedelta(seconds=1.5)  # the tick at 2:00 did not come
    system.next_tick = system.clock.now
    system.run(until=timedelta(minutes=2))
    (attempts,) = check_invariants(system, [job]).values()
    assert attempts[-1].status == "missed"
