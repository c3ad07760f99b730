"""When a run's message is sent, and with what delay, so that it shows up close to its run:
SQS delays are whole seconds (chalicelib.engine.queue)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.engine.queue import (
    ALIGN_TOLERANCE,
    MAX_DELAY_SECONDS,
    Alignment,
    aligned,
    delay_for,
    hold_for,
)
from chalicelib.models import Execution

RUN = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def execution(start_at: datetime = RUN) -> Execution:
    return Execution(
        id="1#x",
        job_id=1,
        scheduled_for=start_at,
        start_at=start_at,
        task_name="nexus.echo",
        status="pending",
        trigger="scheduled",
        task_id="t",
        created_at=start_at - timedelta(minutes=1),
    )


def shows_up(sent_at: datetime, start_at: datetime = RUN) -> float:
    """Seconds before its run a message sent at `sent_at` shows up (negative: after)."""
    delay = delay_for(execution(start_at), sent_at)
    return (start_at - (sent_at + timedelta(seconds=delay))).total_seconds()


@pytest.mark.parametrize("left", [0.4, 1.37, 9.5, 59.06, 59.99, 600.2])
def test_a_message_sent_at_any_instant_shows_up_at_most_a_second_early_and_barely_late(left):
    early = shows_up(RUN - timedelta(seconds=left))
    assert -ALIGN_TOLERANCE <= early < 1


@pytest.mark.parametrize("left", [3.63, 59.37, 0.81, 121.5])
def test_a_message_held_as_hold_for_says_shows_up_within_the_tolerance_of_its_run(left):
    held = hold_for(left)
    assert 0 < held < 1
    early = shows_up(RUN - timedelta(seconds=left - held))
    assert abs(early) <= ALIGN_TOLERANCE + 1e-6
    assert aligned(left - held) and not aligned(left)


@pytest.mark.parametrize("left", [59.03, 59.97, 12.0, 0.02, -0.01])
def test_a_message_already_within_the_tolerance_is_not_held(left):
    assert hold_for(left) == 0 and aligned(left)


@pytest.mark.parametrize("left", [-3.0, -0.4, -12.7])
def test_a_run_due_already_is_never_held_and_does_not_count_as_aligned(left):
    assert hold_for(left) == 0
    assert delay_for(execution(), RUN - timedelta(seconds=left)) == 0
    assert not aligned(left)


def test_a_run_past_sqs_longest_delay_does_not_count_as_aligned():
    assert not aligned(MAX_DELAY_SECONDS + 60.0)
    assert delay_for(execution(), RUN - timedelta(seconds=MAX_DELAY_SECONDS + 60)) == (
        MAX_DELAY_SECONDS
    )


class FakeTime:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_an_alignment_holds_a_send_until_its_message_will_show_up_on_time():
    time = FakeTime(RUN - timedelta(seconds=42.6))
    alignment = Alignment(time.clock, time.sleep, until=time.now + timedelta(seconds=3))
    sent_at = alignment.hold(RUN)
    assert time.slept == [pytest.approx(0.6 - ALIGN_TOLERANCE)]
    assert sent_at == time.now
    assert abs(shows_up(sent_at)) <= ALIGN_TOLERANCE + 1e-6


def test_an_alignment_past_its_time_sends_at_once():
    time = FakeTime(RUN - timedelta(seconds=42.6))
    alignment = Alignment(time.clock, time.sleep, until=time.now + timedelta(seconds=0.3))
    assert alignment.hold(RUN) == RUN - timedelta(seconds=42.6)
    assert time.slept == []
