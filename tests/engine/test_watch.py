"""The dead-man's switch (issue 14, item 4): a job that sets `expect_success_within` and has
no run succeed in that time raises `job.overdue` once, and `job.recovered` at its next
success; the overview counts the jobs that are overdue.

The whole engine on a virtual clock (tests/engine/harness.py), its ticks every minute, and a
webhook receiver on loopback (tests/receiver.py) as the job's notify channel.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from chalicelib.engine.watch import NOTICE_LEASE, OVERDUE, RECOVERED, Watch
from chalicelib.models import Job
from tests.engine.conftest import FLAKY
from tests.engine.harness import EPOCH, TICK, System
from tests.receiver import Receiver


def watched(system: System, receiver: Receiver, within: int, **fields: Any) -> Job:
    body: dict[str, Any] = {
        "job_type": "interval",
        "interval_seconds": 600,
        "expect_success_within": within,
        "notify": {"on_failure": False, "channels": [{"webhook_url": receiver.url}]},
        **fields,
    }
    return system.create_job(**body)


def run_to(system: System, offset: timedelta) -> None:
    """Ticks and deliveries until EPOCH + offset, quiet or not."""
    system.run(until=EPOCH + offset - system.clock.now, stop_when_quiet=False)


def overdue_count(system: System) -> int:
    return int(system.api.overview(system.clock.now)["overdue_jobs"])


def test_a_paused_job_raises_one_overdue_at_its_deadline_and_no_more(
    system: System, receiver: Receiver
) -> None:
    job = watched(system, receiver, 300, is_active=False)

    run_to(system, timedelta(seconds=299))
    assert receiver.posts == []
    assert system.job(job.id).overdue_since is None

    run_to(system, timedelta(minutes=30))
    assert receiver.events() == [OVERDUE]
    (body,) = receiver.bodies()
    deadline = EPOCH + timedelta(seconds=300)
    assert body["overdue"] == {
        "expect_success_within": 300,
        "last_success_at": None,
        "since": "2030-01-07T12:05:00Z",
        "recovered_at": None,
    }
    assert body["event_id"] == f"job.overdue:{job.id}:2030-01-07T12:05:00Z"
    stored = system.job(job.id)
    assert stored.overdue_since == deadline
    assert stored.overdue_notice is None
    (delivery,) = stored.overdue_notifications or []
    assert (delivery["event"], delivery["status"]) == (OVERDUE, "sent")
    # Sent on its second (a timer message the tick sent ahead), not at a later tick.
    assert delivery["at"] == "2030-01-07T12:05:00Z"
    shown = stored.to_api()
    assert shown["overdue_since"] == "2030-01-07T12:05:00Z"
    assert shown["expect_success_within"] == 300
    assert overdue_count(system) == 1


def test_a_failing_job_is_overdue_then_recovers_once_at_its_first_success(
    system: System, receiver: Receiver
) -> None:
    job = watched(
        system,
        receiver,
        900,
        interval_seconds=300,
        task_name="test.flaky",
        start_time=(EPOCH + timedelta(seconds=60)).isoformat(),
    )
    run_to(system, timedelta(minutes=20))
    assert receiver.events() == [OVERDUE]  # runs at 1, 6, 11 min failed: overdue at 15 min
    assert system.job(job.id).overdue_since == EPOCH + timedelta(minutes=15)
    assert overdue_count(system) == 1

    FLAKY["fail"] = False
    run_to(system, timedelta(minutes=22))  # the run at 21 min succeeds
    assert receiver.events() == [OVERDUE, RECOVERED]
    recovered = receiver.bodies()[1]
    assert recovered["overdue"]["since"] == "2030-01-07T12:15:00Z"
    assert recovered["overdue"]["recovered_at"] == recovered["overdue"]["last_success_at"]
    assert recovered["event_id"] == f"job.recovered:{job.id}:2030-01-07T12:15:00Z"
    stored = system.job(job.id)
    assert stored.overdue_since is None
    assert stored.last_success_at is not None
    assert stored.last_success_at >= EPOCH + timedelta(minutes=21)
    assert overdue_count(system) == 0

    run_to(system, timedelta(hours=2))  # it keeps succeeding: nothing more
    assert receiver.events() == [OVERDUE, RECOVERED]


def test_a_job_that_succeeds_in_time_is_never_overdue(system: System, receiver: Receiver) -> None:
    FLAKY["fail"] = False
    job = watched(
        system,
        receiver,
        700,
        task_name="test.flaky",
        start_time=(EPOCH + timedelta(seconds=60)).isoformat(),
    )
    run_to(system, timedelta(hours=3))
    assert receiver.posts == []
    assert system.job(job.id).overdue_since is None
    assert overdue_count(system) == 0


def test_a_tick_that_was_down_raises_overdue_when_it_comes_back(
    system: System, receiver: Receiver
) -> None:
    job = watched(system, receiver, 600, is_active=False)
    system.clock.now = EPOCH + timedelta(hours=1)  # no tick, no worker, for an hour
    system.next_tick = system.clock.now
    run_to(system, timedelta(hours=1, minutes=5))
    assert receiver.events() == [OVERDUE]
    # Overdue since its deadline, not since the tick saw it.
    assert system.job(job.id).overdue_since == EPOCH + timedelta(seconds=600)


def test_every_message_delivered_twice_still_sends_each_notice_once(
    aws: None, receiver: Receiver
) -> None:
    system = System("watch-twice", duplicate_every_delivery=True)
    job = watched(
        system,
        receiver,
        900,
        interval_seconds=300,
        task_name="test.flaky",
        start_time=(EPOCH + timedelta(seconds=60)).isoformat(),
    )
    run_to(system, timedelta(minutes=20))
    FLAKY["fail"] = False
    run_to(system, timedelta(minutes=40))
    assert receiver.events() == [OVERDUE, RECOVERED]
    assert system.job(job.id).overdue_since is None
    assert overdue_count(system) == 0


def test_two_checks_at_once_make_one_transition(system: System, receiver: Receiver) -> None:
    job = watched(system, receiver, 300, is_active=False)
    at = EPOCH + timedelta(minutes=6)
    stale = system.store.jobs.get_job(job.id)
    first = Watch(system.store, system.queue, sleep=system.clock.sleep)
    assert first.check(job.id, at) == OVERDUE
    # A second check that read the job before the first wrote cannot mark it again.
    assert not system.store.watches.mark_overdue(
        stale, at, OVERDUE, check_at=at, sending_until=at + NOTICE_LEASE
    )
    assert first.check(job.id, at + TICK) is None
    assert receiver.events() == [OVERDUE]
    assert overdue_count(system) == 1


def test_a_check_while_another_sends_the_notice_sends_nothing(
    system: System, receiver: Receiver
) -> None:
    """The API's check and the tick's, at the same deadline: one notice, not two."""
    job = watched(system, receiver, 300, is_active=False)
    at = EPOCH + timedelta(minutes=6)
    first = Watch(system.store, system.queue, sleep=system.clock.sleep)
    second = Watch(system.store, system.queue, sleep=system.clock.sleep)
    meanwhile: list[str | None] = []
    receiver.while_posting = lambda: meanwhile.append(second.check(job.id, at))
    assert first.check(job.id, at) == OVERDUE
    assert meanwhile == [None]  # it met the notice the first was sending, and left it
    assert receiver.events() == [OVERDUE]
    assert system.job(job.id).overdue_notice is None
    assert overdue_count(system) == 1


def test_a_notice_whose_sender_died_is_sent_once_its_time_to_send_is_over(
    system: System, receiver: Receiver
) -> None:
    job = watched(system, receiver, 300, is_active=False)
    at = EPOCH + timedelta(minutes=6)
    # The transition a check made before it died, its notice unsent.
    assert system.store.watches.mark_overdue(
        system.job(job.id),
        EPOCH + timedelta(seconds=300),
        OVERDUE,
        check_at=at,
        sending_until=at + NOTICE_LEASE,
    )
    check = Watch(system.store, system.queue, sleep=system.clock.sleep)
    assert check.check(job.id, at + NOTICE_LEASE - timedelta(seconds=1)) is None
    assert receiver.posts == []
    assert check.check(job.id, at + NOTICE_LEASE) == OVERDUE
    assert check.check(job.id, at + NOTICE_LEASE) is None
    assert receiver.events() == [OVERDUE]
    stored = system.job(job.id)
    assert (stored.overdue_notice, stored.overdue_notice_until) == (None, None)
    assert overdue_count(system) == 1


def test_deleting_an_overdue_job_takes_it_out_of_the_count(
    system: System, receiver: Receiver
) -> None:
    job = watched(system, receiver, 300, is_active=False)
    run_to(system, timedelta(minutes=10))
    assert overdue_count(system) == 1
    system.api.delete_job(job.id, system.clock.now)
    assert overdue_count(system) == 0
    run_to(system, timedelta(minutes=20))
    assert receiver.events() == [OVERDUE]  # and nothing for the deleted job
    assert overdue_count(system) == 0


def test_expecting_nothing_or_longer_ends_an_overdue_spell_without_a_notice(
    system: System, receiver: Receiver
) -> None:
    job = watched(system, receiver, 300, is_active=False)
    run_to(system, timedelta(minutes=10))
    assert overdue_count(system) == 1

    system.api.update_job(job.id, {"expect_success_within": 3600}, system.clock.now)
    run_to(system, timedelta(minutes=11))
    assert system.job(job.id).overdue_since is None
    assert overdue_count(system) == 0
    assert receiver.events() == [OVERDUE]  # a changed threshold is not a recovery

    # The new threshold counts from the change: overdue an hour after it.
    run_to(system, timedelta(minutes=69))
    assert receiver.events() == [OVERDUE]
    run_to(system, timedelta(minutes=72))
    assert receiver.events() == [OVERDUE, OVERDUE]
    assert overdue_count(system) == 1

    system.api.update_job(job.id, {"expect_success_within": None}, system.clock.now)
    run_to(system, timedelta(hours=3))
    assert system.job(job.id).overdue_since is None
    assert overdue_count(system) == 0
    assert receiver.events() == [OVERDUE, OVERDUE]
    watch_items = [
        r for r in _items(system) if r["pk"]["S"] == f"JOB#{job.id}" and r["sk"]["S"] == "WATCH"
    ]
    assert watch_items == []  # the watch went with the expectation


def test_a_job_without_channels_is_still_counted_overdue(system: System) -> None:
    job = system.create_job(
        job_type="interval", interval_seconds=600, expect_success_within=60, is_active=False
    )
    run_to(system, timedelta(minutes=3))
    stored = system.job(job.id)
    assert stored.overdue_since == EPOCH + timedelta(seconds=60)
    assert stored.overdue_notifications == []
    assert overdue_count(system) == 1


def _items(system: System) -> list[dict[str, Any]]:
    return list(system.db.scan(TableName=system.store.table_name)["Items"])


def test_a_deadline_no_check_saw_pass_is_announced_late_not_never(
    system: System, receiver: Receiver
) -> None:
    """The check of the deadline was lost (its message dropped) and a success came after the
    deadline: the next check still finds the job was overdue from the deadline to that
    success, and says both, in order."""
    FLAKY["fail"] = False
    job = system.create_job(
        job_type="date",
        scheduled_time=(EPOCH + timedelta(minutes=5)).isoformat(),
        task_name="test.flaky",
        expect_success_within=240,
        notify={"channels": [{"webhook_url": receiver.url}]},
    )
    system.clock.now = EPOCH + timedelta(minutes=4, seconds=30)
    system.next_tick = system.clock.now
    system.tick()  # sends the run (for 5:00) and the switch's check (the deadline is 4:00)
    out = system.sqs.receive_message(QueueUrl=system.queue_url, MaxNumberOfMessages=10)
    for message in out["Messages"]:
        if json.loads(message["Body"]).get("control") == "watch":
            system.sqs.delete_message(
                QueueUrl=system.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        else:
            system.sqs.change_message_visibility(
                QueueUrl=system.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=30,
            )
    system.next_tick = system.clock.now + TICK
    run_to(system, timedelta(minutes=8))
    assert system.job(job.id).last_success_at is not None
    assert receiver.events() == [OVERDUE, RECOVERED]
    assert {b["overdue"]["since"] for b in receiver.bodies()} == {"2030-01-07T12:04:00Z"}
    assert overdue_count(system) == 0
