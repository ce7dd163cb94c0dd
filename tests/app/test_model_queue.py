"""app_core.model_queue: one model computation at a time, first come first served, and a line
that never stalls when a waiting script is stopped."""
from __future__ import annotations

import threading
import time

import pytest

from app_core.model_queue import ModelQueue


def _wait_until(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_turns_go_in_the_order_of_arrival_one_at_a_time():
    queue, order, inside = ModelQueue(), [], []
    gate = queue.turn()
    gate.__enter__()  # the first computation is running

    def worker(i):
        with queue.turn(every_s=0.01):
            inside.append(i)
            assert len(inside) == 1  # nobody else inside
            order.append(i)
            time.sleep(0.01)
            inside.remove(i)

    threads = []
    for i in range(5):
        t = threading.Thread(target=worker, args=(i,), daemon=True)
        t.start()
        threads.append(t)
        _wait_until(lambda: queue.waiting() == i + 2)  # its ticket is taken before the next arrives
    assert order == []
    gate.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4] and queue.waiting() == 0


def test_a_waiter_is_told_how_many_are_ahead():
    queue, seen = ModelQueue(), []
    gate = queue.turn()
    gate.__enter__()

    def first():
        with queue.turn(every_s=0.01):
            pass

    def second():
        with queue.turn(on_wait=seen.append, every_s=0.01):
            pass

    a = threading.Thread(target=first, daemon=True)
    a.start()
    _wait_until(lambda: queue.waiting() == 2)
    b = threading.Thread(target=second, daemon=True)
    b.start()
    _wait_until(lambda: len(seen) >= 1)
    assert seen[0] == 2  # the running computation and the first waiter
    gate.__exit__(None, None, None)
    a.join(5)
    b.join(5)
    assert queue.waiting() == 0 and seen == sorted(seen, reverse=True)  # the line only moves forward


def test_a_stopped_waiter_gives_its_ticket_up_and_the_line_moves_on():
    queue, done = ModelQueue(), []
    gate = queue.turn()
    gate.__enter__()

    class Stopped(Exception):
        pass

    def stopped(_ahead):
        raise Stopped  # as Streamlit stops an outdated rerun at its next st call

    def quitter():
        with pytest.raises(Stopped):
            with queue.turn(on_wait=stopped, every_s=0.01):
                done.append("quitter")  # never reached

    q = threading.Thread(target=quitter, daemon=True)
    q.start()
    q.join(5)
    def later_one():
        with queue.turn(every_s=0.01):
            done.append("later")

    later = threading.Thread(target=later_one, daemon=True)
    later.start()
    _wait_until(lambda: queue.waiting() == 2)  # the running one and the later one; the quitter is gone
    gate.__exit__(None, None, None)
    later.join(5)
    assert done == ["later"] and queue.waiting() == 0


def test_an_error_inside_a_turn_ends_the_turn():
    queue = ModelQueue()
    with pytest.raises(ValueError):
        with queue.turn():
            raise ValueError("bad image")
    with queue.turn():  # not stalled
        assert queue.waiting() == 1
    assert queue.waiting() == 0
