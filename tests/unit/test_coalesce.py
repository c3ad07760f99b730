"""Writes gathered from many threads go out together, and nothing gathered is left behind."""

from __future__ import annotations

import threading
import time

import pytest

from chalicelib.coalesce import Coalescer


def test_items_added_from_many_threads_within_the_linger_go_out_in_one_send():
    sends: list[list[int]] = []
    gather = Coalescer(sends.append, linger=0.3)
    threads = [threading.Thread(target=gather.add, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sends == []  # still lingering
    time.sleep(0.6)
    assert len(sends) == 1
    assert sorted(sends[0]) == list(range(10))


def test_flush_sends_what_is_gathered_at_once_and_the_timer_then_sends_nothing_more():
    sends: list[list[str]] = []
    gather = Coalescer(sends.append, linger=0.2)
    gather.add("a")
    gather.add("b")
    gather.flush()
    assert sends == [["a", "b"]]
    time.sleep(0.4)
    assert sends == [["a", "b"]]
    gather.flush()  # nothing gathered: no empty send
    assert sends == [["a", "b"]]


def test_items_added_after_a_send_start_a_new_linger():
    sends: list[list[int]] = []
    gather = Coalescer(sends.append, linger=0.1)
    gather.add(1)
    time.sleep(0.3)
    gather.add(2)
    time.sleep(0.3)
    assert sends == [[1], [2]]


def test_with_no_linger_each_item_is_sent_at_once_in_the_callers_thread():
    callers: list[str] = []
    gather = Coalescer(lambda items: callers.append(threading.current_thread().name), linger=0)
    gather.add(1)
    assert callers == [threading.current_thread().name]


def test_a_failed_send_is_logged_and_does_not_stop_later_sends(caplog: pytest.LogCaptureFixture):
    sends: list[list[int]] = []

    def send(items: list[int]) -> None:
        if items == [1]:
            raise RuntimeError("throttled")
        sends.append(items)

    gather = Coalescer(send, linger=0.05)
    gather.add(1)
    gather.flush()
    gather.add(2)
    gather.flush()
    assert sends == [[2]]
    assert "throttled" in caplog.text
    assert "1 item(s) failed" in caplog.text
