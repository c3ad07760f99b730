"""The runs a claim sent ahead, as the job keeps them: the API's next run is the first after now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib import queued

T0 = datetime(2027, 1, 1, 12, 0, tzinfo=UTC)


def test_fourteen_runs_a_minute_apart_take_a_few_dozen_characters():
    runs = [T0 + timedelta(minutes=i) for i in range(14)]
    text = queued.encode(runs)
    assert text is not None and len(text) < 40
    assert queued.first_after(text, T0 - timedelta(seconds=1)) == T0
    assert queued.first_after(text, T0) == T0 + timedelta(minutes=1)
    assert queued.first_after(text, T0 + timedelta(minutes=5, seconds=30)) == T0 + timedelta(
        minutes=6
    )
    assert queued.first_after(text, T0 + timedelta(minutes=13)) is None


def test_irregular_runs_and_microseconds_come_back_exactly():
    runs = [
        T0,
        T0 + timedelta(seconds=10),
        T0 + timedelta(seconds=20),
        T0 + timedelta(minutes=5, microseconds=7),
        T0 + timedelta(minutes=9),
    ]
    text = queued.encode(runs)
    after = [queued.first_after(text, t - timedelta(microseconds=1)) for t in runs]
    assert after == runs


def test_no_runs_is_no_text_and_no_next_run():
    assert queued.encode([]) is None
    assert queued.first_after(None, T0) is None
    assert queued.first_after("", T0) is None


def test_the_latest_runs_before_now_come_latest_first():
    runs = [T0 + timedelta(minutes=i) for i in range(5)]
    text = queued.encode(runs)
    assert queued.runs(text) == runs
    assert queued.latest(text, T0 + timedelta(minutes=2, seconds=1), 2) == [runs[2], runs[1]]
    assert queued.latest(text, T0 - timedelta(seconds=1), 2) == []
    assert queued.latest(None, T0, 2) == []
